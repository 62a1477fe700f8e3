"""The reference cache: content-hashed, atomic, resumable, and never trusting a corrupted file."""

from dataclasses import replace

import numpy as np
import pytest

import harness.reference.pool as pool_module
from harness.reference.pool import ReferenceStore, train_chunk_sequential
from harness.tasks import get_task


@pytest.fixture()
def task(monkeypatch):
    monkeypatch.setattr(pool_module, "CHUNK_SIZE", 3)
    base = get_task("digits", num_models=7)
    return base.with_options(recipe=replace(base.recipe, epochs=2))


@pytest.fixture(scope="module")
def data():
    return get_task("digits").load_data()


def counting(trainer, calls):
    def train(task, data, indices):
        calls.append(list(indices))
        return trainer(task, data, indices)

    return train


def assert_same(a, b):
    for key in ("confidences", "retain_acc", "test_acc", "forget_acc"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_interrupted_pool_resumes_with_identical_numbers(task, data, tmp_path):
    reference = ReferenceStore(task, data, tmp_path / "uninterrupted").pool()

    store = ReferenceStore(task, data, tmp_path / "interrupted")
    calls = []

    def interrupt_after_first_chunk(t, d, indices):
        if calls:
            raise KeyboardInterrupt
        calls.append(indices)
        return train_chunk_sequential(t, d, indices)

    with pytest.raises(KeyboardInterrupt):
        store.pool(train_chunk=interrupt_after_first_chunk)
    assert store.status()["models_done"] == 3
    resumed_calls = []
    resumed = store.pool(train_chunk=counting(train_chunk_sequential, resumed_calls))
    assert resumed_calls == [[3, 4, 5], [6]]  # the finished chunk was not retrained
    assert_same(resumed, reference)
    assert not list(store.directory.glob("*.tmp"))


def test_second_call_trains_nothing(task, data, tmp_path):
    store = ReferenceStore(task, data, tmp_path)
    first = store.pool()
    calls = []
    assert_same(store.pool(train_chunk=counting(train_chunk_sequential, calls)), first)
    assert calls == []


def test_corrupted_chunk_is_detected_and_retrained(task, data, tmp_path):
    store = ReferenceStore(task, data, tmp_path)
    first = store.pool()
    name = store.chunks()[1][0]
    path = store.directory / name
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    calls = []
    again = store.pool(train_chunk=counting(train_chunk_sequential, calls))
    assert calls == [[3, 4, 5]]
    assert_same(again, first)


def test_truncated_original_model_is_retrained(task, data, tmp_path):
    store = ReferenceStore(task, data, tmp_path)
    model = store.original_model()
    path = store.directory / "original.pt"
    path.write_bytes(path.read_bytes()[:100])
    again = store.original_model()
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_changed_configuration_never_reuses_a_cache(task, data, tmp_path):
    base = ReferenceStore(task, data, tmp_path).directory
    assert ReferenceStore(task.with_options(num_models=8), data, tmp_path).directory != base
    assert ReferenceStore(task.with_options(root_seed=1), data, tmp_path).directory != base
    other_recipe = task.with_options(recipe=replace(task.recipe, lr=0.1))
    assert ReferenceStore(other_recipe, data, tmp_path).directory != base
    assert ReferenceStore(task.with_options(device="cuda"), data, tmp_path).directory == base


def test_status_reports_progress(task, data, tmp_path):
    store = ReferenceStore(task, data, tmp_path)
    status = store.status()
    assert status["models_done"] == 0 and status["models_total"] == 7
    assert not status["original_model"]
    store.pool()
    assert store.status()["chunks_done"] == store.status()["chunks_total"] == 3


def test_chunks_trained_in_parallel_processes_give_the_same_numbers(task, data, tmp_path):
    serial = ReferenceStore(task, data, tmp_path / "serial").pool()
    parallel_store = ReferenceStore(task, data, tmp_path / "parallel")
    done = []
    parallel = parallel_store.pool(progress=done.append, jobs=2)
    assert sorted(done) == [1, 3, 3]
    assert_same(parallel, serial)
    assert parallel_store.status()["chunks_done"] == 3
