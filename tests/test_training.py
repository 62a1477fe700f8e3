"""Training helpers: the batch augmentation against a literal per-image version."""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
import torch

from harness.training.loop import CROP_PADDING, Recipe, crop_flip


def literal_crop_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One image at a time: zero-pad by 4, cut H x W at the drawn offsets, mirror if drawn."""
    batch, _, height, width = images.shape
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, batch), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    out = []
    for i in range(batch):
        padded = torch.nn.functional.pad(images[i], (CROP_PADDING,) * 4)
        top, left = int(offsets[0, i]), int(offsets[1, i])
        crop = padded[:, top : top + height, left : left + width]
        out.append(crop.flip(-1) if flips[i] else crop)
    return torch.stack(out)


def test_crop_flip_is_the_per_image_crop_and_flip():
    images = torch.randn(16, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    fast = crop_flip(images, torch.Generator().manual_seed(7))
    slow = literal_crop_flip(images, torch.Generator().manual_seed(7))
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, images)
    centred = crop_flip(images[:1], torch.Generator().manual_seed(1))
    assert centred.shape == (1, 3, 8, 6)


def test_recipe_refuses_unknown_augmentation():
    with pytest.raises(ValueError, match="augment must be one of none, crop-flip"):
        Recipe(epochs=1, batch_size=1, lr=0.1, augment="mixup")


# -- speed options -------------------------------------------------------------------------------
def _short_digits(**recipe_changes):
    import dataclasses

    from harness.tasks.digits import digits_task

    task = digits_task()
    return task.with_options(recipe=dataclasses.replace(task.recipe, epochs=1, **recipe_changes))


def test_speed_options_enter_the_config_only_when_set():
    from harness.reference.pool import ReferenceStore

    plain = _short_digits()
    recipe = plain.config()["recipe"]
    assert not set(recipe) & {"precision", "channels_last", "compile", "cudnn_benchmark",
                              "deterministic"}
    assert set(recipe) == {"epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                           "schedule", "class_weighted", "augment"}  # the keys they always had
    bf16 = _short_digits(precision="bf16")
    assert bf16.config()["recipe"]["precision"] == "bf16"
    data = plain.load_data()
    keys = {ReferenceStore(t, data).key for t in (plain, bf16, _short_digits(deterministic=True))}
    assert len(keys) == 3


def test_recipe_refuses_contradictory_speed_options():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        Recipe(epochs=1, batch_size=1, lr=0.1, precision="fp16")
    with pytest.raises(ValueError, match="exclude each other"):
        Recipe(epochs=1, batch_size=1, lr=0.1, deterministic=True, cudnn_benchmark=True)


@functools.cache
def _digits_retain():
    return _short_digits().load_data().retain


def _trained(task, seed: int = 5):
    from harness.reference.pool import train_from_scratch
    from harness.training.loop import torch_threads

    with torch_threads(1):
        model, _ = train_from_scratch(task, _digits_retain(), seed)
    return model.state_dict()


def test_bf16_changes_the_numbers_and_channels_last_does_not():
    plain = _trained(_short_digits())
    bf16 = _trained(_short_digits(precision="bf16"))
    assert max((plain[k] - bf16[k]).abs().max().item() for k in plain) > 1e-3
    # channels_last is a memory layout: the same numbers to rounding (no 4-d tensors here; the
    # ensemble tests cover convolutions), returned in the ordinary layout
    nhwc = _trained(_short_digits(channels_last=True))
    for key, value in plain.items():
        torch.testing.assert_close(nhwc[key], value)
        assert nhwc[key].is_contiguous()


def test_deterministic_mode_is_set_while_training_and_reproduces_bit_for_bit(monkeypatch):
    from harness.reference.pool import train_from_scratch

    task = _short_digits(deterministic=True)
    seen = []
    forward = task.make_model().__class__.forward

    def recording(self, x):
        seen.append((torch.are_deterministic_algorithms_enabled(),
                     torch.backends.cudnn.deterministic))
        return forward(self, x)

    monkeypatch.setattr(task.make_model().__class__, "forward", recording)
    before = torch.are_deterministic_algorithms_enabled()
    train_from_scratch(task, _digits_retain(), 3)
    assert seen and all(flags == (True, True) for flags in seen)
    assert torch.are_deterministic_algorithms_enabled() == before  # restored afterwards
    assert not torch.backends.cudnn.deterministic
    first, second = _trained(task), _trained(task)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_compile_runs_the_forward_through_torch_compile(monkeypatch):
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    _trained(_short_digits(compile=True))
    assert len(compiled) == 1 and isinstance(compiled[0], torch.nn.Module)


def test_crop_flip_draws_are_crop_flip_s():
    from harness.training.loop import apply_crop_flip, crop_flip_draws

    images = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    direct = crop_flip(images, torch.Generator().manual_seed(2))
    offsets, flips = crop_flip_draws(5, torch.Generator().manual_seed(2))
    assert torch.equal(apply_crop_flip(images, offsets, flips), direct)


# -- which epoch a training keeps: the organisers' train_lib.train -------------------------------
def reference_saved_epoch(accuracies: list[float], min_save_epoch: int) -> int | None:
    """train_lib.train and _test restated: best_acc starts at 0 and follows every epoch; an
    epoch whose val accuracy beats it is saved if it is min_save_epoch or later. None: no file."""
    best_acc, saved = 0.0, None
    for epoch, acc in enumerate(accuracies):
        if acc > best_acc:
            if epoch >= min_save_epoch:
                saved = epoch
            best_acc = acc
    return saved


def _prefix_models(task, data, epochs: int) -> list[dict]:
    """With a constant rate, the model after epoch e of a longer training is the model trained
    for e + 1 epochs: every epoch's weights, each from a fresh training."""
    from harness.reference.pool import train_from_scratch

    models = []
    for length in range(1, epochs + 1):
        short = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=length))
        model, _ = train_from_scratch(short, data.retain, 5)
        models.append(model)
    return models


