"""The competition's own task: age groups of faces, from CASIA-SURF or from a lab's own face table.

Sources: the organisers' released evaluation code, google-deepmind/unlearning_evaluation
(``surf.py``, ``train_lib.py``, ``main.py``, ``requirements.txt``, read at commit ffae0ff), and
their Kaggle template as issue 25 restates it. Where they are silent the rule is the harness's own
and says so. The README's surf table lists every rule.

The data folder holds one of three layouts, looked for in this order:

* CASIA-SURF, read as ``surf.SURFDataset`` reads it. ``Age_Gender.txt``: lines ``id age gender``;
  ids are exact strings (``01`` and ``1`` are two people) and an id listed twice is an error (the
  reference asserts both); the harness splits on any whitespace and ignores blank lines (its own
  leniency). Examples: the person folders ``WBackground/*/*`` sorted by path, then each folder's
  ``real.rssdk/color/*.jpg`` sorted, dot-files excluded (Python's ``glob``); a folder with images
  whose name is not an id of the file is an error (the reference fails on the lookup). They are
  shuffled with ``random.Random(43)`` and cut at ``int(0.8 n)`` and ``int(0.9 n)`` into
  train/val/test, so a person's images may lie in several splits.
* The Kaggle files ``retain.csv``, ``forget.csv`` and ``validation.csv`` (columns ``image_id,
  age_group, age, person_id``), as the organisers' Kaggle template lays them out: image id
  ``a-b`` is the image ``images/a/b.png`` (split at the first ``-``), and each file's rows are
  taken sorted by image path. Train is retain.csv's rows then forget.csv's, and the forget set
  is exactly forget.csv's rows. Kaggle gave no test split, so the people of validation.csv
  (sorted, then shuffled with ``random.Random(43)``) are halved: the images of the first half
  (rounded down) are the test set, the rest val; no person is in both (the harness's own rule).
* ``images.csv``, a lab's own faces (the harness's own layout): columns ``image`` (a path relative
  to the folder), ``person_id``, ``age`` or ``age_group`` (or both), and optionally ``split``
  (train, val or test). Without ``split`` the rows are sorted by ``image`` and split as
  CASIA-SURF's examples are; with ``split`` but no test rows, test is half of the val people as
  for Kaggle.

The forget set, outside the Kaggle layout: on the public split, the organisers' own, the first
split of scikit-learn's ``LeavePGroupsOut(n_groups=15)`` over the training images' person indices
(``surf.get_dataset``; a person's index is its place among the sorted ids of ``Age_Gender.txt``,
or of the table), which is every training image of the 15 training people whose ids sort first;
it does not depend on the root seed. On the private split, which the released code does not
have (the harness's own rule): every training image of 15 other training people, drawn from the
private split's seed among those not in the public set. ``forget_people`` changes the 15. Any
other forget set is given as ``forget.csv`` (the Kaggle layout) or, on any layout, as
``--forget-index``: a ``.npy`` file of indices into the training split in the order this module
builds it, kept in the file's order, on both splits (it wins over ``forget.csv``).

Images are decoded with ``torchvision.io`` and resized to 32x32 with
``torchvision.transforms.functional.resize`` (bilinear) on the uint8 tensor without
antialiasing, as ``T.Resize((32, 32))`` did under the torch 1.12.1 the released
``requirements.txt`` pins (torchvision 0.13 antialiased only PIL images; another version of that
file pins torch 2.2.0, whose torchvision antialiases tensors too). A grayscale image is expanded
to RGB (the reference would hand the model one channel). Images are held as uint8; the model sees
float 0-255, unnormalised (``SURFDataset.__getitem__``). Ages are whole years. Age groups are
``digitize(age, linspace(min_age, max_age + 1, 11)) - 1`` with the ages of every line of
``Age_Gender.txt`` (people without images move the edges, as in the reference), or of every row
of a table; a table with an ``age_group`` column keeps its groups as given (the Kaggle files
carry the competition's own); where a table has no ``age`` column, the ``age`` field is -1.
"""

from __future__ import annotations

import glob
import os
import random
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import resize

from harness.data.examples import ExampleDataset
from harness.data.networks import resnet18
from harness.tasks.base import (
    DataError,
    Task,
    TaskData,
    default_device,
    fingerprint,
    read_forget_index,
)
from harness.training.loop import Recipe

