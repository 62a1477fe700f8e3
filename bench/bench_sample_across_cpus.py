"""How far apart are the check's samples of the same code on two CPUs?

``harness check`` re-runs only the first ``SAMPLE_RUNS`` runs of a row whose code is unchanged and
takes the row over where they come out as the baseline's, number for number or apart only by
rounding (``harness.evaluation.gate.SampleSummary``). This scores those runs of every submission
twice, each in a fresh process with its own cache (so its own original model): once with the
kernels torch, MKL and oneDNN pick on this machine, once with all three held to SSE
(``ATEN_CPU_CAPABILITY=default``, ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``,
``ONEDNN_MAX_CPU_ISA=SSE41``), as on a machine with other vector units. Prints, per submission,
whether the two samples are the same number for number, their shift in the gate's units, and
the largest shift against the gate's ``SAMPLE_SHIFT``.

    .venv/bin/python bench/bench_sample_across_cpus.py [--split private]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from harness.evaluation.gate import SAMPLE_RUNS, SAMPLE_SHIFT, SampleSummary, stats_fingerprint
from harness.evaluation.model_stats import ModelStats
from harness.execution.records import Outcome
from harness.execution.store import ResultsStore

SSE = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
       "ONEDNN_MAX_CPU_ISA": "SSE41"}


def sample(root: Path, split: str, extra: dict[str, str]) -> dict[str, ModelStats]:
    """Every submission's first ``SAMPLE_RUNS`` runs, scored in a fresh process into ``root``
    with the kernels ``extra`` asks for (no budget: a slower kernel stops nothing)."""
    subprocess.run(
        [sys.executable, "-m", "harness", "score", "-n", str(SAMPLE_RUNS), "--split", split,
         "--no-ceiling", "--reference-root", str(root / "reference"),
         "--output", str(root / "results"), "--leaderboard", str(root / "leaderboard.csv"),
         "--budget", "1e9", "--timeout", "600"],
        env={**os.environ, **extra}, check=True, capture_output=True, text=True)
    board = pd.read_csv(root / "leaderboard.csv")
    [results] = root.glob("results/*/runs")  # one task, one split: one results folder
    store = ResultsStore(results.parent)
    out = {}
    for name, provenance in zip(board["submission"], board["provenance"], strict=True):
        if isinstance(provenance, str):  # a submission's row (not the pool's)
            stats = Outcome(name, None, store.load_runs(name, provenance)).stats(SAMPLE_RUNS)
            if stats is not None:
                out[name] = stats
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="private", choices=["public", "private"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        here = sample(Path(tmp) / "here", args.split, {})
        other = sample(Path(tmp) / "sse", args.split, SSE)
    print(f"{'submission':<20} {'same numbers':>12} {'shift (sd)':>11}")
    shifts = []
    for name in sorted(set(here) & set(other)):
        same = stats_fingerprint(here[name]) == stats_fingerprint(other[name])
        shift = SampleSummary.of(here[name]).shift(SampleSummary.of(other[name]))
        shifts.append(shift)
        print(f"{name:<20} {'yes' if same else 'no':>12} {shift:>11.4f}")
    print(f"largest shift {max(shifts):.4f} standard deviations over {len(shifts)} submissions "
          f"(the gate takes a sample over at up to {SAMPLE_SHIFT})")


if __name__ == "__main__":
    main()
