"""Benchmark: what keeping each pool model's best-val epoch costs (surf's checkpoint rule).

    .venv/bin/python bench/bench_best_val.py [--models 64] [--sequential 4]
                                             [--resnet-epochs 2] [--repeats 3] [--threads 1]

The rule (``Recipe.pool_best_val_from``) scores every model on val after every epoch and copies
its weights out when it improves. This times pool models trained with the rule off and on, on the
same machine one after the other:

* digits (its own recipe, 40 epochs, 10% of the images in val): ``--models`` pool models as one
  stacked ensemble (``ensemble.train_chunk_ensemble``, digits' path) and ``--sequential`` of them
  one at a time (``pool.train_chunk_sequential``);
* a ResNet-18 (torchvision's shape, width 64) on 32x32 random images on the CPU, one model at a
  time (on the CPU a model that large is not grouped): 460 retain images, 64 val images (surf's
  ratio of val to train, 1 to 8), ``--resnet-epochs`` epochs of surf's recipe.

Times include evaluating the finished models, as building the pool does. Each comparison runs
``--repeats`` times, off and on in alternating order, and reports the medians, so a change in the
machine's load affects both sides alike. Digits' own recipe keeps the rule off: this measures what
turning it on would cost. The load averages are printed because other processes on a shared
machine slow both sides down.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from harness.reference.ensemble import train_chunk_ensemble
from harness.reference.pool import train_chunk_sequential
from harness.tasks.base import Task
from harness.tasks.digits import digits_task
from harness.tasks.surf import SURF_RECIPE
from harness.tasks.synthetic import synthetic_task


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def with_rule(task: Task, first: int | None) -> Task:
    return task.with_options(recipe=dataclasses.replace(task.recipe, pool_best_val_from=first))


def seconds(train_chunk, task: Task, indices: list[int]) -> float:
    data = task.load_data()
    start = time.perf_counter()
    train_chunk(task, data, indices)
    return time.perf_counter() - start


def compare(label: str, train_chunk, task: Task, models: int, repeats: int) -> None:
    indices = list(range(models))
    times: dict[int | None, list[float]] = {None: [], 0: []}
    for repeat in range(repeats):
        for first in (None, 0) if repeat % 2 == 0 else (0, None):
            times[first].append(seconds(train_chunk, with_rule(task, first), indices))
    off, on = statistics.median(times[None]), statistics.median(times[0])
    print(f"{label}: {models} models, median of {repeats}: rule off {off:.2f} s, on {on:.2f} s "
          f"({off / models:.3f} -> {on / models:.3f} s per model, {100 * (on / off - 1):+.1f}%)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64, help="digits models in the ensemble")
    parser.add_argument("--sequential", type=int, default=4,
                        help="digits models trained one at a time")
    parser.add_argument("--resnet-epochs", type=int, default=2, help="epochs of the ResNet-18")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); {load()}")

    digits = digits_task()
    compare("digits, stacked ensemble", train_chunk_ensemble, digits, args.models, args.repeats)
    compare("digits, one at a time", train_chunk_sequential, digits, args.sequential,
            args.repeats)

    recipe = dataclasses.replace(SURF_RECIPE, epochs=args.resnet_epochs, pool_best_val_from=None,
                                 original_best_val_from=None)
    resnet = synthetic_task(width=64, image_size=32, num_train=512, num_held_out=128,
                            recipe=recipe, device="cpu")
    compare(f"ResNet-18 on the CPU, {args.resnet_epochs} epochs", train_chunk_sequential,
            resnet, 1, args.repeats)
    print(f"after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
