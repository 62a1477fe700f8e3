"""The records that several stages share: run statuses, one run's result, the per-model numbers
of a set of models (the pool, a submission's runs), and what is known of a submission after
scoring. Runner, scorer, leaderboard, report and regression gate all import them from here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from harness.evaluation.model_stats import ModelStats

if TYPE_CHECKING:
    from harness.methods.loading import Submission

OK, ERROR, TIMEOUT, INVALID, CRASHED, OVER_BUDGET = (
    "ok", "error", "timeout", "invalid-output", "crashed", "over-budget",
)
BUDGET_PROBE_RUNS = 3  # runs timed, at least, before a slow submission is stopped as over budget
ARRAY_FIELDS = ("losses",)  # RunResult fields stored as arrays beside the JSON line


@dataclass
class RunResult:
    submission: str
    file_hash: str  # the submission file's own hash (shown on the leaderboard)
    provenance: str  # what produced the run (``harness.execution.provenance``): a record's validity
    run_index: int
    seed: int
    status: str
    # the time the budget judges: the wall time from outside the run's process up to the hand-back
    # of its weights; on a CPU task the larger of that and the CPU time of all the run's processes
    seconds: float = float("nan")
    retain_acc: float = float("nan")
    test_acc: float = float("nan")
    forget_acc: float = float("nan")
    confidences: list[float] | None = None
    message: str = ""
    output: str = ""
    worker: int = -1
    wall_seconds: float = float("nan")  # the two measurements ``seconds`` is made of
    cpu_seconds: float = float("nan")
    # per-example losses by set (``harness.evaluation.example_outputs``): kept in their own array
    # file, not in the JSON line; None for a failed run or a record whose array file is missing
    losses: dict[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def field_names(cls) -> list[str]:
        """The fields of a run's JSON line (the arrays are stored apart)."""
        return [f.name for f in fields(cls) if f.name not in ARRAY_FIELDS]


def typical_seconds(seconds: list[float]) -> float:
    """The time of a submission's runs that the budget judges: the median of the finite ones
    (NaN when there are none). Messages that quote the time quote this number."""
    timed = [s for s in seconds if np.isfinite(s)]
    return float(statistics.median(timed)) if timed else float("nan")


def too_slow(seconds: list[float], budget: float) -> bool:
    """The one rule for "over the time budget", used by the scorer, the leaderboard and
    ``harness validate``: the median of the timed runs exceeds the budget (a median, so that one
    run slowed by a busy machine does not decide)."""
    return bool(typical_seconds(seconds) > budget)


@dataclass
class Outcome:
    """Everything known about one submission after scoring."""

    name: str
    submission: Submission | None
    runs: dict[int, RunResult] = field(default_factory=dict)
    rejected: str = ""  # why it was rejected before any run
    over_budget: bool = False
    # what its runs must have been produced by (``harness.execution.provenance``)
    provenance: str = ""

    def missing_runs(self, num_models: int) -> list[int]:
        """The run indices below ``num_models`` with no recorded run: what is still to do."""
        return [i for i in range(num_models) if i not in self.runs]

    def timed_seconds(self) -> list[float]:
        return [r.seconds for r in self.runs.values() if r.status in (OK, OVER_BUDGET)]

    def stop_if_over_budget(self, budget: float, at_once: int = 1) -> bool:
        """Mark a submission whose first timed runs exceed ``budget``. With ``at_once`` runs in
        flight together, it waits for ``2 * at_once + 1`` of them (at least
        ``BUDGET_PROBE_RUNS``): a stall of the machine shared by every worker at one moment (a
        disk busy writing back; once, the first run of each worker of a split at 1.12 s of wall
        time against 0.02 s of CPU) slows at most ``at_once`` of them, a minority the median
        passes over."""
        timed = self.timed_seconds()
        probe = max(BUDGET_PROBE_RUNS, 2 * at_once + 1)
        if len(timed) >= probe and too_slow(timed, budget):
            self.over_budget = True
        return self.over_budget

    def stats(self, num_models: int) -> ModelStats | None:
        """The per-model numbers, when all ``num_models`` runs are ok."""
        runs = [self.runs.get(i) for i in range(num_models)]
        if any(r is None or r.status != OK for r in runs):
            return None
        return ModelStats(
            confidences=np.array([r.confidences for r in runs], dtype=np.float64),
            retain_acc=np.array([r.retain_acc for r in runs]),
            test_acc=np.array([r.test_acc for r in runs]),
            forget_acc=np.array([r.forget_acc for r in runs]),
            seconds=np.array([r.seconds for r in runs]),
            **_stacked_losses(runs),
        )


def _stacked_losses(runs: list[RunResult]) -> dict[str, np.ndarray]:
    """``ModelStats``' loss arrays from the runs' own, when every run has them (else none)."""
    if any(r.losses is None for r in runs):
        return {}
    return {f"{k}_losses": np.stack([r.losses[k] for r in runs]) for k in runs[0].losses}
