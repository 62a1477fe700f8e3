"""Running submissions: long-lived worker processes, one run at a time each, every failure caught.

The scorer's process never imports submission code. Each worker imports torch and loads the task
once, then serves the runs of one submission only (a worker asked for another submission's run is
replaced by a fresh process first, so no module state or global torch setting of one submission
reaches another): a fresh copy of the original model and fresh loaders per run, seeded from
(root seed, submission, run index), so results do not depend on which worker serves which run or
on which other submissions are scored.
A worker that dies (``sys.exit``, a segfault, the out-of-memory killer) or overruns the hard timeout
is replaced and the remaining runs go on.

On a GPU several workers share the device (``workers_for``: ``--workers-per-device``): one
submission run rarely keeps a GPU busy, so runs overlap. The time budget's yardstick is measured
under that same concurrency (``WorkerPool.time_retrain``: every worker trains at once, the
median is taken), and every timer waits for the device's queued work (``training.synchronize``).

Worker processes are not a security sandbox: a submission runs with the user's permissions and can
read or write files, open sockets or change the environment. What the harness does prevent is a
submission taking the scorer down, altering the original model or the data of later runs, or
hanging the scoring.
"""

from __future__ import annotations

import contextlib
import copy
import io
import multiprocessing as mp
import os
import random
import resource
import shutil
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.batches import ExampleDataset, inputs_targets
from harness.records import CRASHED, ERROR, INVALID, OK, TIMEOUT, RunResult
from harness.submissions import Submission, entry_point, load_module
from harness.tasks.base import Task, TaskData, fingerprint
from harness.training import synchronize

OUTPUT_LIMIT = 4000  # characters of a run's captured output kept
# Worker processes per GPU when neither --jobs nor --workers-per-device says otherwise.
# Provisional: not yet measured on a GPU in this repository (bench/bench_runs_per_device.py
# measures runs per hour at K workers against 1 and is the way to choose it).
DEFAULT_WORKERS_PER_DEVICE = 4
RETRAIN_REPEATS = 3  # trainings per worker in the yardstick; the first pays start-up costs
YARDSTICK_TIMEOUT = 4 * 3600.0  # seconds the yardstick may take before it counts as failed
TRACEBACK_LINES = 8
OUT_OF_MEMORY = "out of memory"
ORPHAN_CHECK_SECONDS = 1.0  # how often a worker checks that the process that started it lives
# Serialises starting workers: each start sets environment variables for the child to inherit,
# and pools in several threads (a Dask worker serving several runs) must not interleave them.
_SPAWN_LOCK = threading.Lock()


