"""Running submissions: evaluation processes that never run submission code, each with an
ingestion process that does, one run at a time, every failure caught.

A submission hands back weights and the harness measures everything else out of its reach, as on
Kaggle, where entries handed in checkpoints and the organisers evaluated them elsewhere:

- the scorer's process never imports submission code;
- each worker is an *evaluation process* (the task's data, the original model, the yardstick's
  training) that starts an *ingestion process* (``harness.execution.ingestion``), in the OS sandbox
  where there is one (``harness.execution.sandbox``), and gives it the original model and the
  retain, forget and validation data only. Every run happens in a child forked from it, is timed
  from outside it, and hands back the model's state dict; the evaluation process loads it into a
  fresh model of the task's architecture and computes the forget, retain and test outputs;
- every process a run started is ended when it hands back its weights, and nothing of a run
  (module state, global torch settings, files, threads) reaches the next: one ingestion process
  serves every submission.

Runs are seeded from (root seed, submission, run index), so results do not depend on which worker
serves which run or on which other submissions are scored. A run that dies (``sys.exit``, a
segfault, the out-of-memory killer) or overruns the hard timeout becomes that run's status and
the remaining runs go on.

On a GPU several workers share the device (``workers_for``: ``--workers-per-device``): one
submission run rarely keeps a GPU busy, so runs overlap. The time budget's yardstick is measured
under that same concurrency (``WorkerPool.time_retrain``: every worker trains at once, the
median is taken), and every timer waits for the device's queued work (``training.synchronize``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import multiprocessing as mp
import os
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.core.defaults import WORKERS_PER_DEVICE
from harness.execution import sandbox
from harness.execution.ingestion import protect_process, seed_everything, warm_up
from harness.execution.records import CRASHED, ERROR, INVALID, OK, TIMEOUT, RunResult
from harness.methods.loading import Submission, module_name
from harness.tasks.base import Task, TaskData, state_dict_mismatch
from harness.training.loop import synchronize

RETRAIN_REPEATS = 3  # trainings per worker in the yardstick; the first pays start-up costs
YARDSTICK_TIMEOUT = 4 * 3600.0  # seconds the yardstick may take before it counts as failed
# seconds the evaluation process may take beyond the hard timeout (which the ingestion process
# enforces) before it counts as hung itself
TIMEOUT_GRACE = 60.0
ORPHAN_CHECK_SECONDS = 1.0  # how often a worker checks that its scorer lives, without a pidfd
# Workers are forked by multiprocessing's fork server, a process started once per scorer
# (the first time a pool starts) that imports these modules once: every later worker, of this
# pool or of the next one in the same process (the second split, a notebook's next
# ``evaluate``, a test suite's next scoring), starts without importing torch again. The server
# is a fresh single-threaded process, so forking it is as safe as spawning.
FORKSERVER_PRELOAD = ["harness.execution.runner"]


def default_memory_limit(jobs: int) -> int:
    """Bytes one run may allocate beyond its process's start-up size: the machine's memory
    shared among the workers, with a quarter left for the scorer and the system."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(0.75 * total / max(1, jobs))


def workers_for(
    device: str, jobs: int | None = None, workers_per_device: int | None = None
) -> int:
    """Worker processes for a task on ``device``: ``jobs`` when given; else on a GPU
    ``workers_per_device`` (default ``WORKERS_PER_DEVICE``), on the CPU every core
    (workers train with one thread each: several per GPU is the GPU's version of that)."""
    if jobs:
        return max(1, jobs)
    if torch.device(device).type == "cuda":
        return max(1, workers_per_device or WORKERS_PER_DEVICE)
    return os.cpu_count() or 1


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


class HarnessError(RuntimeError):
    """The harness's own code failed while serving a run (preparing its model and loaders,
    evaluating its weights, timing the yardstick): a bug to fix in the harness or the task, not a
    submission's failure, so it stops the scoring with the harness's traceback instead of
    becoming an ``error`` row."""


