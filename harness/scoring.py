"""The scorer: task -> original model -> reference pool -> submission runs -> leaderboard.

``score()`` is the Python API behind ``harness score``; it can be called from a notebook.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import cache
from harness.ensemble import select_chunk_trainer
from harness.leaderboard import build_leaderboard
from harness.pool import DEFAULT_ROOT, ModelStats, ReferenceStore, train_chunk_sequential
from harness.results import ResultsStore
from harness.runner import OK, OVER_BUDGET, RunRequest, RunResult, WorkerPool
from harness.seeds import run_seed
from harness.submissions import Submission, discover
from harness.tasks.base import Task

BUDGET_PROBE_RUNS = 3  # runs timed before a slow submission is stopped as over budget
TIMING_FILE = "timing.json"
# how the yardstick is measured; a timing recorded another way is measured again
TIMING_METHOD = "one retain-set training through the submissions' DataLoader, median of 3"


@dataclass
class Outcome:
    """Everything known about one submission after scoring."""

    name: str
    submission: Submission | None
    runs: dict[int, RunResult] = field(default_factory=dict)
    rejected: str = ""  # why it was rejected before any run
    over_budget: bool = False

    def stop_if_over_budget(self, budget: float) -> bool:
        """Mark a submission whose timed runs exceed ``budget`` (unless it is exempt)."""
        if not self.submission.budget_exempt and _over_budget(self.runs, budget):
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
        )


class Reporter:
    """Progress callbacks; the CLI shows them live, the Python API stays quiet by default."""

    def stage(self, name: str, total: int, done: int = 0) -> None: ...
    def advance(self, name: str, amount: int = 1) -> None: ...
    def message(self, text: str) -> None: ...


def _over_budget(runs: dict[int, RunResult], budget: float) -> bool:
    times = [r.seconds for r in runs.values() if r.status in (OK, OVER_BUDGET)]
    return len(times) >= BUDGET_PROBE_RUNS and statistics.median(times) > budget


def build_reference(
    store: ReferenceStore,
    reporter: Reporter | None = None,
    train_chunk: Callable | None = None,
    jobs: int = 1,
) -> ModelStats:
    """The original model and the pool, training only what is not cached, with progress.
    ``jobs`` processes share the chunks when models train one at a time (large models)."""
    reporter = reporter or Reporter()
    task = store.task
    store.original_model()
    missing = sum(len(idx) for _, idx in store.missing_chunks())
    reporter.stage("reference pool", task.num_models, done=task.num_models - missing)
    trainer = train_chunk or select_chunk_trainer(task, store.data)
    return store.pool(
        train_chunk=trainer,
        progress=lambda n: reporter.advance("reference pool", n),
        # a stacked ensemble already uses every core; one-at-a-time training needs processes
        jobs=jobs if trainer is train_chunk_sequential else 1,
    )


def hard_timeout(retrain_seconds: float) -> float:
    """Default per-run limit: a hung run is killed after 10 retrainings (at least a minute)."""
    return max(60.0, 10 * retrain_seconds)


def measure_retrain_seconds(store: ReferenceStore, workers: WorkerPool) -> float:
    """Time of one from-scratch training, measured in a worker on this machine (cached per host;
    a timing file that is damaged or holds no usable number is measured and written again)."""
    import socket

    path = store.directory / TIMING_FILE
    wanted = {"host": socket.gethostname(), "device": store.task.device, "method": TIMING_METHOD}
    timing = cache.read_json_or_none(path)  # a damaged or malformed record is measured again
    if timing is not None and all(timing.get(key) == value for key, value in wanted.items()):
        recorded = timing.get("retrain_seconds")
        # a positive, finite number of seconds (NaN fails the comparison; a bool is no number)
        if isinstance(recorded, int | float) and not isinstance(recorded, bool):
            if 0 < recorded < float("inf"):
                return float(recorded)
    seconds = workers.time_retrain()
    cache.write_json(path, {**wanted, "retrain_seconds": seconds})
    return seconds


def score(
    task: Task,
    submissions_dir: Path = Path("submissions"),
    *,
    names: list[str] | None = None,
    reference_root: Path = DEFAULT_ROOT,
    output_dir: Path = Path("results"),
    leaderboard_path: Path | None = Path("leaderboard.csv"),
    jobs: int = 1,
    timeout: float | None = None,
    budget_seconds: float | None = None,
    train_chunk: Callable | None = None,
    reporter: Reporter | None = None,
) -> pd.DataFrame:
    """Score every submission in ``submissions_dir`` (or only ``names``) on ``task``.

    Returns the ranked leaderboard (also written to ``leaderboard_path`` unless it is None).
    """
    reporter = reporter or Reporter()
    found, rejected = discover(submissions_dir)
    if names:
        known = {s.name for s in found} | set(rejected)
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(
                f"unknown submission(s): {', '.join(unknown)}; found: {', '.join(sorted(known))}"
            )
        found = [s for s in found if s.name in names]
        rejected = {k: v for k, v in rejected.items() if k in names}

    data = task.load_data()
    store = ReferenceStore(task, data, reference_root)
    results = ResultsStore(Path(output_dir) / store.directory.name)
    results.ensure_writable()

    reporter.message(f"reference cache: {store.directory}")
    pool = build_reference(store, reporter, train_chunk, jobs=jobs)

    outcomes = {name: Outcome(name, None, rejected=why) for name, why in rejected.items()}
    for submission in found:
        outcomes[submission.name] = Outcome(
            submission.name, submission, runs=results.load_runs(submission)
        )

    with WorkerPool(task, store.directory / "original.pt", jobs=jobs) as workers:
        retrain_time = measure_retrain_seconds(store, workers)
        budget = budget_seconds if budget_seconds is not None else task.budget_fraction * (
            retrain_time
        )
        workers.timeout = timeout if timeout is not None else hard_timeout(retrain_time)
        reporter.message(
            f"retraining one model takes {retrain_time:.3f} s here; "
            f"time budget per run {budget:.3f} s"
        )
        requests = []
        for submission in found:
            outcome = outcomes[submission.name]
            todo = [i for i in range(task.num_models) if i not in outcome.runs]
            reporter.stage(submission.name, task.num_models, done=task.num_models - len(todo))
            if outcome.stop_if_over_budget(budget):
                continue
            requests += [
                RunRequest(submission, i, run_seed(task.root_seed, submission.name, i))
                for i in todo
            ]

        def on_result(result: RunResult) -> None:
            outcome = outcomes[result.submission]
            outcome.runs[result.run_index] = result
            results.append(result)
            reporter.advance(result.submission)
            outcome.stop_if_over_budget(budget)

        def skip(request: RunRequest) -> bool:
            return outcomes[request.submission.name].over_budget

        workers.run(requests, on_result, skip)

    board = build_leaderboard(
        task, pool, list(outcomes.values()), budget=budget, retrain_seconds=retrain_time,
        versions=cache.versions(),
    )
    if leaderboard_path is not None:
        cache.atomic_write(Path(leaderboard_path), lambda tmp: board.to_csv(tmp, index=False))
    return board
