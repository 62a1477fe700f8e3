"""The real tasks scored end to end on tiny data in their on-disk formats, with a tiny recipe, and
competition code of both batch styles running unchanged on them.

At N = 2 every forget example earns 0 points, so every final score is 0 whatever the code does:
these tests check what N = 2 can show (each row's status and message, every run recorded, the
utility numbers of real models), not scores; scores are tested on digits at an N where they are
nonzero and ordered (tests/test_scoring.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.outputs.leaderboard import CEILING_ROW, POOL_ROW
from harness.pipeline.scoring import score
from harness.tasks import get_task
from harness.training.loop import Recipe

from fake_data import make_kaggle, write_cifar10

HERE = Path(__file__).resolve().parent
COMPETITION = HERE / "competition_style"
EXAMPLES = HERE.parent / "submissions"
TINY_RECIPE = Recipe(epochs=1, batch_size=16, lr=0.01, momentum=0.9, augment="crop-flip")


def submissions_folder(root: Path) -> Path:
    folder = root / "submissions"
    folder.mkdir()
    for path in COMPETITION.glob("*.py"):
        shutil.copy(path, folder)
    shutil.copy(EXAMPLES / "do_nothing.py", folder)
    return folder


def score_tiny(task, root: Path, ceiling: bool = True):
    return score(
        task, submissions_folder(root), reference_root=root / "ref", output_dir=root / "out",
        leaderboard_path=root / "leaderboard.csv", jobs=1, budget_seconds=float("inf"), timeout=600,
        ceiling=ceiling,
    ).set_index("submission")


def check_board(board, task_name: str) -> None:
    assert (board["task"] == task_name).all() and (board["num_models"] == 2).all()
    failing = board.loc["saves_to_kaggle_tmp"]
    assert failing["status"] == "error" and "/kaggle/tmp" in failing["message"]
    others = board.drop(index=["saves_to_kaggle_tmp", CEILING_ROW, POOL_ROW], errors="ignore")
    assert (others["status"] == "ok").all(), others[["status", "message"]]
    assert (others["runs_ok"] == 2).all()
    for column in ("retain_acc", "test_acc", "forget_acc"):
        assert others[column].between(0, 1).all(), column
    assert (others["seconds_per_run"] > 0).all()


@pytest.mark.slow
def test_cifar10_end_to_end(tmp_path):
    write_cifar10(tmp_path / "data", per_batch=12, test_size=20)
    task = get_task(
        "cifar10", data_dir=str(tmp_path / "data"), device="cpu", num_models=2,
        recipe=TINY_RECIPE, loader_batch_size=16,
    )
    board = score_tiny(task, tmp_path)
    check_board(board, "cifar10")
    assert board.loc[CEILING_ROW, "status"] == "reference"


@pytest.mark.slow
def test_surf_end_to_end(tmp_path):
    """On the competition's Kaggle layout. The CASIA-SURF layout differs only in how its files
    are read into the same rows (``surf._read_layout``; its reading is tested in
    tests/test_surf.py), so scoring it end to end as well would only double this test's time."""
    data = tmp_path / "data"
    data.mkdir()
    make_kaggle(data)
    task = get_task(
        "surf", data_dir=str(data), device="cpu", num_models=2, forget_people=3,
        recipe=TINY_RECIPE, loader_batch_size=16,
    )
    check_board(score_tiny(task, tmp_path, ceiling=False), "surf")
