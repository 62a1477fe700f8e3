"""The ingestion process: the only process that runs submission code, and what it hands back.

As on a CodaLab-style code competition (an ingestion program runs the entry, a scoring program
that never runs it reads the outputs), a runner's evaluation process (``harness.execution.runner``)
starts this process, in the sandbox where there is one (``harness.execution.sandbox``), and gives
it what the competition gave an entry: the original model and the retain, forget and validation
data; never the test split, the reference pool or a path to any file of the harness. For each run:

- a child forked from it (a spare, forked when the previous run had ended, which copied the
  model and warmed up while the evaluation process evaluated that run's weights: never while a
  run's clock runs, whose CPU it would share on a busy machine) prepares the run as harness
  code (seeds, the model on the device, the loaders, an empty scratch directory), says it is
  ready and waits;
- this process starts the clock and lets it go: the child imports the submission (module state
  starts clean in every run: nothing is imported here) and calls ``unlearning``;
- the child hands back the model's state dict (bytes of ``torch.save``) and nothing else is
  read from it; the clock stops when the last byte has arrived;
- the CPU time of every process of the run is read, then they are killed (the child, and any
  thread, child or daemon it started, found as this process is their subreaper), and before the
  next run starts none is left and the scratch is empty: nothing a run starts outlives it or
  reaches the next run. On a CPU task the run's time is the larger of its wall time and that CPU
  time, so more threads or processes gain nothing against the budget (the yardstick trains on
  one core).

What comes back to the evaluation process is data only (JSON and the weights' bytes, which it
reads with ``torch.load(weights_only=True)``), so a run cannot send the harness code or objects.
Started by ``harness.execution.runner`` with two file descriptors: its connection and a lifeline.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import fcntl
import gc
import io
import json
import os
import pickle
import random
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.execution.sandbox import SHARED_MEMORY
from harness.methods.loading import entry_point, import_file
from harness.training.loop import synchronize

OUTPUT_LIMIT = 4000  # characters of a run's captured output kept
TRACEBACK_LINES = 8
OUT_OF_MEMORY = "out of memory"
HEADER_LIMIT = 64 * 2**10  # bytes of a run's report (status, message, output)
_FRAME = struct.Struct("<Q")
PIPE_BYTES = 2**20  # a run's result pipe (Linux's default limit for one)
EXIT_GRACE = 2.0  # seconds a run whose pipe closed has to end before it counts as still running
_PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 4, 36
_MADV_COLLAPSE = 25  # Linux 6.1+: back a range with transparent huge pages now
_HUGE_PAGE = 2**21
# Runs served before the memory is collapsed into huge pages: about as many as the collapse's
# cost buys back in cheaper forks (``bench/bench_huge_pages.py``), so that a worker that serves
# few runs (a small N, ``harness validate``, most tests) never pays for it and one that serves
# thousands pays at most that many forks' saving late (the ski-rental rule: within twice the
# best choice made knowing the number of runs in advance).
COLLAPSE_AFTER_RUNS = 150


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def collapse_into_huge_pages() -> int:
    """Back this process's private anonymous memory (the heap, torch's and Python's
    allocations: about 280 MB once torch is imported) with 2 MiB pages where the kernel can,
    and return how many bytes it was asked to collapse. A fork copies one page-table entry per
    4 KiB page of such memory and an exit releases each again: with huge pages, 512 times
    fewer, and every run is a fork. Best effort: on a kernel without ``MADV_COLLAPSE`` (before
    6.1) or without free huge pages nothing changes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        maps = Path("/proc/self/maps").read_text().splitlines()
    except (OSError, AttributeError):
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    asked = 0
    for line in maps:
        fields = line.split()
        if not fields[1].startswith("rw") or fields[1][3] != "p":
            continue
        if len(fields) > 5 and fields[5] != "[heap]":
            continue  # a file's mapping, the stack, vdso: not the allocations
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start = -(-start // _HUGE_PAGE) * _HUGE_PAGE
        end = end // _HUGE_PAGE * _HUGE_PAGE
        if end > start and libc.madvise(start, end - start, _MADV_COLLAPSE) == 0:
            asked += end - start
    return asked


def protect_process() -> None:
    """No other process of this user may attach to this one or read its memory (a run
    cannot reach into the process that times or evaluates it)."""
    _prctl(_PR_SET_DUMPABLE, 0)


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


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


# ----------------------------------------------------------------------------- framing
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(fd: int, payload: bytes) -> None:
    _write_all(fd, _FRAME.pack(len(payload)))
    _write_all(fd, payload)


def _read_exactly(fd: int, size: int, deadline: float) -> bytearray | None:
    """``size`` bytes from ``fd``, or None at end of file or past ``deadline`` (monotonic). Reads
    straight into one buffer and waits (``select``) only when the pipe is empty."""
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    os.set_blocking(fd, False)
    try:
        while done < size:
            try:
                count = os.readv(fd, [view[done:]])
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], min(left, 86400.0))[0]:
                    return None
                continue
            if count == 0:
                return None
            done += count
    finally:
        os.set_blocking(fd, True)
    return buffer