@dataclass
class _HarnessFailure:
    """What a worker sends back instead of a result when the harness's code failed in it."""

    traceback: str


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


def _fold_reparametrisations(state: dict) -> dict:
    """Plain weights from torch's pruning reparametrisation (``X_orig`` and ``X_mask``, which
    competitors used): ``X = X_orig * X_mask``, the tensor the pruned module computes with."""
    folded = dict(state)
    for key in [k for k in state if k.endswith("_orig")]:
        base = key.removesuffix("_orig")
        mask = f"{base}_mask"
        if base not in state and mask in state:
            folded[base] = state[key] * folded.pop(mask)
            del folded[key]
    return folded


def weights_problem(model: nn.Module, state: object) -> str | None:
    """Why handed-back weights cannot be scored as ``model``'s architecture (naming the key),
    or None."""
    problem = state_dict_mismatch(model, state)
    if problem is not None:
        return f"the returned model's state dict does not fit the task's model: {problem}"
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"the returned model has NaN or infinite values in {name}"
    return None


class _Ingestion:
    """The evaluation process's end of its ingestion process (``harness.execution.ingestion``):
    started
    in the sandbox when there is one, given the entry's data (``hand_over``, which may come
    later: the process imports torch meanwhile), asked for runs."""

    def __init__(self, task: Task, memory_limit: int | None, sandboxed: bool) -> None:
        self.task, self.memory_limit, self.sandboxed = task, memory_limit, sandboxed
        parent, child = socket.socketpair()
        lifeline_r, self._lifeline = os.pipe()
        environment = _ingestion_environment()
        source = sandbox.module_source(type(task).__module__)  # a task defined in a user's file
        if source is not None:
            environment["PYTHONPATH"] = os.pathsep.join(
                [str(source[0]), *filter(None, [environment.get("PYTHONPATH")])])
        device = torch.device(task.device).type
        prefix = sandbox.command(device, source[1] if source else []) if sandboxed else []
        command = [*prefix, sys.executable, "-c", "import sys, harness.execution.ingestion as i; "
                   "i.main(sys.argv[1:])", str(child.fileno()), str(lifeline_r)]
        self.process = subprocess.Popen(
            command, pass_fds=(child.fileno(), lifeline_r), env=environment,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            cwd=sandbox.SCRATCH if sandboxed else None,
        )
        child.close()
        os.close(lifeline_r)
        self.connection = Connection(parent.detach())

    def hand_over(self, data: TaskData, original: nn.Module) -> _Ingestion:
        """Give the process the entry's data and the original model; return once it is ready."""
        sandboxed = self.sandboxed
        entry_data = dataclasses.replace(data, test=None)  # never the test split
        self.connection.send_bytes(pickle.dumps({  # plain pickle: tensors in-band, no shared memory
            "task": self.task, "data": entry_data, "original": original.state_dict(),
            "memory_limit": self.memory_limit, "sandboxed": sandboxed,
            "scratch": sandbox.SCRATCH if sandboxed else None,
            "scratch_bytes": sandbox.SCRATCH_BYTES,
        }))
        try:
            ready = self.connection.recv_bytes()
        except (EOFError, OSError):
            ready = b""
        if ready != b"ready":
            self.close()
            error = self.process.stderr.read().decode(errors="replace").strip()
            raise RuntimeError(
                "the ingestion process (which runs submissions"
                f"{' in the sandbox' if sandboxed else ''}) failed to start: "
                + (error[-2000:] if error else f"exit code {self.process.poll()}")
            )
        self.process.stderr.close()
        return self

    def run(self, run: dict, timeout: float) -> tuple[dict, bytes]:
        """(report, weights) of one run; raises EOFError if the process died."""
        self.connection.send_bytes(pickle.dumps({"run": run, "timeout": timeout}))
        report = json.loads(self.connection.recv_bytes())
        return report, self.connection.recv_bytes()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._lifeline)  # the ingestion process ends itself and its runs
        with contextlib.suppress(OSError):
            self.connection.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _ingestion_environment() -> dict[str, str]:
    """The environment a run starts with: what Python and torch need, not the user's variables
    (tokens, paths to data)."""
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "CUDA_VISIBLE_DEVICES",
            "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TZ")
    return {key: os.environ[key] for key in keep if key in os.environ}


