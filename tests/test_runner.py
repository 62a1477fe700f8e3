"""The runner's failure taxonomy, isolation and determinism, with deliberately bad submissions."""

import dataclasses
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harness.core.seeds import run_seed
from harness.execution.records import CRASHED, ERROR, INVALID, OK, TIMEOUT
from harness.execution.runner import RunRequest, WorkerPool
from harness.methods.loading import inspect_submission
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task

BAD = Path(__file__).resolve().parent / "bad_submissions"
EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"
COMPETITION = Path(__file__).resolve().parent / "competition_style"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    task = get_task("digits", num_models=4)
    store = ReferenceStore(task, task.load_data(), tmp_path_factory.mktemp("ref"))
    store.original_model()
    return task, store.directory / "original.pt"


@pytest.fixture(scope="module")
def one_worker(setup):
    """One worker with the default options, shared by the tests that need nothing else of a
    pool: its start-up (two processes importing torch) is paid once."""
    task, original = setup
    with WorkerPool(task, original, jobs=1) as pool:
        yield pool


def run_in(pool, paths, runs=1):
    results = {}
    requests = [
        RunRequest(sub, i, run_seed(pool.task.root_seed, sub.name, i))
        for sub in map(inspect_submission, paths)
        for i in range(runs)
    ]
    pool.run(requests, lambda r: results.setdefault(r.submission, []).append(r))
    return {name: sorted(rs, key=lambda r: r.run_index) for name, rs in results.items()}


def run_all(task, original, paths, jobs=2, runs=1, **pool_options):
    with WorkerPool(task, original, jobs=jobs, **pool_options) as pool:
        return run_in(pool, paths, runs)


@pytest.mark.slow
def test_every_failure_becomes_a_status_and_the_pool_survives(setup):
    task, original = setup
    names = [
        "raises", "hangs", "returns_string", "returns_other_architecture", "nan_weights",
        "infinite_outputs", "calls_sys_exit", "calls_os_exit", "segfaults", "eats_memory",
    ]
    paths = [BAD / f"{n}.py" for n in names] + [EXAMPLES / "do_nothing.py"]
    results = run_all(
        task, original, paths, jobs=2, timeout=8.0, memory_limit=512 * 2**20
    )
    status = {name: rs[0].status for name, rs in results.items()}
    assert status == {
        "raises": ERROR, "hangs": TIMEOUT, "returns_string": INVALID,
        "returns_other_architecture": INVALID, "nan_weights": INVALID,
        "infinite_outputs": INVALID, "calls_sys_exit": CRASHED, "calls_os_exit": CRASHED,
        "segfaults": CRASHED, "eats_memory": ERROR, "do_nothing": OK,
    }
    assert "this submission always fails" in results["raises"][0].message
    assert "ValueError" in results["raises"][0].output  # the traceback tail
    assert "str" in results["returns_string"][0].message
    assert "missing keys (e.g. fc1.weight)" in results["returns_other_architecture"][0].message
    assert "NaN or infinite" in results["nan_weights"][0].message
    assert "outputs" in results["infinite_outputs"][0].message
    assert "exit code 7" in results["calls_os_exit"][0].message
    assert "out of memory" in results["eats_memory"][0].message
    assert "timeout" in results["hangs"][0].message


def test_output_is_captured_truncated_and_kept_off_the_terminal(setup, capfd):
    task, original = setup
    results = run_all(task, original, [BAD / "prints_a_lot.py"], jobs=1)
    result = results["prints_a_lot"][0]
    assert result.status == OK
    assert result.output.startswith("chatty line 0")
    assert "more characters dropped" in result.output
    assert len(result.output) < 5000
    out, err = capfd.readouterr()
    assert "chatty" not in out + err


def test_a_submission_cannot_alter_the_data_of_its_later_runs(one_worker):
    results = run_in(one_worker, [BAD / "alters_the_data.py"], runs=3)
    assert [r.status for r in results["alters_the_data"]] == [OK, OK, OK], [
        r.message for r in results["alters_the_data"]
    ]