SPLIT_SEED = 43  # the organisers' shuffle; also halves a table's val people into val and test
FORGET_PEOPLE = 15
NUM_GROUPS = 10
IMAGE_SIZE = 32
UNKNOWN_AGE = -1
AGE_FILE = "Age_Gender.txt"
CASIA_FOLDERS = ("WBackground", "*", "*")  # the person folders
CASIA_IMAGES = ("real.rssdk", "color", "*.jpg")  # a person folder's images
KAGGLE_FILES = ("retain.csv", "forget.csv", "validation.csv")
KAGGLE_COLUMNS = ("image_id", "age_group", "age", "person_id")
TABLE_FILE = "images.csv"
SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = range(3)
_FILE, _LINE = "__file", "__row"  # where each table row came from, for messages
# torchvision 0.29 warns on every decode that its decoders are deprecated; they are the decoders
# the organisers read with (io.read_image), so they stay, and the warning is said once here
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
    category=DeprecationWarning,
)

# train_lib.train: Adam, lr 1e-4, weight decay 5e-3, cosine with T_max = epochs, cross-entropy
# weighted 1/count per age group of the training set (surf.get_dataset); main.py: 30 epochs, batch
# 64, the original model the best-val epoch (min_save_epoch 0), a retrained one the best-val epoch
# from epoch 20 on (min_save_epoch=20). No augmentation anywhere in the released code.
SURF_RECIPE = Recipe(
    epochs=30,
    batch_size=64,
    lr=1e-4,
    optimizer="adam",
    weight_decay=5e-3,
    schedule="cosine",
    class_weighted=True,
    original_best_val_from=0,
    pool_best_val_from=20,
)


@dataclass
class _Rows:
    """The examples before decoding, in their final order."""

    paths: list[Path]
    image_ids: list[str]
    person_ids: list[str]
    ages: np.ndarray  # int64, UNKNOWN_AGE where not given
    groups: np.ndarray | None  # int64 age groups as given, or None: bin the ages
    people: list[str] | None = None  # every person the dataset lists, where not only ``person_ids``


@dataclass
class _Layout:
    """A data folder read: its examples, their splits and, where given, the forget set."""

    source: Path  # the file named in messages about the dataset as a whole
    rows: _Rows
    split: np.ndarray  # TRAIN, VAL or TEST per row
    forget: np.ndarray | None  # bool per row where the forget set is given, else drawn by person


def age_groups(ages: np.ndarray) -> np.ndarray:
    """The competition's 10 age groups: equal-width bins from the youngest age to the oldest + 1,
    so that the oldest falls in the last group."""
    edges = np.linspace(ages.min(), ages.max() + 1, NUM_GROUPS + 1)
    return (np.digitize(ages, edges) - 1).astype(np.int64)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """Stored uint8 to what the model sees: float32 0-255 (the competition did not normalise)."""
    return images.float()


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _parse_age(text: str, where: str) -> int:
    try:
        age = float(text)
    except ValueError:
        raise DataError(f"{where}: age {text!r} is not a number") from None
    if not age.is_integer():
        raise DataError(f"{where}: age {text!r} is not a whole number of years")
    return int(age)


def _parse_group(text: str, where: str) -> int:
    try:
        group = float(text)
    except ValueError:
        group = -1.0
    if not group.is_integer() or not 0 <= group < NUM_GROUPS:
        raise DataError(f"{where}: age_group {text!r} is not an integer 0..{NUM_GROUPS - 1}")
    return int(group)


def split_bounds(count: int) -> tuple[int, int]:
    """Where ``SURFDataset`` cuts ``count`` shuffled examples: train ends at ``int(0.8 n)``, val
    at ``int(0.9 n)`` (float products, as there)."""
    return int(0.8 * count), int(0.9 * count)


def _by_image(count: int, source: Path) -> np.ndarray:
    """Split codes of ``count`` shuffled examples, cut at :func:`split_bounds`. Fewer than 10
    images is an error (the harness's own: some split would be empty)."""
    if count < 10:
        raise DataError(f"{source}: {count} images; expected at least 10 to split 80/10/10")
    end_train, end_val = split_bounds(count)
    return np.repeat([TRAIN, VAL, TEST], [end_train, end_val - end_train, count - end_val])