def _submission_files(submission: Submission) -> dict[str, bytes]:
    """The submission's file and the files beside it that it imports (found statically), by
    name: what its run may import besides installed packages and the harness."""
    from harness.core.sources import code_files

    folder = submission.path.parent
    files = code_files([submission.path], [folder])
    return {p.name: p.read_bytes() for p in files if p.parent == folder}


class _Worker:
    """State inside an evaluation process: the task, its data and the original model, loaded
    once, and the ingestion process that runs the submissions. This process never imports
    submission code: it receives weights and measures them."""

    def __init__(self, task: Task, original_path: Path, memory_limit: int | None,
                 sandboxed: bool) -> None:
        torch.set_num_threads(1)
        self.memory_limit, self.sandboxed = memory_limit, sandboxed
        # started first: it imports torch while this process loads the data and warms up
        starting = _Ingestion(task, memory_limit, sandboxed)
        self.task = task
        self.data = task.load_data()
        self.original = task.make_model()
        state = torch.load(original_path, map_location="cpu", weights_only=True)
        self.original.load_state_dict(state)
        self.original.eval()
        self._files: dict[tuple[Path, str], dict[str, bytes]] = {}  # per submission file
        self.last_evaluation_seconds = 0.0  # of the last run (``harness.execution.phases``)
        # the model that handed-back weights are loaded into: one, not one per run (a ResNet-18
        # is slow to initialise on a CPU)
        self.scored = task.make_model().to(task.device)
        self._warmed_up = False  # warmed up for the yardstick when it is measured (not cached)
        self.ingestion = starting.hand_over(self.data, self.original)

    def _start_ingestion(self) -> _Ingestion:
        return _Ingestion(self.task, self.memory_limit, self.sandboxed).hand_over(
            self.data, self.original)

    def time_retrain(self, request: _RetrainTiming) -> float:
        from harness.reference.pool import train_reference_model

        if not self._warmed_up:  # one-off start-up costs (torch imports its compiler with the
            # first optimizer, about a second) are not charged to the yardstick's training
            warm_up(self.original, self.task, self.data)
            self._warmed_up = True
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

    def run(self, request: RunRequest, timeout: float) -> RunResult:
        sub = request.submission
        run = {
            "files": self._submission_files(sub), "entry": sub.path.name,
            "module": module_name(sub),
            "seed": request.seed, "settings": request.settings,
        }
        try:
            report, weights = self.ingestion.run(run, timeout)
        except (EOFError, OSError, ValueError):
            code = self.ingestion.process.poll()
            self.ingestion.close()
            self.ingestion = self._start_ingestion()
            return request.result(
                CRASHED, message=f"the process running the submission died (exit code {code})"
            )
        if report["status"] == "harness-error":  # preparing the run failed, not the submission
            raise HarnessError(f"{report['message']}:\n{report.get('output', '')}")
        result = request.result(
            {"ok": OK, "invalid": INVALID, "timeout": TIMEOUT, "crashed": CRASHED}.get(
                report["status"], ERROR),
            message=report.get("message", ""), output=report.get("output", ""),
        )
        wall = report.get("wall_seconds")
        if wall is not None:
            result.wall_seconds = float(wall)
            result.cpu_seconds = float(report.get("cpu_seconds", float("nan")))
            result.seconds = self._judged_seconds(result.wall_seconds, result.cpu_seconds)
        start = time.perf_counter()
        if result.status == OK:
            self._evaluate(result, weights)
        self.last_evaluation_seconds = time.perf_counter() - start
        return result

    def _submission_files(self, submission: Submission) -> dict[str, bytes]:
        key = (submission.path, submission.file_hash)
        if key not in self._files:
            self._files[key] = _submission_files(submission)
        return self._files[key]

    def _judged_seconds(self, wall: float, cpu: float) -> float:
        """The time the budget judges: on the CPU, the larger of wall and CPU time (threads or
        processes beyond one core gain nothing against a yardstick measured on one); on a GPU,
        the wall time (the device is what runs share)."""
        if torch.device(self.task.device).type == "cpu" and np.isfinite(cpu):
            return max(wall, cpu)
        return wall

    def _evaluate(self, result: RunResult, weights: bytes) -> None:
        """The handed-back weights in a fresh model of the task's architecture, evaluated: what
        a run's code did to its model object beyond its state dict (a patched ``forward``,
        hooks, a changed dtype) is not scored, as on Kaggle, where entries handed in
        checkpoints."""
        from harness.reference.pool import evaluate_model

        try:
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - whatever the bytes are, they are no weights
            result.status = INVALID
            result.message = f"the returned weights are not a readable state dict ({error})"[:500]
            return
        if isinstance(state, dict):
            state = _fold_reparametrisations(state)
        model = self.scored  # every tensor of its state is replaced: a fresh model in effect
        problem = weights_problem(model, state)
        if problem is None:
            model.load_state_dict(state)
            stats = evaluate_model(model.eval(), self.data, self.task.device)
            if not stats["all_logits_finite"]:
                problem = "the returned model produces NaN or infinite outputs"
        if problem is not None:
            result.status, result.message = INVALID, problem
            return
        result.confidences = [float(c) for c in stats["confidences"]]
        result.losses = stats["losses"]
        for key in ("retain_acc", "test_acc", "forget_acc"):
            setattr(result, key, float(stats[key]))

    def close(self) -> None:
        self.ingestion.close()


