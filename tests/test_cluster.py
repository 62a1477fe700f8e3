"""The reference pool on a real dask.distributed LocalCluster (worker processes): the same numbers
as a local build, resuming each other, a killed worker's chunk rerun and written once, and clear
errors for a bad address or a chunk that always fails."""

from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402  (installed with distributed)

from harness.cli import main  # noqa: E402
from harness.core.progress import Reporter  # noqa: E402
from harness.evaluation.model_stats import ModelStats  # noqa: E402
from harness.execution import cluster  # noqa: E402
from harness.execution.cluster import ClusterError, build_reference_on_cluster  # noqa: E402
from harness.outputs.leaderboard import POOL_ROW  # noqa: E402
from harness.pipeline.scoring import build_reference  # noqa: E402
from harness.reference import pool  # noqa: E402
from harness.reference.ensemble import select_chunk_trainer  # noqa: E402
from harness.reference.pool import ReferenceStore  # noqa: E402
from harness.tasks import get_task  # noqa: E402
from harness.tasks.base import Task, TaskData  # noqa: E402
from harness.tasks.digits import DigitsTask  # noqa: E402

CHUNK = 2  # 8 models in 4 chunks: enough chunks for two workers and a fault
# the workers unpickle this module's trainers by value: they cannot import the test files
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def small_chunks():
    """Chunks of ``CHUNK`` models for every store of this module (the client decides the chunks,
    so the workers need no patch)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool, "CHUNK_SIZE", CHUNK)
        yield


@pytest.fixture(scope="module")
def task() -> Task:
    base = get_task("digits", num_models=8)
    return base.with_options(recipe=replace(base.recipe, epochs=2))


@pytest.fixture(scope="module")
def data(task: Task) -> TaskData:
    return task.load_data()


@pytest.fixture(scope="module")
def client():
    """One cluster for the module: two single-threaded worker processes. A worker that dies is
    restarted by its nanny; a chunk may kill one worker and run again, not more."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        ) as local_cluster, distributed.Client(local_cluster) as dask_client:
            yield dask_client


@pytest.fixture(scope="module")
def local_build(task: Task, data: TaskData, tmp_path_factory) -> tuple[Path, ModelStats]:
    """The pool built on this machine, the numbers a cluster build must reproduce."""
    root = tmp_path_factory.mktemp("local")
    store = ReferenceStore(task, data, root)
    return store.directory, build_reference(store)


class WriteLog:
    """Counts every chunk written through the store's one write path."""

    def __init__(self, store: ReferenceStore) -> None:
        self.names: list[str] = []
        original = store.write_chunk

        def write(name: str, indices: list[int], stats: ModelStats) -> None:
            self.names.append(name)
            original(name, indices, stats)

        store.write_chunk = write  # type: ignore[method-assign]


class KillOnce:
    """The task's trainer, except that the worker running the chunk that starts at ``first``
    exits abruptly the first time (a marker file says it happened): a worker killed mid-task."""

    def __init__(self, trainer, first: int, marker: Path) -> None:
        self.trainer, self.first, self.marker = trainer, first, marker

    def __call__(self, task: Task, data: TaskData, indices: list[int]) -> ModelStats:
        import os

        if indices[0] == self.first and not self.marker.exists():
            self.marker.write_text("killed")
            os._exit(1)
        return self.trainer(task, data, indices)


def always_kills(task: Task, data: TaskData, indices: list[int]) -> ModelStats:
    import os

    os._exit(1)


def always_fails(task: Task, data: TaskData, indices: list[int]) -> ModelStats:
    raise RuntimeError("this chunk is broken")


class Recorder(Reporter):
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.advanced = 0
        self.activities: dict[str, str] = {}  # the last line shown for each worker

    def activity(self, worker: str, text: str) -> None:
        self.activities[worker] = text

    def message(self, text: str) -> None:
        self.messages.append(text)

    def advance(self, name: str, amount: int = 1) -> None:
        self.advanced += amount


