"""CIFAR-10 as in the competition's starting kit, read from a local folder (never downloaded).

Data: torchvision's ``cifar-10-batches-py`` folder (the official archive's python pickle batches
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``), named by ``--data-dir`` (the folder
itself or the folder that holds it) or ``HARNESS_CIFAR10_DATA``. Images are stored as uint8 and
normalised on access with the kit's mean (0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994,
0.2010). The 10,000 test images are halved into test and val as the kit does,
``random_split(held_out, [0.5, 0.5], generator=torch.Generator().manual_seed(42))`` (first half
test, second val). The forget set is a random 10% of the 50,000 training images drawn from the root
seed (the harness's own), or read from a ``.npy`` file of training-set indices (the kit shipped
``forget_idx.npy``), kept in the file's order as the kit's ``Subset(train_set, forget_idx)`` keeps
it; retain is every other index, ascending, as the kit builds it from a mask.

Model: torchvision's ResNet-18 (ImageNet stem), 10 classes. The original model is trained by the
harness with the recipe below, or loaded from the user's state-dict checkpoint (the kit's
``weights_resnet18_cifar10.pth`` layout); the reference pool is always trained by the harness with
this recipe, so with a checkpoint the original and the pool may come from different recipes.

Recipe: what the kit's notebook states of its original model's training, SGD lr 0.1, momentum 0.9,
weight decay 5e-4, ``RandomCrop(32, padding=4)`` and ``RandomHorizontalFlip`` on the PIL image
before ``ToTensor`` and ``Normalize``, so the padding is black: on the normalised inputs the
harness augments, the padding is black normalised (``BLACK``), which gives the same pixels. The
kit states no epochs, batch size or schedule for it; the harness's own choices: batch 128 (the
kit's loaders' size), a cosine schedule over 30 epochs (the organisers' ``main.py`` length), and
the last epoch kept (the kit says nothing of checkpoint selection).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import random_split

from harness.data.examples import ExampleDataset
from harness.data.networks import resnet18
from harness.tasks.base import (
    DataError,
    Task,
    TaskData,
    default_device,
    fingerprint,
    random_forget_split,
    read_forget_index,
)
from harness.training.loop import Recipe

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
SPLIT_SEED = 42  # the kit's generator for halving the test set
IMAGE_BYTES = 3 * 32 * 32
# a black pixel as Normalize makes it: (0 - mean) / std in float32, per channel
BLACK = tuple(((torch.zeros(3) - torch.tensor(MEAN)) / torch.tensor(STD)).tolist())

CIFAR10_RECIPE = Recipe(
    epochs=30, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
    augment="crop-flip", crop_fill=BLACK,
)


class Normalize:
    """uint8 images -> the kit's normalised float inputs; elementwise, so one image and a stack of
    them give the same numbers (a picklable class, for loader worker processes)."""

    def __init__(self) -> None:
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float() / 255.0 - mean) / std


def batches_folder(root: Path) -> Path:
    """The ``cifar-10-batches-py`` folder: ``root`` itself or its child of that name."""
    for candidate in (root, root / FOLDER):
        if (candidate / TEST_FILE).exists() or (candidate / TRAIN_FILES[0]).exists():
            return candidate
    raise DataError(
        f"{root}: no CIFAR-10 python batches here or in {root / FOLDER} (expected "
        f"{', '.join(TRAIN_FILES)} and {TEST_FILE} from the official cifar-10-python.tar.gz)"
    )


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 3, 32, 32], labels int64 [n]) of one pickle batch file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (a CIFAR-10 python batch is expected)")
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:
        raise DataError(
            f"{path}: not a CIFAR-10 python batch (a pickled dict with b'data' and b'labels': "
            f"{type(error).__name__}: {error})"
        ) from None
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES or len(data) != len(labels):
        raise DataError(
            f"{path}: expected b'data' of shape [n, {IMAGE_BYTES}] and n labels, got "
            f"{data.shape} and {len(labels)} labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must be 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


@dataclass(frozen=True)
class Cifar10Task(Task):
    """The starting kit's CIFAR-10 with ResNet-18."""

    device: str = field(default_factory=default_device)
    forget_index: str | None = None  # a .npy file of training-set indices (else from the seed)

    def config(self) -> dict:
        config = super().config()
        config.pop("forget_index")  # its contents are in the data fingerprint
        return config

    def load_data(self) -> TaskData:
        folder = batches_folder(self.data_folder())
        parts = [read_batch(folder / name) for name in TRAIN_FILES]
        train_images = np.concatenate([images for images, _ in parts])
        train_labels = np.concatenate([labels for _, labels in parts])
        test_images, test_labels = read_batch(folder / TEST_FILE)
        test_half, val_half = random_split(
            range(len(test_labels)), [0.5, 0.5],
            generator=torch.Generator().manual_seed(SPLIT_SEED),
        )
        test_idx, val_idx = np.array(test_half.indices), np.array(val_half.indices)
        if self.forget_index is not None:
            path = Path(self.forget_index).expanduser().resolve()
            forget = read_forget_index(path, len(train_labels))
            retain = np.setdiff1d(np.arange(len(train_labels)), forget)
        else:
            forget, retain = random_forget_split(
                len(train_labels), self.forget_fraction, self.seed
            )
        normalize = Normalize()

        def examples(images: np.ndarray, labels: np.ndarray) -> ExampleDataset:
            return ExampleDataset(
                torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels),
                transform=normalize,
            )

        return TaskData(
            train=examples(train_images, train_labels),
            val=examples(test_images[val_idx], test_labels[val_idx]),
            test=examples(test_images[test_idx], test_labels[test_idx]),
            forget_idx=forget,
            retain_idx=retain,
            fingerprint=fingerprint(
                train_images, train_labels, test_images, test_labels, val_idx, forget
            ),
        )

    def make_model(self) -> nn.Module:
        return resnet18(num_classes=self.num_classes)


def cifar10_task(**overrides) -> Cifar10Task:
    # the kit's loaders take batches of 128
    return Cifar10Task(
        **{"name": "cifar10", "recipe": CIFAR10_RECIPE, "loader_batch_size": 128, **overrides}
    )
