"""The leaderboard: one row per submission, computed from the run records and the pool.

Only submissions whose N runs all finished ``ok`` within the time budget are ranked. Every score
carries its bootstrap interval (``harness.evaluation.uncertainty``: level ``LEVEL``, columns
``*_lo``, ``*_hi`` and the standard error ``final_score_se``), and ranks are claimed only where they
are significant: ``rank_lo``..``rank_hi`` is the range of ranks a submission could hold, from the
paired comparison of every pair with Holm's correction (``harness.evaluation.ranks``). A
``(retrained ceiling)`` row scores an independent retrained pool as if it were a submission: the
best score reachable on the task at this N. Every row carries what is needed to trace and reproduce
it: N, task, root seed, file hash and versions.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.core.defaults import LEVEL
from harness.evaluation.audits import AUDIT_COLUMNS
from harness.evaluation.metric import official_scores
from harness.evaluation.ranks import rank_intervals, rank_text
from harness.evaluation.uncertainty import z_score
from harness.execution.records import OK, OVER_BUDGET, typical_seconds
from harness.methods.hyperparameters import PUBLISHED, encode

if TYPE_CHECKING:
    from harness.evaluation.model_stats import ModelStats
    from harness.evaluation.uncertainty import Replicates
    from harness.execution.records import Outcome
    from harness.tasks.base import Task

REJECTED = "rejected"
REFERENCE = "reference"  # the status of the ceiling row: scored, never ranked
CEILING_ROW = "(retrained ceiling)"
POOL_ROW = "(retrained pool)"  # the reference pool's own audit values: the audits' targets
COLUMNS = [
    "rank", "rank_lo", "rank_hi", "submission", "status", "final_score", "final_score_lo",
    "final_score_hi", "final_score_se", "forget_quality", "forget_quality_lo",
    "forget_quality_hi",
    "retain_acc", "test_acc", "forget_acc",
    "ref_retain_acc", "ref_test_acc", "ref_forget_acc",
    *AUDIT_COLUMNS,
    "seconds_per_run", "budget_seconds", "retrain_seconds", "runs_ok", "num_models",
    "task", "split", "root_seed", "original_model", "settings", "file_hash", "provenance",
    "message",
    "harness_version", "torch_version", "python_version",
]


def _row(task: Task, pool: ModelStats, outcome: Outcome, budget: float) -> dict:
    runs = list(outcome.runs.values())
    ok_runs = [r for r in runs if r.status == OK]
    median = typical_seconds(outcome.timed_seconds())  # the number the budget rule judges
    row = {
        "submission": outcome.name,
        "runs_ok": len(ok_runs),
        "seconds_per_run": median,
        "file_hash": outcome.submission.file_hash if outcome.submission else "",
        "provenance": outcome.provenance,
        "status": OK,
        "message": "",
    }
    if outcome.rejected:
        return {**row, "status": REJECTED, "message": outcome.rejected}
    if outcome.over_budget:
        return {
            **row, "status": OVER_BUDGET,
            "message": f"median {median:.3f} s per run exceeds the budget of {budget:.3f} s "
            f"(stopped after {len(runs)} runs)",
        }
    failed = [r for r in runs if r.status != OK]
    if failed:
        status = Counter(r.status for r in failed).most_common(1)[0][0]
        first = min((r for r in failed if r.status == status), key=lambda r: r.run_index)
        return {
            **row, "status": status,
            "message": f"{len(failed)} of {len(runs)} runs failed; run {first.run_index}: "
            f"{first.message}",
        }
    stats = outcome.stats(task.num_models)
    if stats is None:
        return {**row, "status": "incomplete", "message": f"{len(runs)} of {task.num_models} runs"}
    quality, score = official_scores(stats, pool)
    row.update(
        forget_quality=quality,
        final_score=score,
        retain_acc=float(stats.retain_acc.mean()),
        test_acc=float(stats.test_acc.mean()),
        forget_acc=float(stats.forget_acc.mean()),
    )
    return row


def build_leaderboard(
    task: Task,
    pool: ModelStats,
    outcomes: list[Outcome],
    *,
    budget: float,
    retrain_seconds: float,
    versions: dict[str, str],
    uncertainty: dict[str, Replicates] | None = None,
    ceiling: ModelStats | None = None,
    settings: dict[str, dict] | None = None,
    audits: dict[str, dict[str, float]] | None = None,
) -> pd.DataFrame:
    """The ranked table: ranked rows by final score, then unranked scored rows (the ceiling
    among them), then failures. ``uncertainty`` holds the bootstrap replicates of every scored
    row (by name); without it the interval columns and the rank ranges stay empty.
    ``settings`` holds each submission's hyperparameters (absent: the published constants).
    ``audits`` holds the audit columns (``harness.evaluation.audits``) by row name; its
    ``POOL_ROW`` entry adds an unranked row for the reference pool itself, whose values the
    others' gaps are to."""
    uncertainty = uncertainty or {}
    audits = audits or {}
    settings = settings or {}
    rows = [_row(task, pool, outcome, budget) for outcome in outcomes]
    for row in rows:
        row["settings"] = encode(settings.get(row["submission"], {}))
    if ceiling is not None:
        rows.append(_ceiling_row(pool, ceiling))
    if POOL_ROW in audits:
        rows.append(_pool_row(pool))
    for row in rows:
        row.update(audits.get(row["submission"], {}))
        found = uncertainty.get(row["submission"])
        if found is not None:
            row["final_score_lo"], row["final_score_hi"] = found.interval("final_score")
            row["final_score_se"] = found.se("final_score")
            row["forget_quality_lo"], row["forget_quality_hi"] = found.interval("forget_quality")
    board = pd.DataFrame(rows).reindex(columns=COLUMNS)
    board["ref_retain_acc"] = float(pool.retain_acc.mean())
    board["ref_test_acc"] = float(pool.test_acc.mean())
    board["ref_forget_acc"] = float(pool.forget_acc.mean())
    board["budget_seconds"] = budget
    board["retrain_seconds"] = retrain_seconds
    board["num_models"] = task.num_models
    board["task"] = task.name
    board["root_seed"] = task.root_seed
    board["split"] = task.split
    board["original_model"] = task.original_source()
    board["harness_version"] = versions["harness"]
    board["torch_version"] = versions["torch"]
    board["python_version"] = versions["python"]
    ranked = board["status"] == OK
    board["_group"] = np.where(ranked, 0, np.where(board["final_score"].notna(), 1, 2))
    board = board.sort_values(
        ["_group", "final_score", "submission"], ascending=[True, False, True]
    ).drop(columns="_group")
    board["rank"] = pd.array(
        [i + 1 if r else pd.NA for i, r in enumerate(board["status"] == OK)], dtype="Int64"
    )
    ranked_names = list(board.loc[board["status"] == OK, "submission"])
    for column in ("rank_lo", "rank_hi"):
        board[column] = pd.array([pd.NA] * len(board), dtype="Int64")
    if ranked_names and all(name in uncertainty for name in ranked_names):
        intervals = rank_intervals([uncertainty[name] for name in ranked_names])
        board.loc[board["status"] == OK, ["rank_lo", "rank_hi"]] = np.array(intervals)
    return board.reset_index(drop=True)


