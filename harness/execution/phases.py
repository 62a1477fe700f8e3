"""Where a scoring's wall time goes: its phases (the pools, the yardstick, the runs, ...), timed
as they happen, so that a user sees which part of a slow ``harness score`` is the harness's own
work and which is the submissions' runs, and so that speed work starts from a measurement.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# the rows of the runs phase that are parts of it, not phases of their own: the submissions' own
# run seconds and the harness's evaluation of their weights, each divided by the workers sharing
# them (the wall time they would take alone)
OWN_RUN_TIME = "runs: the submissions' own time / workers"
EVALUATION = "runs: evaluating their weights / workers"
PARTS = (OWN_RUN_TIME, EVALUATION)
SHARE = "harness share of the total"  # the table's one row that is a fraction, not seconds


@dataclass
class Phases:
    """Wall seconds per named phase, in the order the phases first ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def total(self) -> float:
        """The wall time of all phases (the parts of the runs phase are inside it)."""
        return sum(s for name, s in self.seconds.items() if name not in PARTS)

    def harness_share(self) -> float:
        """The fraction of the wall time that is not the submissions' own run time."""
        total = self.total()
        return (total - self.seconds.get(OWN_RUN_TIME, 0.0)) / total if total > 0 else 0.0


def phase_table(phases: dict[str, Phases]) -> pd.DataFrame:
    """One row per split and phase (wall seconds), then each split's total and harness share."""
    rows = []
    for split, timed in phases.items():
        rows += [{"split": split, "phase": name, "seconds": s} for name, s in timed.seconds.items()]
        rows.append({"split": split, "phase": "total", "seconds": timed.total()})
        rows.append({"split": split, "phase": SHARE, "seconds": timed.harness_share()})
    return pd.DataFrame(rows, columns=["split", "phase", "seconds"])


def phases_path(leaderboard: Path) -> Path:
    """Where the phase table of a leaderboard is written: beside it (``leaderboard.phases.csv``)."""
    return Path(leaderboard).with_suffix(".phases.csv")


def read_phase_table(leaderboard: Path) -> pd.DataFrame | None:
    """The phase table written beside ``leaderboard``, or None where there is none."""
    path = phases_path(leaderboard)
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None
