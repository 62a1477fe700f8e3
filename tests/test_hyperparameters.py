"""Declared hyperparameters: what a submission may declare, what is rejected and why, and the
check of settings against the declaration."""

import textwrap

import pytest

from harness.methods.hyperparameters import SpaceError, check_settings, describe, parse_space
from harness.methods.loading import SubmissionError, inspect_submission


def submission(tmp_path, source, name="method.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_declared_space_is_read_without_running_the_file(tmp_path):
    path = submission(tmp_path, """
        raise SystemExit("never imported by the scorer")
        LR = 1e-3
        SEARCH_SPACE = {
            "lr": {"low": 1e-5, "high": 1.0, "log": True},
            "epochs": {"low": 1, "high": 10},
            "loss": {"choices": ["ce", "kl"]},
            "alpha": {"low": 0.0, "high": 1.0, "step": 0.25},
        }
        def unlearning(net, retain, forget, val, lr=LR, epochs=3, *, loss="ce", alpha=0.5):
            return net
    """)
    space = inspect_submission(path).space
    assert {name: p.default for name, p in space.items()} == {
        "lr": 1e-3, "epochs": 3, "loss": "ce", "alpha": 0.5,
    }
    assert space["lr"].log and not space["lr"].is_integer
    assert space["epochs"].is_integer
    assert space["loss"].choices == ("ce", "kl")
    assert space["alpha"].step == 0.25


def test_a_file_without_a_space_is_untunable_and_unchanged(tmp_path):
    path = submission(tmp_path, "def unlearning(net, retain, forget, val, lr=0.1):\n    pass\n")
    assert inspect_submission(path).space == {}


@pytest.mark.parametrize(
    "space, signature, reason",
    [
        ('{"lr": {"low": 0.1, "high": 1.0}}', "lr=0.01", "outside"),
        ('{"lr": {"low": 0.1, "high": 1.0}}', "momentum=0.9", "not a keyword argument"),
        ('{"k": {"low": 1, "high": 5}}', "k=2.5", "not an integer"),
        ('{"mode": {"choices": ["a"]}}', 'mode="b"', "not one of"),
        ('{"lr": {"low": 1.0, "high": 0.1}}', "lr=0.5", "low must be below high"),
        ('{"lr": {"low": 0.0, "high": 1.0, "log": True}}', "lr=0.5", "positive low"),
        ('{"lr": {"low": 0.0, "high": 1.0, "scale": 2}}', "lr=0.5", "needs 'low' and 'high'"),
        ('{"lr": [0.0, 1.0]}', "lr=0.5", "must be a dict"),
        ("{}", "lr=0.5", "non-empty"),
        ('{"lr": {"low": 0.0, "high": 1.0}}', "lr=make()", "literal or a module constant"),
    ],
)
def test_bad_declarations_are_rejected_with_the_reason(tmp_path, space, signature, reason):
    path = submission(tmp_path, f"""
        SEARCH_SPACE = {space}
        def unlearning(net, retain, forget, val, {signature}):
            pass
    """)
    with pytest.raises(SubmissionError, match=reason):
        inspect_submission(path)


def test_a_space_needs_one_plain_definition_of_unlearning(tmp_path):
    path = submission(tmp_path, """
        from somewhere import unlearning
        SEARCH_SPACE = {"lr": {"low": 0.0, "high": 1.0}}
    """)
    with pytest.raises(SubmissionError, match="exactly one `def unlearning"):
        inspect_submission(path)


def test_settings_are_checked_against_the_declaration():
    space = parse_space(
        {"lr": {"low": 1e-4, "high": 1.0, "log": True}, "epochs": {"low": 1, "high": 8}},
        {"lr": 0.01, "epochs": 2},
    )
    check_settings(space, {"lr": 0.5, "epochs": 8})
    check_settings(space, {})
    for bad, reason in [
        ({"lr": 2.0}, "outside"),
        ({"lr": float("nan")}, "outside"),
        ({"epochs": 2.0}, "not an integer"),
        ({"epochs": True}, "not a number"),
        ({"momentum": 0.9}, "not a declared hyperparameter"),
    ]:
        with pytest.raises(SpaceError, match=reason):
            check_settings(space, bad)


def test_settings_are_described_in_a_stable_order():
    assert describe({}) == "published"
    assert describe({"lr": 0.012345678, "epochs": 7, "loss": "kl"}) == (
        "epochs=7, loss='kl', lr=0.01235"
    )
