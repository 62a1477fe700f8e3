"""Where the default scoring's time goes, this checkout against an earlier revision, side by side.

Runs ``harness score --split private`` (the README's first command after its install: every
shipped submission on digits at N = 512, the ceiling included) in each checkout, one after the
other, each into a fresh cache (the pools are trained, as on a fresh clone), and prints the
phase table each wrote beside its leaderboard (``harness.execution.phases``), the wall time of the
whole command and the ratios. The earlier revision must write the phase table (1cf1d53 or later).

    .venv/bin/python bench/bench_default_score.py --baseline 1cf1d53 [-n 512]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from checkouts import REPOSITORY, side_by_side


def phases(checkout: Path, environment: dict, scratch: Path, num_models: int) -> pd.Series:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "score", "-n", str(num_models), "--split",
         "private", "--reference-root", str(scratch / "ref"), "--output",
         str(scratch / "results"), "--leaderboard", str(scratch / "board.csv"),
         "--submissions", str(REPOSITORY / "submissions")],
        cwd=checkout, env=environment, capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - start
    table = pd.read_csv(scratch / "board.phases.csv").set_index("phase")["seconds"]
    return pd.concat([table, pd.Series({"the whole command": wall})])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier revision (git)")
    parser.add_argument("-n", "--num-models", type=int, default=512)
    args = parser.parse_args()
    with side_by_side(args.baseline) as checkouts, tempfile.TemporaryDirectory() as tmp:
        measured = {
            name: phases(checkout, environment, Path(tmp) / name, args.num_models)
            for name, (checkout, environment) in checkouts.items()
        }
    table = pd.DataFrame(measured)
    table["ratio"] = table["this"] / table["earlier"]
    print(f"wall seconds per phase (earlier = {args.baseline}), harness score -n "
          f"{args.num_models} --split private")
    print(table.to_string(float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
