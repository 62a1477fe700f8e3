"""The CI regression gate: re-score, compare with the committed leaderboard, fail on a real drop.

``compare`` is pure: two leaderboards in, a ``CheckReport`` out. It fails when

* the task, N (``num_models``) or root seed differ (scores are only comparable at equal N), or a
  split of the baseline was not re-scored;
* a submission recorded in the baseline is gone from the re-scored leaderboard;
* a submission that was ``ok`` now has another status (error, timeout, over-budget, ...);
* a recorded final score is missing now, or has dropped by more than its tolerance.

Rises, and rows that are new or were already failing, never fail the check; new ones are listed.

The tolerance comes from the scores' own uncertainty, with no fixed floor: every leaderboard row
carries the bootstrap standard error of its final score (``final_score_se``, see
``harness.evaluation.uncertainty``), and a drop fails when it exceeds ``K = 3`` standard deviations
of the difference of two independent scorings, ``K * sqrt(se_baseline**2 + se_now**2)``. A score
whose runs have no spread at all (doing nothing) has a standard error of 0: any drop of a score
above it fails. With unchanged code on the same machine every run is reused or reproduced exactly,
so the delta is 0. Whether code is unchanged is decided by each run's provenance digest (the
submission, the repository code it imports, the harness code that runs it, the task): anything
changed is run again. ``--tolerance X`` replaces the rule with one absolute tolerance.

``harness check`` re-scores in memory (no leaderboard file is written, the baseline least of all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.core.progress import Reporter
from harness.execution.records import OK
from harness.execution.runner import workers_for
from harness.methods.hyperparameters import PUBLISHED
from harness.outputs.leaderboard import (
    CEILING_ROW,
    board_identity,
    board_splits,
    check_board_columns,
    finite,
    read_leaderboard,
    split_rows,
)
from harness.pipeline import scoring
from harness.pipeline.recorded import task_for_board

K = 3.0


@dataclass
class CheckReport:
    """The outcome of a comparison: ``problems`` empty means pass."""

    problems: list[str]
    rows: pd.DataFrame  # split, submission, baseline, current, delta, tolerance, status, verdict
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if self.problems else 0

    def format(self) -> str:
        """The compact diff, then the verdict; what CI logs show."""
        lines = []
        if not self.rows.empty:
            width = max(10, *(len(str(s)) for s in self.rows["submission"]))
            lines.append(f"{'split':<7}  {'submission':<{width}}  {'baseline':>8}  "
                         f"{'current':>8}  {'delta':>8}  {'tolerance':>9}  verdict")
            for _, row in self.rows.iterrows():
                lines.append(
                    f"{row['split']:<7}  {row['submission']:<{width}}  "
                    f"{_num(row['baseline']):>8}  {_num(row['current']):>8}  "
                    f"{_num(row['delta'], sign=True):>8}  {_num(row['tolerance']):>9}  "
                    f"{row['verdict']}"
                )
        lines += [f"note: {note}" for note in self.notes]
        if self.problems:
            lines += [f"FAIL: {problem}" for problem in self.problems]
        else:
            lines.append(f"PASS: {len(self.rows)} row(s) compared, no regression")
        return "\n".join(lines)


def _num(value: object, sign: bool = False) -> str:
    if value is None or not finite(value):
        return "-"
    return f"{float(value):+.5f}" if sign else f"{float(value):.5f}"


def identity_problems(
    baseline: tuple[str, int, int], current: tuple[str, int, int]
) -> list[str]:
    """Why two leaderboards' scores cannot be compared (empty when they can)."""
    return [
        f"{label} differs: baseline {have}, re-scored {got} (scores compare only at equal "
        f"task, N and root seed)"
        for label, have, got in zip(("task", "N (num_models)", "root seed"), baseline, current,
                                    strict=True)
        if have != got
    ]


def row_tolerance(old: pd.Series, new: pd.Series | None, k: float = K) -> float:
    """``k`` standard deviations of the difference of two independent scorings; a baseline
    without a standard error borrows the current one (nan when neither has one)."""
    now = float(new["final_score_se"]) if new is not None and finite(
        new.get("final_score_se")) else math.nan
    before = float(old["final_score_se"]) if finite(old.get("final_score_se")) else now
    return k * math.sqrt(before**2 + now**2)


