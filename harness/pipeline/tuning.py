"""``harness tune``: search a submission's declared hyperparameters on the public split.

The competition's teams tuned against the public leaderboard and were ranked on the private one;
this is that loop, run locally. A seeded Optuna study (TPE, a well-kept sampler, rather than a
hand-written search) proposes settings within the submission's ``SEARCH_SPACE``; each trial scores
the submission with them on the public split at a small N (the official final score against a
pool of N retrained models), with every run recorded in the results store like any other run, so
an interrupted trial resumes with the runs it had. The study itself lives in SQLite under
``results/tuning/``: rerunning the same command continues it.

A trial whose median run time exceeds :data:`BUDGET_SHARE` of the task's time budget, or whose
runs fail, is infeasible (an Optuna constraint), not a zero score: the sampler learns where the
budget ends without mistaking it for a bad method. The share leaves room for a busier machine, so
that settings chosen here stay within the budget when the leaderboard is regenerated or checked.
The first trial runs the published constants, so the chosen settings are never worse on the
public split than the published ones at the same N.

The best feasible trial's settings (only those that differ from the published defaults) are
written with their provenance to ``submissions/tuned/<task>.json``
(``harness.methods.tuned_settings``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from harness.core import files
from harness.core.defaults import REFERENCE_ROOT, TUNING_RUNS, TUNING_TRIALS
from harness.core.progress import Reporter
from harness.core.seeds import derive_seed
from harness.evaluation.metric import official_scores
from harness.evaluation.model_stats import ModelStats
from harness.execution.records import Outcome, too_slow, typical_seconds
from harness.execution.runner import WorkerPool
from harness.execution.store import ResultsStore
from harness.methods.hyperparameters import Hyperparameter, describe
from harness.methods.loading import Submission, discover
from harness.methods.tuned_settings import record, tuned_path
from harness.pipeline.scoring import (
    build_reference,
    provenance_of,
    run_submissions,
    score_uncertainty,
)
from harness.pipeline.setup import set_up, start_clock
from harness.tasks.base import Task, TaskData

BUDGET_SHARE = 0.75  # a trial is feasible when its median run takes at most this share of budget
SPLIT = "public"
STUDY_FOLDER = "tuning"
CONSTRAINT = "median run seconds over the limit"


class TuningError(ValueError):
    """A tuning that cannot start or produced no usable settings."""


@dataclass
class TrialResult:
    settings: dict
    score: float  # 0.0 when infeasible
    median_seconds: float
    feasible: bool
    why: str = ""  # what made it infeasible


def _optuna():
    try:
        import optuna
    except ImportError:
        raise TuningError(
            "harness tune needs Optuna: pip install -e '.[tune]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _suggest(trial, parameter: Hyperparameter):
    if parameter.choices is not None:
        return trial.suggest_categorical(parameter.name, list(parameter.choices))
    if parameter.is_integer:
        return trial.suggest_int(
            parameter.name, parameter.low, parameter.high, step=int(parameter.step or 1),
            log=parameter.log,
        )
    return trial.suggest_float(
        parameter.name, parameter.low, parameter.high, step=parameter.step, log=parameter.log
    )


def changed_settings(space: dict[str, Hyperparameter], values: dict) -> dict:
    """The values that differ from the published defaults: what a run must be told."""
    return {name: value for name, value in values.items() if value != space[name].default}


def _feasible(trial) -> bool:
    return bool(trial.constraints) and all(v <= 0 for v in trial.constraints.values())


def _best(study, optuna) -> object | None:
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    feasible = [t for t in complete if _feasible(t)]
    return max(feasible, key=lambda t: (t.value, -t.number), default=None)


def _resume_interrupted(study, optuna) -> int:
    """Queue again the settings of trials that were interrupted (failed or left running by a
    killed process) and never finished since; returns how many were queued."""
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    settled = [t.params for t in trials if t.state in (states.COMPLETE, states.WAITING)]
    queued = 0
    for trial in trials:
        interrupted = trial.state in (states.FAIL, states.RUNNING) and trial.params
        if interrupted and trial.params not in settled:
            study.enqueue_trial(trial.params)
            settled.append(trial.params)
            queued += 1
    return queued


def _tunable(submissions_dir: Path, name: str) -> Submission:
    """The submission ``name``, which must exist, run and declare a search space."""
    found, rejected = discover(submissions_dir)
    if name in rejected:
        raise TuningError(f"{name} cannot be run: {rejected[name]}")
    submission = next((s for s in found if s.name == name), None)
    if submission is None:
        known = ", ".join(sorted([s.name for s in found] + list(rejected)))
        raise TuningError(f"unknown submission {name!r}; found: {known}")
    if not submission.space:
        raise TuningError(
            f"{name} declares no SEARCH_SPACE: nothing to tune "
            "(see `harness.methods.hyperparameters`)"
        )
    return submission


def _open_study(optuna, path: Path, submission: Submission, task: Task, reporter: Reporter):
    """The submission's study in SQLite at ``path``, new or continued, with its sampler seeded
    and the published constants queued as the first trial; and its finished trials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    space = submission.space
    declaration = {k: vars(p) for k, p in sorted(space.items())}
    study = optuna.create_study(
        study_name=f"{submission.name}-{files.config_hash([submission.file_hash, declaration])}",
        storage=f"sqlite:///{path}",
        direction="maximize",
        load_if_exists=True,
    )
    # seeded by the trials already there: a study run in one go is reproducible, and one that is
    # continued draws fresh settings instead of repeating its first random ones
    study.sampler = optuna.samplers.TPESampler(
        seed=derive_seed(task.seed, "tune", submission.name, len(study.trials)) % 2**32
    )
    if not study.trials:
        study.enqueue_trial({k: p.default for k, p in space.items()})  # the published constants
    resumed = _resume_interrupted(study, optuna)
    finished = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    reporter.message(
        f"study {study.study_name} in {path}: {finished} trials finished"
        + (f", {resumed} interrupted ones resumed" if resumed else "")
    )
    return study, finished