def assert_same_pool(ours: ModelStats, theirs: ModelStats) -> None:
    """Bit-identical statistics (the training seconds aside)."""
    a, b = ours.to_arrays(), theirs.to_arrays()
    for key in a:
        if key != "seconds":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_cluster_pool_equals_local_and_resumes_it(client, task, data, local_build, tmp_path):
    """A cluster build gives the local numbers; it trains only what a local build left missing,
    and a local build after it finds everything cached."""
    local_dir, local_stats = local_build
    store = ReferenceStore(task, data, tmp_path)
    shutil.copytree(local_dir, store.directory)
    for name, _ in store.chunks()[1:3]:  # two chunks lost: the rest comes from the local build
        (store.directory / name).unlink()
    log, reporter = WriteLog(store), Recorder()
    stats = build_reference_on_cluster(store, client, reporter)
    assert sorted(log.names) == [name for name, _ in store.chunks()[1:3]]
    assert reporter.advanced == 2 * CHUNK
    assert any("2 Dask workers" in text for text in reporter.messages)
    assert_same_pool(stats, local_stats)

    def must_not_train(*args):
        raise AssertionError("a local build retrained a chunk the cluster had written")

    assert_same_pool(build_reference(ReferenceStore(task, data, tmp_path), None, must_not_train),
                     local_stats)
    again = WriteLog(store)
    assert_same_pool(build_reference_on_cluster(store, client), local_stats)
    assert again.names == []  # nothing missing: nothing submitted, nothing written


@pytest.mark.slow
def test_killed_worker_chunk_reruns_and_is_written_once(client, task, data, local_build, tmp_path):
    """A worker process dies mid-chunk; Dask reruns the chunk; every chunk is written once and
    the pool equals the local one."""
    _, local_stats = local_build
    store = ReferenceStore(task, data, tmp_path / "cache")
    marker = tmp_path / "killed"
    log = WriteLog(store)
    trainer = KillOnce(select_chunk_trainer(task, data), first=2 * CHUNK, marker=marker)
    stats = build_reference_on_cluster(store, client, train_chunk=trainer)
    assert marker.exists()  # a worker really died
    assert sorted(log.names) == sorted(name for name, _ in store.chunks())
    assert len(store.read_pool()) == task.num_models
    assert store.status()["models_done"] == task.num_models
    assert_same_pool(stats, local_stats)


@pytest.mark.slow
def test_failing_chunk_is_a_clear_error(client, task, data, tmp_path):
    store = ReferenceStore(task, data, tmp_path)
    with pytest.raises(ClusterError, match="failed on the cluster after 1 retries.*broken"):
        build_reference_on_cluster(store, client, train_chunk=always_fails, retries=1)
    assert store.status()["chunks_done"] == 0


def test_bad_address_fails_quickly_with_one_line(tmp_path, capsys):
    start = time.perf_counter()
    code = main(["pool", "-n", "4", "--cluster", "tcp://127.0.0.1:1", "--connect-timeout", "0.5",
                 "--reference-root", str(tmp_path)])
    assert code == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing trained


def test_missing_scheduler_file_is_an_error(tmp_path):
    with pytest.raises(ClusterError, match="no scheduler file"):
        cluster.connect(scheduler_file=str(tmp_path / "scheduler.json"), timeout=0.5)


def test_cluster_target_options_then_environment():
    assert cluster.cluster_target(None, None, {}) == (None, None)
    assert cluster.cluster_target(None, None, {cluster.ENV_VAR: "tcp://h:8786"}) == (
        "tcp://h:8786", None)
    assert cluster.cluster_target("tcp://a:1", None, {cluster.ENV_VAR: "tcp://h:8786"}) == (
        "tcp://a:1", None)
    assert cluster.cluster_target(None, "s.json", {cluster.ENV_VAR: "x"}) == (None, "s.json")
    with pytest.raises(ClusterError, match="not both"):
        cluster.cluster_target("tcp://a:1", "s.json", {})


def test_gpu_chunks_ask_for_a_gpu(task):
    assert cluster.resources_for(task) is None
    assert cluster.resources_for(task.with_options(device="cuda:0")) == {"GPU": 1}


def test_worker_loads_data_once(task, monkeypatch):
    monkeypatch.setattr(cluster, "_WORKER_DATA", {})
    calls = []
    monkeypatch.setattr(type(task), "load_data", lambda self: calls.append(1) or "data")
    assert cluster.worker_data(task) == "data"
    assert cluster.worker_data(task) == "data"
    assert calls == [1]


@pytest.mark.slow
def test_chunk_that_kills_every_worker_is_a_clear_error(client, task, data, tmp_path):
    """Not an endless loop: after the scheduler's allowed failures the build stops, and the
    cluster's workers come back for whatever runs next."""
    store = ReferenceStore(task, data, tmp_path)
    with pytest.raises(ClusterError, match="killed every worker"):
        build_reference_on_cluster(store, client, train_chunk=always_kills)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_cli_pool_on_the_cluster_named_by_the_environment(
    client, task, local_build, tmp_path, monkeypatch, capsys
):
    """``harness pool`` with ``$HARNESS_CLUSTER`` set builds on that cluster, into the cache a
    local build reads."""
    import harness.cli

    _, local_stats = local_build
    monkeypatch.setattr(harness.cli, "_task_from_args", lambda args: task)
    monkeypatch.setenv(cluster.ENV_VAR, client.scheduler.address)
    assert main(["pool", "--ceiling", "--reference-root", str(tmp_path)]) == 0
    assert "models_done: 8" in capsys.readouterr().out
    store = ReferenceStore(task, task.load_data(), tmp_path)
    assert store.missing_chunks() == []
    assert store.missing_chunks(pool.CEILING) == []
    assert_same_pool(store.read_pool(), local_stats)


