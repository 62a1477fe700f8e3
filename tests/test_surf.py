"""The surf task on tiny datasets written in its three on-disk layouts (CASIA-SURF tree, Kaggle
files, an image table): what it loads, how it splits, and a one-line DataError for bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from harness.tasks.base import DataError
from harness.tasks.surf import SURF_RECIPE, age_groups, surf_task

from fake_data import (
    AGES,
    GROUPS,
    casia_image,
    make_casia,
    make_kaggle,
    make_table,
    save_image,
)


def edit_csv(path: Path, edit) -> None:
    frame = pd.read_csv(path, dtype=str)
    edit(frame)
    frame.to_csv(path, index=False)


def load(folder: Path, **options):
    return surf_task(data_dir=str(folder), **options).load_data()


@pytest.fixture(scope="module")
def casia(tmp_path_factory) -> Path:
    return make_casia(tmp_path_factory.mktemp("casia"))


@pytest.fixture(scope="module")
def casia_data(casia):
    return load(casia)


def person_number(person_id: str) -> int:
    return int(person_id.removeprefix("p"))


def test_task_fields_follow_the_competition():
    task = surf_task()
    assert task.name == "surf" and task.recipe == SURF_RECIPE
    assert (SURF_RECIPE.optimizer, SURF_RECIPE.lr, SURF_RECIPE.weight_decay) == ("adam", 1e-4, 5e-3)
    assert SURF_RECIPE.epochs == 30 and SURF_RECIPE.batch_size == 64
    assert SURF_RECIPE.class_weighted and SURF_RECIPE.schedule == "cosine"
    # main.py: the original model saved from epoch 0 on, a retrained one from epoch 20 on
    assert (SURF_RECIPE.original_best_val_from, SURF_RECIPE.pool_best_val_from) == (0, 20)
    assert SURF_RECIPE.augment == "none"
    assert task.loader_batch_size == 64 and task.forget_people == 15
    assert task.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert task.make_model().fc.out_features == 10
    with pytest.raises(ValueError, match="forget_people"):
        surf_task(forget_people=0)


def test_images_are_stored_as_uint8_and_read_as_float_0_255(casia_data):
    train = casia_data.train
    assert train.images.dtype == torch.uint8 and train.images.shape == (48, 3, 32, 32)
    assert train.labels.dtype == torch.int64
    example = train[0]
    image, label = example
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert torch.equal(image, train.images[0].float()) and image.max() > 1  # not normalised
    assert torch.equal(example["image"], image) and int(example["age_group"]) == int(label)
    assert example["age"].dtype == torch.int64
    assert isinstance(example["person_id"], str) and isinstance(example["image_id"], str)
    assert AGES[int(example["person_id"]) - 1] == int(example["age"])
    batch = next(iter(DataLoader(train, batch_size=5)))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (5, 3, 32, 32)
    assert len(batch["person_id"]) == 5 and batch["age"].shape == (5,)


def test_age_groups_bin_every_line_of_the_age_file(casia_data):
    """surf.SURFDataset: the edges come from the ages of every line, people without images too."""
    assert age_groups(np.array(AGES)).tolist() == GROUPS
    ages = np.array([*AGES, 99])  # person 0021 (age 99) has no images
    edges = np.linspace(ages.min(), ages.max() + 1, 11)
    expected = np.digitize(ages, edges) - 1
    assert expected[:20].tolist() != GROUPS  # the 99 moves the edges
    for split in (casia_data.train, casia_data.val, casia_data.test):
        for i in range(len(split)):
            person = int(split[i]["person_id"])
            assert int(split.labels[i]) == expected[person - 1]


def test_casia_split_holds_every_image(casia_data):
    sizes = [len(casia_data.train), len(casia_data.val), len(casia_data.test)]
    assert sizes == [48, 6, 6]
    splits = (casia_data.train, casia_data.val, casia_data.test)
    ids = [image_id for split in splits for image_id in split.metadata["image_id"]]
    assert len(set(ids)) == 60
    assert "WBackground/1_session/0001/real.rssdk/color/0.jpg" in ids


def reference_examples(folder: Path) -> list[str]:
    """The organisers' example order and split, restated: person folders WBackground/*/* sorted,
    their color/*.jpg sorted, shuffled with random.Random(43), cut at int(0.8 n), int(0.9 n)."""
    import glob
    import os
    import random

    paths = []
    for person in sorted(glob.glob(os.path.join(str(folder), "WBackground", "*", "*"))):
        paths += sorted(glob.glob(os.path.join(person, "real.rssdk", "color", "*.jpg")))
    random.Random(43).shuffle(paths)
    n = len(paths)
    cut = [paths[: int(0.8 * n)], paths[int(0.8 * n) : int(0.9 * n)], paths[int(0.9 * n) :]]
    return [[os.path.relpath(path, folder) for path in part] for part in cut]


def write_people(folder: Path, images: dict[str, int], ages: dict[str, int]) -> Path:
    """A CASIA-SURF tree with ``images[id]`` images for each person folder, and an age file of
    ``ages`` (people may be listed without images)."""
    lines = [f"{person} {age} 0" for person, age in ages.items()]
    (folder / "Age_Gender.txt").write_text("\n".join(lines) + "\n")
    for number, (person, count) in enumerate(images.items()):
        session = "2_session" if number % 3 else "1_session"
        for k in range(count):
            path = folder / "WBackground" / session / person / "real.rssdk" / "color" / f"{k}.jpg"
            save_image(path, seed=1000 * number + k)
    return folder


@pytest.mark.parametrize("extra", range(10))
def test_order_and_split_boundaries_are_the_organisers_for_every_n_mod_10(tmp_path, extra):
    """Val and test sizes differ from n // 10 cuts whenever n mod 10 is 6 to 9."""
    images = {f"{p:02d}": 2 for p in range(1, 11)}  # 20 images, plus ``extra``
    images["10"] += extra
    folder = write_people(tmp_path, images, {p: 20 + int(p) for p in images})
    (folder / "WBackground" / "1_session" / "01" / "real.rssdk" / "color" / ".0.jpg").write_bytes(
        b"a dot-file, which glob skips"
    )
    data = load(folder, forget_people=2)
    got = [d.metadata["image_id"] for d in (data.train, data.val, data.test)]
    assert got == reference_examples(folder)
    n = 20 + extra
    assert [len(part) for part in got] == [int(0.8 * n), int(0.9 * n) - int(0.8 * n),
                                           n - int(0.9 * n)]


def test_images_are_resized_as_the_organisers_resized_them(tmp_path):
    """io.read_image, then T.Resize((32, 32)) on the uint8 tensor: bilinear, no antialiasing
    (torchvision 0.13, which torch 1.12.1 pins)."""
    from PIL import Image
    from torchvision.io import read_image
    from torchvision.transforms import functional

    folder = write_people(tmp_path, {f"{p}": 1 for p in range(1, 11)}, {f"{p}": p for p in
                                                                        range(1, 11)})
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)  # a 320x240 photo, smooth-ish
    big = np.cumsum(big, axis=1).astype(np.uint8)
    Image.fromarray(big).save(folder / "WBackground/1_session/1/real.rssdk/color/0.jpg")
    data = load(folder, forget_people=1)
    antialiased = 0
    for split in (data.train, data.val, data.test):
        for image_id, stored in zip(split.metadata["image_id"], split.images, strict=True):
            raw = read_image(str(folder / image_id))
            expected = functional.resize(raw, [32, 32], antialias=False)
            assert torch.equal(stored, expected), image_id
            antialiased += not torch.equal(stored, functional.resize(raw, [32, 32]))
            if raw.shape[1:] == (240, 320):
                bicubic = Image.open(folder / image_id).convert("RGB").resize(
                    (32, 32), Image.Resampling.BICUBIC)
                gap = np.abs(np.asarray(bicubic).astype(int) - stored.permute(1, 2, 0).numpy())
                assert gap.mean() > 5  # PIL's bicubic, the harness's old resize, is far off
    assert antialiased  # the rule is visible on this data


def test_forget_set_is_leave_p_groups_out_s_first_split(tmp_path):
    """surf.get_dataset: group = the person's index among the sorted ids of every line; the forget
    set is next(LeavePGroupsOut(n_groups=15).split(...)). Ids are exact strings: '01' and '1'
    are two people, and '10' sorts before '2'."""
    from sklearn.model_selection import LeavePGroupsOut

    people = ["01", "1", "2", "10", "0100", *(f"p{k:02d}" for k in range(20))]
    ages = {person: 20 + k for k, person in enumerate(people)}
    ages["zz-no-images"] = 90
    folder = write_people(tmp_path, {person: 3 for person in people}, ages)
    data = load(folder)
    train_people = data.train.metadata["person_id"]
    users = np.unique(np.array(list(ages)))
    ids = np.array([np.where(person == users)[0][0] for person in train_people])
    x = np.arange(len(ids)).reshape((-1, 1))
    retain, forget = next(LeavePGroupsOut(n_groups=15).split(x, None, ids))
    np.testing.assert_array_equal(data.forget_idx, forget)
    np.testing.assert_array_equal(data.retain_idx, retain)
    assert {"01", "1"} <= {train_people[i] for i in forget}
    assert len({train_people[i] for i in forget}) == 15


def test_forget_set_is_every_training_image_of_15_people(casia_data):
    people = casia_data.train.metadata["person_id"]
    forget = {people[i] for i in casia_data.forget_idx}
    retain = {people[i] for i in casia_data.retain_idx}
    assert len(forget) == 15 and not forget & retain
    assert sorted([*casia_data.forget_idx, *casia_data.retain_idx]) == list(range(48))
    assert np.all(np.diff(casia_data.forget_idx) > 0) and np.all(np.diff(casia_data.retain_idx) > 0)


def test_public_forget_set_is_fixed_and_the_private_one_is_drawn(tmp_path):
    people = [f"{p:03d}" for p in range(40)]
    folder = write_people(tmp_path, {p: 2 for p in people}, {p: 20 + int(p) for p in people})

    def forget_people(**options) -> set[str]:
        data = load(folder, **options)
        train = data.train.metadata["person_id"]
        return {train[i] for i in data.forget_idx}

    public = forget_people()
    assert forget_people(root_seed=1) == public  # the organisers' set: no seed
    private, other = forget_people(split="private"), forget_people(split="private", root_seed=1)
    assert len(private) == len(other) == 15 and private != other
    assert not private & public and not other & public


def test_root_seed_moves_only_the_private_forget_people(casia, casia_data):
    other = load(casia, root_seed=1)
    np.testing.assert_array_equal(other.forget_idx, casia_data.forget_idx)
    assert other.fingerprint == casia_data.fingerprint
    private = [load(casia, split="private", forget_people=2, root_seed=seed) for seed in (0, 1)]
    assert not np.array_equal(private[0].forget_idx, private[1].forget_idx)
    assert torch.equal(private[0].test.images, casia_data.test.images)


def test_loading_twice_gives_the_same_data(casia, casia_data):
    again = load(casia)
    assert again.fingerprint == casia_data.fingerprint
    assert torch.equal(again.train.images, casia_data.train.images)
    np.testing.assert_array_equal(again.forget_idx, casia_data.forget_idx)


def test_data_folder_from_the_environment(casia, casia_data, monkeypatch):
    monkeypatch.setenv("HARNESS_SURF_DATA", str(casia))
    assert surf_task().load_data().fingerprint == casia_data.fingerprint
    monkeypatch.delenv("HARNESS_SURF_DATA")
    with pytest.raises(DataError, match="HARNESS_SURF_DATA"):
        surf_task().load_data()


def test_kaggle_forget_set_is_forget_csv(tmp_path):
    data = load(make_kaggle(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 10)
    ids = data.train.metadata["image_id"]
    expected = set(pd.read_csv(tmp_path / "forget.csv", dtype=str)["image_id"])
    assert {ids[i] for i in data.forget_idx} == expected
    assert expected == {"1-0", "1-1", "2-0", "2-1", "3-0", "3-1"}
    val_people, test_people = (set(d.metadata["person_id"]) for d in (data.val, data.test))
    assert len(val_people) == len(test_people) == 10 and not val_people & test_people
    for split in (data.train, data.val, data.test):  # age groups as the files give them
        people = np.array([int(p) for p in split.metadata["person_id"]])
        np.testing.assert_array_equal(split.labels.numpy(), people % 10)
    assert data.train[0]["image"].shape == (3, 32, 32)


def test_kaggle_image_ids_name_images_a_b_png_and_rows_are_sorted_by_path(tmp_path):
    """The Kaggle template: image id 'a-b' is images/a/b.png, rows taken sorted by image path."""
    from torchvision.io import read_image
    from torchvision.transforms import functional

    make_kaggle(tmp_path)
    for name in ("retain.csv", "validation.csv"):  # rows written in another order
        frame = pd.read_csv(tmp_path / name, dtype=str)
        frame.iloc[::-1].to_csv(tmp_path / name, index=False)
    data = load(tmp_path)
    files = [pd.read_csv(tmp_path / name, dtype=str) for name in ("retain.csv", "forget.csv")]

    def path(image_id: str) -> str:
        a, b = image_id.split("-", 1)
        return f"images/{a}/{b}.png"

    expected = [i for f in files for i in sorted(f["image_id"], key=path)]
    assert data.train.metadata["image_id"] == expected
    assert expected[:3] == ["10-0", "10-1", "11-0"]  # string order of the paths
    first = read_image(str(tmp_path / path(expected[0])))
    assert torch.equal(data.train.images[0], functional.resize(first, [32, 32], antialias=False))


def test_image_table_without_split_is_split_80_10_10(tmp_path):
    data = load(make_table(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (48, 6, 6)
    labels = np.concatenate([d.labels.numpy() for d in (data.train, data.val, data.test)])
    people = [p for d in (data.train, data.val, data.test) for p in d.metadata["person_id"]]
    assert labels.tolist() == [GROUPS[person_number(p) - 1] for p in people]
    assert data.train[0]["image_id"].startswith("faces/")


def test_image_table_split_column_is_followed(tmp_path):
    data = load(make_table(tmp_path, split=True, test=True))
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 10)
    assert all(person_number(p) > 10 for p in data.test.metadata["person_id"])
    people = data.train.metadata["person_id"]
    assert len({people[i] for i in data.forget_idx}) == 15 and len(data.forget_idx) == 30


def test_image_table_without_test_rows_halves_val_by_person(tmp_path):
    data = load(make_table(tmp_path, split=True))
    val_people, test_people = (set(d.metadata["person_id"]) for d in (data.val, data.test))
    assert len(val_people) == len(test_people) == 10 and not val_people & test_people


def test_image_table_with_age_groups_only(tmp_path):
    make_table(tmp_path)
    edit_csv(tmp_path / "images.csv", lambda f: f.insert(1, "age_group", f.pop("age").str[0]))
    data = load(tmp_path)
    people = np.array([AGES[person_number(p) - 1] for p in data.train.metadata["person_id"]])
    np.testing.assert_array_equal(data.train.labels.numpy(), people // 10)  # tens digit of age
    assert set(data.train.metadata["age"].tolist()) == {-1}


def drop_age_line(folder: Path) -> None:
    path = folder / "Age_Gender.txt"
    path.write_text(re.sub(r"(?m)^\s*0007 .*$", "", path.read_text()))


def word_age(folder: Path) -> None:
    path = folder / "Age_Gender.txt"
    path.write_text(re.sub(r"(?m)^(\s*0007) 35", r"\1 old", path.read_text()))


def corrupt_jpeg(folder: Path) -> None:
    casia_image(folder, 3, 1).write_bytes(b"not a jpeg")


def truncate_jpeg(folder: Path) -> None:
    path = casia_image(folder, 3, 1)
    path.write_bytes(path.read_bytes()[:200])


def set_cell(name: str, column: str, value: str, row: int = 0):
    def change(frame: pd.DataFrame) -> None:
        frame.loc[row, column] = value

    def edit(folder: Path) -> None:
        edit_csv(folder / name, change)

    return edit


def drop_column(name: str, column: str):
    def edit(folder: Path) -> None:
        edit_csv(folder / name, lambda frame: frame.pop(column))

    return edit


def add_retain_person_to_forget(folder: Path) -> None:
    retain = pd.read_csv(folder / "retain.csv", dtype=str)
    forget = pd.read_csv(folder / "forget.csv", dtype=str)
    pd.concat([forget, retain.iloc[[0]]]).to_csv(folder / "forget.csv", index=False)


CASIA, KAGGLE, TABLE = make_casia, make_kaggle, make_table
BAD_INPUTS = {
    "no face data": (
        lambda folder: folder,
        lambda folder: None,
        r"Age_Gender\.txt.*retain\.csv.*images\.csv",
    ),
    "no images": (CASIA, lambda f: shutil.rmtree(f / "WBackground"), r"Age_Gender\.txt: no images"),
    "no age line": (CASIA, drop_age_line, r"Age_Gender\.txt: no age for person '0007'"),
    "unpadded id": (
        CASIA,
        lambda f: (f / "Age_Gender.txt").write_text(
            (f / "Age_Gender.txt").read_text().replace("0003 ", "3 ")),
        r"Age_Gender\.txt: no age for person '0003'",
    ),
    "id twice": (
        CASIA,
        lambda f: (f / "Age_Gender.txt").write_text(
            (f / "Age_Gender.txt").read_text() + "0005 25 1\n"),
        r"Age_Gender\.txt line \d+: person '0005' listed twice",
    ),
    "word age": (CASIA, word_age, r"Age_Gender\.txt line \d+: age 'old' is not a number"),
    "corrupt jpeg": (CASIA, corrupt_jpeg, r"0003/real\.rssdk/color/1\.jpg: not a readable image"),
    "cut jpeg": (CASIA, truncate_jpeg, r"0003/real\.rssdk/color/1\.jpg: not a readable image"),
    "column": (
        TABLE,
        drop_column("images.csv", "person_id"),
        r"images\.csv: missing column 'person_id'",
    ),
    "no label": (TABLE, drop_column("images.csv", "age"), r"images\.csv: missing column 'age' or"),
    "group 10": (
        TABLE,
        lambda f: edit_csv(f / "images.csv", lambda t: t.insert(1, "age_group", "10")),
        r"images\.csv row \d+: age_group '10' is not an integer 0\.\.9",
    ),
    "text age": (TABLE, set_cell("images.csv", "age", "abc"), r"images\.csv row 1: age 'abc'"),
    "half age": (TABLE, set_cell("images.csv", "age", "30.5"), r"images\.csv.*whole number"),
    "no image": (
        TABLE,
        set_cell("images.csv", "image", "faces/gone.png"),
        r"faces/gone\.png: image not found \(listed in .*images\.csv row 1\)",
    ),
    "split name": (
        lambda f: make_table(f, split=True),
        set_cell("images.csv", "split", "dev", row=4),
        r"images\.csv row 5: split 'dev'",
    ),
    "kaggle column": (
        KAGGLE,
        drop_column("validation.csv", "age"),
        r"validation\.csv: missing column 'age'",
    ),
    "kaggle file": (KAGGLE, lambda f: (f / "forget.csv").unlink(), r"forget\.csv: file not found"),
    "empty forget": (
        KAGGLE,
        lambda f: (f / "forget.csv").write_text("image_id,age_group,age,person_id\n"),
        r"forget\.csv: no rows",
    ),
    "kaggle id": (
        KAGGLE,
        set_cell("retain.csv", "image_id", "4_0"),
        r"retain\.csv row 1: image_id '4_0' is not 'a-b'",
    ),
    "kaggle group": (
        KAGGLE,
        set_cell("retain.csv", "age_group", "-1"),
        r"retain\.csv row 1: age_group '-1'",
    ),
    "both sides": (
        KAGGLE,
        add_retain_person_to_forget,
        r"retain\.csv and forget\.csv: person '4' is in both",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_a_one_line_data_error(tmp_path, case):
    make, edit, message = BAD_INPUTS[case]
    folder = make(tmp_path)
    edit(folder)
    with pytest.raises(DataError, match=message) as error:
        load(folder)
    assert "\n" not in str(error.value)


def test_missing_folder_and_too_few_people(tmp_path):
    with pytest.raises(DataError, match="nowhere: data folder not found"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"Age_Gender\.txt: 20 people.*forget_people=20"):
        load(make_casia(tmp_path), forget_people=20)


def test_any_forget_set_from_an_index_file_on_both_splits(casia, casia_data, tmp_path):
    path = tmp_path / "forget.npy"
    np.save(path, np.array([5, 0, 3]))
    given = [load(casia, forget_index=str(path), split=split) for split in ("public", "private")]
    for data in given:
        assert data.forget_idx.tolist() == [5, 0, 3]  # the file's order
        assert data.retain_idx.tolist() == [i for i in range(48) if i not in (0, 3, 5)]
    assert given[0].fingerprint != casia_data.fingerprint
    assert "forget_index" not in surf_task().config()
    np.save(path, np.array([48]))
    with pytest.raises(DataError, match=r"forget\.npy: forget indices must lie in 0\.\.47"):
        load(casia, forget_index=str(path))
