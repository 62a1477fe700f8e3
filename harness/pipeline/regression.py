"""The CI regression gate: re-score, compare with the committed leaderboard, fail on a real drop.

``compare`` is pure: two leaderboards (and their gate rows) in, a ``CheckReport`` out. It fails
when

* the task, N (``num_models``) or root seed differ (scores are only comparable at equal N), or a
  split of the baseline was not re-scored;
* the reference pool or the forget set differ from the baseline's (the comparison is paired on
  them: it cannot be made);
* a submission recorded in the baseline is gone from the re-scored leaderboard;
* a submission that was ``ok`` now has another status (error, timeout, over-budget, ...);
* a recorded final score is missing now, or has dropped significantly in the paired test.

The reference pool's own row (audit values, no score) is not compared: the check re-scores
without the audits.

Rises, and rows that are new or were already failing, never fail the check; new ones are listed.

The paired test (``harness.evaluation.gate``): CI re-scores the same forget examples against the
same pool, so a row's difference from its baseline varies only with the submission's own runs. Its
standard error is ``sqrt(se_base^2 + se_now^2)``, each from a bootstrap over the runs with the pool
and the examples fixed (the final score, utility ratios included, recomputed from each resample);
the test is one-sided, with Holm's correction over the rows tested at family-wise level
``harness.evaluation.gate.LEVEL``. A row whose runs and score are the baseline's is reproduced (with
unchanged code every run is reused or reproduced exactly; a run is reused only for the same
provenance digest: the submission, the repository code it imports, the harness code that runs it,
the task) and is not tested. ``--tolerance X`` replaces the test with one absolute tolerance (it
needs no gate file).

``harness check`` re-scores in memory (no leaderboard file is written, the baseline least of all)
and reads the baseline's gate rows and pool numbers from beside it (``leaderboard.gate.csv`` and
``leaderboard.gate.npz``, written by ``harness score``); the runs are scored against that pool,
which a machine with other vector units would not train bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from harness.core.progress import Reporter
from harness.evaluation.gate import (
    LEVEL,
    SAMPLE_RUNS,
    GateRow,
    gate_path,
    gate_pool_path,
    holm,
    paired,
    read_gate,
    read_gate_pools,
)
from harness.execution.records import OK
from harness.execution.runner import workers_for
from harness.methods.hyperparameters import PUBLISHED
from harness.outputs.leaderboard import (
    CEILING_ROW,
    POOL_ROW,
    board_identity,
    board_splits,
    check_board_columns,
    finite,
    read_leaderboard,
    split_rows,
)
from harness.pipeline import scoring
from harness.pipeline.recorded import task_for_board


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
                         f"{'now':>8}  {'delta':>8}  {'95% paired interval':>19}  "
                         f"{'p (Holm)':>8}  verdict")
            for _, row in self.rows.iterrows():
                interval = (f"{_num(row['lo'], sign=True)}..{_num(row['hi'], sign=True)}"
                            if finite(row["lo"]) else "-")
                lines.append(
                    f"{row['split']:<7}  {row['submission']:<{width}}  "
                    f"{_num(row['baseline']):>8}  {_num(row['current']):>8}  "
                    f"{_num(row['delta'], sign=True):>8}  {interval:>19}  "
                    f"{_p(row['p']):>8}  {row['verdict']}"
                )
        lines += [f"note: {note}" for note in self.notes]
        if self.problems:
            lines += [f"FAIL: {problem}" for problem in self.problems]
        else:
            lines.append(f"PASS: {len(self.rows)} row(s) compared, no regression")
        return "\n".join(lines)


def _p(value: object) -> str:
    if not finite(value):
        return "-"
    return f"{float(value):.4f}" if float(value) >= 1e-4 else f"{float(value):.0e}"


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


def compare(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    tolerance: float | None = None,
    *,
    baseline_gate: dict[tuple[str, str], GateRow] | None = None,
    current_gate: dict[tuple[str, str], GateRow] | None = None,
    level: float = LEVEL,
    reproduced: Mapping[tuple[str, str], float] | None = None,
) -> CheckReport:
    """Compare a re-scored leaderboard with the recorded one, split by split.

    Without ``tolerance`` each score is tested paired (see the module docstring) on the gate rows
    ((split, submission) -> ``harness.evaluation.gate.GateRow``) of both scorings; ``tolerance``
    (absolute, for every row) replaces the test and needs no gate rows. ``reproduced`` names the
    rows ((split, submission)) taken over on a sample of their runs (``scoring.score``'s
    ``sample``), each with its sample's shift from the baseline's (0 for the same numbers):
    unchanged code whose re-run sample came out as the baseline's; they are absent from
    ``current`` and pass as reproduced. Raises ValueError when either leaderboard is
    malformed or the gate rows are missing.
    """
    if tolerance is not None and (not tolerance >= 0 or math.isinf(tolerance)):
        raise ValueError(f"tolerance must be a finite number >= 0; got {tolerance}")
    if tolerance is None and (baseline_gate is None or current_gate is None):
        raise ValueError("the paired test needs the gate rows of both scorings "
                         "(harness.evaluation.gate); or give an absolute tolerance")
    check_board_columns(baseline, "baseline")
    identity = board_identity(baseline, "baseline")
    problems: list[str] = []
    if not current.empty:  # an empty re-score (nothing found) only makes every row missing
        check_board_columns(current, "re-scored leaderboard")
        problems = identity_problems(identity, board_identity(current, "re-scored leaderboard"))
    comparable = not problems
    reproduced = reproduced or {}
    rescored_splits = {split for split, _ in reproduced}
    rescored_splits.update(board_splits(current) if not current.empty else [])
    rows, notes, tests = [], [], {}
    for split in board_splits(baseline):
        if not current.empty and split not in rescored_splits:
            problems.append(f"the {split} split was not re-scored")
            continue
        now = {str(r["submission"]): r for _, r in split_rows(current, split).iterrows()}
        pool_problem = ""
        for _, old in split_rows(baseline, split).iterrows():
            name = str(old["submission"])
            if name == POOL_ROW:  # audit values only, no score: nothing the gate guards
                continue
            new = now.get(name)
            if new is None and (split, name) in reproduced:
                new, problem = old, ""
                verdict = _sampled_verdict(reproduced[split, name])
            else:
                verdict, problem = _status_verdict(old, new, comparable)
            test = None
            if not verdict and tolerance is None:
                base, again = baseline_gate.get((split, name)), current_gate.get((split, name))
                if base is None or again is None:
                    raise ValueError(f"{name} ({split}) has a score but no gate row")
                # the boards' scores: a gate row taken over for the same runs keeps its old score
                base = replace(base, final_score=float(old["final_score"]))
                again = replace(again, final_score=float(new["final_score"]))
                if base.pool != again.pool or len(base.points) != len(again.points):
                    pool_problem = pool_problem or (
                        f"the {split} split's reference pool or forget set differs from the "
                        f"baseline's ({len(base.points)} forget examples then, "
                        f"{len(again.points)} now): the paired test cannot compare; regenerate "
                        "the baseline if the change is meant")
                    verdict = "not comparable"
                elif base.runs == again.runs and base.final_score == again.final_score:
                    verdict = "ok (same runs)"
                elif base.runs == again.runs:  # the same runs scored otherwise: no noise at all
                    test = paired(replace(base, runs_se=0.0), replace(again, runs_se=0.0))
                else:
                    test = paired(base, again)
            elif not verdict:
                verdict, problem = _tolerance_verdict(old, new, tolerance)
            if problem:
                problems.append(f"{name} ({split}): {problem}")
            if new is not None and _settings(old) != _settings(new):
                notes.append(f"{name} ({split}) ran other settings than the baseline: "
                             f"{_settings(new)} now, {_settings(old)} then (tuned again?)")
            before = old["final_score"]
            after = new["final_score"] if new is not None else math.nan
            lo, hi = test.interval() if test is not None else (math.nan, math.nan)
            if test is not None:
                tests[len(rows)] = test
            rows.append({
                "split": split, "submission": name, "baseline": before, "current": after,
                "delta": float(after) - float(before)
                if finite(before) and finite(after) else math.nan,
                "lo": lo, "hi": hi, "p": math.nan,
                "status": new["status"] if new is not None else "missing", "verdict": verdict,
            })
        if pool_problem:
            problems.append(pool_problem)
        recorded = set(split_rows(baseline, split)["submission"].astype(str))
        notes += [f"{name} ({split}) is new (not in the baseline): status {new['status']}, "
                  f"score {_num(new['final_score'])}" for name, new in now.items()
                  if name not in recorded]
    for index, p in zip(tests, holm([t.p for t in tests.values()]), strict=True):
        row, test = rows[index], tests[index]
        row["p"] = p
        dropped = p <= level and test.delta < 0
        row["verdict"] = "DROP" if dropped else "ok"
        if dropped:
            problems.append(
                f"{row['submission']} ({row['split']}): final score dropped by {-test.delta:.5f} "
                f"({_num(row['baseline'])} -> {_num(row['current'])}), paired 95% interval "
                f"{test.interval()[0]:+.5f}..{test.interval()[1]:+.5f}, p = {_p(p)} after "
                f"Holm's correction over {len(tests)} tested row(s) (level {level})")
    if tests:
        notes.append(f"{len(tests)} row(s) tested paired (one-sided, Holm over them, family-wise "
                     f"level {level}); rows with the baseline's runs and score are not tested")
    columns = ["split", "submission", "baseline", "current", "delta", "lo", "hi", "p", "status",
               "verdict"]
    return CheckReport(problems=problems, rows=pd.DataFrame(rows, columns=columns), notes=notes)


def _settings(row: pd.Series) -> str:
    """A row's settings (``published`` for a leaderboard written before settings existed)."""
    value = row.get("settings")
    return value if isinstance(value, str) and value else PUBLISHED


