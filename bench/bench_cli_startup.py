"""How fast the CLI answers what needs no work: ``harness --help``, ``harness tasks`` and an
argument error, this checkout against an earlier revision, side by side.

Each command is started as a fresh ``python -m harness.cli`` process (what typing ``harness``
does), alternating between the two checkouts, ``--repeats`` times; it prints the median wall
seconds of each and the ratio (this checkout / the earlier one).

    .venv/bin/python bench/bench_cli_startup.py --baseline 407eee2 [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from checkouts import side_by_side

COMMANDS = {"--help": ["--help"], "tasks": ["tasks"], "argument error": ["score", "--bogus"]}


def seconds(command: list[str], checkout, environment: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", *command], cwd=checkout, env=environment,
                   capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier revision (git)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    measured: dict[tuple[str, str], list[float]] = {}
    with side_by_side(args.baseline) as checkouts:
        for repeat in range(args.repeats):
            order = list(checkouts) if repeat % 2 == 0 else list(reversed(checkouts))
            for name in order:
                for what, command in COMMANDS.items():
                    value = seconds(command, *checkouts[name])
                    measured.setdefault((what, name), []).append(value)
    print(f"median wall seconds over {args.repeats} starts (earlier = {args.baseline})")
    for what in COMMANDS:
        before = statistics.median(measured[(what, "earlier")])
        after = statistics.median(measured[(what, "this")])
        print(f"harness {what}: earlier {before:.2f}, this {after:.2f}, ratio {after / before:.2f}")


if __name__ == "__main__":
    main()
