"""Does the same recipe, with the same seeds, train the same reference pool on another CPU?

Trains the digits pool twice, each in a fresh process with its own cache: once
with the kernels torch, MKL and oneDNN pick on this machine, once with each of them held to AVX2
(``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``), as on a machine
without AVX-512. Prints the kernels each used, whether the pools' fingerprints (what the CI gate
pairs on) are equal, how far their confidences are apart, and the forgetting quality of one pool
scored against the other with the official metric (the same law of models gives about the
ceiling row's value). On a machine without wider kernels than AVX2 both pools are the same.

    .venv/bin/python bench/bench_pool_across_cpus.py [-n 512] [--split private]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness.evaluation.gate import stats_fingerprint
from harness.evaluation.metric import epsilons, points
from harness.pipeline.scoring import build_reference
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2"}
TRAIN = """
import sys, torch
from pathlib import Path
from harness.pipeline.scoring import build_reference
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task
task = get_task("digits", num_models=int(sys.argv[1]), split=sys.argv[2])
build_reference(ReferenceStore(task, task.load_data(), Path(sys.argv[3])), jobs=2)
print(torch.backends.cpu.get_cpu_capability())
"""


def train(root: Path, n: int, split: str, extra: dict[str, str]) -> str:
    """Train the pool into ``root`` in a fresh process (two at a time, as ``harness pool`` on
    two cores); the torch kernels it used."""
    done = subprocess.run([sys.executable, "-c", TRAIN, str(n), split, str(root)],
                          env={**os.environ, **extra}, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=512, help="pool size (default: 512)")
    parser.add_argument("--split", default="private", choices=["public", "private"])
    args = parser.parse_args()
    task = get_task("digits", num_models=args.n, split=args.split)
    data = task.load_data()
    with tempfile.TemporaryDirectory() as scratch:
        pools, kernels = {}, {}
        for name, extra in (("this machine's kernels", {}), ("AVX2 kernels", AVX2)):
            root = Path(scratch) / name.split()[0]
            kernels[name] = train(root, args.n, args.split, extra)
            pools[name] = build_reference(ReferenceStore(task, data, root))  # cached: loads
    (a_name, a), (b_name, b) = pools.items()
    for name in pools:
        print(f"{name}: torch kernels {kernels[name]}, fingerprint "
              f"{stats_fingerprint(pools[name])}")
    difference = np.abs(a.confidences - b.confidences)
    print(f"pools equal bit for bit: {stats_fingerprint(a) == stats_fingerprint(b)}")
    print(f"confidences that differ: {np.mean(difference > 0):.1%}; largest difference "
          f"{difference.max():.3g}, mean {difference.mean():.3g} (logit-scaled confidence; the "
          f"pool's own spread per example, mean sd {a.confidences.std(axis=0).mean():.3g})")
    print(f"models whose test accuracy differs: {np.mean(a.test_acc != b.test_acc):.1%}")
    quality = points(epsilons(b.confidences, a.confidences), args.n).mean()
    print(f"forgetting quality of the {b_name} pool against the other: {quality:.4f}")


if __name__ == "__main__":
    main()