def _status_verdict(old: pd.Series, new: pd.Series | None, comparable: bool) -> tuple[str, str]:
    """(verdict, problem or "") of one recorded row against its re-scored twin, on everything
    but the size of its score; ("", "") when the scores are to be compared."""
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
    if finite(before) and finite(after):
        return "", ""
    if not was_ok:
        return (f"still {new['status']}" if new["status"] == old["status"]
                else str(new["status"])), ""
    return "ok", ""


def _sampled_verdict(shift: float) -> str:
    """The verdict of a row taken over on its sample, ``shift`` from the baseline's."""
    if shift == 0:
        return f"ok (same code, first {SAMPLE_RUNS} runs the same)"
    return f"ok (same code, first {SAMPLE_RUNS} runs within rounding: {shift:.4f} sd)"


def _tolerance_verdict(old: pd.Series, new: pd.Series, tol: float) -> tuple[str, str]:
    """(verdict, problem or "") of two scores under an absolute tolerance."""
    before, after = float(old["final_score"]), float(new["final_score"])
    if after - before < -tol:
        return "DROP", (f"final score dropped by {before - after:.5f} "
                        f"({_num(before)} -> {_num(after)}), more than the tolerance {tol:.5f}")
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
    timeout: float | None = None,
    untuned: bool = False,
    cluster: object | None = None,
    workers_per_device: int | None = None,
    sandbox: str = "auto",
    phases: dict | None = None,
    run_root: int | None = None,
    all_runs: bool = False,
) -> CheckReport:
    """Re-score the baseline's submissions with its task, N, root seed and splits (in memory:
    nothing is written over the baseline; run records and the pool are cached as usual), then
    ``compare``. ``splits`` limits the check to some of the baseline's splits (a quicker gate).
    ``task_options`` may name the device or data folder; a task, N or root seed given there must
    match the baseline's. ``untuned``: re-score with the published constants (for a baseline scored
    with ``--untuned``). ``cluster``: a ``distributed.Client`` to re-score on, as in
    ``scoring.score``; ``budget_seconds`` and ``timeout`` as there. ``phases`` receives each
    split's phase times (``harness.execution.phases``). ``run_root``: the runs' seeds come from it
    (``scoring.score``; for measuring false alarms). The baseline's gate rows are read from
    beside it (``harness.evaluation.gate.gate_path``) unless a ``tolerance`` replaces the paired
    test; for the paired test the runs are scored against the baseline's pool numbers where it
    has them (``gate_pool_path``: another machine trains another pool), not a pool trained
    here. Rows whose code is unchanged since the baseline re-run only a sample of their runs
    first, and are re-run in full only if it differs (``harness.evaluation.gate``, "The
    sample"); ``all_runs`` re-runs every run of every row."""
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
    known, pools = None, {}
    if tolerance is None:
        pools, known = read_gate_pools(
            gate_pool_path(path), read_gate(gate_path(path), baseline, str(path)))
    for key in ("task", "num_models", "root_seed"):
        options.pop(key, None)
    task = task_for_board(baseline, str(path), **options)
    gate: dict = {}
    reproduced: dict[str, dict[str, float]] = {}
    current = scoring.score_splits(
        task, board_splits(baseline), submissions_dir, leaderboard_path=None,
        # the ceiling only where the baseline has one: its pool is trained for nothing otherwise
        ceiling=CEILING_ROW in set(baseline["submission"].astype(str)),
        reference_root=reference_root, output_dir=output_dir, reporter=reporter,
        # the default of ``harness score`` on this task's device (one worker per core on a CPU)
        jobs=workers_for(task.device, jobs, workers_per_device),
        budget_seconds=budget_seconds, timeout=timeout, untuned=untuned, cluster=cluster,
        workers_per_device=workers_per_device, sandbox=sandbox, phases=phases,
        run_root=run_root, gate=None if known is None else gate,
        gate_known=None if known is None else _by_split(known), reference_pools=pools,
        measures=False,  # the comparison needs scores and gate rows, not intervals or audits
        sample=known is not None and not all_runs, reproduced=reproduced,
    )
    if known is None:
        return compare(baseline, current, tolerance)
    rescored = {(split, name): row for split, rows in gate.items() for name, row in rows.items()}
    return compare(baseline, current, baseline_gate=known, current_gate=rescored,
                   reproduced={(split, name): shift for split, shifts in reproduced.items()
                               for name, shift in shifts.items()})


def _by_split(rows: dict[tuple[str, str], GateRow]) -> dict[str, dict[str, GateRow]]:
    out: dict[str, dict[str, GateRow]] = {}
    for (split, name), row in rows.items():
        out.setdefault(split, {})[name] = row
    return out