@pytest.mark.slow
def test_nothing_a_submission_changes_in_its_process_reaches_another(setup, one_worker):
    """Scored after one that breaks torch's SGD for its whole process, fine-tuning still gives
    bit for bit what it gives alone (in a worker of its own), in the same worker: every run is
    a process of its own."""
    task, original = setup
    alone = run_all(task, original, [EXAMPLES / "finetune.py"], jobs=1, runs=2)["finetune"]
    after = run_in(one_worker, [BAD / "pollutes_torch.py", EXAMPLES / "finetune.py"], runs=2)
    assert [r.status for r in after["pollutes_torch"]] == [OK, OK]
    for a, b in zip(alone, after["finetune"], strict=True):
        assert a.status == b.status == OK
        assert a.confidences == b.confidences
    assert len({r.worker for r in after["finetune"]}) == 1


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_workers(setup, one_worker):
    task, original = setup
    paths = [EXAMPLES / "finetune.py"]
    one = run_in(one_worker, paths, runs=4)["finetune"]
    two = run_all(task, original, paths, jobs=2, runs=4)["finetune"]
    for a, b in zip(one, two, strict=True):
        assert a.status == b.status == OK
        np.testing.assert_array_equal(a.confidences, b.confidences)
        assert a.retain_acc == b.retain_acc
    assert not np.array_equal(one[0].confidences, one[1].confidences)  # seeds differ per run


def test_competition_code_runs_unchanged_in_both_batch_styles(setup):
    """Entries written as Kaggle notebooks and the starting kit wrote them: dict and tuple batches,
    a loader rebuilt with ConcatDataset, `unlearning` under an `if` or assigned, a model left in
    train mode, a checkpoint in the working directory; one saving to /kaggle/tmp fails, naming
    it."""
    task, original = setup
    paths = sorted(COMPETITION.glob("*.py"))
    results = run_all(task, original, paths, jobs=2, runs=2)
    failing = results.pop("saves_to_kaggle_tmp")
    assert all(r.status == ERROR and "/kaggle/tmp" in r.message for r in failing)
    assert set(results) == {p.stem for p in paths} - {"saves_to_kaggle_tmp"}
    for name, runs in results.items():
        assert [r.status for r in runs] == [OK, OK], (name, runs[0].message, runs[0].output)
        assert runs[0].confidences != runs[1].confidences, name  # seeded runs differ


def test_a_module_without_the_entry_after_import_is_an_error(one_worker, tmp_path):
    path = tmp_path / "other_branch.py"
    path.write_text("if False:\n    def unlearning(net, retain, forget, val):\n        pass\n")
    (result,) = run_in(one_worker, [path])["other_branch"]
    assert result.status == ERROR and "holds no callable `unlearning`" in result.message


@pytest.mark.slow
def test_the_toolkit_a_run_imports_is_in_memory_before_its_clock_starts(one_worker, tmp_path):
    """Submissions import ``harness.toolkit``: the ingestion process has imported it before it
    forks the run, so the run's import reads and compiles no file inside its clock."""
    path = tmp_path / "reports_preloaded.py"
    path.write_text("import sys\nPRELOADED = 'harness.toolkit' in sys.modules\n"
                    "def unlearning(net, retain, forget, val):\n"
                    "    raise RuntimeError(f'preloaded={PRELOADED}')\n")
    (result,) = run_in(one_worker, [path])["reports_preloaded"]
    assert result.status == ERROR and "preloaded=True" in result.message


def test_a_run_sees_exactly_its_task_s_device():
    from harness.execution.runner import visible_devices, worker_device

    assert visible_devices("cpu") == ""  # no GPU for a CPU task's submissions
    assert visible_devices("cuda:1") == "1" and worker_device("cuda:1") == "cuda"
    assert visible_devices("cuda") is None and worker_device("cpu") == "cpu"


# -- several workers per device, and the yardstick under their concurrency ----------------------
def test_worker_counts():
    from harness.core.defaults import WORKERS_PER_DEVICE
    from harness.execution.runner import workers_for

    assert workers_for("cuda") == WORKERS_PER_DEVICE
    assert workers_for("cuda:1", workers_per_device=3) == 3
    assert workers_for("cuda", jobs=2, workers_per_device=3) == 2  # --jobs decides when given
    assert workers_for("cpu", workers_per_device=3) == (os.cpu_count() or 1)
    assert workers_for("cpu", jobs=5) == 5