def default_memory_limit(jobs: int) -> int:
    """Bytes one worker may allocate beyond its start-up size: the machine's memory shared among
    the workers, with a quarter left for the scorer and the system."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(0.75 * total / max(1, jobs))


def workers_for(
    device: str, jobs: int | None = None, workers_per_device: int | None = None
) -> int:
    """Worker processes for a task on ``device``: ``jobs`` when given; else on a GPU
    ``workers_per_device`` (default ``DEFAULT_WORKERS_PER_DEVICE``), on the CPU every core
    (workers train with one thread each: several per GPU is the GPU's version of that)."""
    if jobs:
        return max(1, jobs)
    if torch.device(device).type == "cuda":
        return max(1, workers_per_device or DEFAULT_WORKERS_PER_DEVICE)
    return os.cpu_count() or 1


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def _limit_address_space(extra_bytes: int) -> None:
    """Cap this process's address space at its current size plus ``extra_bytes``, so that a
    runaway allocation fails inside the worker instead of starving the machine. Only on CPU:
    CUDA reserves far more address space than it uses."""
    current = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    limit = current + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@dataclass(frozen=True)
class RunRequest:
    submission: Submission
    run_index: int
    seed: int
    provenance: str = ""
    # keyword arguments for ``unlearning`` (tuned hyperparameters); empty: the published constants
    settings: dict = field(default_factory=dict, hash=False)

    def result(self, status: str, **fields) -> RunResult:
        """This run's record with ``status`` (and any other ``RunResult`` fields)."""
        sub = self.submission
        return RunResult(sub.name, sub.file_hash, self.provenance, self.run_index, self.seed,
                         status, **fields)


@dataclass
class _RetrainTiming:
    """A request to time one from-scratch training on the retain set (the budget's yardstick)."""

    seed: int


class _BoundedText(io.TextIOBase):
    """A text sink keeping the first ``limit`` characters (a chatty submission cannot fill RAM)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size, self.dropped = limit, [], 0, 0

    def write(self, text: str) -> int:
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        tail = f"\n[... {self.dropped} more characters dropped]" if self.dropped else ""
        return "".join(self.parts) + tail


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    """Run a block in a new empty working directory, removed afterwards: what a run writes to a
    relative path stays its own, and nothing it leaves behind reaches the next run."""
    previous = os.getcwd()
    directory = tempfile.mkdtemp(prefix="harness-run-")
    os.chdir(directory)
    try:
        yield Path(directory)
    finally:
        os.chdir(previous)
        shutil.rmtree(directory, ignore_errors=True)


def visible_devices(device: str) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a worker on ``device``: none for a CPU task (competition code
    picks ``'cuda' if torch.cuda.is_available() else 'cpu'``, which must agree with where ``net``
    is), only GPU K for ``cuda:K``, and what the scorer sees for plain ``cuda``."""
    kind = torch.device(device)
    if kind.type == "cpu":
        return ""
    if kind.type == "cuda" and kind.index is not None:
        return str(kind.index)
    return None


def worker_environment(task: Task) -> dict[str, str | None]:
    """Environment variables a worker starts with (None: inherited as it is): the GPUs it may
    see, and for a deterministic recipe cuBLAS's fixed workspace, which cuBLAS reads only once,
    when it starts (``training.backend_flags`` would be too late in a warmed-up worker)."""
    environment = {"CUDA_VISIBLE_DEVICES": visible_devices(task.device)}
    if task.recipe.deterministic:
        environment["CUBLAS_WORKSPACE_CONFIG"] = os.environ.get(
            "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
        )
    return environment


def worker_device(device: str) -> str:
    """The task's device as a worker sees it: ``cuda:K`` is its only GPU, ``cuda``."""
    kind = torch.device(device)
    return "cuda" if kind.type == "cuda" else device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _architecture(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(t.shape)) for name, t in model.state_dict().items()]


def _tensor_fingerprint(data: TaskData) -> str | None:
    """Fingerprint of in-memory datasets, to detect a submission that altered them."""
    arrays = []
    for dataset in (data.train, data.val, data.test):
        if not isinstance(dataset, ExampleDataset):
            return None
        arrays.extend(t.numpy() for t in dataset.tensor_columns())
    return fingerprint(*arrays)