def read_frame(fd: int, limit: int, deadline: float) -> bytearray | None:
    """One length-prefixed frame of at most ``limit`` bytes; None if the writer died, stalled
    past ``deadline`` or announced more than ``limit``."""
    head = _read_exactly(fd, _FRAME.size, deadline)
    if head is None:
        return None
    (size,) = _FRAME.unpack(head)
    if size > limit:
        return None
    return _read_exactly(fd, size, deadline)


# ----------------------------------------------------------------------------- the run's child
def _child_warm(state: dict) -> nn.Module:
    """Harness code in a spare, before its request: the model's copy, and a throw-away training
    step, so that the pages of memory a run touches first are this process's own before the
    clock starts (a forked process copies each page it writes to first)."""
    net = copy.deepcopy(state["original"])
    if torch.device(state["task"].device).type == "cpu":
        warm_up(state["original"], state["task"], state["data"])
    return net


def _child_prepare(state: dict, request: dict, scratch: Path, net: nn.Module) -> tuple:
    """Harness code, before the clock: limits, seeds, the model on its device, the loaders."""
    run_dir = scratch / "run"
    code_dir = scratch / "code"
    run_dir.mkdir()
    code_dir.mkdir()
    for name, source in request["files"].items():  # the submission and the files beside it
        (code_dir / name).write_bytes(source)
    os.chdir(run_dir)
    os.environ["TMPDIR"] = str(run_dir)
    tempfile.tempdir = None
    sys.path.insert(0, str(code_dir))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not state["sandboxed"]:  # in the sandbox, the scratch tmpfs has its own size
        limit = state["scratch_bytes"]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if state["memory_limit"] and torch.device(state["task"].device).type == "cpu":
        current = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        limit = current + state["memory_limit"]
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    task = state["task"]
    seed_everything(request["seed"])
    net = net.to(task.device)
    retain, forget, val = task.make_loaders(state["data"], request["seed"])
    synchronize(task.device)
    return net, retain, forget, val, code_dir / request["entry"]


def _child_run(request: dict, prepared: tuple) -> tuple[dict, bytes]:
    """Submission code from here on: import, call, hand back the state dict."""
    net, retain, forget, val, path = prepared
    report: dict = {"status": "ok", "message": "", "output": ""}
    weights = b""
    sink = _BoundedText(OUTPUT_LIMIT)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            module = import_file(path, request["module"])
            returned = entry_point(module)(net, retain, forget, val, **request["settings"])
        model = net if returned is None else returned
        if not isinstance(model, nn.Module):
            report["status"] = "invalid"
            report["message"] = (
                f"returned {type(model).__name__}, expected None or a torch.nn.Module"
            )
        else:
            state = {
                k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v)
                for k, v in model.state_dict().items()
            }
            buffer = io.BytesIO()
            torch.save(state, buffer)
            weights = buffer.getvalue()
    except Exception as error:  # the submission's own failure, reported
        report["status"] = "error"
        report["message"] = f"{type(error).__name__}: {error}".strip()[:500]
        if is_out_of_memory(error):
            report["message"] = f"{OUT_OF_MEMORY}: the run exceeded the worker's memory limit"
        report["output"] = "".join(traceback.format_exception(error)[-TRACEBACK_LINES:])
    # bounded: the head of the output, the traceback's tail (whose lines may be long)
    report["output"] = (sink.getvalue() + report["output"])[: 2 * OUTPUT_LIMIT]
    return report, weights