class _FakeProcess:
    """Stands in for a worker process whose work a thread of the test does."""

    def __init__(self) -> None:
        self.sentinel, self._keep = mp.Pipe(duplex=False)  # never becomes ready: alive
        self.exitcode = None

    def is_alive(self) -> bool:
        return True


def test_the_yardstick_is_measured_in_every_worker_at_once(setup):
    """Each worker gets its timing request before any has answered (the trainings overlap, as
    the runs they judge do), and the answer is the median over the workers."""
    from harness.execution.runner import _RetrainTiming, _Slot

    task, original = setup
    answers = [1.0, 5.0, 3.0]
    together = threading.Barrier(len(answers), timeout=10)
    pool = WorkerPool(task, original, jobs=len(answers))
    threads = []
    for index, answer in enumerate(answers):
        parent, child = mp.Pipe()
        pool._slots.append(_Slot(index, _FakeProcess(), parent, ready=True))

        def worker(connection=child, answer=answer) -> None:
            request, _ = connection.recv()
            assert isinstance(request, _RetrainTiming)
            try:
                together.wait()  # only passes when every worker holds a request
                connection.send(answer)
            except threading.BrokenBarrierError:
                connection.send(float("nan"))

        threads.append(threading.Thread(target=worker, daemon=True))
        threads[-1].start()
    assert pool.time_retrain() == 3.0
    assert "each of 3 workers at once" in pool.timing_method
    for thread in threads:
        thread.join(timeout=10)


def test_the_yardstick_s_timers_wait_for_the_device(setup, monkeypatch):
    """Every clock read that starts or stops the yardstick's timer comes right after
    ``synchronize`` (on a GPU, queued kernels would otherwise fall outside the timer). A run's
    clock stops when its weights have arrived, which on a GPU waits for them to be copied to
    the host (``harness.execution.ingestion``)."""
    import torch

    from harness.execution import runner

    task, original = setup
    events: list[str] = []
    monkeypatch.setattr(runner, "synchronize", lambda device: events.append("sync"))

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def perf_counter() -> float:
            events.append("clock")
            return time.perf_counter()

    monkeypatch.setattr(runner, "time", Clock)
    threads = torch.get_num_threads()
    try:
        worker = runner._Worker(task.with_options(recipe=dataclasses.replace(
            task.recipe, epochs=1)), original, None, sandboxed=False)
        worker.time_retrain(runner._RetrainTiming(0))
        worker.close()
    finally:
        torch.set_num_threads(threads)
    clocks = [i for i, event in enumerate(events) if event == "clock"]
    assert len(clocks) == 2 * runner.RETRAIN_REPEATS
    assert all(events[i - 1] == "sync" for i in clocks)


def test_the_command_line_takes_workers_per_device():
    from harness.cli import build_parser, default_jobs
    from harness.core.defaults import WORKERS_PER_DEVICE

    parser = build_parser()
    for command in (["score"], ["validate", "x.py"], ["check"]):
        assert parser.parse_args([*command, "--workers-per-device", "3"]).workers_per_device == 3
        assert parser.parse_args(command).workers_per_device is None
    gpu = get_task("digits").with_options(device="cuda")
    assert default_jobs(gpu, 3) == 3 and default_jobs(gpu) == WORKERS_PER_DEVICE
    assert default_jobs(get_task("digits"), 3) == (os.cpu_count() or 1)


def test_the_yardstick_is_not_held_to_a_run_s_hard_timeout(setup):
    """K trainings sharing a device take longer than one: the yardstick has its own limit."""
    from harness.execution.runner import _Slot

    task, original = setup
    pool = WorkerPool(task, original, jobs=1, timeout=0.2)
    parent, child = mp.Pipe()
    pool._slots.append(_Slot(0, _FakeProcess(), parent, ready=True))

    def slow_worker() -> None:
        child.recv()
        time.sleep(0.8)
        child.send(2.0)

    thread = threading.Thread(target=slow_worker, daemon=True)
    thread.start()
    assert pool.time_retrain() == 2.0
    thread.join(timeout=10)


