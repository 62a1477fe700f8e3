"""What isolating submissions costs: this checkout against an earlier revision, side by side.

Runs, alternating between the two checkouts (the earlier one in a temporary ``git worktree``):
1. ``bench/bench_runner.py`` (the harness's overhead per run, one worker) and, with ``--jobs``,
   the same at that many workers;
2. ``harness score`` on digits at ``-n N`` for both splits with the shipped submissions, into a
   fresh cache per round (the pools are trained in every round, as on a fresh clone).

It prints each measurement and the ratios (this checkout / the earlier one). The earlier
revision runs in the same virtual environment, from its own folder (``PYTHONPATH``).

    .venv/bin/python bench/bench_isolation.py --baseline 042aa8e [--rounds 2] [-n 64]
        [--runner-only]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkouts import REPOSITORY, side_by_side


def overhead_ms(checkout: Path, environment: dict, runs: int, jobs: int) -> float:
    output = subprocess.run(
        [sys.executable, str(checkout / "bench" / "bench_runner.py"), "--runs", str(runs),
         "--jobs", str(jobs)],
        cwd=checkout, env=environment, capture_output=True, text=True, check=True,
    ).stdout
    return float(re.search(r"harness overhead: ([0-9.]+) ms", output).group(1))


def score_seconds(checkout: Path, environment: dict, num_models: int, scratch: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "score", "-n", str(num_models), "--split", "both",
         "--reference-root", str(scratch / "ref"), "--output", str(scratch / "results"),
         "--leaderboard", str(scratch / "board.csv"), "--submissions",
         str(REPOSITORY / "submissions")],
        cwd=checkout, env=environment, capture_output=True, text=True, check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier revision (git)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2, help="also measure at this many workers")
    parser.add_argument("-n", "--num-models", type=int, default=64)
    parser.add_argument("--runner-only", action="store_true",
                        help="measure the overhead per run only, not a whole scoring")
    args = parser.parse_args()

    with side_by_side(args.baseline) as checkouts, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        measured: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            order = list(checkouts) if round_ % 2 == 0 else list(reversed(checkouts))
            for name in order:
                checkout, environment = checkouts[name]
                values = {
                    "overhead ms/run, 1 worker": overhead_ms(
                        checkout, environment, args.runs, 1),
                    f"overhead ms/run, {args.jobs} workers": overhead_ms(
                        checkout, environment, args.runs, args.jobs),
                }
                if not args.runner_only:
                    values[f"harness score -n {args.num_models} --split both, s"] = (
                        score_seconds(checkout, environment, args.num_models,
                                      tmp / f"{name}-{round_}"))
                for what, value in values.items():
                    measured.setdefault((what, name), []).append(value)
                    print(f"round {round_ + 1}, {name}: {what} = {value:.2f}", flush=True)
    print(f"\nmedians over {args.rounds} rounds (earlier = {args.baseline})")
    for what in dict.fromkeys(w for w, _ in measured):
        before = statistics.median(measured[(what, "earlier")])
        after = statistics.median(measured[(what, "this")])
        print(f"{what}: earlier {before:.2f}, this {after:.2f}, ratio {after / before:.2f}")


if __name__ == "__main__":
    main()