@dataclass(frozen=True)
class StaleDigits(DigitsTask):
    """Digits whose workers see other data than the client (a stale copy of a data folder)."""

    def load_data(self) -> TaskData:
        return replace(super().load_data(), fingerprint="stale")


@pytest.mark.slow
def test_workers_with_other_data_are_an_error(client, task, data, tmp_path):
    stale = StaleDigits(**{f.name: getattr(task, f.name) for f in fields(task)})
    store = ReferenceStore(stale, data, tmp_path)  # the client has the real data
    with pytest.raises(ClusterError, match="other data than this machine's"):
        build_reference_on_cluster(store, client)
    assert store.status()["chunks_done"] == 0


@pytest.mark.slow
def test_scheduler_file(client, tmp_path):
    path = tmp_path / "scheduler.json"
    # what `dask scheduler --scheduler-file` writes, as far as a client reads it
    path.write_text(json.dumps({"address": client.scheduler.address}))
    with cluster.connect(scheduler_file=str(path), timeout=10) as other:
        assert cluster.worker_count(other) == (2, 0)


# --- submission runs (harness score --cluster) ---

COMPETITION_STYLE = Path(__file__).resolve().parent / "competition_style"

# Finds the Dask worker serving it: its run's process is a child of the ingestion process,
# a child of the evaluation process, a child of the Dask worker. Unsandboxed only: in the sandbox
# no process outside it can be seen or signalled.
FIND_THE_DASK_WORKER = '''
import os
import signal


def _dask_worker():  # the run's parent, the ingestion process; the evaluation
    pid = os.getppid()  # worker; the fork server it was forked from; the Dask worker
    for _ in range(3):
        with open("/proc/%d/stat" % pid) as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
    return pid
'''

# Kills the Dask worker that serves it the first time it ever runs, then behaves as the starting
# kit's fine-tuning: a worker killed in the middle of scoring.
KILLS_ITS_WORKER_ONCE = (COMPETITION_STYLE / "starting_kit_tuples.py").read_text() + '''
from pathlib import Path
''' + FIND_THE_DASK_WORKER + '''
MARKER = Path({marker!r})


def unlearning(net, retain, forget, val):
    try:  # the first run anywhere creates the marker (atomically: runs start in parallel)
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return _finetune(net, retain, forget, val)
    os.kill(_dask_worker(), signal.SIGKILL)
'''

KILLS_ITS_WORKER_ALWAYS = FIND_THE_DASK_WORKER + '''

def unlearning(net, retain, forget, val):
    os.kill(_dask_worker(), signal.SIGKILL)
'''


def competition_submissions(folder: Path, marker: Path) -> Path:
    """The starting kit's fine-tuning, the same code in a submission that kills its Dask
    worker once, and one that raises (an error row, on a cluster too)."""
    folder.mkdir()
    shutil.copy(COMPETITION_STYLE / "starting_kit_tuples.py", folder)
    (folder / "kills_once.py").write_text(KILLS_ITS_WORKER_ONCE.format(marker=str(marker)))
    (folder / "raises.py").write_text(
        "def unlearning(net, retain, forget, val):\n    raise RuntimeError('deliberate')\n"
    )
    return folder


def scores(board) -> dict[str, float]:
    return dict(zip(board["submission"], board["final_score"], strict=True))


