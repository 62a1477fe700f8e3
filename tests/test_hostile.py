"""Hostile submissions (`tests/hostile/`, each described in its README) scored among honest ones.

One scoring of the honest submissions alone, one of the same honest submissions among the hostile
ones, both in the sandbox (bubblewrap is required: without it these tests fail, they never skip).
The honest rows must come out bit for bit the same, each hostile submission must get the outcome
its README names, none may rank above doing nothing, and no file outside the runs' scratch may
change (the test's own cache, records, leaderboards and submission folders).
A third scoring, without the sandbox and under a 0.5 s budget, shows that the forged evaluator and
the frozen clock are defeated by the separation of processes alone.
"""

import dataclasses
import glob
import hashlib
import json
import math
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.execution.records import RunResult
from harness.pipeline.scoring import score
from harness.tasks import get_task

REPOSITORY = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "hostile"
EXAMPLES = REPOSITORY / "submissions"
N = 8
HONEST = ("do_nothing", "finetune")
# scored in the sandbox with the honest ones, without a time budget
ARENA = (
    "forges_evaluator", "spawns_helpers", "writes_everywhere", "reads_secrets",
    "finds_test_split", "phones_home", "pollutes_torch_globals", "fills_scratch", "leaves_files",
    "state_dict_extra_tensor", "state_dict_missing_tensor", "state_dict_misshaped_tensor",
)
# scored without the sandbox, under a budget of CLOCK_BUDGET: what defeats these two is that a run
# is evaluated and timed by processes it cannot reach, sandbox or not
UNSANDBOXED = ("do_nothing", "forges_evaluator", "patches_clock")
METRICS = ("final_score", "forget_quality", "retain_acc", "test_acc", "forget_acc")
NO_BUDGET = float("inf")
# given with the budget, so no retraining is timed: no submission here hangs, and a busy machine
# must not turn a slow honest run into a timeout
HARD_TIMEOUT = 600.0
CLOCK_BUDGET = 0.5  # seconds; patches_clock fine-tunes for about 1 s per run
HELPER_MARKER = b"hostile-helper-7f3a9c"  # spawns_helpers.MARKER
# files hostile runs leave where they can: in the host's temp folder and /dev/shm only if they
# escaped the sandbox (the fixture removes any such file it finds new after the scoring)
LEFTOVERS = [f"{tempfile.gettempdir()}/{HELPER_MARKER.decode()}-*", "/dev/shm/left-by-a-run-*"]
SCRATCH_CAP_MIB = 4096  # fills_scratch.CAP: it stops there if no write fails first


def require_bubblewrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail(
            "bubblewrap (`bwrap`) is not installed: the hostile submissions are scored only in "
            "the sandbox (Debian: apt-get install bubblewrap)", pytrace=False,
        )


# -- what the tests watch from outside the runs ------------------------------------------------
def snapshot(paths: list[Path]) -> dict[str, tuple]:
    """Every file and folder under ``paths``: kind, size, modification time and, for files, a
    SHA-256 of the contents."""
    found: dict[str, tuple] = {}
    for top in paths:
        for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
            if not path.exists():
                found[str(path)] = ("missing",)
                continue
            stat = path.lstat()
            if path.is_dir():
                found[str(path)] = ("dir", stat.st_mtime_ns, tuple(sorted(names_in(path))))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path)] = ("file", stat.st_size, stat.st_mtime_ns, digest)
    return found


def names_in(path: Path) -> list[str]:
    return [p.name for p in path.iterdir()]


