"""Training helpers: the batch augmentation against a literal per-image version."""

from __future__ import annotations

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
