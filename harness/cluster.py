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
one at a time; CPU chunks ask for none. Not done yet: submission runs (``harness score``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness import cache
from harness.pool import POOL, ReferenceStore
from harness.records import ModelStats
from harness.tasks.base import Task, TaskData

if TYPE_CHECKING:
    from distributed import Client

    from harness.scoring import Reporter

ENV_VAR = "HARNESS_CLUSTER"  # a scheduler address, used when no option names a cluster
DEFAULT_RETRIES = 2  # reruns of a chunk that raised: bounded, so a broken chunk ends as an error
DEFAULT_CONNECT_TIMEOUT = 20.0  # seconds to reach the scheduler before giving up

ChunkTrainer = Callable[[Task, TaskData, list[int]], ModelStats]

_WORKER_DATA: dict[str, TaskData] = {}  # per worker process: the data of each task seen


class ClusterError(ValueError):
    """The cluster could not be reached or could not finish the pool (a one-line message; the
    CLI prints it and exits with status 2)."""


def _data_key(task: Task) -> str:
    # config() leaves out where the data lies and which class loads it: both matter here
    kind = f"{type(task).__module__}.{type(task).__qualname__}"
    return cache.config_hash([kind, task.config(), task.data_dir])


def worker_data(task: Task) -> TaskData:
    """The task's data in this (worker) process, loaded on first use and then kept, so that a
    worker reads and fingerprints a dataset once, not once per chunk."""
    key = _data_key(task)
    if key not in _WORKER_DATA:
        _WORKER_DATA[key] = task.load_data()
    return _WORKER_DATA[key]


def run_chunk(
    train_chunk: ChunkTrainer, task: Task, name: str, indices: list[int]
) -> tuple[str, list[int], ModelStats, str]:
    """One chunk on a worker: the same trainer a local build uses, on the worker's data. The
    data's fingerprint comes back with the numbers, so that a worker whose folder holds other
    data (a stale copy, not the shared one) is caught instead of poisoning the cache."""
    data = worker_data(task)
    return name, indices, train_chunk(task, data, indices), data.fingerprint


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
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ClusterError(
            f"cannot reach the Dask scheduler at {where} within {timeout:g} s: {reason}"
        ) from error


def worker_count(client: Client) -> tuple[int, int]:
    """(workers, workers offering a GPU resource) now connected to the scheduler."""
    try:  # newer clients list only a few workers unless asked for all
        info = client.scheduler_info(n_workers=-1)
    except TypeError:
        info = client.scheduler_info()
    workers = info.get("workers", {})
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

    from harness.ensemble import select_chunk_trainer
    from harness.scoring import Reporter

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
                name, indices, stats, worker_fingerprint = future.result()
            except KilledWorker as error:
                raise ClusterError(
                    f"chunk {futures[future]} killed every worker that ran it; giving up"
                ) from error
            except Exception as error:
                reason = " ".join(str(error).split()) or type(error).__name__
                raise ClusterError(
                    f"chunk {futures[future]} failed on the cluster after {retries} retries: "
                    f"{type(error).__name__}: {reason}"
                ) from error
            if worker_fingerprint != store.data.fingerprint:
                raise ClusterError(
                    f"chunk {name} was trained on other data than this machine's (fingerprint "
                    f"{worker_fingerprint}, not {store.data.fingerprint}): every worker needs the "
                    "same data folder at the same path"
                )
            store.write_chunk(name, indices, stats)
            reporter.advance(label, len(indices))
    finally:
        client.cancel(list(futures))  # after an error, nothing keeps training for nobody
    return store.read_pool(which)