class Collector:
    """A TCP server on 127.0.0.1 that records every connection and byte it gets."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.connections, self.received = 0, b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with connection:
                connection.settimeout(2)
                try:
                    while chunk := connection.recv(65536):
                        self.received += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


class DiskWatch:
    """The least free space seen on the file system of the host's temp folder while it runs."""

    def __init__(self, path: str) -> None:
        self.path, self.before = path, shutil.disk_usage(path).free
        self.least = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.least = min(self.least, shutil.disk_usage(self.path).free)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def marked_processes(marker: bytes, grace: float = 2.0) -> list[int]:
    """Processes (of any PID namespace: this one sees them all) with ``marker`` in their command
    line, once none is left or ``grace`` seconds have passed (a killed process takes a moment to
    leave ``/proc``)."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for path in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if marker in path.read_bytes():
                    found.append(int(path.parent.name))
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def run_records(output_dir: Path, name: str) -> list[dict]:
    """The run records of ``name`` in a scoring's output folder, by run index."""
    (path,) = output_dir.glob(f"*/runs/{name}.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(records, key=lambda r: r["run_index"])


def images_digest(images) -> str:
    """finds_test_split's digest of an image array: float32 in [0, 1], 64 values per row."""
    array = np.ascontiguousarray(np.asarray(images, dtype=np.float32).reshape(-1, 64))
    return hashlib.sha256(array.tobytes()).hexdigest()


@dataclasses.dataclass
class Scored:
    board: pd.DataFrame
    output_dir: Path
    leaderboard: Path

    def row(self, name: str) -> pd.Series:
        return self.board.set_index("submission").loc[name]

    def records(self, name: str) -> list[dict]:
        return run_records(self.output_dir, name)

    def outputs(self, name: str) -> list[str]:
        return [r["output"] for r in self.records(name)]


def scoring(task, folder: Path, names: list[str], **options) -> Scored:
    output_dir, leaderboard = folder / "results", folder / "leaderboard.csv"
    board = score(
        task, folder / "submissions", names=names, output_dir=output_dir,
        leaderboard_path=leaderboard, jobs=2, ceiling=False, untuned=True, **options,
    )
    return Scored(board, output_dir, leaderboard)


def submissions_folder(folder: Path, names: list[str], collector_port: int = 0) -> Path:
    """``folder/submissions`` with the honest examples and the named hostile files; phones_home
    gets the collector's port written in."""
    target = folder / "submissions"
    target.mkdir(parents=True)
    for name in names:
        text = (EXAMPLES if name in HONEST else HOSTILE).joinpath(f"{name}.py").read_text()
        if name == "phones_home":
            text, count = re.subn(r"^PORT = 0\b.*$", f"PORT = {collector_port}", text,
                                  flags=re.MULTILINE)
            assert count == 1, "phones_home.py no longer has its `PORT = 0` line"
        (target / f"{name}.py").write_text(text)
    return target


# -- the scorings --------------------------------------------------------------------------------
@dataclasses.dataclass
class Arena:
    task: object
    root: Path
    honest: Scored
    arena: Scored
    before: dict
    after: dict
    collector: Collector
    disk: DiskWatch
    helpers_left: list[int]
    leftovers: list[str]  # files matching LEFTOVERS that are new on the host after the scoring


@pytest.fixture(scope="module")
def arena(tmp_path_factory) -> Arena:
    require_bubblewrap()
    root = tmp_path_factory.mktemp("hostile")
    task = get_task("digits", num_models=N)
    common = dict(reference_root=root / "reference_models", budget_seconds=NO_BUDGET,
                  timeout=HARD_TIMEOUT, sandbox="on")
    submissions_folder(root / "honest", list(HONEST))
    honest = scoring(task, root / "honest", list(HONEST), **common)

    collector = Collector()
    submissions_folder(root / "arena", [*HONEST, *ARENA], collector.port)
    # the checkout's own files are left out (a developer may be scoring or editing there while
    # this runs): writes_everywhere reports every write it made, wherever it found the target
    watched = [root / "reference_models", root / "honest", root / "arena" / "submissions"]
    before = snapshot(watched)
    leftovers = {path for pattern in LEFTOVERS for path in glob.glob(pattern)}
    disk = DiskWatch(tempfile.gettempdir())
    try:
        scored = scoring(task, root / "arena", [*HONEST, *ARENA], **common)
    finally:
        disk.close()
        collector.close()
    helpers_left = marked_processes(HELPER_MARKER)
    leftovers = sorted({p for pattern in LEFTOVERS for p in glob.glob(pattern)} - leftovers)
    for path in leftovers:  # a sandbox that leaks: leave the host clean all the same
        Path(path).unlink(missing_ok=True)
    after = snapshot(watched)
    return Arena(task, root, honest, scored, before, after, collector, disk, helpers_left,
                 leftovers)


def equal(a: object, b: object) -> bool:
    """Bit for bit, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_scores_as(scored: Scored, name: str, model: Scored, model_name: str) -> None:
    """``name``'s row and run records in ``scored`` equal ``model_name``'s in ``model``."""
    row, expected = scored.row(name), model.row(model_name)
    assert row["status"] == expected["status"] == "ok", (name, row["message"])
    for column in METRICS:
        assert equal(row[column], expected[column]), (name, column, row[column], expected[column])
    runs, expected_runs = scored.records(name), model.records(model_name)
    assert len(runs) == len(expected_runs) == N
    for run, wanted in zip(runs, expected_runs, strict=True):
        for key in ("confidences", "retain_acc", "test_acc", "forget_acc"):
            assert run[key] == wanted[key], (name, run["run_index"], key)


# -- the tests -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_honest_rows_are_the_same_bit_for_bit_among_hostile_ones(arena):
    for name in HONEST:
        assert_scores_as(arena.arena, name, arena.honest, name)
    assert arena.honest.row("finetune")["final_score"] > arena.honest.row("do_nothing")[
        "final_score"
    ]  # the honest methods give real numbers at this N


@pytest.mark.slow
def test_no_hostile_row_ranks_above_doing_nothing(arena):
    board = arena.arena.board.set_index("submission")
    floor = board.loc["do_nothing"]
    for name in ARENA:
        row = board.loc[name]
        if pd.notna(row["final_score"]):
            assert row["final_score"] <= floor["final_score"], name
        if pd.notna(row["rank"]):
            assert row["rank"] > floor["rank"], name
            # not significantly above doing nothing: its rank range reaches the floor's
            assert row["rank_hi"] >= floor["rank_lo"], name


@pytest.mark.slow
def test_a_forged_evaluator_scores_what_doing_nothing_scores(arena):
    assert_scores_as(arena.arena, "forges_evaluator", arena.arena, "do_nothing")
    for output in arena.arena.outputs("forges_evaluator"):
        assert "forges_evaluator: 0 pool files found" in output, output  # the pool is not there


@pytest.mark.slow
def test_torch_globals_changed_at_import_do_not_reach_the_evaluation(arena):
    assert_scores_as(arena.arena, "pollutes_torch_globals", arena.arena, "do_nothing")


@pytest.mark.slow
def test_threads_and_daemons_left_running_gain_nothing_and_are_ended(arena):
    assert_scores_as(arena.arena, "spawns_helpers", arena.arena, "do_nothing")
    for output in arena.arena.outputs("spawns_helpers"):  # nothing of an earlier run is seen
        assert "left by earlier runs: 0 files, 0 processes" in output, output
    assert arena.helpers_left == [], "processes started by a run outlived the scoring"
    assert arena.leftovers == [], "a run wrote to the host's temp folder or /dev/shm"


@pytest.mark.slow
def test_writes_outside_the_scratch_fail_and_change_nothing(arena):
    row = arena.arena.row("writes_everywhere")
    assert row["status"] == "ok", row["message"]
    for output in arena.arena.outputs("writes_everywhere"):
        tried = re.search(r"writes_everywhere: (\d+) of (\d+) writes succeeded", output)
        assert tried, output
        assert int(tried.group(1)) == 0 and int(tried.group(2)) > 0, output
    changed = sorted(
        path for path in set(arena.before) | set(arena.after)
        if arena.before.get(path) != arena.after.get(path)
    )
    assert changed == [], f"changed during the hostile scoring: {changed}"


@pytest.mark.slow
def test_the_hostile_scoring_s_own_records_and_leaderboard_are_the_harness_s(arena):
    """No run added to or altered the records and the leaderboard written while it was scored:
    each record is one whole run of the submission it is filed under, one per run."""
    fields = set(RunResult.field_names())
    for name in [*HONEST, *ARENA]:
        records = arena.arena.records(name)
        assert [r["run_index"] for r in records] == list(range(N)), name
        for record in records:
            assert set(record) == fields and record["submission"] == name
    written = pd.read_csv(arena.arena.leaderboard)
    assert list(written["submission"]) == list(arena.arena.board["submission"])
    assert list(written["status"]) == list(arena.arena.board["status"])
    np.testing.assert_array_equal(written["final_score"], arena.arena.board["final_score"])


@pytest.mark.slow
def test_the_pool_and_other_entries_are_not_visible(arena):
    row = arena.arena.row("reads_secrets")
    assert row["status"] == "ok", row["message"]
    for output in arena.arena.outputs("reads_secrets"):
        for kind in ("pool", "records", "leaderboards", "code"):
            assert f"reads_secrets: {kind}: 0 files read" in output, output


@pytest.mark.slow
def test_the_test_split_is_not_in_the_memory_of_a_run(arena):
    row = arena.arena.row("finds_test_split")
    assert row["status"] == "ok", row["message"]
    data = arena.task.load_data()
    test = images_digest(data.test.images)
    given = {images_digest(data.train.images), images_digest(data.val.images)}
    seen_rows = {r.tobytes() for r in np.concatenate([data.train.images, data.val.images])}
    for output in arena.arena.outputs("finds_test_split"):
        found = re.search(r"finds_test_split: (\d+) image arrays, (\d+) distinct images", output)
        assert found, output
        digests = set(re.findall(r"^\s+\d+ ([0-9a-f]{64})$", output, flags=re.MULTILINE))
        assert test not in digests, "the run found the test split"
        assert given & digests, "the scan did not even find the data the run was given"
        assert int(found.group(2)) <= len(seen_rows), "the run saw images it was not given"


@pytest.mark.slow
def test_a_connection_to_the_host_fails_and_sends_nothing(arena):
    row = arena.arena.row("phones_home")
    assert row["status"] == "ok", row["message"]
    assert arena.collector.connections == 0 and arena.collector.received == b""
    for output in arena.arena.outputs("phones_home"):
        assert "phones_home: could not connect" in output, output


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize("name, key", [
    ("state_dict_extra_tensor", "fc.temperature"),
    ("state_dict_missing_tensor", "fc.bias"),
    ("state_dict_misshaped_tensor", "fc.weight"),
])
def test_a_state_dict_that_does_not_fit_is_invalid_and_named(arena, name, key):
    row = arena.arena.row(name)
    assert row["status"] == "invalid-output", row["message"]
    assert key in row["message"], row["message"]
    assert pd.isna(row["rank"])


@pytest.mark.slow
def test_nothing_a_run_writes_outside_its_scratch_reaches_a_later_run(arena):
    """leaves_files leaves a marker in /dev/shm in every run and looks for earlier runs' markers:
    it must find none (one sandboxed process serves run after run, of every submission)."""
    assert arena.arena.row("leaves_files")["status"] == "ok"
    for output in arena.arena.outputs("leaves_files"):
        assert "left by earlier runs: 0\n" in output, output
    assert arena.leftovers == [], "a run wrote to the host's temp folder or /dev/shm"


@pytest.mark.slow
def test_the_scratch_is_the_only_place_a_run_can_write(arena):
    for output in arena.arena.outputs("leaves_files"):
        assert "writable outside the scratch: []" in output, output


@pytest.mark.slow
def test_filling_the_scratch_stops_at_its_limit_and_not_on_the_host(arena):
    """fills_scratch writes until its disk is full: every run stops at the scratch's own size
    limit and the host's disk does not fill (the honest rows are unchanged: tested above)."""
    assert arena.arena.row("fills_scratch")["status"] == "ok"
    for output in arena.arena.outputs("fills_scratch"):
        wrote = re.search(r"fills_scratch: wrote (\d+) MiB, stopped: (.*);", output)
        assert wrote, output
        assert int(wrote.group(1)) < SCRATCH_CAP_MIB, "no write failed: the scratch has no limit"
        assert "errno" in wrote.group(2), output
    assert arena.disk.least > arena.disk.before - 2**30, "the host's disk was filled"


@pytest.fixture(scope="module")
def unsandboxed(arena) -> Scored:
    """do_nothing, forges_evaluator and patches_clock scored without the sandbox, under a 0.5 s
    budget."""
    folder = arena.root / "unsandboxed"
    submissions_folder(folder, list(UNSANDBOXED))
    return scoring(arena.task, folder, list(UNSANDBOXED),
                   reference_root=arena.root / "reference_models",
                   budget_seconds=CLOCK_BUDGET, timeout=HARD_TIMEOUT, sandbox="off")


@pytest.mark.slow
def test_without_the_sandbox_a_forged_evaluator_still_scores_what_doing_nothing_scores(
    arena, unsandboxed
):
    """The separation of processes alone defeats the forgery: with the sandbox off, the forger
    finds the cached pool and patches the evaluator in its own process, to no effect."""
    assert_scores_as(unsandboxed, "forges_evaluator", unsandboxed, "do_nothing")
    assert_scores_as(unsandboxed, "do_nothing", arena.honest, "do_nothing")
    if arena.root.resolve().is_relative_to("/tmp"):  # where the forger looks for the pool
        for output in unsandboxed.outputs("forges_evaluator"):
            found = re.search(r"forges_evaluator: (\d+) pool files found", output)
            assert found and int(found.group(1)) > 0, output  # the attack was armed


@pytest.mark.slow
def test_a_frozen_clock_does_not_dodge_the_budget(unsandboxed):
    """patches_clock stops every clock in its process and trains for about 1 s a run: the time
    measured from outside its process (no sandbox needed) is over a 0.5 s budget."""
    row = unsandboxed.row("patches_clock")
    assert row["status"] == "over-budget", row["message"]
    assert row["seconds_per_run"] > CLOCK_BUDGET
    assert "exceeds the budget" in row["message"]
    assert pd.isna(row["rank"])