def _test_from_val(split: np.ndarray, person_ids: Sequence[str], source: Path) -> np.ndarray:
    """Split codes with the images of half the val people (drawn with the fixed split seed, not
    the root seed) moved to test, so that val and test share no person."""
    people = sorted({p for p, s in zip(person_ids, split, strict=True) if s == VAL})
    if len(people) < 2:
        raise DataError(
            f"{source}: {len(people)} people in val; expected at least 2 (half become the test set)"
        )
    random.Random(SPLIT_SEED).shuffle(people)
    test_people = set(people[: len(people) // 2])
    return np.array(
        [
            TEST if s == VAL and p in test_people else s
            for p, s in zip(person_ids, split, strict=True)
        ]
    )


def _read_age_file(path: Path) -> dict[str, int]:
    """Age per person id (exact strings, in file order) from ``Age_Gender.txt``; the gender
    column is not used."""
    ages: dict[str, int] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {number}"
        if len(fields) < 2:
            raise DataError(f"{where}: expected 'id age gender', got {line.strip()!r}")
        if fields[0] in ages:
            raise DataError(f"{where}: person {fields[0]!r} listed twice; expected each id once")
        ages[fields[0]] = _parse_age(fields[1], where)
    if not ages:
        raise DataError(f"{path}: no 'id age gender' lines")
    return ages


def casia_image_paths(folder: Path) -> list[Path]:
    """The images in ``SURFDataset``'s order: person folders ``WBackground/*/*`` sorted by path,
    then each folder's ``real.rssdk/color/*.jpg`` sorted (``glob`` skips dot-files)."""
    root = glob.escape(str(folder))
    paths = []
    for person in sorted(glob.glob(os.path.join(root, *CASIA_FOLDERS))):
        pattern = os.path.join(glob.escape(person), *CASIA_IMAGES)
        paths.extend(Path(image) for image in sorted(glob.glob(pattern)))
    return paths


def _read_casia(folder: Path) -> _Layout:
    listing = folder / AGE_FILE
    ages = _read_age_file(listing)
    groups = dict(zip(ages, age_groups(np.array(list(ages.values()))).tolist(), strict=True))
    paths = casia_image_paths(folder)
    if not paths:
        raise DataError(
            f"{listing}: no images found at {folder.joinpath(*CASIA_FOLDERS, *CASIA_IMAGES)}"
        )
    random.Random(SPLIT_SEED).shuffle(paths)
    person_ids = [path.parts[-4] for path in paths]
    for path, person in zip(paths, person_ids, strict=True):
        if person not in ages:
            raise DataError(
                f"{listing}: no age for person {person!r}, who has images in {path.parent}"
            )
    rows = _Rows(
        paths=paths,
        image_ids=[path.relative_to(folder).as_posix() for path in paths],
        person_ids=person_ids,
        ages=np.array([ages[person] for person in person_ids], dtype=np.int64),
        groups=np.array([groups[person] for person in person_ids], dtype=np.int64),
        people=list(ages),
    )
    return _Layout(listing, rows, _by_image(len(paths), listing), forget=None)


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV's cells as stripped strings, with the file and row of each row in extra columns."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({_first_line(error)})") from None
    frame = frame.rename(columns=lambda name: str(name).strip())
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{path}: missing column {column!r} (expected columns {', '.join(columns)})"
            )
    frame = frame.apply(lambda cells: cells.str.strip())
    return frame.assign(**{_FILE: str(path), _LINE: np.arange(1, len(frame) + 1)})


def _parse_table(frame: pd.DataFrame, image_column: str, locate: Callable[[str], Path]) -> _Rows:
    """The rows of a table read by :func:`_read_csv`, in its order; every image must exist."""
    paths, image_ids, person_ids, ages, groups = [], [], [], [], []
    for row in frame.to_dict("records"):
        where = f"{row[_FILE]} row {row[_LINE]}"
        image, person = row[image_column], row["person_id"]
        if not image or not person:
            raise DataError(f"{where}: expected a value in {image_column!r} and 'person_id'")
        path = locate(image)
        if not path.is_file():
            raise DataError(f"{path}: image not found (listed in {where})")
        paths.append(path)
        image_ids.append(image)
        person_ids.append(person)
        ages.append(_parse_age(row["age"], where) if "age" in row else UNKNOWN_AGE)
        if "age_group" in row:
            groups.append(_parse_group(row["age_group"], where))
    return _Rows(
        paths=paths,
        image_ids=image_ids,
        person_ids=person_ids,
        ages=np.array(ages, dtype=np.int64),
        groups=np.array(groups, dtype=np.int64) if "age_group" in frame else None,
    )


def kaggle_image(image_id: str) -> str:
    """The image of a Kaggle image id, relative to the folder: ``a-b`` is ``images/a/b.png``."""
    person, dash, rest = image_id.partition("-")
    return f"images/{person}/{rest}.png" if dash else ""


def _read_kaggle(folder: Path) -> _Layout:
    frames = []
    for name in KAGGLE_FILES:
        frame = _read_csv(folder / name, KAGGLE_COLUMNS)
        if frame.empty:
            raise DataError(f"{folder / name}: no rows; expected {', '.join(KAGGLE_COLUMNS)} rows")
        images = frame["image_id"].map(kaggle_image)
        bad = frame.loc[images == ""]
        if len(bad):
            raise DataError(f"{folder / name} row {bad[_LINE].iloc[0]}: image_id "
                            f"{bad['image_id'].iloc[0]!r} is not 'a-b' (image images/a/b.png)")
        frames.append(frame.assign(image=images).sort_values("image", kind="stable"))
    retain, forget, validation = (len(frame) for frame in frames)
    rows = _parse_table(pd.concat(frames, ignore_index=True), "image", folder.joinpath)
    rows.image_ids = pd.concat(frames)["image_id"].tolist()
    num_train = retain + forget
    both = sorted(set(rows.person_ids[:retain]) & set(rows.person_ids[retain:num_train]))
    if both:
        raise DataError(
            f"{folder / KAGGLE_FILES[0]} and {KAGGLE_FILES[1]}: person {both[0]!r} is in both "
            f"({len(both)} such people); expected each person on one side of the forget set"
        )
    source = folder / KAGGLE_FILES[2]
    split = np.repeat([TRAIN, VAL], [num_train, validation])
    given_forget = np.zeros(len(split), dtype=bool)
    given_forget[retain:num_train] = True
    return _Layout(source, rows, _test_from_val(split, rows.person_ids, source), given_forget)


def _read_image_table(folder: Path) -> _Layout:
    path = folder / TABLE_FILE
    frame = _read_csv(path, ("image", "person_id"))
    if "age" not in frame and "age_group" not in frame:
        raise DataError(f"{path}: missing column 'age' or 'age_group' (expected one of them)")
    if "split" not in frame:
        frame = frame.sort_values("image", kind="stable")
        order = list(range(len(frame)))
        random.Random(SPLIT_SEED).shuffle(order)
        frame = frame.iloc[order]
        return _Layout(
            path, _parse_table(frame, "image", folder.joinpath), _by_image(len(frame), path), None
        )
    unknown = frame.loc[~frame["split"].isin(SPLITS)]
    if len(unknown):
        raise DataError(
            f"{path} row {unknown[_LINE].iloc[0]}: split {unknown['split'].iloc[0]!r} is not one "
            f"of {', '.join(SPLITS)}"
        )
    split = frame["split"].map(SPLITS.index).to_numpy()
    for code in (TRAIN, VAL):
        if not (split == code).any():
            raise DataError(f"{path}: no {SPLITS[code]!r} rows in column 'split'")
    rows = _parse_table(frame, "image", folder.joinpath)
    if not (split == TEST).any():
        split = _test_from_val(split, rows.person_ids, path)
    return _Layout(path, rows, split, forget=None)


def _read_layout(folder: Path) -> _Layout:
    if (folder / AGE_FILE).is_file():
        return _read_casia(folder)
    if (folder / KAGGLE_FILES[0]).is_file():
        return _read_kaggle(folder)
    if (folder / TABLE_FILE).is_file():
        return _read_image_table(folder)
    raise DataError(
        f"{folder}: no face data; expected {AGE_FILE} (CASIA-SURF), "
        f"{', '.join(KAGGLE_FILES)} (Kaggle) or {TABLE_FILE}"
    )


def _decode_one(path: Path) -> np.ndarray:
    """One image as uint8 [3, 32, 32]: decoded by ``torchvision.io`` (as ``io.read_image``; PIL
    for formats it does not read) and resized as ``T.Resize((32, 32))`` did in torchvision 0.13:
    bilinear, no antialiasing."""
    try:
        try:
            image = decode_image(str(path), mode=ImageReadMode.RGB)
        except RuntimeError:  # a format torchvision does not decode: PIL's pixels
            with Image.open(path) as opened:
                image = torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1)
        small = resize(image, [IMAGE_SIZE, IMAGE_SIZE], InterpolationMode.BILINEAR,
                       antialias=False)
        return small.contiguous().numpy()
    except Exception as error:
        raise DataError(f"{path}: not a readable image ({_first_line(error)})") from None


