"""The one format of examples and batches, read in both competition styles.

The starting kit's code unpacks ``inputs, targets = batch``; every Kaggle entry reads
``batch['image']`` and ``batch['age_group']`` (the hidden data's items were dicts with keys
``image``, ``image_id``, ``age_group``, ``age``, ``person_id``). An :class:`Example` is both: a
2-tuple ``(image, label)`` that is also read by name, with the label named ``age_group`` on every
task (``label`` too) and the task's own metadata (surf: ``age``, ``person_id``, ``image_id``).

A batch is an :class:`Example` of stacked fields. PyTorch's ``default_collate`` builds it from
single examples (this module registers :func:`collate_examples` in
``torch.utils.data._utils.collate.default_collate_fn_map``, the extension point its documentation
names), so a loader a submission builds itself from ``loader.dataset``, e.g.
``DataLoader(ConcatDataset([retain.dataset, forget.dataset]), batch_size=64)``, yields the same
batches as the harness's own.

Tasks hold their examples in memory as columns (:class:`ExampleDataset`); the harness's own
training and evaluation gather batches from those columns by indexing (:func:`iterate_batches`),
in exactly the order a shuffling ``DataLoader`` with the same generator visits them, without a
per-example Python loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from torch.utils.data._utils.collate import collate, default_collate_fn_map

IMAGE = "image"
LABEL = "age_group"  # the competition's name for the label, used on every task
LABEL_ALIAS = "label"


class Example(tuple):
    """``(image, label)``, also readable as a mapping: ``example['image']``,
    ``example['age_group']`` (or ``['label']``) and the task's metadata by name. One example, or a
    batch of them (stacked fields)."""

    def __new__(cls, image: Any, label: Any, **metadata: Any) -> Example:
        example = super().__new__(cls, (image, label))
        example._metadata = metadata
        return example

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:  # pickling (DataLoader workers)
        return (self[0], self[1]), dict(self._metadata)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key == IMAGE:
                return tuple.__getitem__(self, 0)
            if key in (LABEL, LABEL_ALIAS):
                return tuple.__getitem__(self, 1)
            try:
                return self._metadata[key]
            except KeyError:
                raise KeyError(
                    f"{key!r}: batches have the fields {', '.join(self.keys())} "
                    f"(and {LABEL_ALIAS!r}, another name for {LABEL!r})"
                ) from None
        return tuple.__getitem__(self, key)

    def __contains__(self, key) -> bool:
        if isinstance(key, str):
            return key in (IMAGE, LABEL, LABEL_ALIAS) or key in self._metadata
        return tuple.__contains__(self, key)

    def keys(self) -> list[str]:
        return [IMAGE, LABEL, *self._metadata]

    def values(self) -> list[Any]:
        return [self[key] for key in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    def to(self, device: torch.device | str) -> Example:
        """A copy with every tensor field on ``device`` (strings and lists stay as they are)."""

        def move(value):
            return value.to(device) if isinstance(value, torch.Tensor) else value

        return Example(
            move(self[0]), move(self[1]), **{k: move(v) for k, v in self._metadata.items()}
        )

    def pin_memory(self) -> Example:  # DataLoader(pin_memory=True) calls this
        def pin(value):
            return value.pin_memory() if isinstance(value, torch.Tensor) else value

        return Example(pin(self[0]), pin(self[1]), **{k: pin(v) for k, v in self._metadata.items()})

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={_short(value)}" for key, value in self.items())
        return f"Example({fields})"


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})" if value.ndim else str(
            value.item()
        )
    return repr(value)


def collate_examples(batch: Sequence[Example], *, collate_fn_map=None) -> Example:
    """``default_collate`` for a list of examples: each field collated on its own."""
    first = batch[0]

    def field(pick: Callable[[Example], Any]) -> Any:
        return collate([pick(e) for e in batch], collate_fn_map=collate_fn_map)

    metadata = {key: field(lambda e, key=key: e._metadata[key]) for key in first._metadata}
    return Example(field(lambda e: e[0]), field(lambda e: e[1]), **metadata)


default_collate_fn_map[Example] = collate_examples


def inputs_targets(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch in either style: an Example, a dict with ``image`` and
    ``age_group`` (or ``label``), or an ``(inputs, targets, ...)`` sequence."""
    if isinstance(batch, Example):
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        label = LABEL if LABEL in batch else LABEL_ALIAS
        return batch[IMAGE], batch[label]
    return batch[0], batch[1]


