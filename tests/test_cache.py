"""Every cache file is trustworthy: damaged manifests, pool chunks, timings and run records are
detected and rebuilt (never used, never a crash), writes reach the disk before they are renamed
into place, and the pool's key follows exactly what determines the pool."""

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from lock_holder import hold

import harness.cli as cli_module
from harness.core import files, sources
from harness.execution.runner import RunResult
from harness.execution.store import ResultsStore
from harness.pipeline.setup import TIMING_FILE, measure_retrain_seconds
from harness.reference.pool import (
    MANIFEST_FILE,
    ORIGINAL_FILE,
    ReferenceStore,
    train_chunk_sequential,
)
from harness.tasks import get_task

EPOCHS = 2  # enough to exercise every path; the real recipe's 40 epochs would only cost time


def short(task):
    return task.with_options(recipe=replace(task.recipe, epochs=EPOCHS))


@pytest.fixture()
def task():
    return short(get_task("digits", num_models=4))


@pytest.fixture(scope="module")
def data():
    return get_task("digits").load_data()


def counting(calls):
    def train(task, data, indices):
        calls.append(list(indices))
        return train_chunk_sequential(task, data, indices)

    return train


# -- atomic, durable writes --------------------------------------------------------------------
def test_atomic_write_fsyncs_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = files.os.fsync, files.os.replace

    def fsync(fd):
        calls.append("fsync")
        real_fsync(fd)

    def replace_(src, dst):
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace_)
    files.write_json(tmp_path / "a.json", {"x": 1})
    assert "replace" in calls and calls.index("fsync") < calls.index("replace")
    assert calls[-1] == "fsync"  # the folder, so that the rename itself survives a crash
    assert files.read_json(tmp_path / "a.json") == {"x": 1}

    calls.clear()
    files.write_npz(tmp_path / "a.npz", {"y": np.arange(3)})
    assert calls.index("fsync") < calls.index("replace")
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write(tmp_path / "a.json", fail)
    assert list(tmp_path.iterdir()) == []


# -- safe readers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [None, b"", b'{"key": "abc", "fi', b"{'key': 1}", b"\xff\xfe\x00garbage", b"[1, 2]", b"3",
     b"null"],
    ids=["missing", "empty", "truncated", "not-json", "binary", "list", "number", "null"],
)
def test_read_json_or_none_refuses_what_it_cannot_trust(tmp_path, content):
    path = tmp_path / "f.json"
    if content is not None:
        path.write_bytes(content)
    assert files.read_json_or_none(path) is None


def test_read_json_or_none_reads_a_good_file(tmp_path):
    files.write_json(tmp_path / "f.json", {"a": [1, 2]})
    assert files.read_json_or_none(tmp_path / "f.json") == {"a": [1, 2]}
    assert files.read_json_or_none(tmp_path / "f.json", list) is None


def test_a_damaged_npz_is_a_corrupt_file_error(tmp_path):
    path = tmp_path / "a.npz"
    files.write_npz(path, {"x": np.arange(1000.0)})
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(files.CorruptFileError, match="a.npz"):
        files.read_npz(path)
    assert files.read_npz_or_none(path) is None
    np.save(tmp_path / "bare.npy", np.arange(3))  # an array, not an archive
    with pytest.raises(files.CorruptFileError):
        files.read_npz(tmp_path / "bare.npy")
    with pytest.raises(FileNotFoundError):
        files.read_npz(tmp_path / "missing.npz")
    assert files.read_npz_or_none(tmp_path / "missing.npz") is None