@dataclass
class _Trials:
    """Scoring one submission with given settings on the workers: a trial, and Optuna's
    objective made of it (feasible when its median run fits ``limit`` and every run is ok)."""

    workers: WorkerPool
    task: Task
    data: TaskData
    submission: Submission
    results: ResultsStore
    pool: ModelStats
    limit: float
    reporter: Reporter

    def run(self, values: dict) -> tuple[TrialResult, Outcome]:
        name, space = self.submission.name, self.submission.space
        settings = changed_settings(space, values)
        digest = provenance_of(self.task, self.data, self.submission, settings)
        outcome = Outcome(
            name, self.submission, runs=self.results.load_runs(name, digest), provenance=digest
        )
        run_submissions(self.workers, self.task, {name: outcome}, self.results, self.limit,
                        {name: settings}, self.reporter)
        timed = outcome.timed_seconds()
        median = typical_seconds(timed)
        stats = outcome.stats(self.task.num_models)
        if outcome.over_budget or too_slow(timed, self.limit):
            return TrialResult(settings, 0.0, median, False, "over the budget"), outcome
        if stats is None:
            failed = next(r for r in outcome.runs.values() if r.status != "ok")
            why = f"run {failed.run_index} {failed.status}: {failed.message}"
            return TrialResult(settings, 0.0, median, False, why), outcome
        return TrialResult(settings, official_scores(stats, self.pool)[1], median, True), outcome

    def objective(self, trial) -> float:
        space = self.submission.space
        result, _ = self.run({k: _suggest(trial, p) for k, p in space.items()})
        trial.set_user_attr("median_seconds", result.median_seconds)
        # feasible at <= 0: seconds over the limit, or a penalty for failed runs
        seconds = result.median_seconds if math.isfinite(result.median_seconds) else 0.0
        trial.set_constraint(
            CONSTRAINT, seconds - self.limit if result.feasible else 1.0 + abs(seconds)
        )
        trial.set_user_attr("why", result.why)
        verdict = f"score {result.score:.4g}" if result.feasible else (
            f"infeasible ({result.why[:120]})"
        )
        self.reporter.message(
            f"trial {trial.number}: {describe(result.settings)}: {verdict}, "
            f"{result.median_seconds:.3f} s per run"
        )
        self.reporter.advance("trials")
        return result.score


