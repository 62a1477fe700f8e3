"""Single-model training and evaluation: the recipe every task trains its models with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from harness.batches import inputs_targets, iterate_batches, labels_of

AUGMENTATIONS = ("none", "crop-flip")
CROP_PADDING = 4


def crop_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image of a batch [B, C, H, W]: a random H x W crop of the image zero-padded by 4 pixels
    on every side, then a horizontal flip with probability 1/2 (the starting kit's RandomCrop(32,
    padding=4) and RandomHorizontalFlip, done on the batch; the padding is 0 in input space).
    Randomness from ``generator`` (CPU) alone."""
    batch, _, height, width = images.shape
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, batch), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    offsets, flips = offsets.to(images.device), flips.to(images.device)
    padded = nn.functional.pad(images, (CROP_PADDING,) * 4)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    picked = padded[torch.arange(batch, device=images.device)[:, None, None], :,
                    rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return picked.permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Recipe:
    """How a task trains a model from scratch (the original model, the pool, ``retrain``)."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (per epoch, T_max = epochs) or "constant"
    class_weighted: bool = False  # cross-entropy weighted by inverse class frequency
    augment: str = "none"  # "none" or "crop-flip": random 4-pixel-padded crops and mirror flips

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work, so that a timer read next measures it (CUDA runs
    asynchronously: without this, a timer stops while kernels are still running)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads. Small models train fastest on one thread: with
    more, every tiny op pays for thread synchronisation, and on a busy machine that costs 50x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (scikit-learn's "balanced"), 0 for absent classes."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def train_model(
    model: nn.Module,
    dataset: Dataset,
    recipe: Recipe,
    seed: int,
    num_classes: int,
    device: str | torch.device = "cpu",
    gather: bool = True,
) -> nn.Module:
    """Train ``model`` in place on ``dataset``; data order comes from ``seed`` alone: the batches
    of a shuffling ``DataLoader`` with a generator seeded with ``seed``, gathered from the
    columns (fast), or with ``gather=False`` read through that DataLoader (the same batches at
    the per-example cost that submissions' loaders pay)."""
    generator = torch.Generator().manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed + 1)
    weight = None
    if recipe.class_weighted:
        weight = class_weights(labels_of(dataset).numpy(), num_classes).to(device)
    model.to(device).train()
    optimizer = recipe.make_optimizer(model.parameters())
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
        if recipe.schedule == "cosine"
        else None
    )
    for _ in range(recipe.epochs):
        batches = iterate_batches(
            dataset, recipe.batch_size, shuffle=True, generator=generator, device=device,
            gather=gather,
        )
        for batch in batches:
            inputs, targets = inputs_targets(batch)
            if recipe.augment == "crop-flip":
                inputs = crop_flip(inputs, augment_generator)
            loss = nn.functional.cross_entropy(model(inputs), targets, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return model.eval()


@torch.no_grad()
def predict(
    model: nn.Module, dataset: Dataset, device: str | torch.device = "cpu", batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (float32, [n, C]) and targets ([n]) of ``model`` in eval mode on ``dataset``."""
    was_training = model.training
    model.eval()
    if len(dataset) <= 4 * batch_size:  # small sets in one pass
        batch_size = max(1, len(dataset))
    logit_parts, target_parts = [], []
    for batch in iterate_batches(dataset, batch_size, device=device):
        inputs, targets = inputs_targets(batch)
        logit_parts.append(model(inputs).float().cpu().numpy())
        target_parts.append(targets.cpu().numpy())
    if logit_parts:
        logits, targets = np.concatenate(logit_parts), np.concatenate(target_parts)
    else:
        logits, targets = np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    model.train(was_training)
    return logits, targets


def accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose largest logit is the target."""
    return float(np.mean(np.argmax(logits, axis=1) == targets)) if len(targets) else float("nan")
