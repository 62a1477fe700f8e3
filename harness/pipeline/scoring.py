"""The scorer: task -> original model -> reference pool -> submission runs -> leaderboard.

``score()`` is the Python API behind ``harness score``; it can be called from a notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.core import files, sources
from harness.core.defaults import REFERENCE_ROOT
from harness.core.progress import Reporter
from harness.core.seeds import derive_seed, run_seed
from harness.evaluation import audits, example_outputs, uncertainty
from harness.evaluation.gate import (
    SAMPLE_RUNS,
    SAMPLE_SHIFT,
    GatePool,
    GateRow,
    gate_path,
    gate_pool_path,
    gate_rows,
    with_sample,
    write_gate,
    write_gate_pools,
)
from harness.evaluation.model_stats import ModelStats
from harness.evaluation.uncertainty import (
    EXAMPLE_REPLICATES,
    MODEL_REPLICATES,
    Plan,
    Replicates,
    own_seed,
    plan,
    replicates,
)
from harness.execution.phases import EVALUATION, OWN_RUN_TIME, Phases, phase_table, phases_path
from harness.execution.provenance import run_digest
from harness.execution.records import Outcome, RunResult
from harness.execution.runner import RunRequest, WorkerPool
from harness.execution.store import ResultsStore
from harness.methods.loading import Submission, discover
from harness.methods.tuned_settings import settings_for, tuned_path
from harness.outputs.leaderboard import CEILING_ROW, POOL_ROW, build_leaderboard
from harness.pipeline.setup import (
    Setup,
    needs_yardstick,
    recorded_retrain_seconds,
    set_up,
    start_clock,
)
from harness.reference.ensemble import select_chunk_trainer
from harness.reference.pool import CEILING, POOL, ReferenceStore, train_chunk_sequential
from harness.tasks.base import SPLITS, Task, TaskData, fingerprint, task_code

if TYPE_CHECKING:
    from distributed import Client

    from harness.execution.cluster import ClusterWorkers



def build_reference(
    store: ReferenceStore,
    reporter: Reporter | None = None,
    train_chunk: Callable | None = None,
    jobs: int = 1,
    which: str = POOL,
) -> ModelStats:
    """The original model and the pool (or, with ``which=CEILING``, the independent second
    pool), training only what is not cached, with progress. ``jobs`` processes share the chunks
    when models train one at a time (large models)."""
    reporter = reporter or Reporter()
    task = store.task
    store.original_model()
    label = "reference pool" if which == POOL else "ceiling pool"
    missing = sum(len(idx) for _, idx in store.missing_chunks(which))
    reporter.stage(label, task.num_models, done=task.num_models - missing)
    trainer = train_chunk or select_chunk_trainer(task, store.data)
    return store.pool(
        train_chunk=trainer,
        progress=lambda n: reporter.advance(label, n),
        # a stacked ensemble already uses every core; one-at-a-time training needs processes
        jobs=jobs if trainer is train_chunk_sequential else 1,
        which=which,
    )


def _replicates_of(stats: ModelStats, pool: ModelStats, shared: Plan, seed: int) -> Replicates:
    return replicates(
        stats.confidences, stats.retain_acc, stats.test_acc,
        pool.confidences, pool.retain_acc, pool.test_acc, shared, seed,
    )


def score_uncertainty(
    scored: dict[str, ModelStats],
    pool: ModelStats,
    task: Task,
    directory: Path,
    jobs: int = 1,
    reporter: Reporter | None = None,
    model_replicates: int = MODEL_REPLICATES,
) -> dict[str, Replicates]:
    """Bootstrap replicates of every scored set of models (``harness.evaluation.uncertainty``),
    cached in ``directory`` under a hash of everything they depend on (the models' and the pool's
    numbers, the plan, the code of the bootstrap and the metric), computed in ``jobs`` processes."""
    reporter = reporter or Reporter()
    shared = plan(
        pool.confidences.shape[1], len(pool), derive_seed(task.seed, "bootstrap"),
        model_replicates=model_replicates,
    )
    common = [
        fingerprint(pool.confidences, pool.retain_acc, pool.test_acc), shared.seed,
        EXAMPLE_REPLICATES, model_replicates,
        # the intervals' code and all it imports (the metric)
        sources.code_digest([Path(uncertainty.__file__)], [sources.PACKAGE]),
    ]
    paths = {}
    for name, stats in scored.items():
        own = fingerprint(stats.confidences, stats.retain_acc, stats.test_acc)
        paths[name] = directory / f"{name}-{files.config_hash([*common, own])}.npz"
    found: dict[str, Replicates] = {}
    todo = []
    for name, path in paths.items():
        try:
            arrays = files.read_npz(path)
            found[name] = Replicates(**{
                k: (float(v) if v.ndim == 0 else v) for k, v in arrays.items()
            })
        except (OSError, ValueError, TypeError, KeyError):
            todo.append(name)
    reporter.stage("intervals", len(scored), done=len(found))
    if todo:
        from joblib import Parallel, delayed

        computed = Parallel(n_jobs=max(1, min(jobs, len(todo))), return_as="generator")(
            delayed(_replicates_of)(scored[name], pool, shared, own_seed(shared.seed, name))
            for name in todo
        )
        for name, result in zip(todo, computed, strict=True):
            files.write_npz(paths[name], result.to_arrays())
            found[name] = result
            reporter.advance("intervals")
    return found


def _audit_values(stats: ModelStats, seed: int) -> dict[str, np.ndarray]:
    return audits.per_model(
        stats.forget_acc, stats.retain_acc, stats.test_acc,
        stats.forget_losses, stats.test_losses, stats.retain_losses, seed,
    )


def _audit_row(
    own: dict[str, np.ndarray], pool: dict[str, np.ndarray], confidences: np.ndarray | None,
    pool_confidences: np.ndarray, seed: int,
) -> dict[str, np.ndarray]:
    found = audits.audit_columns(own, pool, confidences, pool_confidences, seed)
    return {k: np.asarray(v) for k, v in found.items()}


def _cached(
    paths: dict[str, Path], tasks: dict[str, tuple], jobs: int, wanted: set[str],
    reporter: Reporter,
) -> dict[str, dict[str, np.ndarray]]:
    """Each name's arrays: read from its file in ``paths`` when it holds the ``wanted`` keys,
    else computed as ``function(*args)`` from ``tasks[name]`` in ``jobs`` processes and written."""
    found = {}
    for name, path in paths.items():
        arrays = files.read_npz_or_none(path)
        if arrays is not None and wanted <= set(arrays):
            found[name] = arrays
            reporter.advance("audits")
    todo = [name for name in paths if name not in found]
    if todo:
        from joblib import Parallel, delayed

        computed = Parallel(n_jobs=max(1, min(jobs, len(todo))), return_as="generator")(
            delayed(tasks[name][0])(*tasks[name][1:]) for name in todo
        )
        for name, result in zip(todo, computed, strict=True):
            files.write_npz(paths[name], result)
            found[name] = result
            reporter.advance("audits")
    return found


def score_audits(
    scored: dict[str, ModelStats],
    pool: ModelStats,
    task: Task,
    directory: Path,
    jobs: int = 1,
    reporter: Reporter | None = None,
) -> dict[str, dict[str, float]]:
    """The literature's audit columns (``harness.evaluation.audits``) of every scored set of models
    and of the pool itself (``POOL_ROW``), by row name, computed in ``jobs`` processes and cached in
    ``directory`` under hashes of the arrays they read and the code: first each set's per-model
    values (the attacks' classifiers, the expensive part), then each row's columns (the gaps to the
    pool's values and the likelihood-ratio attack against the pool's confidences)."""
    reporter = reporter or Reporter()
    seed = derive_seed(task.seed, "audits")
    code = sources.code_digest([Path(audits.__file__)], [sources.PACKAGE])  # and all it imports
    sets = {POOL_ROW: pool, **scored}
    reporter.stage("audits", 2 * len(sets))
    read = ("forget_acc", "retain_acc", "test_acc", *(f"{k}_losses" for k in example_outputs.SETS))
    keys = {}
    for name, stats in sets.items():
        arrays = {k: v for k, v in stats.to_arrays().items() if k in read}
        keys[name] = files.config_hash(
            [code, seed, sorted(arrays), fingerprint(*arrays.values(), stats.confidences)])
    values = _cached(
        {name: directory / f"{name}-{key}.npz" for name, key in keys.items()},
        {name: (_audit_values, stats, seed) for name, stats in sets.items()},
        jobs, set(audits.MEASURES), reporter,
    )
    rows = _cached(
        {name: directory / f"{name}-{files.config_hash([key, keys[POOL_ROW]])}.columns.npz"
         for name, key in keys.items()},
        {name: (_audit_row, values[name], values[POOL_ROW],
                None if name == POOL_ROW else stats.confidences, pool.confidences,
                derive_seed(task.seed, "audits-bootstrap", name))
         for name, stats in sets.items()},
        jobs, {"ua"}, reporter,
    )
    return {name: {k: float(v) for k, v in found.items()} for name, found in rows.items()}


def provenance_of(
    task: Task, data: TaskData, submission: Submission, settings: dict | None = None,
    run_root: int | None = None,
) -> str:
    """The digest a submission's run records must carry to be reused
    (``harness.execution.provenance``):
    its code and the code it imports, its settings (tuned hyperparameters), the runner's code,
    the task's module and configuration (all but the time budget, which judges runs but does not
    change them), the data, the versions, and ``run_root`` where the runs' seeds come from one."""
    config = task.config()
    config.pop("budget_fraction")
    parts = [config, data.fingerprint, files.numeric_versions(),
             dict(sorted((settings or {}).items()))]
    context = files.config_hash(parts if run_root is None else [*parts, {"run_root": run_root}])
    task_files, task_text = task_code(type(task))
    return run_digest(submission.path, task_files, f"{context}|{task_text}")