class ExampleDataset(Dataset):
    """Examples held in memory as columns: ``images`` [n, ...] (stored compactly, e.g. uint8),
    ``labels`` [n] (int64), and metadata columns (tensors or lists of length n). ``transform``
    turns stored images into model inputs and must work on one image and on a stack of them alike
    (elementwise: a dtype change, a normalisation), so that an example read alone and the same
    example read in a batch are equal."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        metadata: Mapping[str, torch.Tensor | Sequence] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()
        self.metadata = dict(metadata or {})
        for key, column in self.metadata.items():
            if key in (IMAGE, LABEL, LABEL_ALIAS):
                raise ValueError(f"metadata column {key!r} would hide a field of every example")
            if len(column) != len(labels):
                raise ValueError(
                    f"metadata column {key!r} has {len(column)} rows, not {len(labels)}"
                )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def targets(self) -> list[int]:  # as torchvision datasets name their labels
        return self.labels.tolist()

    def tensor_columns(self) -> list[torch.Tensor]:
        """The columns held as tensors (to fingerprint the data)."""
        columns = [self.images, self.labels, *self.metadata.values()]
        return [c for c in columns if isinstance(c, torch.Tensor)]

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        return self.transform(images) if self.transform is not None else images

    def __getitem__(self, index: int) -> Example:
        index = int(index)
        metadata = {key: _row(column, index) for key, column in self.metadata.items()}
        return Example(self._inputs(self.images[index]), self.labels[index], **metadata)

    def rows(self, index: torch.Tensor, device: torch.device | str | None = None) -> Example:
        """The examples at ``index`` as one batch (what collating them one by one gives); images
        are moved to ``device`` before ``transform``, so a GPU does the conversion."""
        images = self.images.index_select(0, index)
        if device is not None:
            images = images.to(device, non_blocking=True)
        labels = self.labels.index_select(0, index)
        if device is not None:
            labels = labels.to(device, non_blocking=True)
        metadata = {key: _rows(column, index) for key, column in self.metadata.items()}
        return Example(self._inputs(images), labels, **metadata)


def _row(column, index: int):
    value = column[index]
    return value if not isinstance(column, torch.Tensor) else value.clone()


def _rows(column, index: torch.Tensor):
    if isinstance(column, torch.Tensor):
        return column.index_select(0, index)
    return [column[i] for i in index.tolist()]


def column_view(dataset: Dataset) -> tuple[ExampleDataset, torch.Tensor] | None:
    """For an ExampleDataset, a (nested) Subset of one, or a ConcatDataset of such views over one
    ExampleDataset: that dataset and the row index into it; None for anything else (a dataset that
    only a per-example loader can read)."""
    if isinstance(dataset, ExampleDataset):
        return dataset, torch.arange(len(dataset))
    if isinstance(dataset, Subset):
        inner = column_view(dataset.dataset)
        if inner is None:
            return None
        base, index = inner
        return base, index[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    if isinstance(dataset, ConcatDataset):
        parts = [column_view(part) for part in dataset.datasets]
        if not parts or any(p is None for p in parts) or len({id(p[0]) for p in parts}) != 1:
            return None
        return parts[0][0], torch.cat([index for _, index in parts])
    return None


def labels_of(dataset: Dataset) -> torch.Tensor:
    """All labels of a dataset, as a long tensor: from the columns where it has them, else from
    a ``targets`` attribute, else read example by example."""
    view = column_view(dataset)
    if view is not None:
        base, index = view
        return base.labels.index_select(0, index)
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return torch.as_tensor(targets, dtype=torch.long)
    return torch.as_tensor(
        [int(inputs_targets(dataset[i])[1]) for i in range(len(dataset))], dtype=torch.long
    )


# -- data order ----------------------------------------------------------------------------------
def _mirror_epoch(generator: torch.Generator, n: int) -> torch.Tensor:
    """One epoch's visiting order, drawing from ``generator`` what torch's DataLoader draws."""
    # The loader's iterator first draws a base seed for its workers (even with no workers) ...
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    # ... then RandomSampler yields one permutation of the n examples ...
    order = torch.randperm(n, generator=generator)
    # ... and, asked for more once it is exhausted, draws a permutation for the empty remainder
    # (num_samples % n == 0 examples), which still advances the generator.
    torch.randperm(n, generator=generator)
    return order


def _literal_epoch(generator: torch.Generator, n: int, batch_size: int) -> torch.Tensor:
    """One epoch's visiting order, read off a real shuffling DataLoader (slow, but always exact)."""
    loader = DataLoader(
        range(n), batch_size=batch_size, shuffle=True, generator=generator,
        collate_fn=torch.as_tensor,
    )
    return torch.cat(list(loader))