def _decode(paths: Sequence[Path]) -> np.ndarray:
    """Every image as uint8 [n, 3, 32, 32], in one pass; threads, since decoding and resizing
    run outside the GIL and are most of the load time."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(_decode_one, paths))
    return np.ascontiguousarray(np.stack(images))


def organisers_forget(
    train_people: Sequence[str], listed: Sequence[str], count: int
) -> np.ndarray:
    """Indices of the training examples in the first split of ``LeavePGroupsOut(n_groups=count)``
    with each example's group its person's place among the sorted ``listed`` ids
    (``surf.get_dataset``): that split leaves out the ``count`` smallest groups, so the people
    whose ids sort first. Ascending, as the split gives them."""
    place = {person: rank for rank, person in enumerate(sorted(set(listed)))}
    groups = np.array([place[person] for person in train_people])
    return np.flatnonzero(np.isin(groups, np.unique(groups)[:count]))


@dataclass(frozen=True)
class SurfTask(Task):
    """Face images, 10 age groups, ResNet-18: the competition's own setup."""

    loader_batch_size: int = 64  # the competition's loaders
    device: str = field(default_factory=default_device)
    forget_people: int = FORGET_PEOPLE  # whose training images form the forget set
    forget_index: str | None = None  # a .npy file of training-set indices: the forget set

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.forget_people < 1:
            raise ValueError(f"forget_people must be at least 1, got {self.forget_people}")

    def config(self) -> dict:
        config = super().config()
        config.pop("forget_index")  # its contents are in the data fingerprint
        return config

    def load_data(self) -> TaskData:
        layout = _read_layout(self.data_folder())
        rows = layout.rows
        train_idx, val_idx, test_idx = (np.flatnonzero(layout.split == code) for code in range(3))
        if self.forget_index is not None:
            path = Path(self.forget_index).expanduser().resolve()
            forget = read_forget_index(path, len(train_idx))
        elif layout.forget is not None:
            forget = np.flatnonzero(layout.forget[train_idx])
        else:
            forget = self._draw_forget(layout, train_idx)
        retain = np.setdiff1d(np.arange(len(train_idx)), forget)
        labels = rows.groups if rows.groups is not None else age_groups(rows.ages)
        images = _decode(rows.paths)  # last: bad tables fail before the slow part
        person_ids = np.array(rows.person_ids, dtype=str)
        image_ids = np.array(rows.image_ids, dtype=str)

        def subset(idx: np.ndarray) -> ExampleDataset:
            metadata = {
                "age": torch.from_numpy(rows.ages[idx]),
                "person_id": person_ids[idx].tolist(),
                "image_id": image_ids[idx].tolist(),
            }
            return ExampleDataset(
                torch.from_numpy(images[idx]),
                torch.from_numpy(labels[idx]),
                metadata=metadata,
                transform=_to_float,
            )

        return TaskData(
            train=subset(train_idx),
            val=subset(val_idx),
            test=subset(test_idx),
            forget_idx=forget,
            retain_idx=retain,
            fingerprint=fingerprint(
                images,
                labels,
                rows.ages,
                person_ids,
                image_ids,
                train_idx,
                val_idx,
                test_idx,
                forget,
            ),
        )

    def _draw_forget(self, layout: _Layout, train_idx: np.ndarray) -> np.ndarray:
        """Indices into train of the forget set: the organisers' on the public split, another
        ``forget_people`` training people drawn from the private split's seed on the private."""
        train_people = [layout.rows.person_ids[i] for i in train_idx]
        people = sorted(set(train_people))
        if len(people) <= self.forget_people:
            raise DataError(
                f"{layout.source}: {len(people)} people in the training split; expected more "
                f"than forget_people={self.forget_people}"
            )
        listed = layout.rows.people if layout.rows.people is not None else people
        public = organisers_forget(train_people, listed, self.forget_people)
        if self.split == "public":
            return public
        taken = {train_people[i] for i in public}
        others = [person for person in people if person not in taken]
        if len(others) < self.forget_people:
            raise DataError(
                f"{layout.source}: {len(others)} training people outside the public forget set; "
                f"expected at least forget_people={self.forget_people} for the private split"
            )
        rng = np.random.default_rng(self.seed)
        chosen = set(rng.choice(others, size=self.forget_people, replace=False).tolist())
        return np.flatnonzero([person in chosen for person in train_people])

    def make_model(self) -> nn.Module:
        return resnet18(num_classes=self.num_classes)


def surf_task(**overrides) -> SurfTask:
    """The surf task with fields overridden (``data_dir``, ``root_seed``, ...)."""
    return SurfTask(**{"name": "surf", "recipe": SURF_RECIPE, **overrides})
