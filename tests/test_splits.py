"""Both splits scored for real (``score_splits``, as ``harness score --split both``): the private
split is the same task with another forget set, pool and run seeds, and its scores are its own."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.pipeline.scoring import score_splits
from harness.tasks import get_task

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"
N = 16  # enough runs and pool models for nonzero, ordered scores on digits


@pytest.mark.slow
def test_both_splits_are_scored_with_their_own_forget_sets_pools_and_seeds(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("finetune", "do_nothing"):
        shutil.copy(EXAMPLES / f"{name}.py", folder)
    task = get_task("digits", num_models=N)
    path = tmp_path / "leaderboard.csv"
    board = score_splits(
        task, ["public", "private"], folder, leaderboard_path=path,
        reference_root=tmp_path / "ref", output_dir=tmp_path / "out", jobs=2,
        budget_seconds=float("inf"), timeout=600, ceiling=False, untuned=True,
    )
    assert list(board["split"].unique()) == ["private", "public"]  # the final ranking first
    rows = board.set_index(["split", "submission"])
    for split in ("public", "private"):
        # scored for real: the method forgets something, doing nothing nothing
        assert rows.loc[(split, "finetune"), "final_score"] > 0
        assert rows.loc[(split, "do_nothing"), "final_score"] == 0
    assert rows.loc[("public", "finetune"), "final_score"] != rows.loc[
        ("private", "finetune"), "final_score"]

    public, private = task.with_options(split="public"), task.with_options(split="private")
    forget = {s: set(t.load_data().forget_idx.tolist()) for s, t in
              (("public", public), ("private", private))}
    assert forget["public"] != forget["private"]
    # each split's pool and runs are cached apart, and its runs were seeded apart
    pools = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert len(pools) == 2
    seeds = {}
    for split_dir in (tmp_path / "out").iterdir():
        lines = (split_dir / "runs" / "finetune.jsonl").read_text().splitlines()
        seeds[split_dir.name] = {json.loads(line)["seed"] for line in lines}
    first, second = seeds.values()
    assert len(first) == len(second) == N and not first & second
    scored = board[board["submission"].isin(["finetune", "do_nothing"])]
    assert np.isfinite(scored["final_score_lo"]).all()
