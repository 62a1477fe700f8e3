"""Benchmark: the reference pool built, and the submissions run, on a 2-worker dask.distributed
LocalCluster vs locally at the same parallelism.

    .venv/bin/python bench/bench_cluster.py [--models 512] [--workers 2] [--runs 512]

Both sides train the same missing chunks (``pool.CHUNK_SIZE`` models each) of the default
digits pool with ``ensemble.train_chunk_ensemble`` into a fresh cache: locally through
``ReferenceStore.pool(jobs=W)`` (joblib processes, one torch thread each, as joblib limits
them), on the cluster through ``cluster.build_reference_on_cluster`` (W worker processes of one
thread each). The original model is trained before either timing starts, and the cluster's
start-up is timed apart from the builds: what is compared is the cost of shipping chunks to
workers and results back. ``--rounds`` builds of each side alternate which goes first, so a
change in the machine's load falls on both alike (the load averages are printed). Both builds
must give the same statistics.

The scoring half does ``--runs`` runs of every submission in ``submissions/`` (their tuned
settings, the default task's public split) into a fresh record folder on each side: locally
through ``runner.WorkerPool(jobs=W)`` (W worker processes, as ``harness score -j W``), on the
cluster through ``cluster.ClusterWorkers`` (a run slot per Dask worker thread), both with
``scoring.run_submissions`` and no time budget. Each side's workers start, and time the
yardstick, before the timer starts. Every run's numbers must be equal on both sides.

The goal of issue 13: an overhead ratio (cluster / local) of at most 1.2 for each half.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.evaluation.model_stats import ModelStats
from harness.execution.cluster import ClusterWorkers, build_reference_on_cluster
from harness.execution.records import Outcome
from harness.execution.runner import WorkerPool
from harness.execution.store import ResultsStore
from harness.methods.loading import discover
from harness.methods.tuned_settings import settings_for, tuned_path
from harness.pipeline.scoring import provenance_of, run_submissions
from harness.reference.ensemble import train_chunk_ensemble
from harness.reference.pool import ORIGINAL_FILE, ReferenceStore
from harness.tasks.digits import digits_task

TARGET_RATIO = 1.2


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def build_local(store: ReferenceStore, workers: int, client) -> ModelStats:
    return store.pool(train_chunk=train_chunk_ensemble, jobs=workers)


def build_cluster(store: ReferenceStore, workers: int, client) -> ModelStats:
    return build_reference_on_cluster(store, client, train_chunk=train_chunk_ensemble)


def score_runs(side: str, task, data, store: ReferenceStore, folder: Path, workers: int,
               client) -> tuple[float, dict]:
    """Seconds for every submission's runs on one side, and each run's numbers."""
    found, _ = discover(Path("submissions"))
    settings, _ = settings_for(found, tuned_path(Path("submissions"), task.name), False)
    outcomes = {
        s.name: Outcome(s.name, s, provenance=provenance_of(task, data, s, settings[s.name]))
        for s in found if s.name in settings
    }
    results = ResultsStore(folder / side)
    results.ensure_writable()
    original = store.directory / ORIGINAL_FILE
    pool = (WorkerPool(task, original, jobs=workers) if side == "local"
            else ClusterWorkers(client, task, data, original))
    with pool:
        pool.time_retrain()  # workers started and warm on both sides: not timed
        pool.timeout = 600.0
        start = time.perf_counter()
        run_submissions(pool, task, outcomes, results, float("inf"), settings)
        seconds = time.perf_counter() - start
    numbers = {
        (name, i): (r.status, r.confidences, r.retain_acc, r.test_acc)
        for name, outcome in outcomes.items() for i, r in outcome.runs.items()
    }
    return seconds, numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=512, help="pool size N (default 512)")
    parser.add_argument("--workers", type=int, default=2,
                        help="cluster workers and local processes (default 2)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="builds of each side, alternating which goes first (default 2)")
    parser.add_argument("--runs", type=int, default=512,
                        help="runs of each submission in the scoring half (default 512; 0: "
                        "skip it)")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    task = digits_task(num_models=args.models)
    data = task.load_data()
    totals = {"local": 0.0, "cluster": 0.0}
    results: dict[str, ModelStats] = {}
    print(f"before: {load()}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        print(f"cluster start-up: {time.perf_counter() - start:.1f} s (not counted)")
        for round_ in range(args.rounds):
            sides = [("local", build_local), ("cluster", build_cluster)]
            for side, build in sides if round_ % 2 == 0 else sides[::-1]:
                store = ReferenceStore(task, data, Path(folder) / f"{side}-{round_}")
                store.original_model()  # not timed: the same on both sides
                start = time.perf_counter()
                results[side] = build(store, args.workers, client)
                seconds = time.perf_counter() - start
                totals[side] += seconds
                print(f"round {round_ + 1} {side:>7}: {seconds:6.1f} s")
        if args.runs:
            run_task = digits_task(num_models=args.runs)
            run_store = ReferenceStore(run_task, data, Path(folder) / "runs-ref")
            run_store.original_model()
            runs: dict[str, tuple[float, dict]] = {}
            for side in ("local", "cluster"):
                runs[side] = score_runs(side, run_task, data, run_store, Path(folder),
                                        args.workers, client)
                print(f"scoring {side:>7}: {runs[side][0]:6.1f} s for {len(runs[side][1])} runs")
    print(f"after: {load()}")
    a, b = results["local"].to_arrays(), results["cluster"].to_arrays()
    same = all(np.array_equal(a[k], b[k]) for k in a if k != "seconds")
    ratio = totals["cluster"] / totals["local"]
    print(f"pool: same statistics: {same}")
    print(f"pool: local {totals['local']:.1f} s, cluster {totals['cluster']:.1f} s over "
          f"{args.rounds} rounds ({args.workers} joblib processes / {args.workers} Dask workers)")
    print(f"pool: overhead ratio (cluster / local): {ratio:.3f} (goal at most {TARGET_RATIO})")
    ok = same and ratio <= TARGET_RATIO
    if args.runs:
        same_runs = runs["local"][1] == runs["cluster"][1]
        run_ratio = runs["cluster"][0] / runs["local"][0]
        print(f"scoring: same numbers in every run: {same_runs}")
        print(f"scoring: overhead ratio (cluster / local): {run_ratio:.3f} "
              f"(goal at most {TARGET_RATIO})")
        ok = ok and same_runs and run_ratio <= TARGET_RATIO
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