@functools.cache
def mirror_is_exact() -> bool:
    """Whether :func:`_mirror_epoch` reproduces this torch version's DataLoader (checked once)."""
    for n, batch_size in ((7, 3), (10, 10), (13, 64)):
        mirror, literal = torch.Generator().manual_seed(n), torch.Generator().manual_seed(n)
        for _ in range(3):
            if not torch.equal(_mirror_epoch(mirror, n), _literal_epoch(literal, n, batch_size)):
                return False
    return True


def epoch_order(generator: torch.Generator, n: int, batch_size: int) -> torch.Tensor:
    """The order in which ``DataLoader(..., batch_size, shuffle=True, generator=generator)`` over
    ``n`` examples visits them in its next epoch, drawing from ``generator`` what it draws: a fast
    replica where it matches this torch version's loader, the real loader otherwise."""
    if mirror_is_exact():
        return _mirror_epoch(generator, n)
    return _literal_epoch(generator, n, batch_size)


class ShuffleOrder:
    """The epochs' orders of ``DataLoader(dataset, batch_size, shuffle=True,
    generator=torch.Generator().manual_seed(seed))`` over ``n`` examples."""

    def __init__(self, n: int, seed: int, batch_size: int, literal: bool | None = None) -> None:
        self.n = n
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.literal = (not mirror_is_exact()) if literal is None else literal

    def next_epoch(self) -> torch.Tensor:
        """The next epoch's order: a permutation of ``range(n)``, read ``batch_size`` at a time."""
        if self.literal:
            return _literal_epoch(self.generator, self.n, self.batch_size)
        return _mirror_epoch(self.generator, self.n)


def iterate_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    gather: bool = True,
) -> Iterator[Example]:
    """One epoch of the batches ``DataLoader(dataset, batch_size, shuffle=shuffle,
    generator=generator)`` yields, in its order and drawing from ``generator`` what it draws,
    with their tensors on ``device``. Column-held datasets are gathered by indexing (unless
    ``gather`` is False); any other dataset goes through a real DataLoader."""
    view = column_view(dataset) if gather else None
    if view is None:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
        for batch in loader:
            yield _to_device(batch, device)
        return
    base, index = view
    n = len(index)
    if shuffle:
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        index = index[epoch_order(generator, n, batch_size)]
    for start in range(0, n, batch_size):
        yield base.rows(index[start : start + batch_size], device)


def _to_device(batch: Any, device) -> Any:
    if device is None:
        return batch
    if isinstance(batch, Example):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in batch]
