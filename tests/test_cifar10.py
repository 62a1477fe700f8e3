"""The cifar10 task on tiny data in the official python-batch format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchvision import transforms

from harness.cli import main
from harness.data.networks import DigitsMLP, resnet18
from harness.reference.pool import ReferenceStore
from harness.tasks import DataError, get_task
from harness.tasks.cifar10 import CIFAR10_RECIPE, MEAN, STD
from harness.training.loop import apply_crop_flip

from fake_data import write_cifar10


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root)
    return root


def test_loads_the_python_batches_normalised_like_the_kit(cifar_root):
    data = get_task("cifar10", data_dir=str(cifar_root), device="cpu").load_data()
    assert len(data.train) == 60 and len(data.val) == 10 and len(data.test) == 10
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_2", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    image, label = data.train[12]  # the first image of the second batch
    hwc = raw[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    expected = transforms.Normalize(MEAN, STD)(transforms.ToTensor()(hwc))
    torch.testing.assert_close(image, expected)
    assert int(label) == raw[b"labels"][0] and int(data.train[12]["age_group"]) == int(label)
    assert len(data.forget_idx) == 6 and len(data.retain_idx) == 54


def test_test_set_halved_into_test_and_val_with_seed_42(cifar_root):
    data = get_task("cifar10", data_dir=str(cifar_root), device="cpu").load_data()
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        labels = pickle.load(handle, encoding="bytes")[b"labels"]
    order = torch.randperm(20, generator=torch.Generator().manual_seed(42)).tolist()
    assert data.test.labels.tolist() == [labels[i] for i in order[:10]]
    assert data.val.labels.tolist() == [labels[i] for i in order[10:]]


def test_the_folder_itself_or_its_parent_and_the_environment_variable(cifar_root, monkeypatch):
    inner = get_task("cifar10", data_dir=str(cifar_root / "cifar-10-batches-py"), device="cpu")
    outer = get_task("cifar10", data_dir=str(cifar_root), device="cpu")
    monkeypatch.setenv("HARNESS_CIFAR10_DATA", str(cifar_root))
    from_env = get_task("cifar10", device="cpu")
    prints = {t.load_data().fingerprint for t in (inner, outer, from_env)}
    assert len(prints) == 1


def test_forget_set_from_the_root_seed_or_an_index_file(cifar_root, tmp_path):
    first = get_task("cifar10", data_dir=str(cifar_root), device="cpu").load_data()
    other = get_task("cifar10", data_dir=str(cifar_root), device="cpu", root_seed=1).load_data()
    assert not np.array_equal(first.forget_idx, other.forget_idx)
    path = tmp_path / "forget_idx.npy"
    np.save(path, np.array([59, 3, 10]))
    given = get_task(
        "cifar10", data_dir=str(cifar_root), device="cpu", forget_index=str(path)
    ).load_data()
    # the kit: Subset(train_set, forget_idx) in the file's order; retain from a mask, ascending
    assert given.forget_idx.tolist() == [59, 3, 10] and len(given.retain_idx) == 57
    mask = np.zeros(60, dtype=bool)
    mask[[59, 3, 10]] = True
    assert given.retain_idx.tolist() == np.arange(60)[~mask].tolist()
    assert torch.equal(given.forget[0][0], given.train[59][0])
    assert given.fingerprint != first.fingerprint


def test_crop_padding_is_black_as_the_kit_crops_the_pil_image(cifar_root):
    """The kit: RandomCrop(32, padding=4) and RandomHorizontalFlip on the PIL image, then
    ToTensor and Normalize; here restated with fixed offsets (RandomCrop pads with 0, then cuts
    at its drawn top-left) against the harness's crop of the normalised batch."""
    from PIL import Image

    data = get_task("cifar10", data_dir=str(cifar_root), device="cpu").load_data()
    offsets = torch.tensor([[0, 8, 3, 4, 0, 7], [8, 0, 4, 1, 0, 2]])
    flips = torch.tensor([False, True, True, False, True, False])
    kit = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    expected = []
    for i in range(6):
        pil = Image.fromarray(data.train.images[i].permute(1, 2, 0).numpy())
        padded = transforms.functional.pad(pil, 4)
        cut = transforms.functional.crop(padded, int(offsets[0, i]), int(offsets[1, i]), 32, 32)
        expected.append(kit(transforms.functional.hflip(cut) if flips[i] else cut))
    inputs = torch.stack([data.train[i][0] for i in range(6)])
    got = apply_crop_flip(inputs, offsets, flips, CIFAR10_RECIPE.crop_fill)
    assert torch.equal(got, torch.stack(expected))
    zero_padded = apply_crop_flip(inputs, offsets, flips)  # the old padding: the mean colour
    assert not torch.equal(zero_padded, got)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.array([0, 60]), r"must lie in 0\.\.59"),
        (np.array([[1, 2]]), "1-D integer array"),
        (np.array([0.5]), "1-D integer array"),
        (np.array([1, 1]), "distinct"),
    ],
)
def test_bad_forget_index_files(cifar_root, tmp_path, content, message):
    path = tmp_path / "forget.npy"
    np.save(path, content)
    task = get_task("cifar10", data_dir=str(cifar_root), device="cpu", forget_index=str(path))
    with pytest.raises(DataError, match=f"forget.npy: .*{message}"):
        task.load_data()


