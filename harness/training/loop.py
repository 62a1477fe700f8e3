"""The recipe every task trains its models with, and the one training loop (``optimise``) that
trains a single model here and an ensemble of pool models in ``reference.ensemble``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from harness.data.examples import inputs_targets, iterate_batches, labels_of

AUGMENTATIONS = ("none", "crop-flip")
PRECISIONS = ("fp32", "bf16")
CROP_PADDING = 4
# Recipe fields added for speed: in a task's configuration (and so in cache keys) only when they
# differ from their defaults, so a recipe that does not use them keeps the configuration it had
SPEED_FIELDS = ("precision", "channels_last", "compile", "cudnn_benchmark", "deterministic")
# Recipe fields added after caches were keyed by it: likewise only when set, so the recipes that do
# not use them (digits) keep their cache keys
LATER_FIELDS = ("crop_fill", "original_best_val_from", "pool_best_val_from")


def crop_flip_draws(
    batch: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The random choices of :func:`crop_flip` for ``batch`` images, in the order it draws them:
    crop offsets [2, B] (rows, then columns) and flips [B]. Apart so that an ensemble can draw
    each member's choices from the member's own generator and crop all members at once."""
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, batch), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    return offsets, flips


def apply_crop_flip(
    images: torch.Tensor,
    offsets: torch.Tensor,
    flips: torch.Tensor,
    fill: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """The crops and flips ``crop_flip_draws`` chose, applied to a batch [B, C, H, W]; the
    padding is ``fill`` per channel (0 where None)."""
    batch, channels, height, width = images.shape
    offsets, flips = offsets.to(images.device), flips.to(images.device)
    padded = nn.functional.pad(images, (CROP_PADDING,) * 4)
    if fill is not None:
        inside = torch.zeros(height + 2 * CROP_PADDING, width + 2 * CROP_PADDING, dtype=torch.bool,
                             device=images.device)
        inside[CROP_PADDING : CROP_PADDING + height, CROP_PADDING : CROP_PADDING + width] = True
        value = torch.tensor(fill, dtype=images.dtype, device=images.device).view(channels, 1, 1)
        padded = torch.where(inside, padded, value)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    picked = padded[torch.arange(batch, device=images.device)[:, None, None], :,
                    rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return picked.permute(0, 3, 1, 2).contiguous()


def crop_flip(
    images: torch.Tensor, generator: torch.Generator, fill: tuple[float, ...] | None = None
) -> torch.Tensor:
    """Per image of a batch [B, C, H, W]: a random H x W crop of the image padded by 4 pixels on
    every side, then a horizontal flip with probability 1/2 (the starting kit's RandomCrop(32,
    padding=4) and RandomHorizontalFlip, done on the batch). The kit pads the PIL image with
    black before ``ToTensor`` and ``Normalize``; on inputs already normalised that padding is
    ``fill``, the normalised black (0 where None). Randomness from ``generator`` (CPU) alone."""
    return apply_crop_flip(images, *crop_flip_draws(len(images), generator), fill)


@dataclass(frozen=True)
class Recipe:
    """How a task trains a model from scratch (the original model, the pool, ``retrain``).

    The speed options (``SPEED_FIELDS``) change how the arithmetic is done, not the recipe:

    * ``precision="bf16"``: the forward pass under bfloat16 autocast (the loss in float32). It
      changes the numbers well beyond rounding, so it is part of the task's configuration and of
      every cache key built from it (the pool, the run records): a bf16 pool is another pool.
    * ``channels_last``: models and image batches in NHWC memory layout (faster convolutions on
      tensor-core GPUs).
    * ``compile``: the forward pass through ``torch.compile`` (a one-off compile per process).
    * ``cudnn_benchmark``: cuDNN times its convolution algorithms on the first batches and keeps
      the fastest (the choice may differ between runs: not with ``deterministic``).
    * ``deterministic``: ``torch.use_deterministic_algorithms`` (warning where torch has no
      deterministic kernel), cuDNN's deterministic algorithms and no autotuning, so that the same
      training on the same machine, software and thread count reproduces bit for bit.

    The last four change only the order of floating-point operations (numbers agree to rounding),
    but like any change of the recipe they enter the configuration when not at their defaults.

    Which epoch a training keeps (``original_best_val_from``, ``pool_best_val_from``): None keeps
    the last epoch; an epoch k (0-based) keeps the weights the organisers' ``train_lib.train``
    saves when called with ``min_save_epoch=k`` (see :func:`keep_best_val`). The original model
    and the pool's retrained models have a rule each, as in the organisers' ``main.py`` (0 and 20).
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (per epoch, T_max = epochs) or "constant"
    class_weighted: bool = False  # cross-entropy weighted 1/count per class of the training set
    augment: str = "none"  # "none" or "crop-flip": random 4-pixel-padded crops and mirror flips
    precision: str = "fp32"  # "fp32", or "bf16": the forward pass under bfloat16 autocast
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    deterministic: bool = False
    crop_fill: tuple[float, ...] | None = None  # the crop's padding per channel (None: 0)
    original_best_val_from: int | None = None  # None: the original model is the last epoch
    pool_best_val_from: int | None = None  # None: a pool model is its last epoch

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
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.deterministic and self.cudnn_benchmark:
            raise ValueError("deterministic and cudnn_benchmark exclude each other: autotuning "
                             "may pick another algorithm on every run")
        for name in ("original_best_val_from", "pool_best_val_from"):
            first = getattr(self, name)
            if first is not None and not 0 <= first < self.epochs:
                raise ValueError(f"{name} must be an epoch 0..{self.epochs - 1} or None, "
                                 f"got {first}")

    def config(self) -> dict:
        """The recipe as it enters a task's configuration: every field, less the speed options
        and later fields left at their defaults (a recipe written before they existed keeps its
        cache keys)."""
        defaults = {f.name: f.default for f in fields(self)}
        return {
            key: value for key, value in asdict(self).items()
            if key not in SPEED_FIELDS + LATER_FIELDS or value != defaults[key]
        }

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def autocast(self, device: str | torch.device):
        """The context of a training forward pass: bfloat16 autocast with ``precision="bf16"``."""
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)

    def layout(self, tensor: torch.Tensor) -> torch.Tensor:
        """An image batch in the recipe's memory layout (NHWC with ``channels_last``)."""
        if self.channels_last and tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def prepare(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """``model`` in the recipe's layout, and the callable that runs its forward pass
        (compiled with ``compile``; it shares the model's parameters)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: bfloat16 (autocast) raised to float32, float64 kept as it is."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


@contextmanager
def backend_flags(recipe: Recipe, device: str | torch.device) -> Iterator[None]:
    """Run a block with the recipe's cuDNN autotuning and deterministic mode, then restore the
    process's settings (workers and tests run other code afterwards)."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        if recipe.deterministic:
            if torch.device(device).type == "cuda":
                # cuBLAS reads it when it starts: set before a process's first CUDA matmul
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            cudnn.deterministic, cudnn.benchmark = True, False
        elif recipe.cudnn_benchmark:
            cudnn.benchmark = True
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


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
    """1 / count per class, as the organisers weighted the age groups (``surf.get_dataset``:
    1 / count over the training set); 0 for a class without examples (the reference's weight
    tensor would then be shorter than the classes and the loss would fail: the harness's own
    choice)."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    return torch.tensor(np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0),
                        dtype=torch.float32)


class BestVal:
    """The organisers' choice of checkpoint (``train_lib.train`` and ``_test`` with
    ``min_save_epoch=first``), for ``members`` models trained side by side. After every epoch a
    model's val accuracy is compared with its best so far, which starts at 0 and follows every
    epoch, also those before ``first``; an epoch that beats it strictly is saved when it is
    ``first`` or later. So the kept epoch is the best epoch from ``first`` on (the earliest of
    ties), provided it beats every earlier epoch. A model never saved keeps its last epoch: the
    reference then writes no file and goes on with the model in memory, the last epoch (the
    harness's reading; the reference does not say what should happen)."""

    def __init__(self, first: int, members: int = 1) -> None:
        self.first = first
        self.best = np.zeros(members, dtype=np.int64)  # val examples right: accuracy, exactly
        self.epochs = np.full(members, -1)  # the saved epoch per model, -1: none

    def update(self, epoch: int, correct: np.ndarray) -> np.ndarray:
        """Record an epoch's count of right val examples per model; True where to save now."""
        correct = np.asarray(correct, dtype=np.int64)
        better = correct > self.best
        self.best = np.where(better, correct, self.best)
        save = better & (epoch >= self.first)
        self.epochs[save] = epoch
        return save


def val_correct(model: nn.Module, val: Dataset, device: str | torch.device) -> int:
    """Val examples a model (in eval mode) classifies right: the organisers' per-epoch check."""
    logits, targets = predict(model, val, device)
    return int(np.sum(np.argmax(logits, axis=1) == targets)) if len(targets) else 0


def optimise(
    parameters: list[torch.Tensor],
    recipe: Recipe,
    epoch_batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    end_of_epoch: Callable[[int], None] | None = None,
) -> None:
    """The recipe's optimisation, the one training loop of the harness: its optimizer over
    ``parameters``, every batch of every epoch (``epoch_batches(epoch)`` yields inputs and
    targets) one step on ``loss_of(inputs, targets)``, the cosine schedule stepped once per
    epoch (``T_max = epochs``), then ``end_of_epoch(epoch)``. One model (:func:`train_model`)
    and an ensemble of pool models (``reference.ensemble.train_ensemble``) differ only in the
    batches, the loss and what they keep at an epoch's end, so that the two cannot drift
    apart."""
    optimizer = recipe.make_optimizer(parameters)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
        if recipe.schedule == "cosine"
        else None
    )
    for epoch in range(recipe.epochs):
        for inputs, targets in epoch_batches(epoch):
            loss = loss_of(inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if end_of_epoch is not None:
            end_of_epoch(epoch)


def train_model(
    model: nn.Module,
    dataset: Dataset,
    recipe: Recipe,
    seed: int,
    num_classes: int,
    device: str | torch.device = "cpu",
    gather: bool = True,
    *,
    weight_labels: torch.Tensor | None = None,
    val: Dataset | None = None,
    best_val_from: int | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``dataset``; data order comes from ``seed`` alone: the batches
    of a shuffling ``DataLoader`` with a generator seeded with ``seed``, gathered from the
    columns (fast), or with ``gather=False`` read through that DataLoader (the same batches at
    the per-example cost that submissions' loaders pay).

    A class-weighted recipe counts the classes of ``weight_labels`` (default: the dataset's own
    labels; the pool passes the full training set's, as the organisers did). With
    ``best_val_from`` the model ends as the epoch :class:`BestVal` keeps, scored on ``val``;
    without it, as the last epoch."""
    generator = torch.Generator().manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed + 1)
    weight = None
    if recipe.class_weighted:
        labels = labels_of(dataset) if weight_labels is None else weight_labels
        weight = class_weights(labels.numpy(), num_classes).to(device)
    rule = None if best_val_from is None else BestVal(best_val_from)
    if rule is not None and val is None:
        raise ValueError("keeping the best val epoch needs a val set")
    saved: dict[str, torch.Tensor] = {}
    model.to(device).train()

    def epoch_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in iterate_batches(dataset, recipe.batch_size, shuffle=True,
                                     generator=generator, device=device, gather=gather):
            inputs, targets = inputs_targets(batch)
            if recipe.augment == "crop-flip":
                inputs = crop_flip(inputs, augment_generator, recipe.crop_fill)
            yield inputs, targets

    def loss_of(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with recipe.autocast(device):
            logits = forward(recipe.layout(inputs))
        return nn.functional.cross_entropy(at_least_float32(logits), targets, weight=weight)

    def keep_best_val(epoch: int) -> None:
        if rule.update(epoch, [val_correct(model, val, device)])[0]:
            saved.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    with backend_flags(recipe, device):
        forward = recipe.prepare(model)
        optimise(list(model.parameters()), recipe, epoch_batches, loss_of,
                 None if rule is None else keep_best_val)
    if saved:
        model.load_state_dict(saved)
    if recipe.channels_last:
        model.to(memory_format=torch.contiguous_format)
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
