"""The stacked-ensemble pool trainer: exact data order and initialisation, members that match
singly trained models, and a pool that is statistically the sequential path's pool."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from harness import ensemble
from harness.ensemble import (
    StackedEnsemble,
    init_member,
    select_chunk_trainer,
    supports_ensemble,
    train_chunk_ensemble,
    train_ensemble,
)
from harness.pool import ReferenceStore, train_chunk_sequential, train_reference_model
from harness.seeds import pool_seed
from harness.tasks.digits import DigitsTask, digits_task


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Both paths under test run with one thread: on a busy 2-core machine two OpenMP threads make
    small models many times slower, and the numbers compared here do not depend on speed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task() -> DigitsTask:
    return digits_task()


@pytest.fixture(scope="module")
def data(task):
    return task.load_data()


def short(task: DigitsTask, epochs: int = 2, **recipe_changes) -> DigitsTask:
    recipe = dataclasses.replace(task.recipe, epochs=epochs, **recipe_changes)
    return task.with_options(recipe=recipe)


# -- initialisation and short training ---------------------------------------------------------
def test_initialisation_is_the_sequential_one(task):
    indices = [0, 3, 17]
    stacked = StackedEnsemble([init_member(task, i) for i in indices])
    for member, index in zip(stacked.unstack(), indices, strict=True):
        torch.manual_seed(pool_seed(task.root_seed, index))
        single = task.make_model()
        for (name, a), (_, b) in zip(
            single.state_dict().items(), member.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), name
    assert len(stacked) == 3


@pytest.fixture(scope="module")
def short_pair(task, data):
    """Pool models 0, 5, 9 after two epochs, trained both ways."""
    quick, indices = short(task), [0, 5, 9]
    return quick, indices, train_chunk_ensemble(quick, data, indices), train_chunk_sequential(
        quick, data, indices
    )


def test_members_match_singly_trained_models(task, data):
    quick, indices = short(task), [0, 5, 9]
    stacked, seconds = train_ensemble(quick, data, indices)
    assert seconds > 0
    inputs = data.test.images
    for member, index in zip(stacked.unstack(), indices, strict=True):
        single, _ = train_reference_model(quick, data, index)
        for (name, a), (_, b) in zip(
            single.state_dict().items(), member.state_dict().items(), strict=True
        ):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4, msg=name)
        with torch.no_grad():
            torch.testing.assert_close(member(inputs), single.eval()(inputs), atol=1e-3, rtol=1e-4)


def test_chunk_stats_match_the_sequential_path(short_pair, data):
    _, indices, fast, slow = short_pair
    for key in ("retain_acc", "test_acc", "forget_acc"):  # at most one example flips
        n = {"retain_acc": len(data.retain), "test_acc": len(data.test)}.get(key, len(data.forget))
        np.testing.assert_allclose(getattr(fast, key), getattr(slow, key), atol=1.01 / n)
    np.testing.assert_allclose(fast.confidences, slow.confidences, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(
    "changes",
    [dict(class_weighted=True), dict(optimizer="adam", lr=1e-3, weight_decay=1e-4),
     dict(schedule="constant", batch_size=100, momentum=0.0)],
)
def test_recipe_variants_match(task, data, changes):
    quick, indices = short(task, epochs=1, **changes), [1, 2]
    fast = train_chunk_ensemble(quick, data, indices)
    slow = train_chunk_sequential(quick, data, indices)
    np.testing.assert_allclose(fast.confidences, slow.confidences, atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(fast.test_acc, slow.test_acc, atol=1.01 / len(data.test))


def test_model_stats_shapes(short_pair, data):
    _, indices, fast, _ = short_pair
    assert len(fast) == len(indices)
    assert fast.confidences.shape == (len(indices), len(data.forget_idx))
    assert fast.confidences.dtype == np.float64
    for key in ("retain_acc", "test_acc", "forget_acc", "seconds"):
        values = getattr(fast, key)
        assert values.shape == (len(indices),)
        assert np.isfinite(values).all()
    assert ((fast.test_acc >= 0) & (fast.test_acc <= 1)).all()
    assert fast.retain_acc.mean() > 0.8  # two epochs already fit the digits well
    assert (fast.seconds > 0).all() and np.ptp(fast.seconds) == 0  # an equal share each
    assert np.isfinite(fast.confidences).all()


def test_a_chunk_split_into_several_ensembles_gives_the_same_numbers(task, data, monkeypatch):
    quick, indices = short(task, epochs=1), [4, 6, 8]
    whole = train_chunk_ensemble(quick, data, indices)
    size = sum(p.numel() for p in quick.make_model().parameters())
    monkeypatch.setattr(ensemble, "MAX_STACKED_PARAMETERS", 2 * size)  # two members at a time
    assert ensemble._members_per_ensemble(quick) == 2
    split = train_chunk_ensemble(quick, data, indices)
    np.testing.assert_allclose(split.confidences, whole.confidences, atol=1e-4, rtol=1e-5)
    np.testing.assert_array_equal(split.test_acc, whole.test_acc)


def test_reference_store_accepts_the_ensemble_trainer(task, tmp_path):
    tiny = short(task, epochs=1).with_options(num_models=3)
    data = tiny.load_data()
    store = ReferenceStore(tiny, data, tmp_path)
    pool = store.pool(train_chunk=select_chunk_trainer(tiny, data))
    assert len(pool) == 3 and store.status()["models_done"] == 3
    again = store.pool(train_chunk=train_chunk_sequential)  # cached: nothing retrained
    np.testing.assert_array_equal(again.confidences, pool.confidences)


# -- which path -------------------------------------------------------------------------------
class _BatchNormMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn, self.fc = nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.fc1(x))))


@dataclasses.dataclass(frozen=True)
class _BatchNormTask(DigitsTask):
    def make_model(self) -> nn.Module:
        return _BatchNormMLP()


@dataclasses.dataclass(frozen=True)
class _DropoutTask(DigitsTask):
    def make_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, 16), nn.Dropout(0.5), nn.Linear(16, 10))


def test_path_selection(task, data):
    assert supports_ensemble(task) and supports_ensemble(task, data)
    assert select_chunk_trainer(task, data) is train_chunk_ensemble
    for other in (
        _BatchNormTask(name="bn", recipe=task.recipe),
        _DropoutTask(name="dropout", recipe=task.recipe),
        task.with_options(device="cuda"),
    ):
        assert not supports_ensemble(other)
        assert select_chunk_trainer(other) is train_chunk_sequential
    with pytest.raises(ValueError, match="stacked ensemble"):
        train_chunk_ensemble(_BatchNormTask(name="bn", recipe=task.recipe), data, [0])


def test_large_models_train_one_at_a_time(task, monkeypatch):
    monkeypatch.setattr(ensemble, "MAX_MODEL_PARAMETERS", 1000)
    assert select_chunk_trainer(task) is train_chunk_sequential


def test_selection_does_not_move_the_global_rng(task, data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    supports_ensemble(task, data)
    assert torch.equal(torch.rand(3), expected)


# -- statistical equivalence after the full recipe ----------------------------------------------
def equivalent(a, b, alpha: float = 1e-3) -> list[str]:
    """Reasons to reject "pools ``a`` and ``b`` come from the same distribution" (empty: none).

    Per-model mean forget confidence: Welch's t-test on the means and Levene's test on the spread
    (members sharing randomness would be too alike); test accuracy: Welch's t-test; retain
    accuracy: means within three standard errors (it is often 1.0 for every model); per forget
    example: Welch's t over models, of which at most 2 of ~126 may exceed 4 in size (each does
    with probability ~4e-4 under equal distributions at 16 + 16 models).
    """
    reasons = []
    conf_a, conf_b = a.confidences.mean(axis=1), b.confidences.mean(axis=1)
    if (p := stats.ttest_ind(conf_a, conf_b, equal_var=False).pvalue) < alpha:
        reasons.append(f"mean forget confidence differs (p={p:.2g})")
    if (p := stats.levene(conf_a, conf_b).pvalue) < alpha:
        reasons.append(f"spread of forget confidence differs (p={p:.2g})")
    if (p := stats.ttest_ind(a.test_acc, b.test_acc, equal_var=False).pvalue) < alpha:
        reasons.append(f"test accuracy differs (p={p:.2g})")
    se = np.sqrt(a.retain_acc.var(ddof=1) / len(a) + b.retain_acc.var(ddof=1) / len(b))
    if abs(a.retain_acc.mean() - b.retain_acc.mean()) > max(3 * se, 1e-3):
        reasons.append("retain accuracy differs")
    t = stats.ttest_ind(a.confidences, b.confidences, equal_var=False, axis=0).statistic
    if (far := int(np.sum(np.abs(t) > 4))) > 2:
        reasons.append(f"{far} forget examples' confidences differ (|t| > 4)")
    return reasons


@pytest.mark.slow
def test_ensemble_pool_is_statistically_the_sequential_pool(task, data):
    # different indices on the two sides: independent models, as two halves of a pool
    fast = train_chunk_ensemble(task, data, list(range(16)))
    slow = train_chunk_sequential(task, data, list(range(16, 32)))
    assert equivalent(fast, slow) == []
    assert fast.retain_acc.mean() > 0.99 and fast.test_acc.mean() > 0.9

    # the same check rejects a pool whose recipe is off (lr 0.2 -> 0.12), so it can fail
    off = short(task, epochs=task.recipe.epochs, lr=0.12)
    assert equivalent(train_chunk_ensemble(off, data, list(range(16))), slow) != []


@pytest.mark.parametrize("weighted", [False, True])
def test_ensemble_loss_is_the_mean_cross_entropy_of_each_member(weighted):
    from harness.ensemble import _ensemble_loss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, generator=generator) * 10
    targets = torch.randint(0, 4, (3, 5), generator=generator)
    weight = torch.tensor([0.5, 1.0, 2.0, 0.1]) if weighted else None
    expected = sum(
        torch.nn.functional.cross_entropy(logits[m], targets[m], weight=weight) for m in range(3)
    )
    torch.testing.assert_close(_ensemble_loss(logits, targets, weight), expected)


def test_a_model_s_stacked_forward_matches_its_forward(data):
    task = digits_task()
    models = [task.make_model() for _ in range(3)]
    inputs = data.test.images[:7]
    stacked = StackedEnsemble(models)
    batched = stacked.forward(inputs.expand(3, *inputs.shape))
    singles = torch.stack([m(inputs) for m in models])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)