class _Worker:
    """State inside a worker process: the task, its data and the original model, loaded once."""

    def __init__(self, task: Task, original_path: Path) -> None:
        from harness.toolkit import set_current_task

        torch.set_num_threads(1)
        set_current_task(task)
        self.task = task
        self.data = task.load_data()
        self.data_fingerprint = _tensor_fingerprint(self.data)
        self.original = task.make_model()
        state = torch.load(original_path, map_location="cpu", weights_only=True)
        self.original.load_state_dict(state)
        self.original.eval()
        self.architecture = _architecture(self.original)
        self._warm_up()

    def _warm_up(self) -> None:
        """One training step and one evaluation on a throw-away copy, so that one-off start-up
        costs (lazy initialisation in torch) are not charged to the first timed run."""
        from harness.pool import evaluate_model

        net = copy.deepcopy(self.original).to(self.task.device).train()
        batch = next(iter(self.task.make_loaders(self.data, seed=0)[0]))
        inputs, targets = inputs_targets(batch)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)
        loss = nn.functional.cross_entropy(
            net(inputs.to(self.task.device)), targets.to(self.task.device)
        )
        loss.backward()
        optimizer.step()
        evaluate_model(net.eval(), self.data, self.task.device)

    def time_retrain(self, request: _RetrainTiming) -> float:
        from harness.pool import train_reference_model

        seed_everything(request.seed)
        times = []
        for _ in range(RETRAIN_REPEATS):  # the first training also pays one-off start-up costs
            synchronize(self.task.device)
            start = time.perf_counter()
            # through the DataLoader, as submissions read their data: the yardstick and the runs
            # it judges pay the same per-example cost (the pool gathers batches, faster)
            train_reference_model(self.task, self.data, 0, gather=False)
            synchronize(self.task.device)
            times.append(time.perf_counter() - start)
            if times[0] > 10:  # a large model: one measurement is both enough and costly
                break
        return float(np.median(times[1:] or times))

    def run(self, request: RunRequest) -> RunResult:
        from harness.pool import evaluate_model

        result = request.result(ERROR)
        sink = _BoundedText(OUTPUT_LIMIT)
        try:
            with (
                contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink),
                scratch_directory(),  # module-level code of the import writes there too
            ):
                entry = entry_point(load_module(request.submission))
                seed_everything(request.seed)
                net = copy.deepcopy(self.original).to(self.task.device)
                retain, forget, val = self.task.make_loaders(self.data, request.seed)
                synchronize(self.task.device)  # the copy to the device is not the run's time
                start = time.perf_counter()
                returned = entry(net, retain, forget, val, **request.settings)
                synchronize(self.task.device)
                result.seconds = time.perf_counter() - start
            model = net if returned is None else returned
            problem = self._output_problem(model)
            if problem is None:
                model.eval()  # one public entry returns its model in train mode
                stats = evaluate_model(model, self.data, self.task.device)
                if not stats["all_logits_finite"]:
                    problem = "the returned model produces NaN or infinite outputs"
            if problem is not None:
                result.status, result.message = INVALID, problem
            else:
                result.status = OK
                result.confidences = [float(c) for c in stats["confidences"]]
                for key in ("retain_acc", "test_acc", "forget_acc"):
                    setattr(result, key, float(stats[key]))
        except Exception as error:  # the submission's own failure, reported, never raised
            tail = traceback.format_exception(error)[-TRACEBACK_LINES:]
            result.status = ERROR
            result.message = f"{type(error).__name__}: {error}".strip()[:500]
            if _is_out_of_memory(error):
                result.message = f"{OUT_OF_MEMORY}: the run exceeded the worker's memory limit"
            result.output = "".join(tail)
        result.output = sink.getvalue() + result.output  # bounded: head of output, traceback tail
        self._restore_data_if_altered()
        return result

    def _output_problem(self, model: object) -> str | None:
        if not isinstance(model, nn.Module):
            return f"returned {type(model).__name__}, expected None or a torch.nn.Module"
        if _architecture(model) != self.architecture:
            return "returned a model whose parameters differ in names or shapes from the original"
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                return f"the returned model has NaN or infinite values in {name}"
        return None

    def _restore_data_if_altered(self) -> None:
        if self.data_fingerprint is not None and (
            _tensor_fingerprint(self.data) != self.data_fingerprint
        ):
            self.data = self.task.load_data()


