"""A ResNet-18-shaped task on random pixels, for the pool's benchmarks and tests (not registered:
its numbers mean nothing about unlearning).

CIFAR-10's format at any scale: uint8 images ``[n, 3, size, size]`` scaled to [-1, 1] on access,
10 classes, the starting kit's recipe (SGD with momentum and weight decay, crop-flip augmentation,
a cosine schedule), and :class:`harness.data.networks.ResNet18` at any width: width 64 and size 32
is CIFAR-10's workload for speed, small widths and sizes train in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.data.examples import ExampleDataset
from harness.data.networks import ResNet18
from harness.tasks.base import Task, TaskData, fingerprint, random_forget_split
from harness.training.loop import Recipe

SYNTHETIC_RECIPE = Recipe(
    epochs=2, batch_size=32, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine",
    augment="crop-flip",
)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [-1, 1] (elementwise, so one image and a stack agree)."""
    return images.float() / 127.5 - 1.0


@dataclass(frozen=True)
class SyntheticImageTask(Task):
    """Random CIFAR-format images and labels; a ResNet-18 of ``width`` channels."""

    width: int = 64
    image_size: int = 32
    num_train: int = 512
    num_held_out: int = 128  # halved into val and test

    def load_data(self) -> TaskData:
        rng = np.random.default_rng(self.root_seed)
        total = self.num_train + self.num_held_out
        shape = (total, 3, self.image_size, self.image_size)
        images = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))
        labels = torch.from_numpy(rng.integers(0, self.num_classes, total).astype(np.int64))
        half = self.num_train + self.num_held_out // 2
        forget, retain = random_forget_split(self.num_train, self.forget_fraction, self.seed)

        def split(first: int, stop: int) -> ExampleDataset:
            return ExampleDataset(images[first:stop], labels[first:stop], transform=to_unit_range)

        return TaskData(
            train=split(0, self.num_train), val=split(half, total),
            test=split(self.num_train, half),
            forget_idx=forget, retain_idx=retain,
            fingerprint=fingerprint(images.numpy(), labels.numpy(), forget),
        )

    def make_model(self) -> nn.Module:
        return ResNet18(num_classes=self.num_classes, width=self.width)


def synthetic_task(**overrides) -> SyntheticImageTask:
    return SyntheticImageTask(**{"name": "synthetic", "recipe": SYNTHETIC_RECIPE, **overrides})