def _child_main(state: dict, request_fd: int, result_fd: int, go_fd: int) -> None:
    """The body of a forked child; it never returns into the ingestion loop."""
    code = 0
    try:
        net = _child_warm(state)
        request = _read_request(request_fd)
        if request is None:
            os._exit(0)  # the ingestion process is ending: a spare never used
        try:
            prepared = _child_prepare(state, request, Path(state["scratch"]), net)
        except Exception as error:  # a harness failure, not the submission's: said as such
            lines = traceback.format_exception(error)[-TRACEBACK_LINES:]
            _write_all(result_fd, b"E" + struct.pack("<d", 0.0))
            write_frame(result_fd, "".join(lines).encode()[:HEADER_LIMIT])
            os._exit(0)
        prep_cpu = time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID)
        _write_all(result_fd, b"R" + struct.pack("<d", prep_cpu))
        if os.read(go_fd, 1) != b"G":
            os._exit(0)
        report, weights = _child_run(request, prepared)
        header = json.dumps(report).encode()[:HEADER_LIMIT]
        write_frame(result_fd, header)
        write_frame(result_fd, weights)
    except SystemExit as stop:  # sys.exit in a submission: the run's process ends, as it asked
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must end here whatever happened
        code = 70
    finally:
        os._exit(code)


def _read_request(fd: int) -> dict | None:
    size = _read_exactly(fd, _FRAME.size, float("inf"))
    if size is None:
        return None
    payload = _read_exactly(fd, _FRAME.unpack(size)[0], float("inf"))
    return None if payload is None else pickle.loads(payload)  # from the ingestion process


# ----------------------------------------------------------------------------- the ingestion loop
class _Spare:
    """A forked child waiting for its run's request."""

    def __init__(self, state: dict, closing: list[int]) -> None:
        request_r, self.request_w = os.pipe()
        self.result_r, result_w = os.pipe()
        with contextlib.suppress(OSError):  # fewer, larger reads of the weights
            fcntl.fcntl(result_w, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        go_r, self.go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for fd in (*closing, self.request_w, self.result_r, self.go_w):
                os.close(fd)
            os.setpgid(0, 0)
            _child_main(state, request_r, result_w, go_r)
        for fd in (request_r, result_w, go_r):
            os.close(fd)
        self.pid = pid

    def fds(self) -> tuple[int, int, int]:
        """The ingestion process's ends of this spare's pipes (a later spare closes them)."""
        return self.request_w, self.result_r, self.go_w

    def close(self) -> None:
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)


def _process_table() -> dict[int, list[bytes]]:
    """Every visible process's /proc stat fields after the name (state, ppid, ...)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    table[int(entry)] = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
    return table


def _descendants(table: dict[int, list[bytes]]) -> list[int]:
    """The processes below this one in ``table``: its children, theirs, and so on."""
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def end_processes(keep: int | None = None, wait: bool = True) -> None:
    """Kill every process below this one but ``keep`` (a run's processes, including those that
    left its process group: their orphans are reparented here, the subreaper) and reap the
    ended ones. With ``wait``, until none but ``keep`` is left (a process forked while the
    others were killed is found in the next round)."""
    for _ in range(10_000):
        table = _process_table()
        living = [p for p in _descendants(table) if p != keep and table[p][0] != b"Z"]
        for pid in living:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if not living or not wait:
            return
        time.sleep(0.0002)
    os._exit(3)  # a run that forks faster than it is killed: end the sandbox with it


def run_cpu_seconds() -> float:
    """CPU seconds used so far by every process descending from this one (the run's processes:
    no spare is forked while a run runs): each one's threads, living and ended, to the
    nanosecond, and the processes they reaped (to the clock tick)."""
    table, tick = _process_table(), os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in _descendants(table):
        fields = table[pid]  # utime, stime, cutime, cstime are fields 14-17 of stat
        try:
            total += time.clock_gettime(((~pid) << 3) | 2)  # the process's CPU clock
        except OSError:
            total += (int(fields[11]) + int(fields[12])) / tick
        total += (int(fields[13]) + int(fields[14])) / tick
    return total


def _exit_within(pid: int, seconds: float) -> int | None:
    """The exit status of child ``pid`` once it has ended (reaping it), or None if it is still
    running after ``seconds`` (a process whose pipe closed is usually ending already)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0  # already reaped: its status is gone
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.001)