def _exit_when_orphaned(scorer: int) -> None:
    """Exit this worker once the scorer that started it is gone (killed, even with SIGKILL):
    a run in progress, or hung, must not go on for nobody. The scorer is not the parent (the
    fork server is, and it lives as long as any of its workers does): it is watched through a
    pidfd, readable once the process has ended, or, where the kernel has none, polled."""
    try:
        handle = os.pidfd_open(scorer)
    except ProcessLookupError:
        os._exit(1)
    except (OSError, AttributeError):
        handle = None
    if handle is not None:
        select.select([handle], [], [])
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            while True:
                os.kill(scorer, 0)
                time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _worker_main(
    connection: Connection, task: Task, original_path: Path, memory_limit: int | None,
    sandboxed: bool, environment: dict[str, str], scorer: int,
) -> None:
    # the environment the scorer has now, not the fork server's from when it started (CUDA
    # reads CUDA_VISIBLE_DEVICES when first used, which no worker has done yet)
    os.environ.clear()
    os.environ.update(environment)
    threading.Thread(target=_exit_when_orphaned, args=(scorer,), daemon=True).start()
    protect_process()
    task = task.with_options(device=worker_device(task.device))
    worker = _Worker(task, original_path, memory_limit, sandboxed)
    connection.send("ready")
    while True:
        message = connection.recv()
        if message is None:
            worker.close()
            return
        request, timeout = message
        try:
            if isinstance(request, _RetrainTiming):
                reply = worker.time_retrain(request)
            else:
                reply = (worker.run(request, timeout), worker.last_evaluation_seconds)
        except Exception as error:  # the harness's code: what the submission did is caught below it
            reply = _HarnessFailure("".join(traceback.format_exception(error)))
        connection.send(reply)


@dataclass
class _Slot:
    index: int
    process: mp.process.BaseProcess
    connection: Connection
    request: RunRequest | _RetrainTiming | None = None
    started: float = 0.0
    ready: bool = False