def tune(
    task: Task,
    name: str,
    submissions_dir: Path = Path("submissions"),
    *,
    trials: int = TUNING_TRIALS,
    num_models: int = TUNING_RUNS,
    reference_root: Path = REFERENCE_ROOT,
    output_dir: Path = Path("results"),
    jobs: int = 1,
    timeout: float | None = None,
    budget_seconds: float | None = None,
    reporter: Reporter | None = None,
    sandbox: str = "auto",
) -> dict:
    """Run (or continue) the study of submission ``name`` until it has ``trials`` finished
    trials, write the best feasible settings to the task's tuned-settings file and return that
    entry."""
    if trials < 1 or num_models < 2:
        raise TuningError("--trials must be at least 1 and -n at least 2")
    optuna = _optuna()
    reporter = reporter or Reporter()
    submission = _tunable(submissions_dir, name)
    space = submission.space

    task = task.with_options(split=SPLIT, num_models=num_models)
    setup = set_up(task, reference_root, output_dir)
    data, store, results = setup.data, setup.store, setup.results
    pool = build_reference(store, reporter, jobs=jobs)
    study_path = Path(output_dir) / STUDY_FOLDER / store.directory.name / f"{name}.sqlite3"
    study, finished = _open_study(optuna, study_path, submission, task, reporter)

    with WorkerPool(task, store.original_path, jobs=jobs,
                    sandbox=sandbox) as workers:
        _, budget = start_clock(store, workers, budget_seconds, timeout)
        limit = BUDGET_SHARE * budget
        reporter.message(
            f"time budget per run {budget:.3f} s; a trial is feasible up to {limit:.3f} s "
            f"({BUDGET_SHARE:.0%})"
        )
        runner = _Trials(workers, task, data, submission, results, pool, limit, reporter)
        remaining = max(0, trials - finished)
        reporter.stage("trials", trials, done=trials - remaining)
        if remaining:
            study.optimize(runner.objective, n_trials=remaining)

        best = _best(study, optuna)
        if best is None:
            raise TuningError(
                f"no feasible trial among {trials} for {name}: every trial failed or exceeded "
                f"{limit:.3f} s per run"
            )
        published = {k: p.default for k, p in space.items()}
        chosen, chosen_outcome = runner.run(best.params)  # every run is recorded: none reruns
        base, base_outcome = runner.run(published)

    scored = {"tuned": chosen_outcome.stats(num_models)}
    if base.feasible:
        scored["published"] = base_outcome.stats(num_models)
    intervals = score_uncertainty(
        scored, pool, task, results.directory / "uncertainty", jobs, reporter
    )
    entry = _entry(study, optuna, submission, task, chosen, base, intervals, budget)
    record(tuned_path(submissions_dir, task.name), name, entry)
    return entry


def _entry(study, optuna, submission: Submission, task: Task, chosen: TrialResult,
           base: TrialResult, intervals: dict, budget: float) -> dict:
    """What the tuned-settings file records of a study: the chosen settings and their score,
    the published constants' score, both intervals, and how they were found."""
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return {
        "settings": chosen.settings,
        "file_hash": submission.file_hash,
        "split": SPLIT,
        "num_models": task.num_models,
        "root_seed": task.root_seed,
        "trials": len(complete),
        "feasible_trials": sum(_feasible(t) for t in complete),
        "score": chosen.score,
        "score_interval": list(intervals["tuned"].interval("final_score")),
        "published_score": base.score if base.feasible else None,
        "published_interval": list(intervals["published"].interval("final_score"))
        if base.feasible else None,
        "seconds_per_run": chosen.median_seconds,
        "budget_seconds": budget,
        "budget_share": BUDGET_SHARE,
        "tuning_seconds": round(sum(
            (t.datetime_complete - t.datetime_start).total_seconds() for t in complete
        ), 1),
        "sampler": f"optuna {optuna.__version__} TPESampler, constraint: {CONSTRAINT}",
        "study": study.study_name,
        "tuned_on": time.strftime("%Y-%m-%d"),
    }