# -- the manifest, through `harness pool` ------------------------------------------------------
@pytest.fixture()
def short_cli(monkeypatch):
    """`harness pool` as the user runs it, with the digits recipe cut to a few epochs."""
    real = cli_module._task_from_args
    monkeypatch.setattr(cli_module, "_task_from_args", lambda args: short(real(args)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One finished cache (pool and original), copied by the tests that damage it."""
    root = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as patch:
        real = cli_module._task_from_args
        patch.setattr(cli_module, "_task_from_args", lambda args: short(real(args)))
        assert cli_module.main(pool_args(root)) == 0
    return root


def pool_args(root: Path) -> list[str]:
    return ["pool", "--task", "digits", "-n", "4", "--reference-root", str(root)]


DAMAGED_MANIFESTS = {
    "truncated": lambda text, key: text[: len(text) // 2],
    "empty": lambda text, key: "",
    "python-repr": lambda text, key: "{'key': 1}",
    "list": lambda text, key: "[]",
    "files-not-a-dict": lambda text, key: json.dumps({"key": key, "files": []}),
    "entry-without-checksum": lambda text, key: json.dumps(
        {"key": key, "files": {ORIGINAL_FILE: {}, "pool-00000-00003.npz": {"sha256": 7}}}
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGED_MANIFESTS))
def test_a_damaged_manifest_is_rebuilt_and_its_files_retrained(
    built, tmp_path, short_cli, damage, task, data
):
    root = tmp_path / "reference"
    shutil.copytree(built, root)
    (directory,) = root.iterdir()
    chunk = directory / "pool-00000-00003.npz"
    good = files.read_npz(chunk)
    # a well-formed chunk with wrong numbers: only the (now unreadable) manifest vouched for the
    # real one, so nothing in the folder may be trusted any more
    files.write_npz(chunk, {k: np.zeros_like(v) for k, v in good.items()})
    manifest = directory / MANIFEST_FILE
    key = directory.name.split("-")[-1]
    manifest.write_text(DAMAGED_MANIFESTS[damage](manifest.read_text(), key))

    assert cli_module.main(pool_args(root)) == 0

    store = ReferenceStore(task, data, root)
    assert store.directory == directory
    rebuilt = files.read_json(manifest)
    assert rebuilt["key"] == store.key
    assert set(rebuilt["files"]) == {ORIGINAL_FILE, chunk.name}
    for name, entry in rebuilt["files"].items():
        assert entry["sha256"] == files.file_sha256(directory / name)
    again = files.read_npz(chunk)
    for name, array in good.items():
        if name != "seconds":
            np.testing.assert_array_equal(again[name], array)  # retrained, same seeds
    assert store.status()["models_done"] == 4 and store.status()["original_model"]


def test_a_truncated_pool_chunk_is_detected_and_retrained(task, data, tmp_path):
    store = ReferenceStore(task, data, tmp_path)
    first = store.pool()
    (name, indices), = store.chunks()
    path = store.directory / name
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    calls = []
    again = store.pool(train_chunk=counting(calls))
    assert calls == [indices]
    np.testing.assert_array_equal(again.confidences, first.confidences)
    assert files.read_npz_or_none(path) is not None


# -- the timing record -------------------------------------------------------------------------
class CountingWorkers:
    timing_method = "counted"  # what ``WorkerPool.timing_method`` says of a real pool

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0

    def time_retrain(self) -> float:
        self.calls += 1
        return self.seconds


@pytest.mark.parametrize(
    "damage",
    ["truncated", "empty", "list", "no-seconds", "seconds-text", "seconds-nan", "seconds-bool"],
)
def test_a_damaged_timing_is_measured_again(task, data, tmp_path, damage):
    store = ReferenceStore(task, data, tmp_path)
    measure_retrain_seconds(store, CountingWorkers(1.5))
    path = store.directory / TIMING_FILE
    good = files.read_json(path)
    text = path.read_text()
    damaged = {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "list": "[1.5]",
        "no-seconds": json.dumps({k: v for k, v in good.items() if k != "retrain_seconds"}),
        "seconds-text": json.dumps({**good, "retrain_seconds": "fast"}),
        "seconds-nan": json.dumps({**good, "retrain_seconds": math.nan}),
        "seconds-bool": json.dumps({**good, "retrain_seconds": True}),
    }[damage]
    path.write_text(damaged)
    workers = CountingWorkers(2.5)
    assert measure_retrain_seconds(store, workers) == 2.5
    assert workers.calls == 1
    assert files.read_json(path) == {**good, "retrain_seconds": 2.5}
    assert measure_retrain_seconds(store, workers) == 2.5 and workers.calls == 1  # now trusted


# -- run records -------------------------------------------------------------------------------
def test_record_lines_that_are_not_whole_records_are_skipped(tmp_path):
    store = ResultsStore(tmp_path)
    store.ensure_writable()
    good = RunResult(
        "sub", "hash1", "made-by", 0, 11, "ok", 1.0, 0.9, 0.8, 0.7, [0.5, -1.0], "", "", 0,
        wall_seconds=1.0, cpu_seconds=0.9,  # NaN would not equal itself when read back
    )
    store.append(good)
    store.append(replace(good, run_index=6, confidences=None, seconds=math.nan))
    store.append(replace(good, run_index=7, status="error"))  # failed: tried again, not loaded
    store.append(replace(good, run_index=8, provenance="other code"))
    record = asdict(good)
    bad = [
        {**record, "run_index": "1"},  # a number as text
        {**record, "run_index": 2.0},
        {**record, "run_index": True},
        {**record, "seconds": "slow"},
        {**record, "confidences": ["a"]},
        {**record, "confidences": 0.5},
        {**record, "status": None},
        {k: v for k, v in {**record, "run_index": 3}.items() if k != "worker"},
        {**record, "run_index": 4, "extra": 1},
        [record],
        "ok",
    ]
    with open(store.runs_directory / "sub.jsonl", "ab") as handle:
        for line in bad:
            handle.write(json.dumps(line).encode() + b"\n")
        handle.write(b'{"submission": "sub", "file_h\xff\n')  # bad UTF-8
        handle.write(json.dumps({**record, "run_index": 5}).encode()[:40])  # torn last line
    runs = store.load_runs("sub", "made-by")
    assert sorted(runs) == [0, 6]
    assert runs[0] == good
    assert runs[6].confidences is None and math.isnan(runs[6].seconds)


# -- what the pool's key covers ----------------------------------------------------------------
def test_the_key_ignores_what_only_the_runs_use(task, data, tmp_path):
    key = ReferenceStore(task, data, tmp_path).key
    for change in ({"budget_fraction": 0.5}, {"loader_batch_size": 7}):
        assert ReferenceStore(task.with_options(**change), data, tmp_path).key == key
    for change in ({"recipe": replace(task.recipe, lr=0.1)}, {"num_models": 5},
                   {"root_seed": 1}):
        assert ReferenceStore(task.with_options(**change), data, tmp_path).key != key


def test_the_key_covers_the_training_and_evaluation_code(task, data, tmp_path, monkeypatch):
    seen = []
    real = sources.source_digest

    def recording(paths, *args, **kwargs):
        paths = list(paths)
        seen.extend(Path(p).resolve() for p in paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(sources, "source_digest", recording)
    store = ReferenceStore(task, data, tmp_path)
    names = {p.relative_to(sources.PACKAGE).as_posix() for p in seen}
    assert names >= {"data/networks.py", "training/loop.py", "data/examples.py",
                     "reference/pool.py", "reference/ensemble.py", "core/seeds.py",
                     "evaluation/metric.py", "evaluation/model_stats.py", "tasks/base.py",
                     "tasks/digits.py"}

    monkeypatch.setattr(sources, "source_digest", lambda paths, *a, **k: "other code")
    assert ReferenceStore(task, data, tmp_path).key != store.key


def test_source_digest_follows_contents_not_location(tmp_path):
    def tree(folder: Path, training: str) -> list[Path]:
        (folder / "harness").mkdir(parents=True)
        (folder / "harness" / "training.py").write_text(training)
        (folder / "harness" / "models.py").write_text("class Net: pass\n")
        return [folder / "harness" / "training.py", folder / "harness" / "models.py"]

    first = tree(tmp_path / "a", "lr = 0.1\n")
    digest = sources.source_digest(first, root=tmp_path / "a")
    assert sources.source_digest(first[::-1] + first, root=tmp_path / "a") == digest
    moved = tree(tmp_path / "b", "lr = 0.1\n")
    assert sources.source_digest(moved, root=tmp_path / "b") == digest
    edited = tree(tmp_path / "c", "lr = 0.2\n")
    assert sources.source_digest(edited, root=tmp_path / "c") != digest
    (tmp_path / "a" / "harness" / "models.py").write_text("class Net: pass  # a comment\n")
    assert sources.source_digest(first, root=tmp_path / "a") != digest  # accepted: retrains
    renamed = tmp_path / "a" / "harness" / "nets.py"
    first[1].rename(renamed)
    (tmp_path / "a" / "harness" / "nets.py").write_text("class Net: pass\n")
    assert sources.source_digest([first[0], renamed], root=tmp_path / "a") != digest


def test_a_record_appended_after_a_torn_line_is_kept_whole(tmp_path):
    store = ResultsStore(tmp_path)
    store.ensure_writable()
    record = RunResult("sub", "h", "p", 0, 1, "ok", 1.0, 1.0, 1.0, 1.0, [0.0], "", "", 0)
    store.append(record)
    with open(store.runs_directory / "sub.jsonl", "ab") as handle:
        handle.write(json.dumps(asdict(replace(record, run_index=1))).encode()[:30])  # killed
    store.append(replace(record, run_index=2))
    assert sorted(store.load_runs("sub", "p")) == [0, 2]


def test_a_second_holder_of_the_lock_is_told_and_waits_for_the_first(tmp_path):
    lock, marker = tmp_path / "cache" / ".lock", tmp_path / "first-done"
    holder = hold(lock, marker, 1.0)
    told = []
    with files.exclusive(lock, told.append):
        assert marker.exists()  # entered only after the first had finished its work
    holder.wait()
    assert told == [f"waiting for process {holder.pid}, which is working on {lock.parent}"]
    told.clear()
    with files.exclusive(lock, told.append):  # free: no message, no wait
        pass
    assert told == []


def test_the_lock_ends_with_its_process(tmp_path):
    lock, marker = tmp_path / ".lock", tmp_path / "never"
    holder = hold(lock, marker, 60.0)
    holder.kill()
    holder.wait()
    with files.exclusive(lock):
        assert not marker.exists()
