"""Smoke tests of every example submission and of the toolkit helpers they share.

Each submission runs on the digits task (a quickly trained original model, the harness's own
loaders) and on torchvision's ResNet-18 with tiny fake data (marked slow): it must return None or a
model of the same architecture, in eval mode, with finite weights and outputs, changed weights
(except ``do_nothing``), and the same result when rerun from the same seed.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from harness import toolkit
from harness.data.examples import ExampleDataset
from harness.data.networks import DigitsMLP, resnet18
from harness.execution.runner import seed_everything
from harness.methods.loading import discover, load_module
from harness.tasks import get_task
from harness.tasks.base import Task
from harness.training.loop import Recipe, train_model

SUBMISSIONS_DIR = Path(__file__).resolve().parent.parent / "submissions"
SUBMISSIONS, REJECTED = discover(SUBMISSIONS_DIR)
UNCHANGED = {"do_nothing"}  # submissions that must return the original weights


def _architecture(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(t.shape)) for name, t in model.state_dict().items()]


def _run(submission, original: nn.Module, loaders, seed: int) -> nn.Module:
    seed_everything(seed)
    net = copy.deepcopy(original)
    returned = load_module(submission).unlearning(net, *loaders)
    assert returned is None or isinstance(returned, nn.Module), type(returned)
    return net if returned is None else returned


def _check(name: str, original: nn.Module, model: nn.Module, inputs: torch.Tensor) -> None:
    assert _architecture(model) == _architecture(original)
    assert not model.training, "the model must be returned in eval mode"
    state = model.state_dict()
    for key, tensor in state.items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"non-finite values in {key}"
    before = original.state_dict()
    changed = [key for key in state if not torch.equal(state[key], before[key])]
    if name in UNCHANGED:
        assert not changed, f"changed: {changed}"
    else:
        assert changed, "the weights did not change"
    with torch.no_grad():
        assert torch.isfinite(model(inputs)).all()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[key], sb[key]) for key in sa)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread, as in the harness's workers: tiny models run faster that way, above
    all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_submission_is_valid():
    assert not REJECTED
    assert len(SUBMISSIONS) >= 17


# ------------------------------------------------------------------------------ digits task


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits")
    data = task.load_data()
    recipe = Recipe(epochs=5, batch_size=64, lr=0.2, momentum=0.9)
    original = train_model(task.make_model(), data.train, recipe, 0, task.num_classes)
    return task, data, original


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=[s.name for s in SUBMISSIONS])
def test_submission_on_digits(submission, digits):
    task, data, original = digits
    toolkit.set_current_task(task)
    try:
        models = [_run(submission, original, task.make_loaders(data, 7), 7) for _ in range(2)]
    finally:
        toolkit.set_current_task(None)
    inputs = data.test.images[:64]
    _check(submission.name, original, models[0], inputs)
    assert _same_weights(*models), "two runs from the same seed gave different models"


# ------------------------------------------------------------- declared hyperparameters

UNTUNABLE = {"do_nothing"}  # submissions without constants to declare
CHEAP_TUNABLE = ["bad_teacher", "gradient_ascent", "scrub"]  # a few milliseconds per run on digits


def test_every_shipped_method_declares_its_published_constants():
    """Each submission with constants declares a search space; each declared default lies in its
    range and is the default the function itself runs with (the AST reading and the module agree),
    so a call with four arguments runs the published method."""
    by_name = {s.name: s for s in SUBMISSIONS}
    assert {name for name, s in by_name.items() if not s.space} == UNTUNABLE
    for name, submission in by_name.items():
        if not submission.space:
            continue
        assert 2 <= len(submission.space) <= 5, name
        signature = inspect.signature(load_module(submission).unlearning)
        for parameter in submission.space.values():
            assert parameter.problem(parameter.default) is None, (name, parameter)
            assert signature.parameters[parameter.name].default == parameter.default, (
                name, parameter.name,
            )


@pytest.mark.parametrize("name", CHEAP_TUNABLE)
def test_explicit_published_settings_run_the_published_method(name, digits):
    """Passing the declared defaults as keywords gives exactly the model of a four-argument call,
    and moving one setting changes it."""
    task, data, original = digits
    submission = next(s for s in SUBMISSIONS if s.name == name)
    defaults = {n: p.default for n, p in submission.space.items()}
    entry = load_module(submission).unlearning
    lr = submission.space["lr"]

    def run(**settings):
        seed_everything(5)
        net = copy.deepcopy(original)
        returned = entry(net, *task.make_loaders(data, 5), **settings)
        return net if returned is None else returned

    toolkit.set_current_task(task)
    try:
        published, explicit, moved = run(), run(**defaults), run(lr=lr.high)
    finally:
        toolkit.set_current_task(None)
    assert _same_weights(published, explicit)
    assert not _same_weights(published, moved)


def test_toolkit_loops_take_their_constants_as_arguments(digits):
    """The shared loops' constants are arguments whose defaults are the published values: passing
    those values explicitly changes nothing, passing another changes the model."""
    task, data, original = digits
    cases = [  # (loop, its published constants, a short run's settings, a different setting)
        (
            toolkit.fanchuan_unlearning,
            dict(
                epochs=8, temperature=1.15, retain_batch_size=256, stage1_lr=0.005,
                forget_lr=3e-4, forget_lr_min=1e-6, retain_lr=0.004, retain_weight_decay=0.01,
                momentum=0.9,
            ),
            dict(epochs=1),
            dict(stage1_lr=0.05),
        ),
        (
            toolkit.random_label_unlearning,
            dict(epochs=10, lr=0.013, batch_size=256, momentum=0.9, weight_decay=5e-4),
            dict(epochs=1),
            dict(lr=0.1),
        ),
        (
            toolkit.finetune_to_start,
            dict(lr=0.01, weight_decay=0.1, milestones=(10, 15, 20), rate=0.1),
            {},
            dict(lr=0.1),
        ),
    ]

    def run(function, **settings):
        seed_everything(11)
        net = copy.deepcopy(original)
        retain, forget, _ = task.make_loaders(data, 11)
        if function is toolkit.finetune_to_start:  # batches and an epoch count, no default
            return function(net, toolkit.rebatch(retain, 128), 2, **settings)
        return function(net, retain, forget, **settings)

    for function, values, short, change in cases:
        parameters = inspect.signature(function).parameters
        assert {name: parameters[name].default for name in values} == values, function.__name__
        base = run(function, **short)
        assert _same_weights(base, run(function, **{**values, **short})), function.__name__
        assert not _same_weights(base, run(function, **short, **change)), function.__name__


# ----------------------------------------------------------------- ResNet-18, tiny fake data


@dataclass(frozen=True)
class _TinyResnetTask(Task):
    """A stand-in task whose model factory is ResNet-18 and whose recipe is one short epoch."""

    def make_model(self) -> nn.Module:
        return resnet18(num_classes=self.num_classes)


@pytest.fixture(scope="module")
def resnet_setup():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(48, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (48,), generator=generator)
    train = ExampleDataset(inputs[:40], labels[:40])
    retain, forget = Subset(train, range(32)), Subset(train, range(32, 40))
    val = ExampleDataset(inputs[40:], labels[40:])
    task = _TinyResnetTask(name="tiny-resnet", recipe=Recipe(epochs=1, batch_size=8, lr=0.01))
    torch.manual_seed(0)
    original = resnet18(num_classes=10).eval()

    def loaders():
        shuffled = torch.Generator().manual_seed(1)
        return (
            DataLoader(retain, batch_size=8, shuffle=True, generator=shuffled),
            DataLoader(forget, batch_size=8, shuffle=True, generator=shuffled),
            DataLoader(val, batch_size=8, shuffle=False),
        )

    return task, original, loaders, inputs[40:]


@pytest.mark.slow
@pytest.mark.parametrize("submission", SUBMISSIONS, ids=[s.name for s in SUBMISSIONS])
def test_submission_on_resnet18(submission, resnet_setup):
    task, original, loaders, inputs = resnet_setup
    toolkit.set_current_task(task)
    try:
        model = _run(submission, original, loaders(), 3)
    finally:
        toolkit.set_current_task(None)
    _check(submission.name, original, model, inputs)


# --------------------------------------------------------------------------- toolkit helpers


def test_layer_mapping_on_the_digits_mlp():
    net = DigitsMLP()
    assert toolkit.head(net) is net.fc
    assert toolkit.feature_layers(net) == [net.fc1]
    assert toolkit.stem(net) is net.fc1
    assert toolkit.last_block(net) is net.fc1
    assert toolkit.num_classes(net) == 10


def test_layer_mapping_on_resnet18():
    net = resnet18(num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert toolkit.head(net) is net.fc
    assert toolkit.feature_layers(net) == convs
    assert toolkit.stem(net) is net.conv1
    assert toolkit.last_block(net) is net.layer4
    assert toolkit.module_name(net, net.layer4) == "layer4"


def test_kl_helpers_match_kldivloss():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    log_p = torch.log_softmax(logits, dim=1)
    uniform = torch.full_like(logits, 0.1)
    kl = nn.KLDivLoss(reduction="batchmean")
    torch.testing.assert_close(toolkit.kl_uniform_to_model(logits), kl(log_p, uniform))
    torch.testing.assert_close(toolkit.kl_model_to_uniform(logits), kl(uniform.log(), log_p.exp()))
    teacher = torch.randn(5, 10, generator=torch.Generator().manual_seed(1))
    expected = nn.functional.kl_div(
        torch.log_softmax(logits / 4, dim=1), torch.softmax(teacher / 4, dim=1), reduction="sum"
    ) * 16 / 5
    torch.testing.assert_close(toolkit.distill_kl(logits, teacher, 4.0), expected)


def test_rebatch_covers_the_dataset_once_per_pass_and_reshuffles():
    base = ExampleDataset(torch.arange(20.0).unsqueeze(1), torch.arange(20))
    dataset = Subset(base, list(range(3, 20)))
    torch.manual_seed(0)
    batches = toolkit.rebatch(DataLoader(dataset, batch_size=4))
    assert len(batches) == 5
    passes = [torch.cat([targets for _, targets in batches]) for _ in range(2)]
    for order in passes:
        assert sorted(order.tolist()) == list(range(3, 20))
    assert not torch.equal(passes[0], passes[1])
    tagged = torch.utils.data.ConcatDataset([toolkit.Tagged(dataset, 1), toolkit.Tagged(base, 0)])
    rows = list(toolkit.rebatch(tagged, 64, shuffle=False))
    assert len(rows) == 1 and rows[0][2].tolist() == [1] * 17 + [0] * 20
    assert toolkit.labels_of(Subset(dataset, [0, 5])).tolist() == [3, 8]


def test_class_count_weights():
    weights = toolkit.class_count_weights(torch.tensor([0, 0, 0, 1]), 3, -0.1)
    torch.testing.assert_close(weights, torch.tensor([3.0**-0.1, 1.0, 0.0]))
