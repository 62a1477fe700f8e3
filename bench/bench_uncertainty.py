"""Benchmark: what the bootstrap intervals add to scoring the default task.

    .venv/bin/python bench/bench_uncertainty.py [--split private] [--jobs 2]
                                                [--model-replicates 20]

Needs a scored default task (`harness score`): it reads leaderboard.csv, the cached pool and the
run records, then times, side by side on the same machine, (a) the metric alone, one forgetting
quality per scored row as the leaderboard computes it, and (b) all the rows' bootstrap replicates
with ``jobs`` processes as ``harness score`` computes them (into a temporary cache). It prints both
and their ratio; compare (b) with the wall time of `harness score` itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.evaluation.metric import forget_quality  # noqa: E402
from harness.execution.records import Outcome  # noqa: E402
from harness.execution.store import ResultsStore  # noqa: E402
from harness.outputs.leaderboard import CEILING_ROW, read_leaderboard, split_rows  # noqa: E402
from harness.pipeline.scoring import score_uncertainty  # noqa: E402
from harness.reference.pool import CEILING, ReferenceStore  # noqa: E402
from harness.tasks import get_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="private")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--model-replicates", type=int, default=20)
    args = parser.parse_args()

    board = split_rows(read_leaderboard(ROOT / "leaderboard.csv"), args.split)
    first = board.iloc[0]
    task = get_task(str(first["task"]), num_models=int(first["num_models"]),
                    root_seed=int(first["root_seed"]), split=args.split)
    store = ReferenceStore(task, task.load_data(), ROOT / "reference_models")
    pool = store.pool()
    results = ResultsStore(ROOT / "results" / store.directory.name)
    scored = {CEILING_ROW: store.pool(which=CEILING)}
    for _, row in board.iterrows():
        if row["status"] == "ok":
            runs = results.load_runs(str(row["submission"]), str(row["provenance"]))
            stats = Outcome(str(row["submission"]), None, runs=runs).stats(task.num_models)
            if stats is not None:
                scored[str(row["submission"])] = stats
    start = time.perf_counter()
    for stats in scored.values():
        forget_quality(stats.confidences, pool.confidences)
    metric_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        score_uncertainty(scored, pool, task, Path(directory), jobs=args.jobs,
                          model_replicates=args.model_replicates)
        bootstrap_seconds = time.perf_counter() - start
    print(f"{len(scored)} scored rows of {task.name} ({args.split}), N = {task.num_models}")
    print(f"metric alone (one F per row):          {metric_seconds:7.1f} s")
    print(f"bootstrap intervals ({args.jobs} processes, "
          f"{args.model_replicates} model replicates): {bootstrap_seconds:7.1f} s")
    print(f"ratio: {bootstrap_seconds / metric_seconds:.1f}x the metric alone")


if __name__ == "__main__":
    main()
