"""Tiny datasets in the real on-disk formats, for the real loaders (random pixels)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def write_cifar10(root: Path, per_batch: int = 12, test_size: int = 20, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with the official archive's python pickle batches: five
    training batches of ``per_batch`` images and a test batch, b'data' uint8 [n, 3072] and
    b'labels' lists, as torchvision's CIFAR10 reads them."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test_size if name == "test_batch" else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle)
    return folder


# one person per age; 20 people, 3 images each
AGES = [20, 23, 25, 26, 30, 31, 35, 36, 40, 41, 45, 46, 50, 51, 55, 56, 60, 61, 65, 70]
# by hand: the bin edges are linspace(20, 71, 11) = 20, 25.1, 30.2, 35.3, ..., 65.9, 71
GROUPS = [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9]
PER_PERSON = 3


def save_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def casia_image(folder: Path, person: int, k: int) -> Path:
    session = "1_session" if person % 2 else "2_session"  # the tree's "*" level
    return folder / "WBackground" / session / f"{person:04d}" / "real.rssdk" / "color" / f"{k}.jpg"


def make_casia(folder: Path) -> Path:
    """Folders named 0001.., Age_Gender.txt ids 0001.. (exact strings, as folder names) with stray
    whitespace and blank lines, and a person 0021 of age 99 without images (who moves the age
    bins, as every line of the file does in the organisers' code)."""
    lines = ["", *(f"  {p:04d} {age} {p % 2} " for p, age in enumerate(AGES, 1)), "0021 99 1", ""]
    (folder / "Age_Gender.txt").write_text("\n".join(lines))
    for person in range(1, len(AGES) + 1):
        for k in range(PER_PERSON):
            save_image(casia_image(folder, person, k), seed=100 * person + k)
    return folder


def make_kaggle(folder: Path, forget_people: tuple[int, ...] = (1, 2, 3)) -> Path:
    """Images 0 and 1 of each person in train (forget.csv for ``forget_people``), image 2 in
    validation.csv, as the Kaggle template names them (image id ``a-b``, image
    ``images/a/b.png``); the given age groups (person % 10) differ from the binned ages on
    purpose."""
    tables: dict[str, list[dict]] = {"retain": [], "forget": [], "validation": []}
    for person, age in enumerate(AGES, 1):
        for k in range(PER_PERSON):
            save_image(folder / "images" / str(person) / f"{k}.png", seed=100 * person + k)
            side = "validation" if k == 2 else "forget" if person in forget_people else "retain"
            row = {"image_id": f"{person}-{k}", "age_group": person % 10, "age": age}
            tables[side].append({**row, "person_id": person})
    for name, rows in tables.items():
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


def make_table(folder: Path, split: bool = False, test: bool = False) -> Path:
    """images.csv; with ``split``, images 0 and 1 are train and image 2 val (or, with ``test``,
    test for people 11..20)."""
    rows = []
    for person, age in enumerate(AGES, 1):
        for k in range(PER_PERSON):
            image = f"faces/{person}_{k}.png"
            save_image(folder / image, seed=100 * person + k)
            row = {"image": image, "age": age, "person_id": f"p{person}"}
            if split:
                row["split"] = "train" if k < 2 else "test" if test and person > 10 else "val"
            rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "images.csv", index=False)
    return folder


def write_casia(folder: Path, people: int, per_person: int, seed: int = 0) -> Path:
    """A CASIA-SURF tree of any size (the benchmark's data): ``Age_Gender.txt`` and
    ``WBackground/<session>/<person>/real.rssdk/color/<k>.jpg``, 32x32 random pixels, ages
    20..70."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ages = rng.integers(20, 71, people)
    lines = [f"{p:04d} {age} {p % 2}" for p, age in enumerate(ages, 1)]
    (folder / "Age_Gender.txt").write_text("\n".join(lines) + "\n")
    for person in range(1, people + 1):
        for k in range(per_person):
            path = casia_image(folder, person, k)
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
    return folder