def record_lines(results: Path, name: str) -> list[dict]:
    [path] = results.glob(f"*/runs/{name}.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_cluster_scores_equal_local_with_a_worker_killed_midway(
    client, task, tmp_path, monkeypatch
):
    """``score`` on the cluster: a submission kills the Dask worker running it halfway; its batch
    runs again elsewhere, every run is recorded once, and every score (the ceiling's too) equals
    a local scoring's at the same seeds. A local scoring afterwards finds every run recorded."""
    from harness.execution.runner import WorkerPool
    from harness.pipeline.scoring import score

    marker = tmp_path / "killed"
    submissions = competition_submissions(tmp_path / "submissions", marker)
    options = dict(leaderboard_path=None, jobs=2, budget_seconds=float("inf"), timeout=600,
                   sandbox="off")
    reporter = Recorder()
    remote = score(task, submissions, reference_root=tmp_path / "ref-cluster",
                   output_dir=tmp_path / "res-cluster", cluster=client, reporter=reporter,
                   **options)
    assert marker.exists()  # a worker really died
    # the progress names each worker and what it did
    assert len(reporter.activities) >= 2
    assert all(address.startswith("tcp://") for address in reporter.activities)
    assert any("runs done" in text for text in reporter.activities.values())
    lines = record_lines(tmp_path / "res-cluster", "kills_once")
    assert sorted(line["run_index"] for line in lines) == list(range(task.num_models))
    assert {line["status"] for line in lines} == {"ok"}
    statuses = dict(zip(remote["submission"], remote["status"], strict=True))
    assert statuses["raises"] == "error"

    local = score(task, submissions, reference_root=tmp_path / "ref-local",
                  output_dir=tmp_path / "res-local", **options)
    assert scores(remote) == pytest.approx(scores(local), abs=0, nan_ok=True)
    assert scores(remote)["kills_once"] > 0  # seeds differ by name: not the kit's own score

    asked = []
    original_run = WorkerPool.run
    monkeypatch.setattr(WorkerPool, "run", lambda self, requests, *a: asked.extend(requests)
                        or original_run(self, [], *a))
    again = score(task, submissions, reference_root=tmp_path / "ref-cluster",
                  output_dir=tmp_path / "res-cluster", names=["kills_once"], **options)
    assert asked == []  # the cluster's records serve a local scoring
    assert scores(again)["kills_once"] == scores(remote)["kills_once"]


class StopAfter(Reporter):
    """Interrupts the client (as Ctrl-C would) once ``runs`` runs have been recorded."""

    def __init__(self, runs: int) -> None:
        self.left = runs

    def advance(self, name: str, amount: int = 1) -> None:
        if name == "starting_kit_tuples":
            self.left -= amount
            if self.left <= 0:
                raise KeyboardInterrupt


@pytest.mark.slow
def test_an_interrupted_client_resumes_from_what_was_written(client, task, tmp_path):
    """The client stops midway; another client of the same cluster scores again, runs only
    what is missing, and every run is recorded once."""
    from harness.pipeline.scoring import score

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(COMPETITION_STYLE / "starting_kit_tuples.py", submissions)
    options = dict(reference_root=tmp_path / "ref", output_dir=tmp_path / "res",
                   leaderboard_path=None, ceiling=False, budget_seconds=float("inf"),
                   timeout=600)
    with pytest.raises(KeyboardInterrupt):
        score(task, submissions, cluster=client, reporter=StopAfter(3), **options)
    written = record_lines(tmp_path / "res", "starting_kit_tuples")
    assert 3 <= len(written) < task.num_models
    with distributed.Client(client.scheduler.address) as other:
        board = score(task, submissions, cluster=other, **options)
    lines = record_lines(tmp_path / "res", "starting_kit_tuples")
    assert lines[: len(written)] == written
    assert sorted(line["run_index"] for line in lines) == list(range(task.num_models))
    # the submission's row, and the reference pool's own row the audits add
    assert board.set_index("submission")["status"].to_dict() == {
        "starting_kit_tuples": "ok", POOL_ROW: "reference"}


