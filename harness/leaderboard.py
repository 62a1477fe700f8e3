"""The leaderboard: one row per submission, computed from the run records and the pool.

Only submissions whose N runs all finished ``ok`` within the time budget are ranked. Every score
carries its bootstrap interval (``harness.uncertainty``: level ``LEVEL``, columns ``*_lo``,
``*_hi`` and the standard error ``final_score_se``), and ranks are claimed only where they are
significant: ``rank_group`` numbers groups of adjacent submissions whose paired difference is not
significant. A ``(retrained ceiling)`` row scores an independent retrained pool as if it were a
submission: the best score reachable on the task at this N. Every row carries what is needed to
trace and reproduce it: N, task, root seed, file hash and versions.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.metric import final_score, forget_quality
from harness.records import OK, OVER_BUDGET
from harness.uncertainty import rank_groups

if TYPE_CHECKING:
    from harness.records import ModelStats, Outcome
    from harness.tasks.base import Task
    from harness.uncertainty import Replicates

REJECTED = "rejected"
REFERENCE = "reference"  # the status of the ceiling row: scored, never ranked
CEILING_ROW = "(retrained ceiling)"
COLUMNS = [
    "rank", "rank_group", "submission", "status", "final_score", "final_score_lo",
    "final_score_hi", "final_score_se", "forget_quality", "forget_quality_lo",
    "forget_quality_hi",
    "retain_acc", "test_acc", "forget_acc",
    "ref_retain_acc", "ref_test_acc", "ref_forget_acc",
    "seconds_per_run", "budget_seconds", "retrain_seconds", "runs_ok", "num_models",
    "task", "root_seed", "original_model", "file_hash", "provenance", "message",
    "harness_version", "torch_version", "python_version",
]


def _row(task: Task, pool: ModelStats, outcome: Outcome, budget: float) -> dict:
    runs = list(outcome.runs.values())
    ok_runs = [r for r in runs if r.status == OK]
    seconds = [r.seconds for r in runs if np.isfinite(r.seconds)]
    row = {
        "submission": outcome.name,
        "runs_ok": len(ok_runs),
        "seconds_per_run": float(np.mean(seconds)) if seconds else np.nan,
        "file_hash": outcome.submission.file_hash if outcome.submission else "",
        "provenance": outcome.provenance,
        "status": OK,
        "message": "",
    }
    if outcome.rejected:
        return {**row, "status": REJECTED, "message": outcome.rejected}
    if outcome.over_budget:
        median = float(np.median(seconds)) if seconds else np.nan
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
    quality = forget_quality(stats.confidences, pool.confidences)
    row.update(
        forget_quality=quality,
        final_score=final_score(
            quality, stats.retain_acc, pool.retain_acc, stats.test_acc, pool.test_acc
        ),
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
) -> pd.DataFrame:
    """The ranked table: ranked rows by final score, then unranked scored rows (the ceiling
    among them), then failures. ``uncertainty`` holds the bootstrap replicates of every scored
    row (by name); without it the interval columns stay empty and every rank is its own group."""
    uncertainty = uncertainty or {}
    rows = [_row(task, pool, outcome, budget) for outcome in outcomes]
    if ceiling is not None:
        rows.append(_ceiling_row(pool, ceiling))
    for row in rows:
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
    if all(name in uncertainty for name in ranked_names):
        groups = rank_groups([uncertainty[name] for name in ranked_names])
    else:
        groups = list(range(1, len(ranked_names) + 1))
    board["rank_group"] = pd.array([pd.NA] * len(board), dtype="Int64")
    board.loc[board["status"] == OK, "rank_group"] = groups
    return board.reset_index(drop=True)


def _ceiling_row(pool: ModelStats, ceiling: ModelStats) -> dict:
    quality = forget_quality(ceiling.confidences, pool.confidences)
    return {
        "submission": CEILING_ROW,
        "status": REFERENCE,
        "runs_ok": len(ceiling),
        "forget_quality": quality,
        "final_score": final_score(
            quality, ceiling.retain_acc, pool.retain_acc, ceiling.test_acc, pool.test_acc
        ),
        "retain_acc": float(ceiling.retain_acc.mean()),
        "test_acc": float(ceiling.test_acc.mean()),
        "forget_acc": float(ceiling.forget_acc.mean()),
        "file_hash": "",
        "message": "an independent pool retrained from scratch with other seeds, scored as a "
        "submission: the best score reachable on this task at this N (not ranked)",
    }