def _exit_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"killed by signal {number} ({signal.Signals(number).name})"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def mount_points() -> list[Path]:
    """Where something is mounted in this process's view (``/proc/self/mountinfo``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [Path(line.split()[4].replace("\\040", " ")) for line in lines if len(line.split()) > 4]


def empty(directory: Path, keep: list[Path] = ()) -> None:
    """Remove everything in ``directory`` but the paths in ``keep`` (what the sandbox binds
    inside the scratch, e.g. a checkout under /tmp: its files are never walked or removed)."""
    inside = [k for k in keep if k != directory and k.is_relative_to(directory)]
    for entry in directory.iterdir():
        if entry in inside:
            continue
        if any(k.is_relative_to(entry) for k in inside):
            empty(entry, inside)  # a folder on the way to something kept: only its other parts
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


class Ingestion:
    """The state of the ingestion process: the task, the entry's data, the original model."""

    def __init__(self, setup: dict, connection: Connection, lifeline: int) -> None:
        # What submissions import, imported once before any fork, under the name they import
        # it by: a run that imports ``harness.toolkit`` finds it in memory and reads no file
        # inside its clock (on a disk busy writing back the previous split's records, one such
        # read stalled the first run of each worker for a second, and a median over the first
        # runs judged a 20 ms method over the budget).
        import harness.toolkit  # noqa: F401
        from harness.methods import toolkit

        torch.set_num_threads(1)
        toolkit.set_current_task(setup["task"])
        original = setup["task"].make_model()
        original.load_state_dict(setup["original"])
        original.eval()
        scratch = Path(setup["scratch"])
        self.state = {
            "task": setup["task"], "data": setup["data"], "original": original,
            "memory_limit": setup["memory_limit"], "sandboxed": setup["sandboxed"],
            "scratch": str(scratch), "scratch_bytes": setup["scratch_bytes"],
        }
        self.scratch = scratch
        self.emptied = [scratch] + ([Path(SHARED_MEMORY)] if setup["sandboxed"] else [])
        self.kept = [m for m in mount_points() if any(
            m != folder and m.is_relative_to(folder) for folder in self.emptied)]
        self.connection = connection
        self.closing = [connection.fileno(), lifeline]
        self.weights_limit = 8 * sum(
            t.numel() * t.element_size() for t in original.state_dict().values()
        ) + 2**20
        if torch.device(setup["task"].device).type == "cpu":
            warm_up(original, setup["task"], setup["data"])
        gc.collect()
        gc.freeze()  # objects inherited by every child stay shared, not copied on its first GC
        self.served = 0
        self.spare = _Spare(self.state, self.closing)

    def serve(self, request: dict) -> None:
        spare, timeout = self.spare, request["timeout"]
        end_processes(keep=spare.pid)  # nothing of the previous run is left when this starts
        for folder in self.emptied:
            empty(folder, self.kept)
        payload = pickle.dumps(request["run"])
        _write_all(spare.request_w, _FRAME.pack(len(payload)) + payload)
        report, weights = self._run(spare, timeout)
        self.connection.send_bytes(json.dumps(report).encode())
        self.connection.send_bytes(weights)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(spare.pid, signal.SIGKILL)
        spare.close()
        self.served += 1
        if self.served == COLLAPSE_AFTER_RUNS:  # every run is a fork of this process
            collapse_into_huge_pages()
        # the next run's spare, prepared while the evaluation process evaluates these weights
        self.spare = _Spare(self.state, self.closing)
        end_processes(keep=self.spare.pid, wait=False)

    def _run(self, spare: _Spare, timeout: float) -> tuple[dict, bytes]:
        ready = _read_exactly(spare.result_r, 9, time.monotonic() + max(timeout, 600.0))
        if ready is not None and ready[:1] == b"E":
            trace = read_frame(spare.result_r, HEADER_LIMIT, time.monotonic() + 10) or b""
            return {"status": "harness-error", "wall_seconds": None,
                    "message": "the harness failed to prepare the run (not the submission's "
                               "fault)", "output": trace.decode(errors="replace")}, b""
        if ready is None or ready[:1] != b"R":
            return self._died(_exit_within(spare.pid, EXIT_GRACE),
                              "before the run started (preparing the model and data)")
        (cpu_before,) = struct.unpack("<d", ready[1:])
        start = time.monotonic()
        deadline = start + timeout
        _write_all(spare.go_w, b"G")
        header = read_frame(spare.result_r, HEADER_LIMIT, deadline)
        weights = read_frame(spare.result_r, self.weights_limit, deadline) if header else None
        wall = time.monotonic() - start
        cpu = run_cpu_seconds() - cpu_before  # before the run's processes are ended
        if header is None or weights is None:
            if time.monotonic() >= deadline:
                return {"status": "timeout", "wall_seconds": None,
                        "message": f"the run did not finish within the hard timeout of "
                                   f"{timeout:.0f} s"}, b""
            status = _exit_within(spare.pid, EXIT_GRACE)
            if status is None:  # alive: it sent something else than weights, or closed its pipe
                return {"status": "invalid", "wall_seconds": None,
                        "message": "the run handed back something other than its weights "
                                   f"(more than {self.weights_limit} bytes, or malformed)"}, b""
            return self._died(status, "")
        try:
            report = json.loads(header)
            if not isinstance(report, dict):
                raise ValueError
        except ValueError:
            report = {"status": "error", "message": "the run's report was not readable"}
        report = {
            "status": str(report.get("status", "error")),
            "message": str(report.get("message", ""))[:500],
            "output": str(report.get("output", ""))[: 2 * OUTPUT_LIMIT],
            "wall_seconds": wall,
            "cpu_seconds": max(0.0, cpu),
        }
        return report, weights

    @staticmethod
    def _died(status: int | None, when: str) -> tuple[dict, bytes]:
        message = "the run's process died" + (f" ({_exit_status(status)})" if status else "")
        return {"status": "crashed", "message": f"{message} {when}".strip(),
                "wall_seconds": None}, b""