def _exit_when_orphaned(parent: int) -> None:
    """Exit this worker once the process that started it is gone (killed, even with SIGKILL):
    a run in progress, or hung, must not go on for nobody."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _worker_main(
    connection: Connection, task: Task, original_path: Path, memory_limit: int | None
) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    task = task.with_options(device=worker_device(task.device))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # C-level output of a submission never reaches the scorer's terminal
    os.dup2(devnull, 2)
    worker = _Worker(task, original_path)
    if memory_limit and torch.device(task.device).type == "cpu":
        _limit_address_space(memory_limit)
    connection.send("ready")
    while True:
        request = connection.recv()
        if request is None:
            return
        if isinstance(request, _RetrainTiming):
            connection.send(worker.time_retrain(request))
            continue
        result = worker.run(request)
        connection.send(result)
        if result.message.startswith(OUT_OF_MEMORY):
            return  # a fresh worker replaces this one: its heap may be fragmented or damaged


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set environment variables (None: leave as is) for a block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: value for key, value in values.items() if value is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _owner(request: RunRequest | _RetrainTiming) -> str | None:
    return request.submission.name if isinstance(request, RunRequest) else None


@dataclass
class _Slot:
    index: int
    process: mp.process.BaseProcess
    connection: Connection
    request: RunRequest | _RetrainTiming | None = None
    started: float = 0.0
    ready: bool = False
    serves: str | None = None  # the one submission whose code this worker has run


@dataclass
class WorkerPool:
    """``jobs`` worker processes serving run requests; replaced when they die or hang."""

    task: Task
    original_path: Path
    jobs: int = 1
    timeout: float = 600.0
    memory_limit: int | None = None  # bytes per worker; None: ``default_memory_limit(jobs)``
    _slots: list[_Slot] = field(default_factory=list)

    def __enter__(self) -> WorkerPool:
        self._context = mp.get_context("spawn")
        self._slots = [self._spawn(i) for i in range(max(1, self.jobs))]
        return self

    def __exit__(self, *exc) -> None:
        for slot in self._slots:
            with contextlib.suppress(Exception):
                slot.connection.send(None)
        for slot in self._slots:
            slot.process.join(timeout=2)
            if slot.process.is_alive():
                slot.process.kill()

    def _spawn(self, index: int) -> _Slot:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self.task, self.original_path, self._memory_limit()),
            daemon=True,
        )
        with _SPAWN_LOCK, _environment(**worker_environment(self.task)):
            process.start()  # a spawned process takes the environment it starts with
        child.close()
        return _Slot(index, process, parent)

    def _memory_limit(self) -> int:
        return self.memory_limit or default_memory_limit(self.jobs)

    def _replace(self, slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join()
        self._slots[slot.index] = self._spawn(slot.index)

    @property
    def timing_method(self) -> str:
        """How ``time_retrain`` measures, for a recorded timing's validity: a timing measured
        with another number of workers (another concurrency) is not this one."""
        return (
            f"one retain-set training through the submissions' DataLoader in each of "
            f"{len(self._slots) or max(1, self.jobs)} workers at once, device synchronised; "
            f"median over workers of each one's median of {RETRAIN_REPEATS}"
        )

    def time_retrain(self, seed: int = 0) -> float:
        """Seconds to train one model from scratch on the retain set, measured under the
        concurrency the runs it judges have: every worker trains at the same time (so on a
        shared GPU or a busy CPU the yardstick slows as the runs do), and the median over the
        workers is the answer (one worker delayed by the rest does not decide)."""
        self._wait_until_ready()
        for slot in self._slots:  # one request to each worker, all at once
            slot.request, slot.started = _RetrainTiming(seed), time.monotonic()
            slot.connection.send(slot.request)
        seconds: list[float] = []
        self._serve(deque(), seconds.append, None)
        finite = [s for s in seconds if np.isfinite(s)]
        if not finite:
            raise RuntimeError("timing the reference training failed in the workers")
        return float(np.median(finite))

    def _wait_until_ready(self) -> None:
        """Block until every worker has started (or raise as ``_collect`` does when one dies)."""
        while not all(slot.ready for slot in self._slots):
            starting = [s for s in self._slots if not s.ready]
            wait([s.connection for s in starting] + [s.process.sentinel for s in starting],
                 timeout=1.0)
            for slot in starting:
                self._collect(slot, lambda _: None)

    def run(
        self,
        requests: Iterable[RunRequest],
        on_result: Callable[[RunResult], None],
        skip: Callable[[RunRequest], bool] | None = None,
    ) -> None:
        """Serve ``requests``; ``skip`` drops a request still queued (e.g. over budget)."""
        self._serve(deque(requests), on_result, skip)

    def _serve(self, pending: deque, on_result: Callable, skip: Callable | None) -> None:
        while True:
            for slot in list(self._slots):
                if slot.request is None and slot.ready:
                    if not slot.process.is_alive():  # died while idle: start a fresh one
                        self._replace(slot)
                        continue
                    while pending and skip is not None and skip(pending[0]):
                        pending.popleft()
                    if pending:
                        owner = _owner(pending[0])
                        if owner is not None and slot.serves not in (None, owner):
                            # one worker, one submission: what a submission leaves behind (module
                            # state, global torch settings) never reaches another one's runs
                            self._replace(slot)
                            continue
                        slot.serves = owner or slot.serves
                        slot.request, slot.started = pending.popleft(), time.monotonic()
                        with contextlib.suppress(OSError):  # a dead worker is collected below
                            slot.connection.send(slot.request)
            busy = [s for s in self._slots if s.request is not None or not s.ready]
            if not pending and all(s.request is None for s in self._slots):
                return
            now = time.monotonic()
            deadlines = [
                s.started + self._limit(s.request) - now for s in busy if s.request is not None
            ]
            wait_for = max(0.0, min(deadlines)) if deadlines else 1.0
            waitables = [s.connection for s in busy] + [s.process.sentinel for s in busy]
            wait(waitables, timeout=wait_for)
            for slot in list(busy):
                self._collect(slot, on_result)

    def _collect(self, slot: _Slot, on_result: Callable) -> None:
        message = None
        if slot.connection.poll():
            try:
                message = slot.connection.recv()
            except (EOFError, OSError):
                message = None
        if message is not None:
            if not slot.ready:
                slot.ready = message == "ready"
                return
            slot.request = None
            if isinstance(message, RunResult):
                message.worker = slot.index
            on_result(message)
            if isinstance(message, RunResult) and message.message.startswith(OUT_OF_MEMORY):
                self._replace(slot)  # the worker retires after running out of memory
            return
        if not slot.process.is_alive():
            request = slot.request
            self._replace(slot)
            if not slot.ready:
                raise RuntimeError(
                    f"a worker process died while starting (exit code {slot.process.exitcode}); "
                    "its error is printed above. Workers are started with 'spawn': a script "
                    "that calls the harness must guard its code with "
                    "`if __name__ == \"__main__\":`"
                )
            if request is not None:  # else it died while idle: nothing was lost
                on_result(self._failure(request, CRASHED, slot))
        elif (
            slot.request is not None
            and time.monotonic() - slot.started > self._limit(slot.request)
        ):
            request = slot.request
            self._replace(slot)
            on_result(self._failure(request, TIMEOUT, slot))

    def _limit(self, request: RunRequest | _RetrainTiming) -> float:
        """Seconds a request may take: a run, the hard timeout; the yardstick, the harness's own
        training with every worker at once, ``YARDSTICK_TIMEOUT`` (K trainings sharing a GPU can
        take K times one, well past a run's limit)."""
        if isinstance(request, _RetrainTiming):
            return max(self.timeout, YARDSTICK_TIMEOUT)
        return self.timeout

    def _failure(self, request, status: str, slot: _Slot):
        if isinstance(request, _RetrainTiming):
            return float("nan")
        if status == CRASHED:
            code = slot.process.exitcode
            message = f"the worker process died (exit code {code})"
        else:
            message = f"the run did not finish within the hard timeout of {self.timeout:.0f} s"
        return request.result(
            status, message=message, seconds=time.monotonic() - slot.started, worker=slot.index
        )
