"""Benchmark: submission runs per hour with K worker processes on one device against 1.

    .venv/bin/python bench/bench_runs_per_device.py [--device cpu] [--workers 1,2] [--runs 6]
        [--task synthetic|cifar10] [--width 8] [--image-size 16] [--train 352]
        [--data-dir PATH]

Runs the starting kit's fine-tuning (``submissions/finetune.py``, 5 epochs on the retain loader)
``--runs`` times with each worker count in ``--workers`` (``runner.WorkerPool``, as ``harness
score`` does, workers started and warm before the clock starts), and prints runs per hour, the
ratio to the first worker count, the median seconds of one run, and the time budget's yardstick
measured under that concurrency (``WorkerPool.time_retrain``: every worker trains at once) with
the runs' median as a share of it: that share, not the run's seconds alone, is what the budget
judges, and it should stay put as the workers multiply.

``--task synthetic`` (default): ResNet-18 of ``--width`` on random ``--image-size`` images
(``harness.tasks.synthetic``). ``--task cifar10``: the real task; without ``--data-dir`` a
CIFAR-10 folder of real size with random pixels is written to a temporary folder. The original
model is a fresh initialisation given as a checkpoint (its training is not what is measured).
The GPU check: ``--device cuda --task cifar10 --workers 1,2,4,8 --runs 16``. The CPU defaults
take about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.core.seeds import run_seed
from harness.execution.records import OK
from harness.execution.runner import RunRequest, WorkerPool
from harness.methods.loading import inspect_submission
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task
from harness.tasks.synthetic import synthetic_task

FINETUNE = Path(__file__).resolve().parent.parent / "submissions" / "finetune.py"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def write_random_cifar10(root: Path) -> Path:
    """A ``cifar-10-batches-py`` folder of real size (5 x 10,000 training and 10,000 test images)
    with random pixels, in the official pickle format."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"labels": rng.integers(0, 10, 10_000).tolist(),
                 b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8)}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--runs", type=int, default=6, help="runs per worker count")
    parser.add_argument("--task", default="synthetic", choices=["synthetic", "cifar10"])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--train", type=int, default=352)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.workers.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.task == "synthetic":
            task = synthetic_task(width=args.width, image_size=args.image_size,
                                  num_train=args.train, device=args.device)
        else:
            data_dir = args.data_dir or str(write_random_cifar10(tmp / "data"))
            task = get_task("cifar10", data_dir=data_dir, device=args.device)
        checkpoint = tmp / "original.pth"
        torch.manual_seed(0)
        torch.save(task.make_model().state_dict(), checkpoint)
        task = task.with_options(checkpoint=str(checkpoint), num_models=args.runs)
        store = ReferenceStore(task, task.load_data(), tmp / "ref")
        store.original_model()
        submission = inspect_submission(FINETUNE)
        name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
        print(f"task {args.task} on {args.device} ({name}); torch {torch.__version__}; {load()}")
        print(f"{args.runs} runs of {submission.name} per worker count")

        baseline = None
        for k in counts:
            requests = [RunRequest(submission, i, run_seed(task.seed, submission.name, i))
                        for i in range(args.runs)]
            results = []
            with WorkerPool(task, store.directory / "original.pt", jobs=k) as workers:
                yardstick = workers.time_retrain()  # also starts and warms every worker
                start = time.perf_counter()
                workers.run(requests, results.append)
                wall = time.perf_counter() - start
            assert all(r.status == OK for r in results), [r.message for r in results]
            per_hour = args.runs / wall * 3600
            baseline = baseline or per_hour
            median = statistics.median(r.seconds for r in results)
            print(f"{k:3d} worker(s): {per_hour:9.0f} runs/hour ({per_hour / baseline:.2f}x), "
                  f"{median:.2f} s per run (median); yardstick under the same concurrency "
                  f"{yardstick:.2f} s, run / yardstick {median / yardstick:.1%}; {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
