"""Benchmark: building the reference pool as stacked ensembles vs one model after another.

    .venv/bin/python bench/bench_pool.py [--models 512] [--sequential-sample 16]
                                         [--chunk-size 64] [--threads N]

On the default digits task it trains all ``--models`` pool models with
``ensemble.train_chunk_ensemble`` in chunks of ``--chunk-size`` (``pool.CHUNK_SIZE`` by default,
as ``ReferenceStore.pool`` calls it; ``--chunk-size 0`` trains everything as one ensemble) and
``--sequential-sample`` of the same models with ``pool.train_chunk_sequential``, whose time is
extrapolated linearly to ``--models`` (each sequential model costs the same). Both timings include
evaluation, as building the pool does. Half of the sequential sample runs before the ensemble and
half after, so a change in the machine's load affects both sides alike; the load averages are
printed because other processes on a shared machine slow both sides down, by different amounts.

Torch's thread count is left at the machine default unless ``--threads`` is given (the same for
both paths). The goals: the ensemble pool in at most 60 s and at least 20x faster than sequential.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import torch

from harness.evaluation.model_stats import ModelStats
from harness.reference.ensemble import supports_ensemble, train_chunk_ensemble
from harness.reference.pool import CHUNK_SIZE, train_chunk_sequential
from harness.tasks.digits import digits_task

TARGET_SECONDS = 60.0
TARGET_SPEEDUP = 20.0


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def timed(fn, *args) -> tuple[ModelStats, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=512, help="pool size N (default 512)")
    parser.add_argument("--sequential-sample", type=int, default=16,
                        help="models trained one at a time to time the sequential path")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                        help="models per ensemble call (0: all at once; default pool.CHUNK_SIZE)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both paths (default: leave torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    task = digits_task(num_models=args.models)
    data = task.load_data()
    if not supports_ensemble(task, data):
        print("the digits task cannot be trained as a stacked ensemble", file=sys.stderr)
        return 1
    n, k = args.models, min(args.sequential_sample, args.models)
    chunk = args.chunk_size if args.chunk_size > 0 else n
    print(f"task digits: {n} models, recipe {task.recipe}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load()}")

    # warm both code paths (lazy imports, allocator, the data-order self-check) off the clock
    warm = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=1))
    train_chunk_ensemble(warm, data, [0, 1])
    train_chunk_sequential(warm, data, [0])

    sample = list(range(k))
    first, seq_first = timed(train_chunk_sequential, task, data, sample[: k // 2])
    print(f"before ensemble: {load()}")
    parts, ens_seconds = [], 0.0
    for start in range(0, n, chunk):
        indices = list(range(start, min(start + chunk, n)))
        stats, seconds = timed(train_chunk_ensemble, task, data, indices)
        parts.append(stats)
        ens_seconds += seconds
    pool = ModelStats.concatenate(parts)
    print(f"after ensemble: {load()}")
    second, seq_second = timed(train_chunk_sequential, task, data, sample[k // 2 :])
    sequential = ModelStats.concatenate([p for p in (first, second) if len(p)])
    seq_seconds = seq_first + seq_second
    seq_extrapolated = seq_seconds / k * n

    mode = "one ensemble of all models" if chunk >= n else f"chunks of {chunk} (as the store does)"
    print()
    print(f"ensemble   : {n} models in {ens_seconds:8.1f} s  ({n / ens_seconds:7.2f} models/s), "
          f"{mode}")
    print(f"sequential : {k} models in {seq_seconds:8.1f} s  ({k / seq_seconds:7.2f} models/s), "
          f"extrapolated to {n}: {seq_extrapolated:.1f} s")
    print(f"speed-up   : {seq_extrapolated / ens_seconds:.1f}x")
    speedup = seq_extrapolated / ens_seconds
    print(f"goals      : ensemble <= {TARGET_SECONDS:.0f} s: "
          f"{'yes' if ens_seconds <= TARGET_SECONDS else 'NO'}; "
          f">= {TARGET_SPEEDUP:.0f}x: {'yes' if speedup >= TARGET_SPEEDUP else 'NO'}")

    # the same models both ways: a cross-check that the fast path trains the same models
    same = pool.confidences[:k]
    print(f"check      : models 0..{k - 1} both ways: max |confidence difference| "
          f"{np.abs(same - sequential.confidences).max():.2e}, mean test accuracy "
          f"{pool.test_acc[:k].mean():.4f} vs {sequential.test_acc.mean():.4f}; "
          f"pool mean test accuracy {pool.test_acc.mean():.4f}, "
          f"retain {pool.retain_acc.mean():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