def _reference_row(name: str, models: ModelStats, message: str) -> dict:
    """An unranked row for a set of retrained models (the ceiling pool, the pool itself)."""
    return {
        "submission": name,
        "status": REFERENCE,
        "runs_ok": len(models),
        "retain_acc": float(models.retain_acc.mean()),
        "test_acc": float(models.test_acc.mean()),
        "forget_acc": float(models.forget_acc.mean()),
        "file_hash": "",
        "message": message,
    }


def _ceiling_row(pool: ModelStats, ceiling: ModelStats) -> dict:
    quality, score = official_scores(ceiling, pool)
    row = _reference_row(
        CEILING_ROW, ceiling, "an independent pool retrained from scratch with other seeds, scored "
        "as a submission: the best score reachable on this task at this N (not ranked)")
    return {**row, "forget_quality": quality, "final_score": score}


def _pool_row(pool: ModelStats) -> dict:
    return _reference_row(
        POOL_ROW, pool, "the reference pool itself: its audit values are the targets the other "
        "rows' gaps are measured to (no score: it is what the others are scored against)")


# -- reading a leaderboard file ----------------------------------------------------------------
# The columns a leaderboard CSV must have for the report and the regression gate.
IDENTITY_COLUMNS = ("task", "num_models", "root_seed")
BOARD_COLUMNS = ("submission", "status", "final_score", *IDENTITY_COLUMNS)


def finite(value: object) -> bool:
    """True for a finite number; False for nan, None, pd.NA and text (CSV cells can be any)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _split_column(board: pd.DataFrame) -> pd.Series:
    """Each row's split; rows without one (older files) are public."""
    if "split" not in board.columns:
        return pd.Series("public", index=board.index)
    return board["split"].where(board["split"].notna(), "public").astype(str)


def board_splits(board: pd.DataFrame) -> list[str]:
    """The splits a leaderboard holds, private (the final ranking) first."""
    found = set(_split_column(board))
    return [s for s in ("private", "public") if s in found]


def split_rows(board: pd.DataFrame, split: str) -> pd.DataFrame:
    return board[_split_column(board) == split]


def check_board_columns(board: pd.DataFrame, what: str) -> None:
    """Raise a one-line ValueError when ``board`` lacks the columns every consumer relies on."""
    missing = [c for c in BOARD_COLUMNS if c not in board.columns]
    if missing:
        raise ValueError(
            f"{what} is not a leaderboard: missing column(s) {', '.join(missing)} "
            f"(expected the CSV written by `harness score`)"
        )
    if board.empty:
        raise ValueError(f"{what} has no rows")
    for split in board_splits(board):
        rows = split_rows(board, split)
        if rows["submission"].duplicated().any():
            names = sorted(set(rows.loc[rows["submission"].duplicated(), "submission"]))
            raise ValueError(
                f"{what} lists submission(s) more than once in the {split} split: "
                f"{', '.join(map(str, names))}"
            )