@pytest.fixture()
def own_client():
    """A cluster of its own for a test that kills workers again and again, with no retry on
    the scheduler (each worker death costs seconds of restart): the module's cluster is not
    left waiting for its workers to come back."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        ) as local_cluster, distributed.Client(local_cluster) as dask_client:
            yield dask_client


@pytest.mark.slow
def test_submission_that_always_kills_its_worker_is_a_crashed_row(own_client, task, tmp_path):
    """Not an endless loop: after the scheduler's allowed failures its runs are ``crashed``
    rows, and the submission that shared the workers with it is scored (at N = 2: statuses and
    records, which N = 2 shows; its score would be 0 whatever the code did)."""
    from harness.pipeline.scoring import score

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "kills_always.py").write_text(KILLS_ITS_WORKER_ALWAYS)
    shutil.copy(COMPETITION_STYLE / "starting_kit_tuples.py", submissions)
    board = score(task.with_options(num_models=2), submissions, reference_root=tmp_path / "ref",
                  output_dir=tmp_path / "res", leaderboard_path=None, ceiling=False,
                  budget_seconds=float("inf"), timeout=600, cluster=own_client, sandbox="off")
    rows = board.set_index("submission")
    assert rows.loc["kills_always", "status"] == "crashed"
    assert "Dask worker" in rows.loc["kills_always", "message"]
    assert rows.loc["starting_kit_tuples", "status"] == "ok"
    lines = record_lines(tmp_path / "res", "kills_always")
    assert sorted(line["run_index"] for line in lines) == [0, 1]
    assert {line["status"] for line in lines} == {"crashed"}
    assert all("Dask worker" in line["message"] for line in lines)


@contextmanager
def kit_on_workers(client, variant: type, task: Task, data: TaskData, tmp_path: Path):
    """``ClusterWorkers`` serving ``variant`` (a digits task class of this file, built from
    ``task``'s fields), and the starting kit's submission to run on them. Unsandboxed: the
    variant's class lives in this test file, which reads files at import."""
    from harness.execution.cluster import ClusterWorkers
    from harness.methods.loading import discover

    served = variant(**{f.name: getattr(task, f.name) for f in fields(task)})
    store = ReferenceStore(task, data, tmp_path)
    store.original_model()
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(COMPETITION_STYLE / "starting_kit_tuples.py", folder)
    [submission], _ = discover(folder)
    with ClusterWorkers(client, served, data, store.directory / pool.ORIGINAL_FILE,
                        sandbox="off") as workers:
        yield workers, submission


@pytest.mark.slow
def test_runs_on_workers_with_other_data_are_an_error(client, task, data, tmp_path):
    from harness.execution.runner import RunRequest

    with kit_on_workers(client, StaleDigits, task, data, tmp_path) as (workers, submission):
        with pytest.raises(ClusterError, match="other data than this machine"):
            workers.run([RunRequest(submission, 0, 0)], lambda result: None)


@dataclass(frozen=True)
class LoadersBreak(DigitsTask):
    """Digits whose loaders fail for a run (seed 0, the warm-up's, works): a bug of the
    harness's (or the task's) code, not of any submission."""

    def make_loaders(self, data, seed, num_workers=0):
        if seed != 0:
            raise RuntimeError("the task's loaders broke")
        return super().make_loaders(data, seed, num_workers)


@pytest.mark.slow
def test_a_harness_failure_on_a_worker_stops_with_its_traceback_not_a_row(
    client, task, data, tmp_path
):
    """The harness's own failure on a Dask worker is what it is locally: a ``HarnessError``
    with the worker's traceback, raised once (not retried), never a ``crashed`` or ``error``
    row blamed on the submission."""
    from harness.execution.runner import HarnessError, RunRequest

    rows = []
    with kit_on_workers(client, LoadersBreak, task, data, tmp_path) as (workers, submission):
        with pytest.raises(HarnessError, match="not the submission's fault") as raised:
            workers.run([RunRequest(submission, 0, 7)], rows.append)
    assert "the task's loaders broke" in str(raised.value)
    assert "Traceback" in str(raised.value) and "Dask worker" in str(raised.value)
    assert rows == []


def test_batches_hold_about_five_seconds_of_runs():
    assert cluster.batch_size([]) == 1  # nothing known yet: one run
    assert cluster.batch_size([float("nan")]) == 1
    assert cluster.batch_size([2.0, 2.5, 100.0]) == 2
    assert cluster.batch_size([30.0]) == 1
    assert cluster.batch_size([0.001]) == cluster.MAX_BATCH


@pytest.mark.slow
def test_cli_score_and_check_on_the_cluster(client, tmp_path, capsys):
    """``harness score --cluster`` writes a leaderboard; ``harness check --cluster`` against it
    passes, finding every run recorded."""
    examples = Path(__file__).resolve().parent.parent / "submissions"
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for name in ("do_nothing", "finetune"):
        shutil.copy(examples / f"{name}.py", submissions)
    board = tmp_path / "leaderboard.csv"
    common = ["--submissions", str(submissions), "--reference-root", str(tmp_path / "ref"),
              "--output", str(tmp_path / "res"), "--budget", "inf",
              "--cluster", client.scheduler.address]
    assert main(["score", "-n", "4", "--split", "public", "--no-ceiling",
                 "--leaderboard", str(board), *common]) == 0
    assert "finetune" in board.read_text()
    assert main(["check", "--baseline", str(board), "--no-progress", *common]) == 0
    assert "regression" not in capsys.readouterr().err
    # the run slots of the earlier tests' tasks were closed when this task's were made
    assert all(len(keys) <= 1 for keys in client.run(idle_slot_keys).values())


def idle_slot_keys() -> list[str]:
    return list(cluster._RUNNERS)