def test_bad_folders_name_the_file(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        get_task("cifar10", data_dir=str(tmp_path / "nope"), device="cpu").load_data()
    with pytest.raises(DataError, match="no CIFAR-10 python batches"):
        get_task("cifar10", data_dir=str(tmp_path), device="cpu").load_data()
    folder = write_cifar10(tmp_path / "broken")
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR-10 python batch"):
        get_task("cifar10", data_dir=str(folder), device="cpu").load_data()
    folder = write_cifar10(tmp_path / "labels")
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, handle)
    with pytest.raises(DataError, match=r"test_batch: labels must be 0\.\.9"):
        get_task("cifar10", data_dir=str(folder), device="cpu").load_data()
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch: file not found"):
        get_task("cifar10", data_dir=str(folder), device="cpu").load_data()


def test_no_folder_given_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("HARNESS_CIFAR10_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir PATH or set HARNESS_CIFAR10_DATA"):
        get_task("cifar10", device="cpu").load_data()


def test_the_original_model_from_a_kit_style_checkpoint(cifar_root, tmp_path):
    torch.manual_seed(3)
    model = resnet18(num_classes=10)
    path = tmp_path / "weights_resnet18_cifar10.pth"
    torch.save(model.state_dict(), path)
    task = get_task("cifar10", data_dir=str(cifar_root), device="cpu", checkpoint=str(path))
    store = ReferenceStore(task, task.load_data(), tmp_path / "cache")
    loaded = store.original_model()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert not loaded.training
    assert task.original_source().startswith("checkpoint weights_resnet18_cifar10.pth (sha256 ")


@pytest.mark.parametrize("wrong", ["mlp", "classes", "garbage"])
def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_is_cached(
    cifar_root, tmp_path, capsys, wrong
):
    path = tmp_path / "bad.pth"
    if wrong == "garbage":
        path.write_bytes(b"\x00not torch")
    else:
        model = DigitsMLP() if wrong == "mlp" else resnet18(num_classes=5)
        torch.save(model.state_dict(), path)
    cache = tmp_path / "cache"
    code = main([
        "pool", "--task", "cifar10", "--data-dir", str(cifar_root), "--device", "cpu",
        "--checkpoint", str(path), "-n", "2", "--reference-root", str(cache),
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("harness: error: ") and err.count("\n") == 1 and "bad.pth" in err
    assert "Traceback" not in err
    assert not cache.exists() or not any(cache.rglob("*.pt"))


def test_a_missing_data_folder_is_one_line_from_the_command_line(tmp_path, capsys):
    code = main([
        "pool", "--task", "cifar10", "--data-dir", str(tmp_path / "missing"), "-n", "2",
        "--reference-root", str(tmp_path / "cache"),
    ])
    err = capsys.readouterr().err
    assert code == 2 and err == f"harness: error: {tmp_path / 'missing'}: data folder not found\n"
    assert not (tmp_path / "cache").exists()


def test_options_a_task_does_not_have_are_refused():
    with pytest.raises(ValueError, match="task 'digits' has no option forget_index"):
        get_task("digits", forget_index="x.npy")
    with pytest.raises(ValueError, match="no --data-dir"):
        get_task("digits", data_dir="/tmp")
