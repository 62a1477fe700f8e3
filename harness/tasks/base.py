"""What a task is: a plain, immutable description (data, splits, model, recipe, N, seed, budget).

A task module defines a ``Task`` subclass with ``load_data`` and ``make_model`` and registers an
instance factory under its name in ``harness.tasks.TASKS``; nothing else in the harness changes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from harness.core.seeds import derive_seed
from harness.training.loop import Recipe

SPLITS = ("public", "private")


class DataError(ValueError):
    """Missing or malformed task data: a one-line message naming the file and what was expected
    (the command line prints it without a traceback and exits non-zero)."""


def default_device() -> str:
    """Where a real task runs unless told otherwise: the GPU when one is visible."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def data_env_var(task_name: str) -> str:
    """The environment variable that names a task's data folder (e.g. ``HARNESS_CIFAR10_DATA``)."""
    return f"HARNESS_{task_name.upper()}_DATA"


@dataclass
class TaskData:
    """The loaded data of a task: splits of examples (no augmentation: a recipe that augments
    does it on the batches it trains on), and the forget / retain indices into ``train``."""

    train: Dataset
    val: Dataset
    test: Dataset
    forget_idx: np.ndarray
    retain_idx: np.ndarray
    fingerprint: str

    @property
    def forget(self) -> Dataset:
        return Subset(self.train, self.forget_idx.tolist())

    @property
    def retain(self) -> Dataset:
        return Subset(self.train, self.retain_idx.tolist())


@dataclass(frozen=True)
class Task:
    """Base class of every task; subclasses fill in the data and the model."""

    name: str
    recipe: Recipe
    num_classes: int = 10
    num_models: int = 512
    root_seed: int = 0
    forget_fraction: float = 0.1
    loader_batch_size: int = 64
    device: str = "cpu"
    budget_fraction: float = 0.2  # the competition's efficiency cut-off: 20% of retraining
    version: int = 1  # bump whenever a change alters the numbers this task produces
    split: str = "public"  # "public" or "private": the same task with another forget set
    data_dir: str | None = None  # local folder of a real dataset (never downloaded)
    checkpoint: str | None = None  # a state-dict file to use as the original model

    def __post_init__(self) -> None:
        if self.num_models < 2:
            raise ValueError(f"num_models must be at least 2, got {self.num_models}")
        if not 0 < self.forget_fraction < 1:
            raise ValueError(f"forget_fraction must be in (0, 1), got {self.forget_fraction}")
        if self.budget_fraction <= 0:
            raise ValueError(f"budget_fraction must be positive, got {self.budget_fraction}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")

    @property
    def seed(self) -> int:
        """The seed every random choice of this split comes from (the forget set, the models,
        the runs): the root seed on the public split; on the private split, as the competition
        made its private split, the same recipe with another seed derived from the root."""
        if self.split == "public":
            return self.root_seed
        return derive_seed(self.root_seed, "private-split")

    def with_options(self, **changes) -> Task:
        """A copy with some fields changed (``num_models``, ``root_seed``, ...)."""
        return replace(self, **changes)

    def load_data(self) -> TaskData:
        raise NotImplementedError

    def make_model(self) -> nn.Module:
        raise NotImplementedError

    def config(self) -> dict:
        """Everything of the task that determines its numbers, for cache keys and records. Where
        the data and the checkpoint lie does not: their contents do (the data fingerprint, and
        the checkpoint's hash)."""
        config = asdict(self)
        config["recipe"] = self.recipe.config()  # speed options only where they are set
        config.pop("device")  # a device changes speed, not the definition of the task
        config.pop("data_dir")
        if self.checkpoint is not None:
            config["checkpoint"] = self.checkpoint_digest()
        return config

    def checkpoint_digest(self) -> str:
        with open(self.checkpoint_path(), "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()[:16]

    def original_source(self) -> str:
        """Where the original model comes from, for the leaderboard: the task's recipe, or a
        user's checkpoint (the reference pool is always trained with the recipe)."""
        if self.checkpoint is None:
            return "trained with the task's recipe"
        return f"checkpoint {Path(self.checkpoint).name} (sha256 {self.checkpoint_digest()})"

    def data_folder(self) -> Path:
        """The task's data folder: ``data_dir``, else the ``HARNESS_<TASK>_DATA`` variable."""
        raw = self.data_dir or os.environ.get(data_env_var(self.name))
        if not raw:
            raise DataError(
                f"task {self.name!r} reads its data from a local folder: pass --data-dir PATH "
                f"or set {data_env_var(self.name)}"
            )
        folder = Path(raw).expanduser().resolve()
        if not folder.is_dir():
            raise DataError(f"{folder}: data folder not found")
        return folder

    def checkpoint_path(self) -> Path:
        path = Path(self.checkpoint).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"{path}: checkpoint file not found")
        return path

    def load_checkpoint(self) -> nn.Module:
        """The original model from the user's state-dict file (the starting kit's
        ``weights_resnet18_cifar10.pth`` layout); a file that does not fit is a DataError."""
        path = self.checkpoint_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise DataError(
                f"{path}: not a readable PyTorch state dict ({type(error).__name__}: "
                f"{first_line[:200]})"
            ) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if isinstance(state, dict):
            state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel
        model = self.make_model()
        problem = state_dict_mismatch(model, state)
        if problem:
            raise DataError(
                f"{path}: does not fit the {self.name} model ({type(model).__name__}, "
                f"{self.num_classes} classes): {problem}"
            )
        model.load_state_dict(state)
        return model.eval()

    def make_loaders(
        self, data: TaskData, seed: int, num_workers: int = 0
    ) -> tuple[DataLoader, DataLoader, DataLoader]:
        """The (retain, forget, val) loaders given to a submission; shuffling follows ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        common = dict(batch_size=self.loader_batch_size, num_workers=num_workers)
        retain = DataLoader(data.retain, shuffle=True, generator=generator, **common)
        forget = DataLoader(data.forget, shuffle=True, generator=generator, **common)
        val = DataLoader(data.val, shuffle=False, **common)
        return retain, forget, val


def state_dict_mismatch(model: nn.Module, state: object) -> str | None:
    """Why ``state`` cannot be loaded into ``model`` (missing or unexpected keys, other shapes),
    in a few words; None when it fits."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "the file holds no state dict of tensors"
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} missing keys (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})"] if unexpected else []
        return ", ".join(parts)
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            return (f"{key} has shape {list(state[key].shape)} in the checkpoint, "
                    f"{list(tensor.shape)} in the model")
    return None


