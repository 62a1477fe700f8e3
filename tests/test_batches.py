"""The example/batch format: both competition styles, through the harness's own loaders and
through loaders a submission builds itself with PyTorch's default collate."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset

from harness.data.examples import (
    Example,
    ExampleDataset,
    ShuffleOrder,
    column_view,
    inputs_targets,
    iterate_batches,
    labels_of,
    mirror_is_exact,
)


def faces(n: int = 10) -> ExampleDataset:
    """A tiny dataset shaped like the competition's: uint8 images read as float 0-255, metadata."""
    images = torch.arange(n * 3 * 2 * 2, dtype=torch.int64).reshape(n, 3, 2, 2).to(torch.uint8)
    return ExampleDataset(
        images,
        torch.arange(n) % 10,
        metadata={
            "age": torch.arange(n) + 20,
            "person_id": torch.arange(n) // 2,
            "image_id": [f"{i // 2}/{i}" for i in range(n)],
        },
        transform=lambda x: x.float(),
    )


def test_an_example_is_a_pair_and_a_mapping():
    example = faces()[3]
    image, label = example
    assert image.dtype == torch.float32 and image.shape == (3, 2, 2)
    assert torch.equal(example["image"], image)
    assert int(example["age_group"]) == int(example["label"]) == int(label) == 3
    assert int(example["age"]) == 23 and int(example["person_id"]) == 1
    assert example["image_id"] == "1/3"
    assert example.keys() == ["image", "age_group", "age", "person_id", "image_id"]
    assert "person_id" in example and "nope" not in example
    with pytest.raises(KeyError, match="batches have the fields image, age_group"):
        example["nope"]
    assert len(example) == 2 and example[0] is image


def test_default_collate_keeps_both_styles_and_the_metadata():
    dataset = faces()
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert isinstance(batch, Example)
    inputs, targets = batch
    assert inputs.shape == (4, 3, 2, 2) and targets.tolist() == [0, 1, 2, 3]
    assert batch["age_group"].tolist() == [0, 1, 2, 3] and batch["age"].tolist() == [20, 21, 22, 23]
    assert batch["image_id"] == ["0/0", "0/1", "1/2", "1/3"]
    assert torch.equal(batch["image"], inputs)


def test_loaders_rebuilt_from_datasets_with_concat_work_like_kaggle_entries():
    dataset = faces()
    retain = DataLoader(Subset(dataset, [0, 1, 2, 3, 4, 5]), batch_size=4, shuffle=True)
    forget = DataLoader(Subset(dataset, [6, 7, 8, 9]), batch_size=4)
    both = DataLoader(ConcatDataset([retain.dataset, forget.dataset]), batch_size=64)
    assert both.batch_size == 64 and len(both.dataset) == 10 and retain.batch_size == 4
    (batch,) = list(both)
    assert sorted(batch["age_group"].tolist()) == list(range(10))
    assert batch["person_id"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for sample in forget:  # the Kaggle notebooks' loop
        assert sample["image"].shape[0] == len(sample["age_group"])


def test_batches_survive_pickling_and_pin_memory_keeps_the_type():
    batch = next(iter(DataLoader(faces(), batch_size=3)))
    again = pickle.loads(pickle.dumps(batch))
    assert isinstance(again, Example) and again["image_id"] == batch["image_id"]
    assert torch.equal(again["age"], batch["age"])
    loader = DataLoader(faces(), batch_size=3, num_workers=1)
    assert list(loader)[0]["image_id"] == batch["image_id"]


def test_gathered_rows_equal_collated_examples():
    dataset = faces()
    index = torch.tensor([7, 2, 5])
    gathered = dataset.rows(index)
    collated = next(iter(DataLoader(Subset(dataset, index.tolist()), batch_size=3)))
    for key in gathered.keys():
        a, b = gathered[key], collated[key]
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b), key


