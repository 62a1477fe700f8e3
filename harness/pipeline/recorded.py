"""What a scored leaderboard was made from, found again for the report and the regression gate:
the task it was scored on (``task_for_board``) and its cached pool and run records
(``load_records``). Nothing is trained or run here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.evaluation.model_stats import ModelStats
from harness.execution.records import Outcome
from harness.execution.store import ResultsStore
from harness.outputs.leaderboard import board_identity, finite
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task
from harness.tasks.base import Task


def task_for_board(
    board: pd.DataFrame,
    what: str,
    task_name: str | None = None,
    num_models: int | None = None,
    root_seed: int | None = None,
    **options,
) -> Task:
    """The task a leaderboard was scored on (its public split); explicit options must agree with
    the recorded ones; ``options`` (device, data_dir, ...) are passed on."""
    recorded = board_identity(board, what)
    asked = (task_name, num_models, root_seed)
    for label, have, want in zip(("task", "N", "root seed"), recorded, asked, strict=True):
        if want is not None and want != have:
            raise ValueError(f"{what} was scored with {label} {have}, not {want}")
    name, n, seed = recorded
    overrides = {"num_models": n, "root_seed": seed}
    overrides.update({k: v for k, v in options.items() if v})
    return get_task(name, **overrides)


def load_records(
    board: pd.DataFrame, task: Task, reference_root: Path, output_dir: Path
) -> tuple[ModelStats, dict[str, np.ndarray]]:
    """The cached pool and the forget-set confidences [N, E] of every scored row's runs.

    Nothing is trained: a pool that is not fully cached is an error. Runs are matched by the
    provenance the leaderboard recorded; a scored row whose N runs are not all recorded is left
    out (and named on stderr by the command).
    """
    store = ReferenceStore(task, task.load_data(), Path(reference_root))
    status = store.status()
    if not status["original_model"] or status["models_done"] < status["models_total"]:
        raise FileNotFoundError(
            f"the reference pool of task {task.name} at N={task.num_models} is not cached under "
            f"{store.directory} ({status['models_done']} of {status['models_total']} models): "
            f"run `harness score` first"
        )
    pool = store.pool()
    results = ResultsStore(Path(output_dir) / store.directory.name)
    runs: dict[str, np.ndarray] = {}
    for _, row in board.iterrows():
        if not finite(row.get("final_score")):
            continue
        name, provenance = str(row["submission"]), row.get("provenance")
        recorded = results.load_runs(name, provenance if isinstance(provenance, str) else "")
        stats = Outcome(name, None, runs=recorded).stats(task.num_models)
        if stats is not None:
            runs[name] = stats.confidences
    return pool, runs