def run_submissions(
    workers: WorkerPool | ClusterWorkers,
    task: Task,
    outcomes: dict[str, Outcome],
    results: ResultsStore,
    budget: float,
    settings: dict[str, dict] | None = None,
    reporter: Reporter | None = None,
    run_root: int | None = None,
    runs: int | None = None,
) -> list[RunResult]:
    """Do the runs each outcome (of a submission found) still lacks among its first ``runs``
    (default: all ``task.num_models``), recording every result as it finishes; a submission whose
    first timed runs exceed ``budget`` is stopped. The runs' seeds come from the task's seed, or
    from ``run_root`` where given. Returns the results of the runs done."""
    reporter = reporter or Reporter()
    settings = settings or {}
    runs = task.num_models if runs is None else runs
    at_once = workers.size
    requests = []
    for outcome in outcomes.values():
        if outcome.submission is None:
            continue
        todo = outcome.missing_runs(runs)
        reporter.stage(outcome.name, runs, done=runs - len(todo))
        if outcome.stop_if_over_budget(budget, at_once):
            continue
        requests += [
            RunRequest(
                outcome.submission, i,
                run_seed(task.seed if run_root is None else run_root, outcome.name, i),
                outcome.provenance,
                settings.get(outcome.name, {}),
            )
            for i in todo
        ]

    done: list[RunResult] = []

    def on_result(result: RunResult) -> None:
        done.append(result)
        outcome = outcomes[result.submission]
        outcome.runs[result.run_index] = result
        results.append(result)
        reporter.advance(result.submission)
        outcome.stop_if_over_budget(budget, at_once)

    def skip(request: RunRequest) -> bool:
        return outcomes[request.submission.name].over_budget

    workers.run(requests, on_result, skip)
    return done


