import numpy as np
import pytest

from harness.tasks import TASKS, get_task


def test_digits_split_is_deterministic():
    first, second = get_task("digits").load_data(), get_task("digits").load_data()
    assert first.fingerprint == second.fingerprint
    np.testing.assert_array_equal(first.forget_idx, second.forget_idx)
    np.testing.assert_array_equal(first.test.images.numpy(), second.test.images.numpy())


def test_forget_and_retain_partition_train():
    data = get_task("digits").load_data()
    forget, retain = set(data.forget_idx.tolist()), set(data.retain_idx.tolist())
    assert not forget & retain
    assert forget | retain == set(range(len(data.train)))
    assert len(forget) == round(0.1 * len(data.train))


def test_splits_are_disjoint_and_cover_the_dataset():
    data = get_task("digits").load_data()
    sizes = [len(data.train), len(data.val), len(data.test)]
    assert sum(sizes) == 1797
    rows = np.concatenate([d.images.numpy() for d in (data.train, data.val, data.test)])
    # digits has a few duplicate images, so compare counts of distinct rows with the source
    from sklearn.datasets import load_digits

    source = load_digits().data / 16.0
    assert len(np.unique(rows, axis=0)) == len(np.unique(source, axis=0))


def test_root_seed_moves_the_forget_set_only():
    base, other = get_task("digits").load_data(), get_task("digits", root_seed=1).load_data()
    assert not np.array_equal(base.forget_idx, other.forget_idx)
    np.testing.assert_array_equal(base.test.labels.numpy(), other.test.labels.numpy())
    assert base.fingerprint != other.fingerprint


def test_unknown_task_lists_known_ones():
    with pytest.raises(KeyError, match="digits"):
        get_task("nope")
    assert "digits" in TASKS.names()


def test_bad_task_options_are_rejected():
    with pytest.raises(ValueError, match="num_models"):
        get_task("digits", num_models=1)
    with pytest.raises(ValueError, match="forget_fraction"):
        get_task("digits", forget_fraction=1.5)


def test_loaders_follow_the_seed():
    task = get_task("digits")
    data = task.load_data()
    first = next(iter(task.make_loaders(data, seed=3)[0]))[1]
    again = next(iter(task.make_loaders(data, seed=3)[0]))[1]
    other = next(iter(task.make_loaders(data, seed=4)[0]))[1]
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_naming_the_tasks_imports_none_of_them():
    """``harness tasks`` and ``--help`` list the tasks without importing them (and torch)."""
    import subprocess
    import sys

    code = ("import sys; from harness.tasks import TASKS; "
            "print([TASKS.summary(n)[:6] for n in TASKS.names()], "
            "[m for m in ('torch', 'harness.tasks.digits') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['CIFAR-', 'The em', 'The co'] []"


def test_the_digits_are_scikit_learns_read_without_importing_it():
    """The file scikit-learn ships, read directly, equals ``load_digits`` (the reference); and
    loading the task does not import scikit-learn (a worker's start-up)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from harness.tasks.digits import _digits

    images, labels = _digits()
    expected_images, expected_labels = load_digits(return_X_y=True)
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    code = ("import sys; from harness.tasks import get_task; get_task('digits').load_data(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