def random_forget_split(
    num_train: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (forget, retain) index arrays: a random ``fraction`` of the training set."""
    rng = np.random.default_rng(seed)
    num_forget = max(1, int(round(fraction * num_train)))
    forget = np.sort(rng.choice(num_train, size=num_forget, replace=False))
    retain = np.setdiff1d(np.arange(num_train), forget)
    return forget, retain


def read_forget_index(path: Path, num_train: int) -> np.ndarray:
    """Training-set indices from a ``.npy`` file (``--forget-index``), checked, in the file's
    order: the starting kit's ``Subset(train_set, forget_idx)`` keeps it."""
    if not path.is_file():
        raise DataError(f"{path}: forget index file not found")
    try:
        index = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DataError(f"{path}: not a .npy array of indices ({error})") from None
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer) or len(index) == 0:
        raise DataError(
            f"{path}: expected a non-empty 1-D integer array of training-set indices, got "
            f"{index.dtype} of shape {index.shape}"
        )
    if index.min() < 0 or index.max() >= num_train:
        raise DataError(
            f"{path}: forget indices must lie in 0..{num_train - 1}, found "
            f"{index.min()}..{index.max()}"
        )
    if len(np.unique(index)) != len(index) or len(index) >= num_train:
        raise DataError(f"{path}: forget indices must be distinct and leave a retain set")
    return index.astype(np.int64)


def fingerprint(*arrays: np.ndarray) -> str:
    """A content hash of arrays (data, labels, split indices)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def task_code(task_class: type[Task]) -> tuple[list[Path], str]:
    """The code that defines a task class: the files of the modules it and its base classes
    come from, and the source text of any of those classes that has no file (one defined in a
    notebook cell or an interactive session; its qualified name where not even the text can be
    read). The pool's key and the runs' provenance include both."""
    import inspect
    import sys

    paths, texts = [], []
    for cls in task_class.__mro__[:-1]:  # ``object`` is the last
        module_file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        if module_file:
            paths.append(Path(module_file))
            continue
        try:
            texts.append(inspect.getsource(cls))
        except (OSError, TypeError):
            texts.append(f"{cls.__module__}.{cls.__qualname__}")
    return paths, "\n".join(texts)
