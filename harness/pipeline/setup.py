"""What every pipeline stage starts from, written once for ``score``, ``validate`` and ``tune``
(``harness check`` re-scores through ``score``): the task's data, its reference cache and its run
records (``set_up``), and the clock the runs are judged by: the yardstick measured on the
workers, the time budget and the hard timeout (``start_clock``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core import files
from harness.execution.store import ResultsStore
from harness.reference.pool import ReferenceStore
from harness.tasks.base import Task, TaskData

if TYPE_CHECKING:
    from harness.execution.cluster import ClusterWorkers
    from harness.execution.runner import WorkerPool

TIMING_FILE = "timing.json"


@dataclass
class Setup:
    """A task's data, its reference cache (original model, pools) and, for the stages that keep
    them, its run records (keyed alike)."""

    task: Task
    data: TaskData
    store: ReferenceStore
    results: ResultsStore | None


def set_up(task: Task, reference_root: Path, output_dir: Path | None = None) -> Setup:
    """Load the task's data and open its caches (nothing is trained here); with ``output_dir``
    the run records too, checked writable before any work."""
    data = task.load_data()
    store = ReferenceStore(task, data, reference_root)
    results = None
    if output_dir is not None:
        results = ResultsStore(Path(output_dir) / store.directory.name)
        results.ensure_writable()
    return Setup(task, data, store, results)


def start_clock(
    store: ReferenceStore, workers: WorkerPool | ClusterWorkers,
    budget_seconds: float | None = None, timeout: float | None = None,
) -> tuple[float, float]:
    """(retraining seconds, budget): the yardstick measured on ``workers`` (cached), the time
    budget from it (``budget_seconds`` when given), and the hard timeout set on the workers
    (``timeout`` when given). With both given nothing needs the yardstick: it is read where
    recorded, else not measured (NaN), which saves a retraining in every worker."""
    if needs_yardstick(budget_seconds, timeout):
        retrain = measure_retrain_seconds(store, workers)
    else:
        retrain = recorded_retrain_seconds(store, workers) or math.nan
    workers.timeout = timeout if timeout is not None else hard_timeout(retrain)
    return retrain, time_budget(store.task, retrain, budget_seconds)


def needs_yardstick(budget_seconds: float | None, timeout: float | None) -> bool:
    """Whether the clock needs the yardstick: for the budget or the hard timeout not given."""
    return budget_seconds is None or timeout is None


def hard_timeout(retrain_seconds: float) -> float:
    """Default per-run limit: a hung run is killed after 10 retrainings (at least a minute)."""
    return max(60.0, 10 * retrain_seconds)


def recorded_retrain_seconds(
    store: ReferenceStore, workers: WorkerPool | ClusterWorkers
) -> float | None:
    """The yardstick recorded for this host, device and way of measuring (``workers``'), or
    None when there is none usable (missing, damaged, measured otherwise, not a positive
    finite number of seconds)."""
    timing = files.read_json_or_none(store.directory / TIMING_FILE)
    if timing is None or any(timing.get(key) != value
                             for key, value in _timing_key(store, workers).items()):
        return None
    recorded = timing.get("retrain_seconds")
    # a positive, finite number of seconds (NaN fails the comparison; a bool is no number)
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        if 0 < recorded < float("inf"):
            return float(recorded)
    return None


def _timing_key(store: ReferenceStore, workers: WorkerPool | ClusterWorkers) -> dict:
    import socket

    return {
        "host": socket.gethostname(), "device": store.task.device,
        "method": workers.timing_method,  # how it is measured: a timing made otherwise is redone
    }


def measure_retrain_seconds(
    store: ReferenceStore, workers: WorkerPool | ClusterWorkers
) -> float:
    """Time of one from-scratch training, measured in the workers on this machine under the
    concurrency of the runs it judges (``WorkerPool.time_retrain``). Cached per host, device and
    way of measuring (with its number of workers); a timing file that is damaged or holds no
    usable number is measured and written again."""
    recorded = recorded_retrain_seconds(store, workers)
    if recorded is not None:
        return recorded
    seconds = workers.time_retrain()
    files.write_json(store.directory / TIMING_FILE,
                     {**_timing_key(store, workers), "retrain_seconds": seconds})
    return seconds


def time_budget(task: Task, retrain_seconds: float, budget_seconds: float | None = None) -> float:
    """Seconds one run may take: ``budget_seconds`` when given, else the task's fraction of one
    retraining."""
    if budget_seconds is not None:
        return budget_seconds
    return task.budget_fraction * retrain_seconds