@pytest.mark.parametrize("shuffle", [False, True])
def test_iterate_batches_is_the_dataloader(shuffle):
    dataset = Subset(faces(23), list(range(2, 23)))
    loader = DataLoader(
        dataset, batch_size=4, shuffle=shuffle, generator=torch.Generator().manual_seed(5)
    )
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):  # later epochs depend on every draw of the earlier ones
        fast = list(iterate_batches(dataset, 4, shuffle=shuffle, generator=generator))
        slow = list(loader)
        assert len(fast) == len(slow)
        for a, b in zip(fast, slow, strict=True):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            assert a["image_id"] == b["image_id"]


def test_iterate_batches_reads_any_dataset_through_a_loader():
    plain = TensorDataset(torch.arange(5.0), torch.arange(5))
    assert column_view(plain) is None
    batches = list(iterate_batches(plain, 2))
    assert [inputs_targets(b)[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_inputs_targets_reads_every_style():
    x, y = torch.zeros(2, 1), torch.tensor([1, 2])
    for batch in (Example(x, y), {"image": x, "age_group": y}, {"image": x, "label": y}, (x, y)):
        inputs, targets = inputs_targets(batch)
        assert inputs is x and targets is y


def test_labels_of_every_kind_of_dataset():
    dataset = faces()
    assert labels_of(Subset(dataset, [3, 8])).tolist() == [3, 8]
    assert labels_of(ConcatDataset([Subset(dataset, [1]), Subset(dataset, [4])])).tolist() == [1, 4]
    plain = TensorDataset(torch.zeros(3), torch.tensor([2, 0, 1]))
    assert labels_of(plain).tolist() == [2, 0, 1]


def test_a_column_view_joins_parts_of_one_dataset_only():
    dataset, other = faces(), faces()
    base, index = column_view(ConcatDataset([Subset(dataset, [4, 1]), Subset(dataset, [0])]))
    assert base is dataset and index.tolist() == [4, 1, 0]
    assert column_view(ConcatDataset([Subset(dataset, [1]), Subset(other, [0])])) is None


def test_bad_columns_are_refused():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ExampleDataset(torch.zeros(3, 1), torch.zeros(2))
    with pytest.raises(ValueError, match="would hide"):
        ExampleDataset(torch.zeros(2, 1), torch.zeros(2), metadata={"label": [1, 2]})


# -- data order -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "batch_size"), [(1131, 64), (10, 3), (64, 64), (5, 8)])
@pytest.mark.parametrize("literal", [False, True])
def test_shuffle_order_is_the_dataloaders(n, batch_size, literal):
    for seed in (0, 1, 2**62 + 12345):
        loader = DataLoader(
            TensorDataset(torch.arange(n)), batch_size=batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        order = ShuffleOrder(n, seed, batch_size, literal=literal)
        for _ in range(4):  # later epochs depend on every draw of the earlier ones
            expected = torch.cat([batch for (batch,) in loader])
            assert torch.equal(order.next_epoch(), expected)


def test_the_fast_order_is_used_on_this_torch():
    assert mirror_is_exact()
    assert not ShuffleOrder(10, 0, 4).literal


@pytest.mark.parametrize("augment", ["none", "crop-flip"])
def test_training_on_gathered_batches_is_training_through_the_dataloader(augment):
    """The pool's fast path and the budget's yardstick (a real DataLoader) train the same model."""
    import dataclasses

    from harness.reference.pool import train_from_scratch
    from harness.tasks import get_task

    task = get_task("digits")
    data = task.load_data()
    if augment != "none":  # crop-flip needs images: view the 64 pixels as 1 x 8 x 8
        images = data.train.images.view(-1, 1, 8, 8)
        data.train = ExampleDataset(images, data.train.labels)
    recipe = dataclasses.replace(task.recipe, epochs=2, augment=augment)
    task = task.with_options(recipe=recipe)
    fast, _ = train_from_scratch(task, data.retain, seed=5, gather=True)
    slow, _ = train_from_scratch(task, data.retain, seed=5, gather=False)
    for (name, a), b in zip(fast.state_dict().items(), slow.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other, _ = train_from_scratch(task, data.retain, seed=6, gather=True)
    assert not torch.equal(other.fc.weight, fast.fc.weight)  # the seed matters
