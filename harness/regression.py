"""The CI regression gate: re-score, compare with the committed leaderboard, fail on a real drop.

``compare`` is pure: two leaderboards in, a ``CheckReport`` out. It fails when

* the task, N (``num_models``) or root seed differ (scores are only comparable at equal N);
* a submission recorded in the baseline is gone from the re-scored leaderboard;
* a submission that was ``ok`` now has another status (error, timeout, over-budget, ...);
* a recorded final score is missing now, or has dropped by more than the tolerance.

Rises, and rows that are new or were already failing, never fail the check; new ones are listed.

Choosing the tolerance
----------------------
With the same root seed, machine and versions, re-scoring reproduces the recorded numbers exactly
(every run is seeded, cached runs of unchanged files are reused), so the observed delta is 0 and
any tolerance passes. The tolerance is for changes that legitimately redraw the randomness: a
submission edit that consumes random numbers differently, another torch version or CPU. There the
recorded score is one draw, and the right scale is its sampling noise.

F is a mean over the E forget examples of per-example points (see ``harness.metric``), so its
standard error is estimated as ``se(F) = std(points, ddof=1) / sqrt(E)``, and the final score's
as ``se(F)`` times the submission's utility ratios (those average N models each and are far less
noisy). A difference of two independent draws has standard deviation ``sqrt(2) * se``, so the
default tolerance per submission is::

    tolerance = max(MIN_TOLERANCE, K * sqrt(2) * se)     K = 3, MIN_TOLERANCE = 0.01

i.e. a drop must exceed three standard deviations of the difference (a false alarm about once in
700 checks per submission if the normal approximation holds). What this estimate does not know:
the examples are not independent (they share the N models), so it can understate the noise of F
when N is small; at the published N = 512 it is a reasonable scale, at a CI-sized N expect the
floor or an explicit ``--tolerance`` to matter. ``se`` comes from the re-scored run records and
the cached pool; when a submission's records are unavailable it gets the floor. ``--tolerance X``
replaces all of this with one absolute tolerance.

``harness check`` re-scores in memory (no leaderboard file is written, the baseline least of all),
prints a compact diff and exits 0 (pass) or 1 (regression); bad input exits 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.metric import epsilons, points
from harness.records import OK
from harness.report import (
    board_identity,
    check_board_columns,
    finite,
    load_records,
    read_leaderboard,
    recorded_identity_options,
    task_for_board,
)

MIN_TOLERANCE = 0.01
K = 3.0

Tolerance = float | Mapping[str, float]


@dataclass
class CheckReport:
    """The outcome of a comparison: ``problems`` empty means pass."""

    problems: list[str]
    rows: pd.DataFrame  # submission, baseline, current, delta, tolerance, status, verdict
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if self.problems else 0

    def format(self) -> str:
        """The compact diff, then the verdict; what CI logs show."""
        lines = []
        if not self.rows.empty:
            width = max(10, *(len(str(s)) for s in self.rows["submission"]))
            lines.append(f"{'submission':<{width}}  {'baseline':>8}  {'current':>8}  "
                         f"{'delta':>8}  {'tolerance':>9}  verdict")
            for _, row in self.rows.iterrows():
                lines.append(
                    f"{row['submission']:<{width}}  {_num(row['baseline']):>8}  "
                    f"{_num(row['current']):>8}  {_num(row['delta'], sign=True):>8}  "
                    f"{_num(row['tolerance']):>9}  {row['verdict']}"
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
    return f"{float(value):+.4f}" if sign else f"{float(value):.4f}"


def _tolerance_of(tolerance: Tolerance, name: str) -> float:
    if isinstance(tolerance, Mapping):
        value = tolerance.get(name, MIN_TOLERANCE)
    else:
        value = tolerance
    value = float(value)
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"tolerance must be a finite number >= 0; got {value} for {name}")
    return value


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


def compare(baseline: pd.DataFrame, current: pd.DataFrame, tolerance: Tolerance) -> CheckReport:
    """Compare a re-scored leaderboard with the recorded one.

    ``tolerance`` is an absolute allowed drop of final score, one for all or per submission
    (a submission missing from the mapping gets ``MIN_TOLERANCE``). Raises ValueError when the
    baseline or the current leaderboard is malformed.
    """
    check_board_columns(baseline, "baseline")
    identity = board_identity(baseline, "baseline")
    problems: list[str] = []
    if not current.empty:  # an empty re-score (nothing found) only makes every row missing
        check_board_columns(current, "re-scored leaderboard")
        problems = identity_problems(identity, board_identity(current, "re-scored leaderboard"))
    comparable = not problems
    now = {str(row["submission"]): row for _, row in current.iterrows()}
    rows, notes = [], []
    for _, old in baseline.iterrows():
        name = str(old["submission"])
        tol = _tolerance_of(tolerance, name)
        was_ok, before = old["status"] == OK, old["final_score"]
        new = now.get(name)
        after = new["final_score"] if new is not None else math.nan
        delta = float(after) - float(before) if finite(before) and finite(after) else math.nan
        verdict = "ok"
        if new is None:
            verdict = "missing"
            problems.append(f"{name}: missing from the re-scored leaderboard (was {old['status']}"
                            f"{', score ' + _num(before) if finite(before) else ''})")
        elif not comparable:
            verdict = "not comparable"
        elif was_ok and new["status"] != OK:
            verdict = f"now {new['status']}"
            message = new.get("message")
            why = f": {message}" if isinstance(message, str) and message else ""
            problems.append(f"{name}: now {new['status']}, was ok{why}")
        elif finite(before) and not finite(after):
            verdict = "no score"
            problems.append(f"{name}: has no final score now (status {new['status']}), was "
                            f"{_num(before)}")
        elif finite(delta) and delta < -tol:
            verdict = "DROP"
            problems.append(f"{name}: final score dropped by {-delta:.4f} ({_num(before)} -> "
                            f"{_num(after)}), more than the tolerance {tol:.4f}")
        elif not was_ok:
            verdict = f"still {new['status']}" if new["status"] == old["status"] else str(
                new["status"])
        rows.append({"submission": name, "baseline": before, "current": after, "delta": delta,
                     "tolerance": tol, "status": new["status"] if new is not None else "missing",
                     "verdict": verdict})
    recorded = set(baseline["submission"].astype(str))
    for name, new in now.items():
        if name not in recorded:
            notes.append(f"{name} is new (not in the baseline): status {new['status']}, score "
                         f"{_num(new['final_score'])}")
    table = pd.DataFrame(rows, columns=["submission", "baseline", "current", "delta", "tolerance",
                                        "status", "verdict"])
    return CheckReport(problems=problems, rows=table, notes=notes)


def score_standard_error(unlearned: np.ndarray, retrained: np.ndarray, ratio: float) -> float:
    """Standard error of a final score: std of per-example points / sqrt(E), times the utility
    ratio (RA_U/RA_R)(TA_U/TA_R). nan when E < 2."""
    pts = points(epsilons(unlearned, retrained), np.asarray(unlearned).shape[0])
    if pts.size < 2:
        return math.nan
    return float(ratio) * float(pts.std(ddof=1)) / math.sqrt(pts.size)


def estimate_tolerances(
    board: pd.DataFrame,
    retrained: np.ndarray,
    runs_by_submission: Mapping[str, np.ndarray],
    k: float = K,
    floor: float = MIN_TOLERANCE,
) -> dict[str, float]:
    """Per-submission tolerance ``max(floor, k * sqrt(2) * se)`` (see the module docstring)."""
    tolerances = {}
    for _, row in board.iterrows():
        name = str(row["submission"])
        tolerances[name] = floor
        if name not in runs_by_submission:
            continue
        ratio = math.nan
        if finite(row.get("forget_quality")) and float(row["forget_quality"]) > 0:
            ratio = float(row["final_score"]) / float(row["forget_quality"])
        elif all(finite(row.get(c)) and float(row[c]) > 0 for c in
                 ("retain_acc", "ref_retain_acc", "test_acc", "ref_test_acc")):
            ratio = (float(row["retain_acc"]) / float(row["ref_retain_acc"])) * (
                float(row["test_acc"]) / float(row["ref_test_acc"]))
        se = score_standard_error(runs_by_submission[name], retrained, ratio)
        if finite(se):
            tolerances[name] = max(floor, k * math.sqrt(2) * se)
    return tolerances


def cmd_check(args: argparse.Namespace) -> int:
    """``harness check``: re-score with the baseline's task, N and seed, then ``compare``."""
    from harness import scoring
    from harness.pool import ReferenceStore
    from harness.submissions import discover

    path = Path(args.baseline)
    baseline = read_leaderboard(path)
    recorded = board_identity(baseline, str(path))
    asked = tuple(
        have if want is None else want
        for have, want in zip(recorded, (args.task, args.num_models, args.root_seed), strict=True)
    )
    mismatch = identity_problems(recorded, asked)
    if mismatch:  # nothing to re-score: the numbers could not be compared anyway
        report = CheckReport(problems=mismatch, rows=pd.DataFrame())
        print(report.format())
        return report.exit_status
    task = task_for_board(baseline, str(path), device=getattr(args, "device", None))
    reference_root = Path(args.reference_root)
    names = None
    if args.quick:
        status = ReferenceStore(task, task.load_data(), reference_root).status()
        if not status["original_model"] or status["models_done"] < status["models_total"]:
            raise FileNotFoundError(
                f"--quick needs the cached reference pool of task {task.name} at "
                f"N={task.num_models} under {status['directory']} "
                f"({status['models_done']} of {status['models_total']} models): run "
                f"`harness score -n {task.num_models}` first, or drop --quick"
            )
        found, rejected = discover(Path(args.submissions))
        known = {s.name for s in found} | set(rejected)
        names = [n for n in baseline["submission"].astype(str) if n in known] or None

    def rescore(reporter: scoring.Reporter | None) -> pd.DataFrame:
        # leaderboard_path=None: the re-scored table is compared in memory, nothing is written
        # over the baseline (run records and the pool are cached as usual).
        return scoring.score(
            task, Path(args.submissions), names=names, reference_root=reference_root,
            output_dir=Path(args.output), leaderboard_path=None, jobs=args.jobs,
            reporter=reporter,
        )

    if args.no_progress:
        current = rescore(None)
    else:
        from rich.console import Console

        from harness.cli import RichReporter

        with RichReporter(Console(stderr=True)) as reporter:
            current = rescore(reporter)
    if args.tolerance is not None:
        tolerance: Tolerance = args.tolerance
    else:
        pool, runs = load_records(current, task, reference_root, Path(args.output))
        tolerance = estimate_tolerances(current, pool.confidences, runs)
    report = compare(baseline, current, tolerance)
    print(report.format())
    if report.problems:
        print(f"harness check: {len(report.problems)} regression(s) against {path}",
              file=sys.stderr)
    return report.exit_status