def compare(
    baseline: pd.DataFrame, current: pd.DataFrame, tolerance: float | None = None, k: float = K
) -> CheckReport:
    """Compare a re-scored leaderboard with the recorded one, split by split.

    ``tolerance`` (absolute, for every row) replaces the uncertainty rule (see the module
    docstring). Raises ValueError when either leaderboard is malformed.
    """
    if tolerance is not None and (not tolerance >= 0 or math.isinf(tolerance)):
        raise ValueError(f"tolerance must be a finite number >= 0; got {tolerance}")
    check_board_columns(baseline, "baseline")
    identity = board_identity(baseline, "baseline")
    problems: list[str] = []
    if not current.empty:  # an empty re-score (nothing found) only makes every row missing
        check_board_columns(current, "re-scored leaderboard")
        problems = identity_problems(identity, board_identity(current, "re-scored leaderboard"))
    comparable = not problems
    rescored_splits = board_splits(current) if not current.empty else []
    rows, notes = [], []
    for split in board_splits(baseline):
        if not current.empty and split not in rescored_splits:
            problems.append(f"the {split} split was not re-scored")
            continue
        now = {str(r["submission"]): r for _, r in split_rows(current, split).iterrows()}
        for _, old in split_rows(baseline, split).iterrows():
            name = str(old["submission"])
            new = now.get(name)
            tol = tolerance if tolerance is not None else row_tolerance(old, new, k)
            verdict, problem = _verdict(old, new, tol, comparable)
            if problem:
                problems.append(f"{name} ({split}): {problem}")
            if new is not None and _settings(old) != _settings(new):
                notes.append(f"{name} ({split}) ran other settings than the baseline: "
                             f"{_settings(new)} now, {_settings(old)} then (tuned again?)")
            before = old["final_score"]
            after = new["final_score"] if new is not None else math.nan
            rows.append({
                "split": split, "submission": name, "baseline": before, "current": after,
                "delta": float(after) - float(before)
                if finite(before) and finite(after) else math.nan,
                "tolerance": tol, "status": new["status"] if new is not None else "missing",
                "verdict": verdict,
            })
        recorded = set(split_rows(baseline, split)["submission"].astype(str))
        notes += [f"{name} ({split}) is new (not in the baseline): status {new['status']}, "
                  f"score {_num(new['final_score'])}" for name, new in now.items()
                  if name not in recorded]
    columns = ["split", "submission", "baseline", "current", "delta", "tolerance", "status",
               "verdict"]
    return CheckReport(problems=problems, rows=pd.DataFrame(rows, columns=columns), notes=notes)


def _settings(row: pd.Series) -> str:
    """A row's settings (``published`` for a leaderboard written before settings existed)."""
    value = row.get("settings")
    return value if isinstance(value, str) and value else PUBLISHED


def _verdict(
    old: pd.Series, new: pd.Series | None, tol: float, comparable: bool
) -> tuple[str, str]:
    """(verdict, problem or "") of one recorded row against its re-scored twin."""
    before, was_ok = old["final_score"], old["status"] == OK
    if new is None:
        score = f", score {_num(before)}" if finite(before) else ""
        return "missing", f"missing from the re-scored leaderboard (was {old['status']}{score})"
    if not comparable:
        return "not comparable", ""
    after = new["final_score"]
    if was_ok and new["status"] != OK:
        message = new.get("message")
        why = f": {message}" if isinstance(message, str) and message else ""
        return f"now {new['status']}", f"now {new['status']}, was ok{why}"
    if finite(before) and not finite(after):
        return "no score", f"has no final score now (status {new['status']}), was {_num(before)}"
    if finite(before) and float(after) - float(before) < -tol:
        return "DROP", (f"final score dropped by {float(before) - float(after):.5f} "
                        f"({_num(before)} -> {_num(after)}), more than the tolerance {tol:.5f}")
    if not was_ok:
        return (f"still {new['status']}" if new["status"] == old["status"]
                else str(new["status"])), ""
    return "ok", ""


def check(
    baseline_path: Path,
    *,
    submissions_dir: Path = Path("submissions"),
    reference_root: Path = scoring.REFERENCE_ROOT,
    output_dir: Path = Path("results"),
    jobs: int | None = None,
    tolerance: float | None = None,
    task_options: dict | None = None,
    reporter: Reporter | None = None,
    splits: list[str] | None = None,
    budget_seconds: float | None = None,
    untuned: bool = False,
    cluster: object | None = None,
    workers_per_device: int | None = None,
    sandbox: str = "auto",
    phases: dict | None = None,
) -> CheckReport:
    """Re-score the baseline's submissions with its task, N, root seed and splits (in memory:
    nothing is written over the baseline; run records and the pool are cached as usual), then
    ``compare``. ``splits`` limits the check to some of the baseline's splits (a quicker gate).
    ``task_options`` may name the device or data folder; a task, N or root seed given there must
    match the baseline's. ``untuned``: re-score with the published constants (for a baseline
    scored with ``--untuned``). ``cluster``: a ``distributed.Client`` to re-score on, as in
    ``scoring.score``. ``phases`` receives each split's phase times
    (``harness.execution.phases``)."""
    path = Path(baseline_path)
    baseline = read_leaderboard(path)
    if splits is not None:
        absent = sorted(set(splits) - set(board_splits(baseline)))
        if absent:
            raise ValueError(f"{path} holds no {', '.join(absent)} split")
        baseline = pd.concat([split_rows(baseline, split) for split in splits])
    options = dict(task_options or {})
    recorded = board_identity(baseline, str(path))
    asked = tuple(
        have if options.get(key) is None else options[key]
        for have, key in zip(recorded, ("task", "num_models", "root_seed"), strict=True)
    )
    mismatch = identity_problems(recorded, asked)
    if mismatch:  # nothing to re-score: the numbers could not be compared anyway
        return CheckReport(problems=mismatch, rows=pd.DataFrame())
    for key in ("task", "num_models", "root_seed"):
        options.pop(key, None)
    task = task_for_board(baseline, str(path), **options)
    current = scoring.score_splits(
        task, board_splits(baseline), submissions_dir, leaderboard_path=None,
        # the ceiling only where the baseline has one: its pool is trained for nothing otherwise
        ceiling=CEILING_ROW in set(baseline["submission"].astype(str)),
        reference_root=reference_root, output_dir=output_dir, reporter=reporter,
        # the default of ``harness score`` on this task's device (one worker per core on a CPU)
        jobs=workers_for(task.device, jobs, workers_per_device),
        budget_seconds=budget_seconds, untuned=untuned, cluster=cluster,
        workers_per_device=workers_per_device, sandbox=sandbox, phases=phases,
    )
    return compare(baseline, current, tolerance)
