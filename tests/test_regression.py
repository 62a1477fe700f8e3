"""The CI regression gate: every outcome of ``compare`` on small synthetic leaderboards, reading
a baseline CSV, the tolerance from the scores' standard errors, and the command with the scorer
replaced by a fake. (``test_injected_regressions.py`` runs the gate on real injected changes.)"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest

from harness import cli
from harness.cli import build_parser
from harness.outputs.leaderboard import read_leaderboard
from harness.pipeline import scoring
from harness.pipeline.regression import CheckReport, K, compare, row_tolerance


def board(
    rows: list[tuple], task: str = "digits", n: int = 16, seed: int = 0, se: float = 0.001,
    split: str = "public",
) -> pd.DataFrame:
    """A leaderboard with the columns the check reads; rows are (name, status, score)."""
    return pd.DataFrame(
        [
            {"rank": i + 1 if status == "ok" else np.nan, "submission": name, "status": status,
             "final_score": score, "final_score_se": se if np.isfinite(score) else np.nan,
             "forget_quality": score, "message": "" if status == "ok"
             else "3 of 16 runs failed; run 0: RuntimeError: boom",
             "task": task, "num_models": n, "root_seed": seed, "split": split}
            for i, (name, status, score) in enumerate(rows)
        ]
    )


BASE = [("finetune", "ok", 0.30), ("gradient_ascent", "ok", 0.10), ("broken", "error", np.nan)]


def test_identical_leaderboards_pass_and_show_the_diff() -> None:
    report = compare(board(BASE), board(BASE), 0.01)
    assert report.exit_status == 0 and report.problems == []
    assert list(report.rows["submission"]) == ["finetune", "gradient_ascent", "broken"]
    assert report.rows.loc[0, "delta"] == 0
    text = report.format()
    assert "PASS" in text and "finetune" in text and "+0.00000" in text


def test_a_drop_beyond_the_tolerance_fails_with_name_and_size() -> None:
    current = board([("finetune", "ok", 0.25), *BASE[1:]])
    report = compare(board(BASE), current, 0.01)
    assert report.exit_status == 1
    assert len(report.problems) == 1
    assert "finetune (public)" in report.problems[0]
    assert "dropped by 0.05000" in report.problems[0]
    assert report.rows.loc[0, "verdict"] == "DROP"
    assert "FAIL: finetune (public)" in report.format()


def test_a_drop_within_the_tolerance_and_a_rise_pass() -> None:
    current = board([("finetune", "ok", 0.295), ("gradient_ascent", "ok", 0.5), BASE[2]])
    report = compare(board(BASE), current, 0.01)
    assert report.exit_status == 0
    assert report.rows.loc[0, "delta"] == pytest.approx(-0.005)


def test_the_default_tolerance_is_three_standard_deviations_of_the_difference() -> None:
    base = board(BASE, se=0.01)
    # sqrt(0.01^2 + 0.01^2) * 3 = 0.0424: a drop of 0.04 passes, 0.05 fails
    assert compare(base, board([("finetune", "ok", 0.26), *BASE[1:]], se=0.01)).exit_status == 0
    report = compare(base, board([("finetune", "ok", 0.25), *BASE[1:]], se=0.01))
    assert report.exit_status == 1
    assert report.rows.loc[0, "tolerance"] == pytest.approx(K * math.sqrt(2) * 0.01)
    # no fixed floor: a tiny score with a tiny standard error is guarded at its own scale
    tiny = board([("salun", "ok", 0.0003)], se=0.00002)
    assert compare(tiny, board([("salun", "ok", 0.0)], se=0.0)).exit_status == 1
    with pytest.raises(ValueError, match="tolerance"):
        compare(base, base, -1.0)


def test_row_tolerance_borrows_the_current_error_when_the_baseline_has_none() -> None:
    old = pd.Series({"final_score": 0.1, "final_score_se": np.nan})
    new = pd.Series({"final_score": 0.1, "final_score_se": 0.002})
    assert row_tolerance(old, new) == pytest.approx(K * math.sqrt(2) * 0.002)
    assert math.isnan(row_tolerance(old, None))


def test_every_split_is_compared() -> None:
    base = pd.concat([board(BASE, split="private"), board(BASE, split="public")])
    dropped = board([("finetune", "ok", 0.1), *BASE[1:]], split="private")
    report = compare(base, pd.concat([dropped, board(BASE, split="public")]), 0.01)
    assert [p.split(":")[0] for p in report.problems] == ["finetune (private)"]
    report = compare(base, board(BASE, split="public"), 0.01)
    assert "the private split was not re-scored" in report.problems


def test_a_missing_submission_fails() -> None:
    report = compare(board(BASE), board([BASE[0], BASE[2]]), 0.01)
    assert report.exit_status == 1
    assert any(p.startswith("gradient_ascent (public): missing") for p in report.problems)
    # a failing row that disappears is also gone from what was recorded
    report = compare(board(BASE), board(BASE[:2]), 0.01)
    assert any(p.startswith("broken (public): missing") for p in report.problems)


def test_a_submission_that_starts_failing_fails_one_that_still_fails_passes() -> None:
    current = board([BASE[0], ("gradient_ascent", "timeout", np.nan), BASE[2]])
    report = compare(board(BASE), current, 0.01)
    assert report.exit_status == 1
    assert len(report.problems) == 1
    assert "gradient_ascent (public): now timeout, was ok" in report.problems[0]
    assert "RuntimeError: boom" in report.problems[0]  # the reason travels with it
    assert report.rows.set_index("submission").loc["broken", "verdict"] == "still error"


def test_a_recorded_score_that_vanishes_fails_even_when_status_was_not_ok() -> None:
    base = board([("slow", "over-budget", 0.2)])
    report = compare(base, board([("slow", "crashed", np.nan)]), 0.01)
    assert report.exit_status == 1 and "has no final score now" in report.problems[0]


def test_a_new_submission_is_noted_not_failed() -> None:
    report = compare(board(BASE), board([*BASE, ("new_idea", "ok", 0.01)]), 0.01)
    assert report.exit_status == 0
    assert any("new_idea (public) is new" in note for note in report.notes)


def test_rows_run_with_other_settings_are_noted() -> None:
    old = board(BASE)  # written before settings existed: published constants
    new = board(BASE).assign(settings=["published", '{"lr": 0.5}', "published"])
    report = compare(old, new, 0.01)
    assert report.exit_status == 0
    assert [n for n in report.notes if "settings" in n] == [
        'gradient_ascent (public) ran other settings than the baseline: {"lr": 0.5} now, '
        "published then (tuned again?)"
    ]


@pytest.mark.parametrize(
    ("changes", "label"),
    [({"task": "cifar10"}, "task differs"), ({"n": 32}, "N (num_models) differs"),
     ({"seed": 1}, "root seed differs")],
)
def test_task_n_or_seed_mismatch_fails(changes: dict, label: str) -> None:
    report = compare(board(BASE), board(BASE, **changes), 0.01)
    assert report.exit_status == 1
    assert report.problems[0].startswith(label)
    assert set(report.rows["verdict"]) == {"not comparable"}  # no score verdicts across N


def test_malformed_baselines_are_value_errors() -> None:
    with pytest.raises(ValueError, match="missing column.*num_models"):
        compare(board(BASE).drop(columns="num_models"), board(BASE), 0.01)
    mixed = board(BASE)
    mixed.loc[0, "num_models"] = 512
    with pytest.raises(ValueError, match="one value of 'num_models'"):
        compare(mixed, board(BASE), 0.01)
    with pytest.raises(ValueError, match="more than once"):
        compare(board([*BASE, BASE[0]]), board(BASE), 0.01)
    with pytest.raises(ValueError, match="no rows"):
        compare(board(BASE).iloc[:0], board(BASE), 0.01)


def test_reading_a_baseline_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_leaderboard(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        read_leaderboard(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="not a readable CSV"):
        read_leaderboard(empty)
    good = tmp_path / "leaderboard.csv"
    board(BASE).to_csv(good, index=False)
    assert list(read_leaderboard(good)["submission"]) == ["finetune", "gradient_ascent", "broken"]


# -- the command -------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["check", *argv])


def test_check_command_rescores_with_the_baselines_task_and_n(tmp_path, monkeypatch, capsys):
    path = tmp_path / "leaderboard.csv"
    board(BASE, n=8, seed=3).to_csv(path, index=False)
    before = path.read_bytes()
    calls = []

    def fake_score(task, submissions_dir, **kwargs):
        calls.append((task.name, task.num_models, task.root_seed, task.split, kwargs))
        return board([("finetune", "ok", 0.2), *BASE[1:]], n=8, seed=3)

    monkeypatch.setattr(scoring, "score", fake_score)
    args = parse(["--baseline", str(path), "--tolerance", "0.05", "--no-progress",
                  "--output", str(tmp_path / "results")])
    assert args.func is cli.cmd_check
    assert args.func(args) == 1
    (name, n, seed, split, kwargs), = calls
    assert (name, n, seed, split) == ("digits", 8, 3, "public")
    assert kwargs["leaderboard_path"] is None  # nothing written, the baseline least of all
    assert kwargs["untuned"] is False  # the tuned settings, as `harness score` uses them
    assert path.read_bytes() == before
    out = capsys.readouterr().out
    assert "FAIL: finetune (public): final score dropped by 0.10000" in out

    monkeypatch.setattr(scoring, "score", lambda task, d, **k: board(BASE, n=8, seed=3))
    assert args.func(args) == 0
    assert "PASS" in capsys.readouterr().out

    monkeypatch.setattr(scoring, "score", fake_score)
    args = parse(["--baseline", str(path), "--untuned", "--no-progress"])
    args.func(args)
    assert calls[-1][-1]["untuned"] is True


def test_check_trains_a_ceiling_pool_only_where_the_baseline_has_a_ceiling_row(
    tmp_path, monkeypatch
):
    from harness.outputs.leaderboard import CEILING_ROW

    asked = []

    def fake_score(task, submissions_dir, **kwargs):
        asked.append(kwargs["ceiling"])
        return board(BASE, n=8)

    monkeypatch.setattr(scoring, "score", fake_score)
    path = tmp_path / "leaderboard.csv"
    for rows, wanted in ((BASE, False), ([*BASE, (CEILING_ROW, "reference", 0.2)], True)):
        board(rows, n=8).to_csv(path, index=False)
        args = parse(["--baseline", str(path), "--no-progress",
                      "--output", str(tmp_path / "results")])
        args.func(args)
        assert asked[-1] is wanted


def test_check_command_fails_on_an_n_mismatch_without_scoring(tmp_path, monkeypatch, capsys):
    path = tmp_path / "leaderboard.csv"
    board(BASE, n=8).to_csv(path, index=False)

    def never(*args, **kwargs):
        raise AssertionError("must not score when N differs")

    monkeypatch.setattr(scoring, "score", never)
    args = parse(["--baseline", str(path), "-n", "512", "--no-progress"])
    assert args.func(args) == 1
    assert "N (num_models) differs: baseline 8, re-scored 512" in capsys.readouterr().out


def test_check_command_bad_input(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        cli.cmd_check(parse(["--baseline", str(tmp_path / "missing.csv"), "--no-progress"]))


def test_check_report_with_no_rows_formats() -> None:
    assert "PASS" in CheckReport(problems=[], rows=pd.DataFrame()).format()


def test_check_can_be_limited_to_one_split(tmp_path, monkeypatch, capsys):
    path = tmp_path / "leaderboard.csv"
    pd.concat([board(BASE, split="private"), board(BASE, split="public")]).to_csv(path)
    scored = []

    def fake_score(task, submissions_dir, **kwargs):
        scored.append(task.split)
        return board(BASE, split=task.split)

    monkeypatch.setattr(scoring, "score", fake_score)
    assert cli.main(["check", "--baseline", str(path), "--split", "private",
                     "--no-progress"]) == 0
    assert scored == ["private"]
    assert "PASS: 3 row(s) compared" in capsys.readouterr().out


def test_check_starts_the_workers_score_would_on_the_baseline_s_device(tmp_path, monkeypatch):
    """The default ``--jobs`` comes from the re-scored task's device, as ``harness score``'s
    does: one worker per core on a CPU task, ``--workers-per-device`` on a GPU task (it once came
    from ``--device`` alone, so a GPU baseline was re-timed with one worker per core)."""
    import os

    from harness.core.defaults import WORKERS_PER_DEVICE

    asked = []

    def fake_score(task, submissions_dir, **kwargs):
        asked.append((task.device, kwargs["jobs"]))
        return board(BASE, n=8)

    monkeypatch.setattr(scoring, "score", fake_score)
    path = tmp_path / "leaderboard.csv"
    board(BASE, n=8).to_csv(path, index=False)
    common = ["--baseline", str(path), "--no-progress", "--output", str(tmp_path / "results")]
    for extra, wanted in (([], ("cpu", os.cpu_count())),
                          (["--device", "cuda"], ("cuda", WORKERS_PER_DEVICE)),
                          (["--device", "cuda", "--workers-per-device", "2"], ("cuda", 2)),
                          (["--device", "cuda", "--jobs", "3"], ("cuda", 3))):
        args = parse([*common, *extra])
        args.func(args)
        assert asked[-1] == wanted, extra

    # a task whose own default device is the GPU (cifar10 on a GPU machine), --device not given
    from harness.pipeline import regression

    recorded_task = regression.task_for_board
    monkeypatch.setattr(regression, "task_for_board", lambda *a, **k: recorded_task(
        *a, **{**k, "device": "cuda"}))
    args = parse(common)
    args.func(args)
    assert asked[-1] == ("cuda", WORKERS_PER_DEVICE)