def warm_up(original: nn.Module, task, data) -> None:
    """One training step and one forward pass on a throw-away copy on the task's device, so that
    torch's one-off start-up costs (lazy initialisation) are paid here once, not in a clock."""
    from harness.data.examples import inputs_targets

    net = copy.deepcopy(original).to(task.device).train()
    batch = next(iter(task.make_loaders(data, seed=0)[0]))
    inputs, targets = (t.to(task.device) for t in inputs_targets(batch))
    loss = nn.functional.cross_entropy(net(inputs), targets)
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9).step()
    with torch.no_grad():
        net.eval()(inputs)


def _watch_lifeline(lifeline: int, owned: Path | None) -> None:
    """End this process (and with it the run) when the evaluation process is gone, removing
    the scratch folder it made (``owned``) outside a sandbox."""
    while True:
        try:
            if not os.read(lifeline, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    with contextlib.suppress(Exception):
        end_processes()
    if owned is not None:
        shutil.rmtree(owned, ignore_errors=True)
    os._exit(1)


def main(argv: list[str]) -> None:
    connection_fd, lifeline = int(argv[0]), int(argv[1])
    protect_process()
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    connection = Connection(connection_fd)
    setup = pickle.loads(connection.recv_bytes())  # from the evaluation process
    owned = None
    if setup["scratch"] is None:  # no sandbox: a folder of its own, removed when it ends
        owned = Path(tempfile.mkdtemp(prefix="harness-runs-"))
        setup["scratch"] = str(owned)
    threading.Thread(target=_watch_lifeline, args=(lifeline, owned), daemon=True).start()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # C-level output of a run never reaches the scorer's terminal
        os.dup2(devnull, fd)
    ingestion = Ingestion(setup, connection, lifeline)
    os.dup2(devnull, 2)  # a failure to start was the last thing written to the scorer's pipe
    connection.send_bytes(b"ready")
    while True:
        try:
            request = pickle.loads(connection.recv_bytes())
        except EOFError:
            break
        if request is None:
            break
        ingestion.serve(request)
    end_processes()
    if owned is not None:
        shutil.rmtree(owned, ignore_errors=True)
    os._exit(0)