def add_check_command(
    subparsers: argparse._SubParsersAction,
    task_options: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    """Register ``harness check``; ``task_options`` adds the shared --task/-n/... options."""
    import os

    parser = subparsers.add_parser(
        "check", conflict_handler="resolve",
        help="CI gate: re-score and fail when a score drops below the baseline",
        description="Re-score the submissions with the baseline's task, N and root seed "
        "(in memory; no leaderboard file is written) and compare. Exit 0: no regression; "
        "1: a recorded score dropped by more than the tolerance, a submission disappeared or "
        "started failing, or task/N differ; 2: bad input. --task and -n, when given, must "
        "match the baseline.",
    )
    task_options(parser)
    recorded_identity_options(parser, "the baseline's")
    parser.add_argument("--baseline", default="leaderboard.csv",
                        help="the recorded leaderboard CSV (default: leaderboard.csv)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help=f"allowed absolute drop of final score for every submission "
                        f"(default: per submission max({MIN_TOLERANCE}, {K:g} * sqrt(2) * "
                        f"standard error), see `harness.regression`)")
    parser.add_argument("--quick", action="store_true",
                        help="never train the reference pool (fail if it is not cached) and "
                        "re-score only the baseline's submissions")
    parser.add_argument("--submissions", default="submissions", help="submissions folder")
    parser.add_argument("--output", default="results", help="folder for run records")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: number of cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=cmd_check)
    return parser