def chosen_submissions(
    task: Task, submissions_dir: Path, names: list[str] | None, untuned: bool
) -> tuple[list[Submission], dict[str, str], dict[str, dict]]:
    """The submissions to score (all found, or ``names``), the rejected ones with why, and each
    one's settings (tuned hyperparameters unless ``untuned``)."""
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
    settings, misfits = settings_for(found, tuned_path(submissions_dir, task.name), untuned)
    rejected.update(misfits)
    return [s for s in found if s.name not in misfits], rejected, settings


def score(
    task: Task,
    submissions_dir: Path = Path("submissions"),
    *,
    names: list[str] | None = None,
    reference_root: Path = REFERENCE_ROOT,
    output_dir: Path = Path("results"),
    leaderboard_path: Path | None = Path("leaderboard.csv"),
    jobs: int = 1,
    timeout: float | None = None,
    budget_seconds: float | None = None,
    train_chunk: Callable | None = None,
    reporter: Reporter | None = None,
    ceiling: bool = True,
    untuned: bool = False,
    cluster: Client | None = None,
    workers_per_device: int | None = None,
    sandbox: str = "auto",
    phases: Phases | None = None,
    run_root: int | None = None,
    gate: dict[str, GateRow] | None = None,
    gate_known: dict[str, GateRow] | None = None,
    gate_pools: dict[str, GatePool] | None = None,
    reference_pool: GatePool | None = None,
    measures: bool = True,
    sample: bool = False,
    reproduced: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Score every submission in ``submissions_dir`` (or only ``names``) on ``task``.

    Returns the ranked leaderboard (also written to ``leaderboard_path`` unless it is None), every
    score with its bootstrap interval, ranks in significance groups and, with ``ceiling``, a row for
    an independent retrained pool scored as a submission. Submissions run with their tuned settings
    (``submissions/tuned/<task>.json``) unless ``untuned``. With ``cluster`` (a
    ``distributed.Client``) the pools and the runs are done on its workers
    (``harness.execution.cluster``; ``workers_per_device`` runs share a worker's GPU), into the same
    caches and records as local work. Submissions run in the OS sandbox
    (``harness.execution.sandbox``: ``auto`` where bubblewrap is installed, ``on`` requires it,
    ``off``). ``phases``, where given, receives the wall seconds of each phase
    (``harness.execution.phases``). ``run_root``: the runs' seeds come from it instead of the task's
    seed (the pool is unchanged; for measuring the gate's false alarms). ``gate``, where given,
    receives each row's ``harness.evaluation.gate.GateRow`` (written beside the leaderboard when
    ``leaderboard_path`` is given); rows of ``gate_known`` (the baseline's) whose runs and pool are
    the same are taken as they are; ``gate_pools`` receives, under the split's name, the pool
    numbers they were computed against (``harness.evaluation.gate.GatePool``, written beside the
    leaderboard too). ``reference_pool``: a pool's numbers to score against instead of training
    the pool (``harness check``: the baseline's, so that it pairs on any machine), used where it
    was made on this task's data and forget set. Without ``measures`` the intervals, ranks and
    audits are left out (``harness check`` compares scores and gate rows only); a
    ``reference_pool`` needs that (it has no per-example losses for the audits). With ``sample``,
    rows of ``gate_known`` whose code is unchanged re-run only their first runs first
    (``_reproduce_samples``); those that come out the same are left off the board and named in
    ``reproduced``, with how far their sample lay from the baseline's
    (``harness.evaluation.gate.GateRow.sample_shift``). Workers start only when a run is
    missing or the yardstick must be timed (``setup.needs_yardstick``).
    """
    reporter = reporter or Reporter()
    if reference_pool is not None and measures:
        raise ValueError("a given reference_pool has no per-example losses for the audits: "
                         "score with measures=False")
    if gate is None and leaderboard_path is not None:
        gate = {}
    if gate_pools is None and leaderboard_path is not None:
        gate_pools = {}
    phases = phases if phases is not None else Phases()
    with phases.phase("set-up"):
        # the code that turns runs into scores, which gate rows record and samples are taken for
        scorer = scorer_digest() if gate is not None or sample else ""
        found, rejected, settings = chosen_submissions(
            task, submissions_dir, names, untuned
        )
        setup = set_up(task, reference_root, output_dir)
        reporter.message(f"reference cache: {setup.store.directory}")
    pool, second = _reference_models(setup, cluster, reporter, train_chunk, jobs, ceiling, phases,
                                     reference_pool)
    with phases.phase("set-up"):
        outcomes = _outcomes(setup, found, rejected, settings, run_root)
    with _workers(setup, cluster, jobs, workers_per_device, reporter, sandbox) as workers:
        if _runs_missing(outcomes, task.num_models) or (
                needs_yardstick(budget_seconds, timeout)
                and recorded_retrain_seconds(setup.store, workers) is None):
            with phases.phase("workers start"):  # else nothing needs a worker: none starts
                workers.wait_until_ready()
        with phases.phase("yardstick"):
            retrain_time, budget = start_clock(setup.store, workers, budget_seconds, timeout)
        reporter.message(
            (f"retraining one model takes {retrain_time:.3f} s here; "
             if np.isfinite(retrain_time) else "no retraining timed (budget and timeout given); ")
            + f"time budget per run {budget:.3f} s"
        )
        with phases.phase("runs"):
            done, same = [], {}
            if sample and gate_known:
                done, same = _reproduce_samples(workers, setup, outcomes, budget, settings,
                                                reporter, run_root, gate_known, scorer)
            if reproduced is not None:
                reproduced.update(same)
            done += run_submissions(workers, task, outcomes, setup.results, budget, settings,
                                    reporter, run_root)
        own = [r.seconds for r in done if np.isfinite(r.seconds)]
        phases.add(OWN_RUN_TIME, sum(own) / workers.size)
        phases.add(EVALUATION, workers.evaluation_seconds / workers.size)

    scored = {
        name: stats for name, outcome in outcomes.items()
        if (stats := outcome.stats(task.num_models)) is not None
    }
    if second is not None:
        scored[CEILING_ROW] = second
    directory = setup.results.directory
    uncertainty, audit_columns = None, None
    if measures:
        with phases.phase("intervals"):
            uncertainty = score_uncertainty(
                scored, pool, task, directory / "uncertainty", jobs, reporter
            )
    if gate is not None:
        with phases.phase("gate"):
            rows = gate_rows(
                scored, pool, {name: derive_seed(task.seed, "gate", name) for name in scored},
                directory / "gate", jobs, gate_known,
            )
            gate.update({
                name: row if name not in outcomes else with_sample(
                    row, scored[name], outcomes[name].provenance, scorer)
                for name, row in rows.items()})
        if gate_pools is not None:
            gate_pools[task.split] = GatePool(pool, setup.data.fingerprint)
    if measures:
        with phases.phase("audits"):
            audit_columns = score_audits(scored, pool, task, directory / "audits", jobs,
                                         reporter)
    with phases.phase("leaderboard"):
        board = build_leaderboard(
            task, pool, list(outcomes.values()), budget=budget, retrain_seconds=retrain_time,
            versions=files.versions(), uncertainty=uncertainty, ceiling=second,
            settings=settings, audits=audit_columns,
        )
    if leaderboard_path is not None:
        write_leaderboard(Path(leaderboard_path), board, {task.split: phases},
                          {task.split: gate}, task.num_models, gate_pools)
    return board


def scorer_digest() -> str:
    """The digest of the code that turns runs' numbers into a board's scores and gate rows (the
    leaderboard, the gate, the metric and what they import, and this module): ``harness check``
    takes a row over on a sample of its runs only where this code is unchanged."""
    package = sources.PACKAGE
    entries = [package / "outputs" / "leaderboard.py", package / "evaluation" / "gate.py"]
    return sources.source_digest([*sources.code_files(entries, [package]), Path(__file__)])


def _reproduce_samples(
    workers: WorkerPool | ClusterWorkers, setup: Setup, outcomes: dict[str, Outcome],
    budget: float, settings: dict[str, dict], reporter: Reporter, run_root: int | None,
    known: dict[str, GateRow], scorer: str,
) -> tuple[list[RunResult], dict[str, float]]:
    """The first ``SAMPLE_RUNS`` runs of the baseline's rows (``known``) whose runs were produced
    and scored by the code that would produce and score them now (``GateRow.can_sample``). The
    rows whose runs come out as the baseline's (number for number, or apart only by another
    machine's rounding: ``GateRow.sample_shift``) and within the budget are taken out of
    ``outcomes`` (neither run in full nor scored again); the others keep their sampled runs
    towards a full re-run (``scorer``: ``scorer_digest()``). Returns the runs done and the names
    taken out with their shift."""
    candidates = {
        name: outcome for name, outcome in outcomes.items()
        if outcome.submission is not None and name in known
        and known[name].can_sample(outcome.provenance, scorer)
    }
    done = run_submissions(workers, setup.task, candidates, setup.results, budget, settings,
                           reporter, run_root, runs=SAMPLE_RUNS)
    same = {}
    for name, outcome in candidates.items():
        stats = outcome.stats(SAMPLE_RUNS)
        if outcome.over_budget or stats is None:
            continue
        shift = known[name].sample_shift(stats)
        if shift <= SAMPLE_SHIFT:
            same[name] = shift
            del outcomes[name]
    return done, same


def _reference_models(
    setup: Setup, cluster: Client | None, reporter: Reporter, train_chunk: Callable | None,
    jobs: int, ceiling: bool, phases: Phases, given: GatePool | None = None,
) -> tuple[ModelStats, ModelStats | None]:
    """The pool and, with ``ceiling``, the ceiling pool: trained where not cached, here or on
    the cluster. A ``given`` pool made on this task's data and forget set is taken instead of
    training one."""
    store = setup.store
    if given is not None and given.data != setup.data.fingerprint:
        reporter.message("the baseline's pool numbers were made on other data or another forget "
                         "set: training this task's pool (the comparison cannot pair with it)")
        given = None
    elif given is not None:
        reporter.message("scoring against the baseline's pool numbers (committed with it), not "
                         "a pool trained here: the comparison pairs on any machine")
    if cluster is None:
        with phases.phase("original model"):
            store.original_model()
        with phases.phase("reference pool"):
            pool = (given.stats if given is not None
                    else build_reference(store, reporter, train_chunk, jobs=jobs))
        with phases.phase("ceiling pool"):
            second = (
                build_reference(store, reporter, train_chunk, jobs, CEILING) if ceiling else None
            )
        return pool, second
    from harness.execution.cluster import build_reference_on_cluster

    with phases.phase("reference pool"):
        pool = (given.stats if given is not None
                else build_reference_on_cluster(store, cluster, reporter, train_chunk))
    with phases.phase("ceiling pool"):
        second = (
            build_reference_on_cluster(store, cluster, reporter, train_chunk, CEILING)
            if ceiling else None
        )
    return pool, second


def _outcomes(
    setup: Setup, found: list[Submission], rejected: dict[str, str], settings: dict[str, dict],
    run_root: int | None,
) -> dict[str, Outcome]:
    """Every submission's outcome so far: the rejected ones with why, the others with the runs
    already recorded for exactly this code and these settings."""
    outcomes = {name: Outcome(name, None, rejected=why) for name, why in rejected.items()}
    for submission in found:
        digest = provenance_of(setup.task, setup.data, submission, settings[submission.name],
                               run_root)
        outcomes[submission.name] = Outcome(
            submission.name, submission,
            runs=setup.results.load_runs(submission.name, digest), provenance=digest,
        )
    return outcomes


def _runs_missing(outcomes: dict[str, Outcome], num_models: int) -> bool:
    """Whether a submission found lacks one of its ``num_models`` runs."""
    return any(outcome.missing_runs(num_models)
               for outcome in outcomes.values() if outcome.submission is not None)


def _workers(
    setup: Setup, cluster: Client | None, jobs: int, workers_per_device: int | None,
    reporter: Reporter, sandbox: str,
) -> WorkerPool | ClusterWorkers:
    """The workers the runs go to: local processes, or the cluster's."""
    if cluster is None:
        return WorkerPool(setup.task, setup.store.original_path, jobs=jobs, sandbox=sandbox)
    from harness.execution.cluster import ClusterWorkers

    return ClusterWorkers(cluster, setup.task, setup.data, setup.store.original_path,
                          workers_per_device, reporter=reporter, sandbox=sandbox)


def write_leaderboard(
    path: Path, board: pd.DataFrame, phases: dict[str, Phases],
    gate: dict[str, dict[str, GateRow]] | None = None, num_models: int | None = None,
    gate_pools: dict[str, GatePool] | None = None,
) -> None:
    """The leaderboard, and beside it the wall seconds of each split's phases and, where
    given, the paired gate's rows of each split (``harness.evaluation.gate``; N =
    ``num_models``) and the pool numbers they were computed against."""
    files.atomic_write(path, lambda tmp: board.to_csv(tmp, index=False))
    table = phase_table(phases)
    files.atomic_write(phases_path(path), lambda tmp: table.to_csv(tmp, index=False))
    if gate is not None:
        write_gate(gate_path(path), gate, num_models)
    if gate_pools is not None:
        write_gate_pools(gate_pool_path(path), gate_pools, gate)


def score_splits(
    task: Task,
    splits: list[str],
    submissions_dir: Path = Path("submissions"),
    *,
    leaderboard_path: Path | None = Path("leaderboard.csv"),
    phases: dict[str, Phases] | None = None,
    gate: dict[str, dict[str, GateRow]] | None = None,
    gate_known: dict[str, dict[str, GateRow]] | None = None,
    gate_pools: dict[str, GatePool] | None = None,
    reference_pools: dict[str, GatePool] | None = None,
    reproduced: dict[str, dict[str, float]] | None = None,
    **options,
) -> pd.DataFrame:
    """``score`` on each of ``splits`` (``"public"``, ``"private"``), as the competition scored a
    public split and, for the final ranking, a private one made the same way with another seed. One
    table: the private rows (the final ranking) first, each row naming its split. ``phases``, where
    given, receives each split's phase times (``harness.execution.phases``); ``gate`` each split's
    gate rows and ``gate_pools`` their pools, and ``gate_known`` and ``reference_pools`` give each
    split's baseline rows and pool, and ``reproduced`` receives each split's rows taken over on a
    sample (see ``score``)."""
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise ValueError(f"splits must be among {', '.join(SPLITS)}; got {', '.join(splits)}")
    order = [split for split in ("private", "public") if split in splits]
    phases = phases if phases is not None else {}
    if gate is None and leaderboard_path is not None:
        gate = {}
    if gate_pools is None and leaderboard_path is not None:
        gate_pools = {}
    boards = []
    for split in order:
        phases[split] = Phases()
        if gate is not None:
            gate[split] = {}
        if reproduced is not None:
            reproduced[split] = {}
        boards.append(score(task.with_options(split=split), submissions_dir,
                            leaderboard_path=None, phases=phases[split],
                            gate=None if gate is None else gate[split],
                            gate_known=(gate_known or {}).get(split), gate_pools=gate_pools,
                            reference_pool=(reference_pools or {}).get(split),
                            reproduced=None if reproduced is None else reproduced[split],
                            **options))
    board = pd.concat(boards, ignore_index=True)
    if leaderboard_path is not None:
        write_leaderboard(Path(leaderboard_path), board, phases, gate, task.num_models,
                          gate_pools)
    return board
