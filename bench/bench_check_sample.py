"""What the check's sample saves: ``harness check`` of the committed leaderboard on its sample
(rows whose code is unchanged re-run their first runs) against the same check with
``--all-runs``, side by side in this checkout.

Each round runs both commands, alternating which goes first, each from an empty run-records
folder (as on a fresh clone; the original model, the ceiling pool and the yardstick come from
the reference cache, trained by the first command that needs them); it prints each wall time,
each verdict line's count, and the ratio of the medians (sampled / all runs).

    .venv/bin/python bench/bench_check_sample.py [--split private] [--rounds 1]
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def check(split: str, output: Path, *extra: str) -> tuple[float, collections.Counter]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "check", "--baseline", "leaderboard.csv",
         "--split", split, "--no-progress", "--output", str(output), *extra],
        cwd=REPOSITORY, capture_output=True, text=True, check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"harness check {' '.join(extra)} failed:\n{done.stdout}{done.stderr}")
    verdicts = collections.Counter(  # a row's verdict: its last column
        re.split(r"\s{2,}", line.strip())[-1] for line in done.stdout.splitlines()
        if line.startswith(("private ", "public ")))
    return seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="private", choices=["private", "public"])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    measured: dict[str, list[float]] = {"sampled": [], "all runs": []}
    variants = {"sampled": [], "all runs": ["--all-runs"]}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in order:
                seconds, verdicts = check(args.split, Path(scratch) / f"{name}-{round_}",
                                          *variants[name])
                measured[name].append(seconds)
                print(f"round {round_ + 1}, {name}: {seconds:.1f} s; "
                      + ", ".join(f"{count} x {verdict}" for verdict, count in verdicts.items()),
                      flush=True)
    sampled, everything = (statistics.median(measured[k]) for k in ("sampled", "all runs"))
    print(f"median wall seconds: sampled {sampled:.1f}, all runs {everything:.1f}, ratio "
          f"{sampled / everything:.2f}")


if __name__ == "__main__":
    main()