@dataclass
class WorkerPool:
    """``jobs`` worker processes serving run requests; replaced when they die or hang."""

    task: Task
    original_path: Path
    jobs: int = 1
    timeout: float = 600.0
    memory_limit: int | None = None  # bytes per run; None: ``default_memory_limit(jobs)``
    sandbox: str = "auto"  # ``harness.execution.sandbox``: auto, on or off
    # seconds the workers spent evaluating handed-back weights, summed
    # (``harness.execution.phases``)
    evaluation_seconds: float = 0.0
    _slots: list[_Slot] = field(default_factory=list)

    def __enter__(self) -> WorkerPool:
        """Ready to serve; the processes start when first needed (``start``), so a scoring
        with every run recorded and its yardstick cached starts none."""
        self._context = mp.get_context("forkserver")
        self._context.set_forkserver_preload(FORKSERVER_PRELOAD)  # once it runs: no effect
        self._sandboxed = sandbox.resolve(self.sandbox)
        return self

    def start(self) -> None:
        """Start the worker processes, unless they are started."""
        if not self._slots:
            self._slots = [self._spawn(i) for i in range(max(1, self.jobs))]

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
        environment = {**os.environ, **{
            k: v for k, v in worker_environment(self.task).items() if v is not None}}
        process = self._context.Process(
            target=_worker_main,
            args=(child, self.task, self.original_path, self._memory_limit(), self._sandboxed,
                  environment, os.getpid()),
            daemon=True,
        )
        process.start()
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
        self.wait_until_ready()
        for slot in self._slots:  # one request to each worker, all at once
            slot.request, slot.started = _RetrainTiming(seed), time.monotonic()
            slot.connection.send((slot.request, self.timeout))
        seconds: list[float] = []
        self._serve(deque(), seconds.append, None)
        finite = [s for s in seconds if np.isfinite(s)]
        if not finite:
            raise RuntimeError("timing the reference training failed in the workers")
        return float(np.median(finite))

    @property
    def size(self) -> int:
        """Runs served at once."""
        return max(1, self.jobs)

    def wait_until_ready(self) -> None:
        """Start the workers and block until every one has started (or raise as ``_collect``
        does when one dies)."""
        self.start()
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
        pending = deque(requests)
        if pending:
            self.start()
        self._serve(pending, on_result, skip)

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
                        slot.request, slot.started = pending.popleft(), time.monotonic()
                        with contextlib.suppress(OSError):  # a dead worker is collected below
                            slot.connection.send((slot.request, self.timeout))
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
            if isinstance(message, _HarnessFailure):
                raise HarnessError(
                    f"the harness's own code failed in worker {slot.index} while serving "
                    f"{_describe(slot.request)} (not the submission's fault); in the worker:\n"
                    f"{message.traceback}"
                )
            slot.request = None
            if isinstance(message, tuple):  # a run's result and the seconds its evaluation took
                message, evaluation = message
                message.worker = slot.index
                self.evaluation_seconds += evaluation
            on_result(message)
            return
        if not slot.process.is_alive():
            request = slot.request
            self._replace(slot)
            if not slot.ready:
                raise RuntimeError(
                    f"a worker process died while starting (exit code {slot.process.exitcode}); "
                    "its error is printed above. A worker imports the script that started it "
                    "again (as with 'spawn'): a script that calls the harness must guard its "
                    "code with "
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
        """Seconds a request may take: a run, the hard timeout (enforced by the ingestion
        process; past it and ``TIMEOUT_GRACE``, the evaluation process itself is hung); the
        yardstick, the harness's own training with every worker at once, ``YARDSTICK_TIMEOUT``
        (K trainings sharing a GPU can take K times one, well past a run's limit)."""
        if isinstance(request, _RetrainTiming):
            return max(self.timeout, YARDSTICK_TIMEOUT)
        return self.timeout + TIMEOUT_GRACE

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


def _describe(request: RunRequest | _RetrainTiming | None) -> str:
    if isinstance(request, RunRequest):
        return f"run {request.run_index} of {request.submission.name}"
    return "the yardstick's timing" if isinstance(request, _RetrainTiming) else "no request"
