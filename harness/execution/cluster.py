"""The reference pool on a ``dask.distributed`` cluster (``harness pool --cluster``).

Each missing chunk of the pool (``ReferenceStore.missing_chunks``) becomes one Dask task. The
client, not the workers, writes every finished chunk through ``ReferenceStore.write_chunk``: the
same atomic, content-keyed files a local build writes, so a cluster build and a local one resume
each other, and since a model's seed depends only on its index the numbers are the same.

How the data reaches the workers: a task carries only the small ``Task`` dataclass; each worker
process loads the data itself with ``Task.load_data()`` once and keeps it (``_WORKER_DATA``), so
chunks neither ship the dataset nor re-read it. The embedded digits need nothing; a real task
(cifar10, surf) needs its data folder at the same path on every worker (a shared filesystem),
and every worker needs this package and its dependencies installed (``pip install
.[cluster]``).

Faults: a worker that dies mid-chunk has its chunk rerun by Dask on another worker; a chunk
that keeps killing workers fails with ``KilledWorker`` after the scheduler's
``distributed.scheduler.allowed-failures``; a chunk that raises is retried ``retries`` times.
Either ends as a ``ClusterError`` naming the chunk, never a loop; so does a chunk trained on
data whose fingerprint differs from the client's (a worker that sees another data folder). A
chunk's result is written once, when its future finishes, whatever happened to the workers
before.

GPU chunks ask for the resource ``GPU=1``, so a worker started with ``--resources GPU=1`` runs
one at a time; CPU chunks ask for none.

Submission runs (``harness score --cluster``, ``ClusterWorkers``): a Dask task is a batch of
runs of one submission. On the Dask worker it is served by the same ``runner.WorkerPool`` a
local scoring uses (kept per worker process, one per task slot), so each run happens in a
child process of the Dask worker with the local runner's guarantees: one submission per
process, a hard timeout, a crash or a hang is that run's error row, the same seeds and so the
same numbers. The batch carries the submission's source (the worker writes it to a scratch
folder: no submissions folder is needed there) and the original model's bytes (sent once
to each worker). The
client writes each batch's records as it arrives, through the same ``ResultsStore`` a local
run uses: an interrupted scoring resumes from them, locally or on a cluster. A submission that
kills its Dask worker (not only its own process) makes Dask rerun the batch elsewhere; after
the scheduler's allowed failures the batch's runs are ``crashed`` rows, and the scoring goes
on. A failure of the harness's own code on a worker (``runner.HarnessError``) is not retried
and stops the scoring, as locally. GPU runs ask for ``1/K`` of a GPU, K =
``--workers-per-device``, so K runs share one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import multiprocessing
import os
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.core import files
from harness.evaluation.model_stats import ModelStats
from harness.execution.provenance import runner_digest
from harness.execution.records import CRASHED, RunResult
from harness.execution.runner import (
    RETRAIN_REPEATS,
    HarnessError,
    RunRequest,
    WorkerPool,
    default_memory_limit,
    workers_for,
)
from harness.reference.pool import ORIGINAL_FILE, POOL, ReferenceStore
from harness.tasks.base import Task, TaskData, task_code

if TYPE_CHECKING:
    from distributed import Client

    from harness.core.progress import Reporter

ENV_VAR = "HARNESS_CLUSTER"  # a scheduler address, used when no option names a cluster
DEFAULT_RETRIES = 2  # reruns of a chunk that raised: bounded, so a broken chunk ends as an error
DEFAULT_CONNECT_TIMEOUT = 20.0  # seconds to reach the scheduler before giving up

SECONDS_PER_BATCH = 5.0  # aim of a batch of runs: few tasks for fast runs, one run when slow
MAX_BATCH = 32  # runs in one batch at most (a killed worker loses at most this much work)
BATCHES_PER_SLOT = 2  # batches in flight per run slot: the next is queued while one runs
KILLER_RUN = (
    "the Dask worker serving its runs died every time they were tried, also alone on the "
    "cluster (1 + the scheduler's distributed.scheduler.allowed-failures times)"
)

ChunkTrainer = Callable[[Task, TaskData, list[int]], ModelStats]

_WORKER_DATA: dict[str, TaskData] = {}  # per worker process: the data of each task seen
_RUNNERS: dict[str, list[WorkerPool]] = {}  # per worker process: idle run slots, by task+model
_RUNNERS_LOCK = threading.Lock()


class ClusterError(ValueError):
    """The cluster could not be reached or could not finish the work (a one-line message; the
    CLI prints it and exits with status 2)."""


def _reason(error: BaseException) -> str:
    """An exception as one line (Dask errors carry remote tracebacks over several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _data_key(task: Task) -> str:
    # config() leaves out where the data lies and which class loads it: both matter here
    kind = f"{type(task).__module__}.{type(task).__qualname__}"
    return files.config_hash([kind, task.config(), task.data_dir])


def worker_data(task: Task) -> TaskData:
    """The task's data in this (worker) process, loaded on first use and then kept, so that a
    worker reads and fingerprints a dataset once, not once per chunk."""
    key = _data_key(task)
    if key not in _WORKER_DATA:
        _WORKER_DATA[key] = task.load_data()
    return _WORKER_DATA[key]


def run_chunk(
    train_chunk: ChunkTrainer, task: Task, name: str, indices: list[int]
) -> tuple[str, list[int], ModelStats, str, str]:
    """One chunk on a worker: the same trainer a local build uses, on the worker's data. The
    data's fingerprint comes back with the numbers, so that a worker whose folder holds other
    data (a stale copy, not the shared one) is caught instead of poisoning the cache; the
    worker's address too, for the progress."""
    data = worker_data(task)
    return name, indices, train_chunk(task, data, indices), data.fingerprint, _worker_address()


def resources_for(task: Task) -> dict[str, float] | None:
    """What a chunk of ``task`` asks of a worker: one GPU on a CUDA task, nothing otherwise."""
    return {"GPU": 1} if task.device.startswith("cuda") else None


def cluster_target(
    address: str | None, scheduler_file: str | None, environ: dict[str, str] | None = None
) -> tuple[str | None, str | None]:
    """The cluster to use: the options first, then ``$HARNESS_CLUSTER``; (None, None) means
    build locally."""
    if address and scheduler_file:
        raise ClusterError("give either --cluster or --scheduler-file, not both")
    if address or scheduler_file:
        return address, scheduler_file
    from_env = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return (from_env or None), None


def connect(
    address: str | None = None,
    scheduler_file: str | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Client:
    """A ``distributed.Client`` of the scheduler at ``address`` (or in ``scheduler_file``);
    any failure becomes a one-line ``ClusterError`` instead of a traceback."""
    try:
        from distributed import Client
    except ImportError as error:
        raise ClusterError(
            "a cluster needs dask.distributed: pip install 'unlearning-harness[cluster]'"
        ) from error
    where = address if address else f"the scheduler file {scheduler_file}"
    if scheduler_file and not Path(scheduler_file).is_file():
        raise ClusterError(f"no scheduler file at {scheduler_file}")
    try:
        return Client(address, scheduler_file=scheduler_file, timeout=timeout)
    except Exception as error:  # OSError, TimeoutError, ValueError: all mean "not reachable"
        raise ClusterError(
            f"cannot reach the Dask scheduler at {where} within {timeout:g} s: {_reason(error)}"
        ) from error


def connected_workers(client: Client) -> dict[str, dict]:
    """The scheduler's description of each connected worker, by address."""
    try:  # newer clients list only a few workers unless asked for all
        info = client.scheduler_info(n_workers=-1)
    except TypeError:
        info = client.scheduler_info()
    return info.get("workers", {})


def worker_count(client: Client) -> tuple[int, int]:
    """(workers, workers offering a GPU resource) now connected to the scheduler."""
    workers = connected_workers(client)
    gpus = sum(1 for info in workers.values() if info.get("resources", {}).get("GPU", 0) >= 1)
    return len(workers), gpus


def build_reference_on_cluster(
    store: ReferenceStore,
    client: Client,
    reporter: Reporter | None = None,
    train_chunk: ChunkTrainer | None = None,
    which: str = POOL,
    retries: int = DEFAULT_RETRIES,
) -> ModelStats:
    """``scoring.build_reference`` with the pool's missing chunks as tasks on ``client``'s
    cluster: the original model here (one training, needed before any submission runs), then
    each chunk on a worker, written here by the client as it finishes, with progress."""
    from distributed import KilledWorker, as_completed

    from harness.core.progress import Reporter
    from harness.reference.ensemble import select_chunk_trainer

    reporter = reporter or Reporter()
    task = store.task
    store.original_model()
    label = "reference pool" if which == POOL else "ceiling pool"
    missing = store.missing_chunks(which)
    reporter.stage(label, task.num_models, done=task.num_models - sum(len(i) for _, i in missing))
    workers, gpu_workers = worker_count(client)
    resources = resources_for(task)
    note = f", {gpu_workers} with a GPU" if resources else ""
    reporter.message(f"{len(missing)} chunks on {workers} Dask workers{note}")
    if resources and missing and gpu_workers == 0:
        reporter.message("no worker offers the GPU resource yet: chunks wait for one that does")
    trainer = train_chunk or select_chunk_trainer(task, store.data)
    done: Counter[str] = Counter()  # models trained per worker, for the progress
    futures = {
        client.submit(
            run_chunk, trainer, task, name, indices,
            resources=resources, retries=retries, pure=False,
        ): name
        for name, indices in missing
    }
    try:
        for future in as_completed(futures):
            try:
                name, indices, stats, worker_fingerprint, address = future.result()
            except KilledWorker as error:
                raise ClusterError(
                    f"chunk {futures[future]} killed every worker that ran it; giving up"
                ) from error
            except Exception as error:
                raise ClusterError(
                    f"chunk {futures[future]} failed on the cluster after {retries} retries: "
                    f"{type(error).__name__}: {_reason(error)}"
                ) from error
            if worker_fingerprint != store.data.fingerprint:
                raise ClusterError(
                    f"chunk {name} was trained on other data than this machine's (fingerprint "
                    f"{worker_fingerprint}, not {store.data.fingerprint}): every worker needs the "
                    "same data folder at the same path"
                )
            store.write_chunk(name, indices, stats)
            reporter.advance(label, len(indices))
            done[address] += len(indices)
            reporter.activity(address, f"{done[address]} models trained, last {name}")
    finally:
        client.cancel(list(futures))  # after an error, nothing keeps training for nobody
    return store.read_pool(which)


def _worker_address() -> str:
    from distributed import get_worker

    return get_worker().address


def _scratch_file(folder: str, name: str, content: bytes) -> Path:
    """``content`` in a worker's scratch folder, written once (atomically) under its hash."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "harness-cluster" / folder / digest / name
    if not path.exists():
        files.atomic_write(path, lambda tmp: tmp.write_bytes(content))
    return path


def _slot_memory_limit() -> int:
    """Bytes one run slot may allocate: the Dask worker's memory limit (else the machine's, as
    locally) shared among its threads."""
    from distributed import get_worker

    worker = get_worker()
    threads = max(1, worker.state.nthreads)
    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    return int(0.75 * limit / threads) if limit else default_memory_limit(threads)


@contextlib.contextmanager
def _run_slot(task: Task, original: bytes, sandbox: str = "auto") -> Iterator[WorkerPool]:
    """A ``WorkerPool`` of one process on this Dask worker, for one task at a time: an idle one
    of an earlier batch of the same task when there is one (its process has the data loaded),
    else a new one, after closing the idle ones of other tasks (a scoring's other split: their
    processes would hold memory, on a GPU a context each, for nothing). One that failed is
    closed, not reused."""
    key = files.config_hash([_data_key(task), hashlib.sha256(original).hexdigest(), sandbox])
    stale: list[WorkerPool] = []
    with _RUNNERS_LOCK:
        idle = _RUNNERS.get(key)
        slot = idle.pop() if idle else None
        if slot is None:
            for other in [k for k in _RUNNERS if k != key]:
                stale += _RUNNERS.pop(other)
    for old in stale:
        old.__exit__(None, None, None)
    if slot is None:
        # Dask starts its workers as daemonic processes, which multiprocessing forbids to start
        # children. A run slot's process exits by itself once its parent is gone
        # (runner._exit_when_orphaned), which is what the rule protects against.
        multiprocessing.current_process().daemon = False
        path = _scratch_file("models", ORIGINAL_FILE, original)
        slot = WorkerPool(task, path, jobs=1, memory_limit=_slot_memory_limit(),
                          sandbox=sandbox).__enter__()
    try:
        yield slot
    except BaseException:
        slot.__exit__(None, None, None)
        raise
    with _RUNNERS_LOCK:
        _RUNNERS.setdefault(key, []).append(slot)


def code_digest(task: Task) -> str:
    """The harness code that produces a run's numbers (the runner and everything it imports, the
    task's code), to catch a worker with another version installed."""
    return _code_digest(type(task))


@functools.cache
def _code_digest(task_class: type) -> str:
    # read once per process: the installed code does not change under a running worker
    task_files, task_text = task_code(task_class)
    return runner_digest(task_files, task_text)


def serve_runs(
    task: Task, original: bytes, requests: list[RunRequest], sources: dict[str, bytes],
    timeout: float, sandbox: str = "auto",
) -> tuple[list[RunResult], str, str, str, str | None]:
    """A batch of runs on a Dask worker: (results, worker address, data fingerprint, code
    digest, the harness's failure); the fingerprint and digest are checked by the client. A
    failure of the harness's own code (``HarnessError``) comes back as its text, not raised:
    Dask would retry it elsewhere, and it would fail there the same way."""
    requests = [  # the worker may not see the submissions folder: it runs the shipped source
        replace(r, submission=replace(r.submission, path=_scratch_file(
            "submissions", r.submission.path.name, sources[r.submission.name])))
        for r in requests
    ]
    results: list[RunResult] = []
    failure = None
    try:
        with _run_slot(task, original, sandbox) as slot:
            slot.timeout = timeout
            slot.run(requests, results.append)
    except HarnessError as error:
        failure = str(error)
    return results, _worker_address(), worker_data(task).fingerprint, code_digest(task), failure


def serve_yardstick(task: Task, original: bytes, seed: int, sandbox: str = "auto") -> float:
    """The time budget's yardstick in one run slot of this Dask worker."""
    with _run_slot(task, original, sandbox) as slot:
        return slot.time_retrain(seed)


def batch_size(seconds: Iterable[float]) -> int:
    """Runs in the next batch of a submission whose runs took ``seconds`` so far: one until a
    run's time is known, then about ``SECONDS_PER_BATCH`` of work, at most ``MAX_BATCH``."""
    known = [s for s in seconds if np.isfinite(s) and s > 0]
    if not known:
        return 1
    return int(np.clip(SECONDS_PER_BATCH // float(np.median(known)), 1, MAX_BATCH))


class ClusterWorkers:
    """``runner.WorkerPool``'s part in scoring (``time_retrain``, ``timing_method``, ``run``,
    ``timeout``), served by the run slots of a Dask cluster's workers."""

    def __init__(
        self, client: Client, task: Task, data: TaskData, original_path: Path,
        workers_per_device: int | None = None, retries: int = DEFAULT_RETRIES,
        reporter: Reporter | None = None, sandbox: str = "auto",
    ) -> None:
        from harness.core.progress import Reporter

        self.client, self.retries = client, retries
        self.sandbox = sandbox  # resolved on each worker: a worker without bwrap says so
        # a worker's GPU is the one it was started with: plain "cuda" there
        self.task = task.with_options(device="cuda") if task.device.startswith("cuda") else task
        self.per_gpu = workers_for(task.device, None, workers_per_device)
        self.reporter = reporter or Reporter()
        self.timeout = 600.0
        self.done: Counter[str] = Counter()  # runs finished per Dask worker, for the progress
        self._original = original_path.read_bytes()
        # what every batch's worker must have, like this machine
        self._expected = (data.fingerprint, code_digest(task))
        self._shared = None  # the original model's bytes, sent to the workers once

    def __enter__(self) -> ClusterWorkers:
        # a task's result, not scattered data: when every worker holding it dies (a submission
        # that kills its workers), the scheduler makes it again instead of losing it
        digest = hashlib.sha256(self._original).hexdigest()[:16]
        self._shared = self.client.submit(bytes, self._original, key=f"original-model-{digest}")
        return self

    def __exit__(self, *exc) -> None:
        self._shared = None

    def wait_until_ready(self) -> None:
        """Nothing to wait for: the cluster's workers are started by whoever runs them."""

    @property
    def size(self) -> int:
        """Runs served at once: every run slot of the connected workers."""
        return max(1, sum(self.slots().values()))

    @property
    def evaluation_seconds(self) -> float:
        """Not measured on a cluster (its workers evaluate in their own processes): NaN."""
        return float("nan")

    @property
    def gpu(self) -> bool:
        return self.task.device.startswith("cuda")

    def _resources(self) -> dict[str, float] | None:
        return {"GPU": 1.0 / self.per_gpu} if self.gpu else None

    def slots(self) -> dict[str, int]:
        """Runs each connected worker serves at once: its threads, or K per GPU it offers."""
        slots = {}
        for address, worker in connected_workers(self.client).items():
            gpus = int(worker.get("resources", {}).get("GPU", 0))
            slots[address] = gpus * self.per_gpu if self.gpu else int(worker.get("nthreads", 1))
        return {address: n for address, n in slots.items() if n > 0}

    @property
    def timing_method(self) -> str:
        slots = self.slots()
        return (
            f"one retain-set training through the submissions' DataLoader in each of the "
            f"{sum(slots.values())} run slots of {len(slots)} Dask workers at once, device "
            f"synchronised; median over slots of each one's median of {RETRAIN_REPEATS}"
        )

    def time_retrain(self, seed: int = 0) -> float:
        """The yardstick under the runs' concurrency: one training in every run slot of the
        cluster at once (each pinned to its worker), the median over slots."""
        slots = self.slots()
        if not slots:
            raise ClusterError("no Dask worker can serve runs of this task (none connected"
                               + (", or none offers the GPU resource)" if self.gpu else ")"))
        futures = [
            self.client.submit(
                serve_yardstick, self.task, self._shared, seed, self.sandbox, workers=[address],
                allow_other_workers=False, resources=self._resources(), pure=False,
            )
            for address, count in slots.items() for _ in range(count)
        ]
        seconds = [s for s in self.client.gather(futures) if np.isfinite(s)]
        if not seconds:
            raise ClusterError("timing the reference training failed on every Dask worker")
        return float(np.median(seconds))

    def run(
        self,
        requests: Iterable[RunRequest],
        on_result: Callable[[RunResult], None],
        skip: Callable[[RunRequest], bool] | None = None,
    ) -> None:
        """Serve ``requests`` in batches of one submission's runs, a bounded number in flight,
        so that ``skip`` (a submission over budget) still drops what is not yet sent.

        A batch whose workers all died (Dask's ``KilledWorker``) may have been a bystander of
        a batch that kills workers: it becomes a suspect, and suspects run again one at a time
        with nothing else on the cluster. A suspect that kills its workers alone is the killer:
        its runs, and its submission's runs not yet done, are ``crashed`` rows, so a submission
        that kills workers costs a bounded number of them and harms no other."""
        _Dispatch(self, requests, skip).serve(on_result)

    @staticmethod
    def _next_batch(
        pending: deque, skip: Callable | None, seconds: dict[str, list[float]]
    ) -> list[RunRequest]:
        while pending and skip is not None and skip(pending[0]):
            pending.popleft()
        if not pending:
            return []
        name = pending[0].submission.name
        batch = [pending.popleft()]
        while pending and len(batch) < batch_size(seconds.get(name, [])) and (
            pending[0].submission.name == name
        ):
            batch.append(pending.popleft())
        return batch

    def _results(self, future, batch: list[RunRequest]) -> list[RunResult] | None:
        """A finished batch's records; None when every worker that ran it died."""
        from distributed import KilledWorker

        try:
            results, address, data_fingerprint, code, failure = future.result()
        except KilledWorker:
            return None
        except Exception as error:  # the harness failed on the worker, not the submission
            raise ClusterError(
                f"runs of {batch[0].submission.name} failed on the cluster after "
                f"{self.retries} retries: {type(error).__name__}: {_reason(error)}"
            ) from error
        if (data_fingerprint, code) != self._expected:
            what = "data" if data_fingerprint != self._expected[0] else "harness code"
            raise ClusterError(
                f"the Dask worker {address} has other {what} than this machine: every worker "
                "needs the same data folder at the same path and the same harness installed"
            )
        if failure is not None:
            raise HarnessError(f"on the Dask worker {address}, {failure}")
        self.done[address] += len(results)
        self.reporter.activity(
            address, f"{self.done[address]} runs done, last of {batch[0].submission.name}"
        )
        return results


class _Dispatch:
    """One ``ClusterWorkers.run``: the runs not yet sent, the batches in flight, the suspects
    (batches whose workers died beside others) and each submission's run times so far."""

    def __init__(self, workers: ClusterWorkers, requests: Iterable[RunRequest],
                 skip: Callable[[RunRequest], bool] | None) -> None:
        from distributed import as_completed

        self.workers = workers
        self.skip = skip
        self.pending = deque(requests)
        self.sources = {r.submission.name: r.submission.path.read_bytes() for r in self.pending}
        self.seconds: dict[str, list[float]] = {}
        self.batches: dict = {}  # future -> (its runs, whether it runs alone)
        self.suspects: deque[list[RunRequest]] = deque()
        self.finished = as_completed()

    def serve(self, on_result: Callable[[RunResult], None]) -> None:
        self.send()
        try:
            for future in self.finished:
                batch, alone = self.batches.pop(future)
                results = self.workers._results(future, batch)
                future.release()  # else a worker's death would make Dask redo it for nothing
                if results is None and not alone:
                    self.suspects.append(batch)
                elif results is None:
                    doomed = batch + self.give_up(batch[0].submission.name)
                    results = [r.result(CRASHED, message=KILLER_RUN) for r in doomed]
                for result in results or []:
                    self.seconds.setdefault(result.submission, []).append(result.seconds)
                    on_result(result)
                self.send()
        finally:
            self.workers.client.cancel(list(self.batches))

    def submit(self, batch: list[RunRequest], alone: bool) -> None:
        workers, name = self.workers, batch[0].submission.name
        future = workers.client.submit(
            serve_runs, workers.task, workers._shared, batch, {name: self.sources[name]},
            workers.timeout, workers.sandbox, resources=workers._resources(),
            retries=workers.retries, pure=False,
        )
        self.batches[future] = (batch, alone)
        self.finished.add(future)

    def give_up(self, name: str) -> list[RunRequest]:
        """Take every run of a confirmed killer out of the queues: none is tried again."""
        theirs = [r for r in self.pending if r.submission.name == name]
        theirs += [r for b in self.suspects if b[0].submission.name == name for r in b]
        for queue, kept in (
            (self.pending, [r for r in self.pending if r.submission.name != name]),
            (self.suspects, [b for b in self.suspects if b[0].submission.name != name]),
        ):
            queue.clear()
            queue.extend(kept)
        return theirs

    def send(self) -> None:
        if self.suspects:  # one suspect at a time, alone, once the others have finished
            if not self.batches:
                self.submit(self.suspects.popleft(), alone=True)
            return
        room = BATCHES_PER_SLOT * max(1, sum(self.workers.slots().values())) - len(self.batches)
        while self.pending and room > 0:
            batch = self.workers._next_batch(self.pending, self.skip, self.seconds)
            if not batch:
                return
            self.submit(batch, alone=False)
            room -= 1