def read_leaderboard(path: Path) -> pd.DataFrame:
    """A leaderboard CSV, validated, or a clear FileNotFoundError / ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"leaderboard {path} not found (run `harness score` to write it)")
    try:
        board = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable CSV: {first}") from None
    check_board_columns(board, str(path))
    return without_rank_groups(board)


def without_rank_groups(board: pd.DataFrame) -> pd.DataFrame:
    """A board written before rank intervals, read tolerantly: its ``rank_group`` (adjacent
    scores chained into groups) cannot be turned into rank intervals (the CSV keeps no
    replicates), so it is dropped and the rank ranges stay empty ("-") until it is re-scored."""
    if "rank_group" not in board.columns:
        return board
    board = board.drop(columns="rank_group")
    for column in ("rank_lo", "rank_hi"):
        if column not in board.columns:
            board[column] = pd.array([pd.NA] * len(board), dtype="Int64")
    return board


def board_identity(board: pd.DataFrame, what: str = "leaderboard") -> tuple[str, int, int]:
    """(task, N, root seed) of a leaderboard; every row must agree, or scores are not comparable."""
    identity = []
    for column in IDENTITY_COLUMNS:
        values = board[column].dropna().unique()
        if len(values) != 1:
            found = ", ".join(map(str, values)) or "none"
            raise ValueError(f"{what} must have one value of {column!r}; found {found}")
        identity.append(values[0])
    task, num_models, root_seed = identity
    try:
        return str(task), int(num_models), int(root_seed)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: num_models and root_seed must be integers; got {num_models!r}, {root_seed!r}"
        ) from None


def rank_correlation(board: pd.DataFrame) -> float:
    """Spearman correlation of the public and private final scores over the submissions ranked
    on both splits (nan with fewer than three)."""
    from scipy.stats import spearmanr

    public = split_rows(board, "public").set_index("submission")
    private = split_rows(board, "private").set_index("submission")
    both = [n for n in private.index if n in public.index
            and private.loc[n, "status"] == OK and public.loc[n, "status"] == OK]
    if len(both) < 3:
        return math.nan
    value = spearmanr(private.loc[both, "final_score"], public.loc[both, "final_score"])[0]
    return float(value)


def significantly_above(board: pd.DataFrame, reference: str, level: float = LEVEL) -> list[str]:
    """The ranked rows of one split whose final score lies above ``reference``'s beyond the
    noise: the gap exceeds z * sqrt(se_a^2 + se_b^2) from the bootstrap standard errors. Unpaired
    (the CSV keeps no replicates), so it is conservative next to the paired rank ranges."""
    ranked = board[board["status"] == OK].set_index("submission")
    if reference not in ranked.index:
        return []
    z = z_score(level)
    base, base_se = ranked.loc[reference, ["final_score", "final_score_se"]]
    found = []
    for name, row in ranked.iterrows():
        gap = row["final_score"] - base
        noise = math.hypot(row["final_score_se"], base_se)
        if name != reference and gap > 0 and finite(noise) and gap > z * noise:
            found.append(str(name))
    return found


def settings_kind(value: object) -> str:
    """``tuned``, ``published`` or ``-`` (a row that runs no submission, such as the ceiling)."""
    if not isinstance(value, str) or not value:
        return "-"
    return PUBLISHED if value == PUBLISHED else "tuned"


def markdown_table(board: pd.DataFrame) -> str:
    """The leaderboard as the README shows it: the final (private) ranking with intervals and
    rank ranges, and the public score beside it when both splits were scored."""
    final = board_splits(board)[0]
    rows = split_rows(board, final)
    rows = rows[rows["submission"] != POOL_ROW]  # no score: its audit values are in the CSV
    public = split_rows(board, "public").set_index("submission") if final == "private" else None
    head = ["rank", "ranks", "submission", "final score", f"{LEVEL:.0%} interval", "F",
            "retain acc", "test acc", "s/run", "settings", "status"]
    if public is not None:
        head.insert(5, "public score")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def number(value: object, digits: int = 5) -> str:
        return f"{float(value):.{digits}f}" if finite(value) else "-"

    for _, row in rows.iterrows():
        interval = (f"[{number(row['final_score_lo'])}, {number(row['final_score_hi'])}]"
                    if finite(row.get("final_score_lo")) else "-")
        cells = [
            str(int(row["rank"])) if finite(row["rank"]) else "-",
            rank_text(row.get("rank_lo"), row.get("rank_hi")),
            str(row["submission"]), number(row["final_score"]), interval,
            number(row["forget_quality"]), number(row["retain_acc"], 4),
            number(row["test_acc"], 4), number(row["seconds_per_run"], 3),
            settings_kind(row.get("settings")), str(row["status"]),
        ]
        if public is not None:
            name = row["submission"]
            cells.insert(5, number(public.loc[name, "final_score"])
                         if name in public.index else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