@pytest.mark.parametrize(
    ("lr", "momentum", "first"), [(2.0, 0.0, 0), (2.0, 0.0, 2), (0.5, 0.9, 3), (0.5, 0.9, 0)]
)
def test_best_val_epoch_is_the_checkpoint_the_organisers_save(lr, momentum, first):
    """On recipes whose val accuracy jumps about (lr 2.0 peaks at an early epoch), the kept
    weights are those of the epoch the organisers' loop saves, or the last epoch if it saves
    none; ties keep the earlier epoch."""
    import numpy as np

    from harness.reference.pool import train_from_scratch
    from harness.training.loop import predict, torch_threads

    task = _short_digits(lr=lr, momentum=momentum, schedule="constant")
    data = task.load_data()
    epochs = 8
    with torch_threads(1):
        models = _prefix_models(task, data, epochs)
        accuracies = []
        for model in models:
            logits, targets = predict(model, data.val)
            correct = int(np.sum(logits.argmax(axis=1) == targets))
            accuracies.append(100.0 * correct / len(targets))
        full = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=epochs))
        kept, _ = train_from_scratch(full, data.retain, 5, val=data.val, best_val_from=first)
    saved = reference_saved_epoch(accuracies, first)
    expected = models[epochs - 1 if saved is None else saved].state_dict()
    for key, value in kept.state_dict().items():
        assert torch.equal(value, expected[key]), key
    if (lr, first) == (2.0, 0):
        assert saved is not None and saved < epochs - 1  # val accuracy peaks early here
    if (lr, first) == (2.0, 2):
        assert saved is None  # nothing from epoch 2 on beats the early peak: the last epoch


def test_best_val_rule_counts_earlier_epochs_and_keeps_the_first_of_ties():
    import numpy as np

    from harness.training.loop import BestVal

    counts = [5, 9, 7, 9, 8, 10, 10, 3]
    for first in range(len(counts)):
        rule = BestVal(first, members=2)
        for epoch, count in enumerate(counts):
            rule.update(epoch, np.array([count, 0]))
        expected = reference_saved_epoch([100.0 * c / 20 for c in counts], first)
        assert rule.epochs.tolist() == [-1 if expected is None else expected, -1]


def test_class_weights_are_one_over_count_of_the_full_training_set(monkeypatch):
    """surf.get_dataset: 1 / count per age group over the training set, forget set included; the
    same tensor trains the original and every retrained model (main.py)."""
    import numpy as np

    from harness.reference.pool import train_reference_model
    from harness.training import loop

    task = _short_digits(class_weighted=True)
    data = task.load_data()
    seen = []
    cross_entropy = torch.nn.functional.cross_entropy

    def recording(logits, targets, weight=None):
        seen.append(weight)
        return cross_entropy(logits, targets, weight=weight)

    monkeypatch.setattr(loop.nn.functional, "cross_entropy", recording)
    train_reference_model(task, data, 0)
    labels = data.train.labels.numpy()
    expected = torch.tensor([1.0 / np.sum(labels == c) for c in range(10)], dtype=torch.float32)
    retain_only = 1.0 / np.bincount(labels[data.retain_idx], minlength=10)
    assert not np.allclose(expected.numpy(), retain_only)
    assert seen and all(torch.equal(w, expected) for w in seen)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_optimise_steps_every_batch_of_every_epoch_on_the_recipe_s_schedule(schedule):
    """The one training loop: one optimizer step per batch (the parameters move by lr * grad
    under plain SGD), the learning rate of the recipe's schedule in each epoch, and the
    end-of-epoch call after the epoch's last step."""
    from harness.training.loop import optimise

    recipe = Recipe(epochs=3, batch_size=1, lr=0.5, schedule=schedule)
    weight = torch.zeros(1, requires_grad=True)
    seen = []

    def epoch_batches(epoch):
        for _ in range(2):
            seen.append(("batch", epoch))
            yield torch.ones(1), torch.ones(1)

    def loss_of(inputs, targets):
        return -(weight * inputs).sum()  # gradient -1: each step adds the step's lr

    def end_of_epoch(epoch):
        seen.append(("end", epoch, float(weight)))

    optimise([weight], recipe, epoch_batches, loss_of, end_of_epoch)
    lrs = [0.5 * (1 + math.cos(math.pi * e / 3)) / 2 if schedule == "cosine" else 0.5
           for e in range(3)]
    expected, total = [], 0.0
    for epoch, lr in enumerate(lrs):
        total += 2 * lr
        expected += [("batch", epoch), ("batch", epoch), ("end", epoch, pytest.approx(total))]
    assert seen == expected
