"""Training helpers: the batch augmentation against a literal per-image version."""

from __future__ import annotations

import functools

import pytest
import torch

from harness.training import CROP_PADDING, Recipe, crop_flip


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
    from harness.pool import ReferenceStore

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
    from harness.pool import train_from_scratch
    from harness.training import torch_threads

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
    from harness.pool import train_from_scratch

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
    from harness.training import apply_crop_flip, crop_flip_draws

    images = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    direct = crop_flip(images, torch.Generator().manual_seed(2))
    offsets, flips = crop_flip_draws(5, torch.Generator().manual_seed(2))
    assert torch.equal(apply_crop_flip(images, offsets, flips), direct)
