"""What the audits phase (``scoring.score_audits``) costs at a larger N than was scored.

Reads a scored leaderboard, its pools and its run records (``harness score`` at some N), repeats
every row's models (and the pool's) up to ``--target`` models, and times the audits of all rows
from an empty cache in ``--jobs`` processes. Each repetition's per-example losses are moved by a
different, negligible amount (MIA-Efficacy fits once per distinct model: an exact copy would
cost nothing), so repeated models cost what new ones would and this is the phase's time at the
target N without scoring at it (a row whose runs are all the same, doing nothing, gets one fit
per repetition instead of one).

    .venv/bin/python bench/bench_audits.py --leaderboard board.csv --reference-root ref \
        --output results -n 32 --target 512 --jobs 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.evaluation.model_stats import ModelStats
from harness.execution.records import Outcome
from harness.execution.store import ResultsStore
from harness.outputs.leaderboard import CEILING_ROW
from harness.pipeline.scoring import score_audits
from harness.reference.pool import CEILING, ReferenceStore
from harness.tasks import get_task


def tiled(stats: ModelStats, target: int) -> ModelStats:
    index = np.arange(target) % len(stats)
    arrays = {k: v[index] for k, v in stats.to_arrays().items()}
    repetition = (np.arange(target) // len(stats))[:, None]
    for name in ("forget_losses", "test_losses", "retain_losses"):
        if name in arrays:
            arrays[name] = arrays[name] + (1e-6 * repetition).astype(arrays[name].dtype)
    return ModelStats(**arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaderboard", required=True)
    parser.add_argument("--reference-root", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("-n", "--num-models", type=int, required=True, help="the scored N")
    parser.add_argument("--split", default="private")
    parser.add_argument("--target", type=int, default=512)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    task = get_task("digits", num_models=args.num_models, split=args.split)
    store = ReferenceStore(task, task.load_data(), Path(args.reference_root))
    results = ResultsStore(Path(args.output) / store.directory.name)
    board = pd.read_csv(args.leaderboard)
    scored = {}
    for _, row in board[board["split"] == args.split].iterrows():
        if isinstance(row["provenance"], str):
            runs = results.load_runs(row["submission"], row["provenance"])
            stats = Outcome(row["submission"], None, runs=runs).stats(args.num_models)
            if stats is not None:
                scored[row["submission"]] = tiled(stats, args.target)
    scored[CEILING_ROW] = tiled(store.read_pool(CEILING), args.target)
    pool = tiled(store.read_pool(), args.target)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        score_audits(scored, pool, task.with_options(num_models=args.target), Path(tmp),
                     jobs=args.jobs)
        seconds = time.perf_counter() - start
    print(f"audits of {len(scored) + 1} rows (the pool's included) at N = {args.target}, "
          f"{args.jobs} processes: {seconds:.1f} s")


if __name__ == "__main__":
    main()