def test_a_deterministic_recipe_s_workers_start_with_cublas_s_fixed_workspace(monkeypatch):
    from harness.execution.runner import worker_environment

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    task = get_task("digits")
    assert worker_environment(task) == {"CUDA_VISIBLE_DEVICES": ""}
    strict = task.with_options(recipe=dataclasses.replace(task.recipe, deterministic=True))
    assert worker_environment(strict)["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice is kept
    assert worker_environment(strict)["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def _own_a_pool(task, original, pids) -> None:
    """A scorer: starts one worker, reports its pid, gives it a run that hangs and waits."""
    with WorkerPool(task, original, jobs=1, timeout=600) as workers:
        workers.wait_until_ready()
        pids.put(workers._slots[0].process.pid)
        hangs = inspect_submission(BAD / "hangs.py")
        workers.run([RunRequest(hangs, 0, 0)], lambda result: None)


def _stat(pid: int) -> list[str]:
    """A process's /proc stat fields after its name: state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _running(pid: int) -> bool:
    try:  # a zombie (exited, not yet reaped by whoever adopted it) is not running
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> list[int]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in table.items() if pp == parent]
        found += children
        todo += children
    return found


def test_workers_exit_when_their_scorer_is_killed(setup):
    """A worker whose parent dies without a goodbye (SIGKILL, or a Dask worker killed by a
    submission) in the middle of a run that hangs exits by itself instead of running on for
    nobody, and with it its ingestion process and the run's processes; the fork server the
    worker was forked from ends too."""
    import signal

    task, original = setup
    context = mp.get_context("spawn")
    pids = context.Queue()
    scorer = context.Process(target=_own_a_pool, args=(task, original, pids))
    scorer.start()
    worker = pids.get(timeout=120)
    time.sleep(2)  # the run has started
    below = _descendants(worker)
    assert _running(worker) and len(below) >= 2  # the ingestion process and the run (at least)
    server = int(_stat(worker)[1])  # the fork server, itself the scorer's child
    assert server != scorer.pid and int(_stat(server)[1]) == scorer.pid
    os.kill(scorer.pid, signal.SIGKILL)
    scorer.join()
    started = [worker, *below, server]
    deadline = time.monotonic() + 15
    while any(map(_running, started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, started))


# -- what is scored: handed-back weights, and time measured outside the run --------------------
def test_pruning_s_reparametrisation_is_folded_into_plain_weights():
    """torch's pruning keeps ``weight_orig`` and ``weight_mask`` in the state dict; the weights
    scored are their product, the tensor the pruned module computes with."""
    import torch
    from torch.nn.utils import prune

    from harness.execution.runner import _fold_reparametrisations, weights_problem

    task = get_task("digits")
    pruned = task.make_model()
    prune.l1_unstructured(pruned.fc1, "weight", amount=0.5)
    state = pruned.state_dict()
    assert "fc1.weight_orig" in state and "fc1.weight" not in state
    fresh = task.make_model()
    folded = _fold_reparametrisations(state)
    assert weights_problem(fresh, folded) is None
    fresh.load_state_dict(folded)
    inputs = torch.randn(5, 64)
    torch.testing.assert_close(fresh(inputs), pruned(inputs), rtol=0, atol=0)
    assert weights_problem(task.make_model(), state) is not None  # unfolded, it would not fit


def test_a_pruning_submission_is_scored_as_its_pruned_weights(one_worker, tmp_path):
    path = tmp_path / "prunes.py"
    path.write_text(
        "from torch.nn.utils import prune\n\n"
        "def unlearning(net, retain, forget, val):\n"
        "    prune.l1_unstructured(net.fc1, 'weight', amount=0.9)\n"
    )
    results = run_in(one_worker, [path, EXAMPLES / "do_nothing.py"])
    (pruned,), (unchanged,) = results["prunes"], results["do_nothing"]
    assert pruned.status == OK, pruned.message
    assert pruned.confidences != unchanged.confidences  # 90% of fc1 is gone


BUSY_IN_TWO_PROCESSES = """
import subprocess
import sys
import time

SPIN = "import time\\nend = time.process_time() + 1.0\\nwhile time.process_time() < end: pass"


def unlearning(net, retain, forget, val):
    helper = subprocess.Popen([sys.executable, "-c", SPIN])
    end = time.process_time() + 1.0
    while time.process_time() < end:
        pass
    helper.wait()
"""


def test_a_run_s_time_counts_the_cpu_of_all_its_processes(one_worker, tmp_path):
    """Work spread over two processes (or threads) takes about half the wall time of one, but
    is judged by the CPU time of both: more cores gain nothing against the budget."""
    path = tmp_path / "two_processes.py"
    path.write_text(BUSY_IN_TWO_PROCESSES)
    (result,) = run_in(one_worker, [path])["two_processes"]
    assert result.status == OK, result.message
    assert result.cpu_seconds >= 1.9  # a second in each process
    assert result.seconds == max(result.wall_seconds, result.cpu_seconds)
    assert result.seconds >= 1.9


def test_a_task_defined_in_a_user_s_file_runs_in_the_sandbox(tmp_path, monkeypatch):
    """The sandbox shows that file alone (not its folder), so the runs can rebuild the task."""
    import importlib

    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "my_task.py").write_text(
        "from dataclasses import dataclass\n"
        "from harness.tasks.digits import DigitsTask\n\n\n"
        "@dataclass(frozen=True)\nclass MyDigits(DigitsTask):\n    pass\n"
    )
    (folder / "secret.txt").write_text("not for submissions")
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("my_task")
    base = get_task("digits", num_models=4)
    task = module.MyDigits(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    store = ReferenceStore(task, task.load_data(), tmp_path / "ref")
    store.original_model()
    peeks = tmp_path / "peeks.py"
    peeks.write_text(
        "import os\n\ndef unlearning(net, retain, forget, val):\n"
        f"    print(sorted(os.listdir({str(folder)!r})))\n"
    )
    (result,) = run_all(task, store.directory / "original.pt", [peeks], jobs=1,
                        sandbox="on")["peeks"]
    assert result.status == OK, (result.message, result.output)
    assert result.output.strip() == "['my_task.py']"


COUNTS_ITS_SIBLINGS = """
import os
import time


def unlearning(net, retain, forget, val):
    time.sleep(0.3)  # what the harness starts beside a run would have started by now
    parent = os.getppid()
    siblings = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == parent:
                        siblings.append(int(entry))
            except (OSError, IndexError):
                continue
    print(sorted(siblings) == [os.getpid()])
"""


def test_nothing_of_the_harness_runs_beside_a_run_in_its_process(setup, tmp_path):
    """While a run's clock runs, the ingestion process has no other child (the next run's
    spare is prepared after the run has ended): on a busy machine a run's wall time, which the
    budget judges, is its own work (bench/bench_run_clock.py measures it)."""
    task, original = setup
    path = tmp_path / "siblings.py"
    path.write_text(COUNTS_ITS_SIBLINGS)
    results = run_all(task, original, [path], jobs=1, runs=3, sandbox="off")["siblings"]
    assert [(r.status, r.output.strip()) for r in results] == [(OK, "True")] * 3


def test_emptying_the_scratch_keeps_what_the_sandbox_binds_inside_it(tmp_path):
    """A checkout under /tmp is bound inside the sandbox's /tmp scratch: emptying the scratch
    before each run must neither walk nor remove it (it walked every file of the virtual
    environment before every run), and still removes what a run left beside it."""
    from harness.execution.ingestion import empty, mount_points

    bound = tmp_path / "checkout" / ".venv"
    (bound / "lib").mkdir(parents=True)
    (bound / "lib" / "module.py").write_text("")
    (tmp_path / "checkout" / "left_by_a_run.txt").write_text("")
    (tmp_path / "also_left").mkdir()
    (tmp_path / "also_left" / "file").write_text("")
    (tmp_path / "file").write_text("")
    empty(tmp_path, [bound])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "checkout", "checkout/.venv", "checkout/.venv/lib", "checkout/.venv/lib/module.py"]
    assert Path("/") in mount_points()


BROKEN_TASKS = '''
import multiprocessing
from dataclasses import dataclass

import harness.reference.pool
from harness.tasks.digits import DigitsTask


@dataclass(frozen=True)
class LoadersBreak(DigitsTask):
    """Its loaders fail for a run (seed 0, the warm-up's, works)."""

    def make_loaders(self, data, seed, num_workers=0):
        if seed != 0:
            raise RuntimeError("the task's loaders broke")
        return super().make_loaders(data, seed, num_workers)


def _broken_evaluation(*args, **kwargs):
    raise RuntimeError("the evaluation broke")


if multiprocessing.current_process().name != "MainProcess":  # in the workers only
    harness.reference.pool.evaluate_model = _broken_evaluation


@dataclass(frozen=True)
class EvaluationBreaks(DigitsTask):
    pass
'''


@pytest.mark.parametrize("kind, words", [("LoadersBreak", "the task's loaders broke"),
                                         ("EvaluationBreaks", "the evaluation broke")])
def test_a_failure_of_the_harness_s_code_stops_with_its_traceback_not_an_error_row(
    setup, tmp_path, monkeypatch, kind, words
):
    """Preparing a run's loaders and evaluating its weights are the harness's code: when they
    fail, the submission is not to blame (it once became an ``error`` row): the scoring stops
    with a ``HarnessError`` that carries the harness's traceback."""
    import importlib

    from harness.execution.runner import HarnessError

    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "broken_tasks.py").write_text(BROKEN_TASKS)
    monkeypatch.syspath_prepend(str(folder))
    base, original = setup
    cls = getattr(importlib.import_module("broken_tasks"), kind)
    task = cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    with pytest.raises(HarnessError, match="not the submission's fault") as raised:
        run_all(task, original, [EXAMPLES / "do_nothing.py"], jobs=1, sandbox="off")
    assert words in str(raised.value) and "Traceback" in str(raised.value)


COLLAPSE = '''
import os, sys
import torch
from harness.execution.ingestion import collapse_into_huge_pages

def huge_mib():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) // 1024
    return 0

before = huge_mib()
asked = collapse_into_huge_pages()
after = huge_mib()
pid = os.fork()  # a run's process: forked from the collapsed memory, it works as before
if pid == 0:
    os._exit(0 if torch.ones(3).sum().item() == 3 else 1)
_, status = os.waitpid(pid, 0)
print(asked // 2**20, before, after, os.waitstatus_to_exitcode(status))
'''


def test_the_ingestion_process_s_memory_is_collapsed_into_huge_pages():
    """Every run is a fork of the ingestion process, whose fork and exit cost one page-table
    entry per 4 KiB of its ~280 MB of allocations; on Linux 6.1 or later they are backed by
    2 MiB pages (``bench/bench_isolation.py`` measures the cost per run side by side)."""
    import platform
    import subprocess
    import sys

    output = subprocess.run([sys.executable, "-c", COLLAPSE], capture_output=True, text=True,
                            check=True).stdout.split()
    asked, before, after, child = map(int, output)
    assert child == 0
    release = tuple(int(part) for part in platform.release().split(".")[:2])
    if release >= (6, 1):
        assert asked >= 100, f"only {asked} MiB of the allocations asked to collapse"
        assert after >= before + 50, f"{before} -> {after} MiB in huge pages"


REPORTS_HUGE_PAGES = '''
def unlearning(net, retain, forget, val):
    for line in open("/proc/self/smaps_rollup"):  # what this run inherited from its parent
        if line.startswith("AnonHugePages:"):
            print(f"huge pages: {int(line.split()[1]) // 1024} MiB")
    return net
'''


@pytest.mark.slow
def test_the_memory_runs_fork_from_is_collapsed_only_once_enough_runs_have_come(
    setup, tmp_path
):
    """A worker that serves few runs does not pay for the collapse; after
    ``COLLAPSE_AFTER_RUNS`` runs it has, and every later run forks from huge pages."""
    import platform

    from harness.execution.ingestion import COLLAPSE_AFTER_RUNS

    task, original = setup
    path = tmp_path / "reports_huge_pages.py"
    path.write_text(REPORTS_HUGE_PAGES)
    results = run_all(task, original, [path], jobs=1, runs=COLLAPSE_AFTER_RUNS + 2)[path.stem]
    assert all(r.status == OK for r in results)
    mib = [int(r.output.split("huge pages: ")[1].split()[0]) for r in results]
    # the most any run had before the collapse (more than none where the kernel backs memory
    # with huge pages unasked), against the least any run had after it
    early, late = max(mib[:COLLAPSE_AFTER_RUNS]), min(mib[COLLAPSE_AFTER_RUNS:])
    release = tuple(int(part) for part in platform.release().split(".")[:2])
    if release >= (6, 1):  # MADV_COLLAPSE
        assert late >= early + 50, f"{early} -> {late} MiB of huge pages"
