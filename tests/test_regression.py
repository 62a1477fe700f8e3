"""The CI regression gate: every outcome of ``compare`` on small synthetic leaderboards, reading
a baseline CSV and its gate file, the paired test on hand-made gate rows with known answers, and
the command with the scorer replaced by a fake. (``test_injected_regressions.py`` runs the gate on
real injected changes.)"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from harness import cli
from harness.cli import build_parser
from harness.evaluation.gate import (
    SAMPLE_MIN_MODELS,
    SAMPLE_RUNS,
    SAMPLE_SHIFT,
    GatePool,
    GateRow,
    decode_points,
    detectable_drop,
    encode_points,
    gate_path,
    gate_pool_path,
    gate_row,
    holm,
    paired,
    read_gate,
    read_gate_pools,
    sample_fingerprint,
    stats_fingerprint,
    with_sample,
    write_gate,
    write_gate_pools,
)
from harness.evaluation.metric import epsilons, points
from harness.evaluation.model_stats import ModelStats
from harness.outputs.leaderboard import read_leaderboard
from harness.pipeline import scoring
from harness.pipeline.regression import CheckReport, compare


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
    assert kwargs["measures"] is False  # no intervals or audits: the comparison needs neither
    assert path.read_bytes() == before
    out = capsys.readouterr().out
    assert "FAIL: finetune (public): final score dropped by 0.10000" in out

    monkeypatch.setattr(scoring, "score", lambda task, d, **k: board(BASE, n=8, seed=3))
    assert args.func(args) == 0
    assert "PASS" in capsys.readouterr().out

    monkeypatch.setattr(scoring, "score", fake_score)
    args = parse(["--baseline", str(path), "--untuned", "--no-progress", "--tolerance", "0.05"])
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
        args = parse(["--baseline", str(path), "--no-progress", "--tolerance", "1",
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
    write_gate(gate_path(path), {split: rows_of(BASE) for split in ("private", "public")}, 16)
    scored = []

    def fake_score(task, submissions_dir, **kwargs):
        scored.append(task.split)
        kwargs["gate"].update(rows_of(BASE))  # the same runs: every row reproduced
        return board(BASE, split=task.split)

    monkeypatch.setattr(scoring, "score", fake_score)
    assert cli.main(["check", "--baseline", str(path), "--split", "private",
                     "--no-progress"]) == 0
    assert scored == ["private"]
    assert "PASS: 3 row(s) compared" in capsys.readouterr().out


def test_the_check_samples_unchanged_rows_unless_every_run_is_asked_for(tmp_path, monkeypatch):
    path = tmp_path / "leaderboard.csv"
    board(BASE).to_csv(path)
    write_gate(gate_path(path), {"public": rows_of(BASE)}, 16)
    asked = []

    def fake_score(task, submissions_dir, **kwargs):
        asked.append(kwargs["sample"])
        if kwargs["gate"] is not None:
            kwargs["gate"].update(rows_of(BASE))
        return board(BASE)

    monkeypatch.setattr(scoring, "score", fake_score)
    command = ["check", "--baseline", str(path), "--no-progress", "--output", str(tmp_path)]
    for extra, wanted in (([], True), (["--all-runs"], False), (["--tolerance", "1"], False)):
        assert cli.main([*command, *extra]) == 0
        assert asked[-1] is wanted  # an unpaired rule has no gate rows to sample against


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
    common = ["--baseline", str(path), "--no-progress", "--output", str(tmp_path / "results"),
              "--tolerance", "1"]
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


# -- the paired gate ---------------------------------------------------------------------------
def row(score: float, se: float = 0.002, runs: str = "r0", pool: str = "p0",
        e: int = 8) -> GateRow:
    """A hand-made gate row: its per-example points are all 2**-3 (they only pin E here)."""
    return GateRow(score, np.full(e, 0.125), se, 20, pool, runs)


def rows_of(rows: list[tuple], se: float = 0.002) -> dict[str, GateRow]:
    return {name: row(score, se) for name, _, score in rows if np.isfinite(score)}


def gates(rows: dict[str, GateRow], split: str = "public") -> dict[tuple[str, str], GateRow]:
    return {(split, name): r for name, r in rows.items()}


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def test_the_paired_test_on_hand_made_rows_has_the_known_answer() -> None:
    base, now = row(0.030, se=0.002), row(0.024, se=0.0015, runs="r1")
    result = paired(base, now)
    # se = sqrt(0.002^2 + 0.0015^2) = 0.0025; z = -0.006 / 0.0025 = -2.4
    assert result.delta == pytest.approx(-0.006)
    assert result.se == pytest.approx(0.0025)
    assert result.p == pytest.approx(normal_cdf(-2.4))
    assert result.p == pytest.approx(0.0081975, abs=1e-6)  # a normal table's value
    lo, hi = result.interval()
    assert (lo, hi) == pytest.approx((-0.006 - 1.959964 * 0.0025, -0.006 + 1.959964 * 0.0025))
    # no spread at all: any drop is certain, no drop is not one
    assert paired(row(0.01, 0.0), row(0.009, 0.0, runs="r1")).p == 0.0
    assert paired(row(0.01, 0.0), row(0.01, 0.0, runs="r1")).p == 1.0
    with pytest.raises(ValueError, match="same pool"):
        paired(base, row(0.03, pool="other"))


def test_holm_adjusted_p_values_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_a_drop_the_unpaired_tolerance_passes_fails_the_paired_test() -> None:
    # kookmin on the private split: baseline 0.01884 with a standard error of 0.0046 on the
    # board; re-scored with its learning-rate schedule halved, 0.01224
    base = board([("kookmin", "ok", 0.01884), ("finetune", "ok", 0.0195)], se=0.0046)
    now = board([("kookmin", "ok", 0.01224), ("finetune", "ok", 0.0195)], se=0.0046)
    old_tolerance = 3 * math.sqrt(0.0046**2 + 0.0046**2)  # the rule this gate replaces
    assert 0.01884 - 0.01224 < old_tolerance  # the old gate passed it
    kept = row(0.0195, runs="f")
    report = compare(base, now,
                     baseline_gate=gates({"kookmin": row(0.01884, 0.002), "finetune": kept}),
                     current_gate=gates({"kookmin": row(0.01224, 0.002, runs="halved"),
                                         "finetune": kept}))
    assert report.exit_status == 1
    (problem,) = report.problems
    assert problem.startswith("kookmin (public): final score dropped by 0.00660")
    rows = report.rows.set_index("submission")
    # z = -0.0066 / (0.002 sqrt 2) = -2.333; one row tested, so Holm leaves p as it is
    assert rows.loc["kookmin", "p"] == pytest.approx(normal_cdf(-0.0066 / (0.002 * math.sqrt(2))))
    assert rows.loc["kookmin", "verdict"] == "DROP"
    assert rows.loc["finetune", "verdict"] == "ok (same runs)"
    assert math.isnan(rows.loc["finetune", "p"])  # reproduced rows are not in the family
    text = report.format()
    assert "-0.00660" in text and "DROP" in text and "p (Holm)" in text


def test_the_correction_counts_every_row_tested() -> None:
    names = ["a", "b", "c", "d"]
    base = board([(n, "ok", 0.02) for n in names])
    now = board([("a", "ok", 0.0142), *((n, "ok", 0.02) for n in names[1:])])
    before = gates({n: row(0.02) for n in names})
    # a alone: z = -0.0058 / 0.002828 = -2.05, p = 0.020 <= 0.05: a drop
    alone = gates({"a": row(0.0142, runs="x"), **{n: row(0.02) for n in names[1:]}})
    assert compare(base, now, baseline_gate=before, current_gate=alone).exit_status == 1
    # every row re-run (others unchanged in score): p = 4 x 0.020 = 0.08 > 0.05, no drop
    rerun = gates({"a": row(0.0142, runs="x"), **{n: row(0.02, runs="x") for n in names[1:]}})
    report = compare(base, now, baseline_gate=before, current_gate=rerun)
    assert report.exit_status == 0
    assert report.rows.loc[0, "p"] == pytest.approx(4 * normal_cdf(-0.0058 / (0.002 * 2**0.5)))


def test_identical_rescoring_passes_and_a_rise_is_never_a_drop() -> None:
    rows = rows_of(BASE)
    report = compare(board(BASE), board(BASE), baseline_gate=gates(rows),
                     current_gate=gates(rows))
    assert report.exit_status == 0
    assert list(report.rows["verdict"]) == ["ok (same runs)", "ok (same runs)", "still error"]
    risen = gates({**rows, "finetune": row(0.5, runs="new")})
    report = compare(board(BASE), board([("finetune", "ok", 0.5), *BASE[1:]]),
                     baseline_gate=gates(rows), current_gate=risen)
    assert report.exit_status == 0 and report.rows.loc[0, "p"] == pytest.approx(1.0)


def test_the_pool_row_of_the_audits_is_not_compared() -> None:
    """The baseline's ``(retrained pool)`` row holds audit values and no score; the check
    re-scores without the audits, so the row is absent there and must not fail as missing."""
    from harness.outputs.leaderboard import POOL_ROW

    rows = rows_of(BASE)
    report = compare(board([*BASE, (POOL_ROW, "reference", np.nan)]), board(BASE),
                     baseline_gate=gates(rows), current_gate=gates(rows))
    assert report.exit_status == 0, report.problems
    assert POOL_ROW not in set(report.rows["submission"])


def test_the_same_runs_scored_lower_fail_whatever_the_spread() -> None:
    # the runs are the baseline's: a lower score can only come from the scoring code
    base, now = board([("finetune", "ok", 0.3)]), board([("finetune", "ok", 0.2999)])
    report = compare(base, now, baseline_gate=gates({"finetune": row(0.3, se=0.05)}),
                     current_gate=gates({"finetune": row(0.2999, se=0.05)}))
    assert report.exit_status == 1 and report.rows.loc[0, "verdict"] == "DROP"
    # also where the re-scoring took the baseline's gate row over (same runs): the boards decide
    report = compare(base, now, baseline_gate=gates({"finetune": row(0.3, se=0.05)}),
                     current_gate=gates({"finetune": row(0.3, se=0.05)}))
    assert report.exit_status == 1 and report.rows.loc[0, "verdict"] == "DROP"


def test_another_pool_or_forget_set_is_not_comparable() -> None:
    base, now = board([("finetune", "ok", 0.3)]), board([("finetune", "ok", 0.3)])
    for other in (row(0.3, pool="p1"), row(0.3, e=9)):
        report = compare(base, now, baseline_gate=gates({"finetune": row(0.3)}),
                         current_gate=gates({"finetune": other}))
        assert report.exit_status == 1
        assert "reference pool or forget set differs" in report.problems[0]
        assert report.rows.loc[0, "verdict"] == "not comparable"


def test_the_paired_test_needs_gate_rows() -> None:
    with pytest.raises(ValueError, match="gate rows"):
        compare(board(BASE), board(BASE))
    with pytest.raises(ValueError, match="no gate row"):
        compare(board(BASE), board(BASE), baseline_gate={}, current_gate={})


def test_points_are_written_one_character_each_and_read_back_exactly() -> None:
    values = points(np.array([0.0, 0.4, 0.6, 1.2, 6.9, 7.0, 50.0, np.nan]), 512)
    text = encode_points(values)
    assert text == "0012d..."  # buckets 0, 0, 1, 2, 13, then 0 points thrice
    assert np.array_equal(decode_points(text), values)
    with pytest.raises(ValueError, match="not a point value"):
        encode_points(np.array([0.3]))
    with pytest.raises(ValueError, match="not an encoding"):
        decode_points("01?")


def test_the_gate_file_round_trips_and_is_checked_against_its_board(tmp_path) -> None:
    path = tmp_path / "leaderboard.csv"
    base = board(BASE, n=16)
    base.to_csv(path, index=False)
    rows = {"finetune": row(0.30, runs="a1"), "gradient_ascent": row(0.10, runs="b2")}
    write_gate(gate_path(path), {"public": rows}, 16)
    assert gate_path(path).name == "leaderboard.gate.csv"
    assert gate_path(path).stat().st_size < 2000  # kilobytes, not megabytes
    read = read_gate(gate_path(path), read_leaderboard(path), str(path))
    assert set(read) == set(gates(rows)) and all(
        (read[k].final_score, read[k].runs_se, read[k].runs, read[k].pool)
        == (r.final_score, r.runs_se, r.runs, r.pool) and np.array_equal(read[k].points, r.points)
        for k, r in gates(rows).items())
    with pytest.raises(FileNotFoundError, match="not found.*harness score"):
        read_gate(tmp_path / "nope.gate.csv", base, str(path))
    other = board([("finetune", "ok", 0.31), *BASE[1:]], n=16)
    with pytest.raises(ValueError, match="does not match.*finetune.*scores 0.31"):
        read_gate(gate_path(path), other, str(path))
    with pytest.raises(ValueError, match="N differs"):
        read_gate(gate_path(path), board(BASE, n=32), str(path))
    write_gate(gate_path(path), {"public": {"finetune": rows["finetune"]}}, 16)
    with pytest.raises(ValueError, match="gradient_ascent .public. has no gate row"):
        read_gate(gate_path(path), base, str(path))
    write_gate(gate_path(path), {"public": {**rows, "finetune": row(0.30, e=9)}}, 16)
    with pytest.raises(ValueError, match="different numbers of forget examples"):
        read_gate(gate_path(path), base, str(path))
    gate_path(path).write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_gate(gate_path(path), base, str(path))


def test_check_without_a_gate_file_says_what_to_do(tmp_path, monkeypatch) -> None:
    path = tmp_path / "leaderboard.csv"
    board(BASE).to_csv(path, index=False)
    monkeypatch.setattr(scoring, "score", lambda *a, **k: pytest.fail("must not score"))
    with pytest.raises(FileNotFoundError, match="leaderboard.gate.csv not found"):
        cli.cmd_check(parse(["--baseline", str(path), "--no-progress"]))
    assert cli.main(["check", "--baseline", str(path), "--no-progress"]) == 2


def stats(confidences: np.ndarray, retain: np.ndarray, test: np.ndarray) -> ModelStats:
    n = len(retain)
    return ModelStats(np.asarray(confidences, dtype=float), np.asarray(retain, dtype=float),
                      np.asarray(test, dtype=float), np.ones(n), np.zeros(n))


def test_gate_row_points_are_the_metrics_and_identical_runs_have_no_spread() -> None:
    rng = np.random.default_rng(0)
    pool = stats(rng.normal(0, 1, (16, 5)), np.full(16, 0.9), np.full(16, 0.8))
    runs = stats(rng.normal(0.5, 1, (16, 5)), np.full(16, 0.9), np.full(16, 0.8))
    result = gate_row(runs, pool, seed=1)
    expected = points(epsilons(runs.confidences, pool.confidences), 16)
    assert np.array_equal(result.points, expected)
    assert result.final_score == pytest.approx(expected.mean())  # the ratios are 1 here
    assert result.runs_se > 0
    same = stats(np.tile(runs.confidences[:1], (16, 1)), runs.retain_acc, runs.test_acc)
    assert gate_row(same, pool, seed=1).runs_se == 0.0


def test_the_bootstrap_moves_the_utility_ratios_with_the_runs() -> None:
    # every model gives every example the same confidence: no attack tells them apart, each
    # epsilon is 0 and F = 1 in every resample; the runs differ in retain accuracy only, so the
    # spread of the final score is sd(mean retain accuracy) / RA_R, known in closed form
    n = 16
    pool = stats(np.full((n, 4), 2.0), np.full(n, 0.8), np.full(n, 0.5))
    retain = np.where(np.arange(n) % 2 == 0, 0.6, 1.0)  # mean 0.8, population sd 0.2
    runs = stats(np.full((n, 4), 2.0), retain, np.full(n, 0.5))
    result = gate_row(runs, pool, seed=3, replicates=300)
    assert np.array_equal(result.points, np.ones(4))
    assert result.final_score == pytest.approx(1.0)  # mean accuracies equal the pool's
    # bootstrap of a mean of n values: sd = population sd / sqrt(n) = 0.2 / 4; over RA_R = 0.8
    assert result.runs_se == pytest.approx(0.05 / 0.8, rel=0.15)  # 300 replicates: +-4%


def test_the_detectable_drop_by_hand() -> None:
    # one row, 50% power: z_0.95 sqrt(2) se = 1.644854 * 1.414214 * 0.002
    assert detectable_drop(0.002) == pytest.approx(1.644854 * math.sqrt(2) * 0.002)
    # 16 rows at once, 80% power: (z_{1 - 0.05/16} + z_0.8) sqrt(2) se
    assert detectable_drop(0.002, tested=16, power=0.8) == pytest.approx(
        (2.734369 + 0.841621) * math.sqrt(2) * 0.002, rel=1e-5)


def test_the_pool_file_round_trips_exactly_and_must_be_the_gate_rows_pool(
    tmp_path, monkeypatch
) -> None:
    """``harness check`` scores against these numbers on any machine: they must come back bit for
    bit, and belong to the gate rows they are read with; rewritten, they change no byte."""
    real_time = time.time
    rng = np.random.default_rng(5)
    pools = {split: stats(rng.normal(0, 1, (16, 5)), rng.uniform(0.8, 1, 16),
                          rng.uniform(0.7, 0.9, 16)) for split in ("private", "public")}
    path = gate_pool_path(tmp_path / "leaderboard.csv")
    assert path.name == "leaderboard.gate.npz"
    assert read_gate_pools(path, {}) == ({}, {})  # an older baseline: none (the check trains one)
    write_gate_pools(path, {split: GatePool(p, f"data-{split}") for split, p in pools.items()})

    def rows_for(prints: dict[str, str]) -> dict[tuple[str, str], GateRow]:
        return {(split, name): row(0.1, pool=prints[split]) for split in prints
                for name in ("finetune", "kookmin")}

    prints = {split: stats_fingerprint(p) for split, p in pools.items()}
    read, _ = read_gate_pools(path, rows_for(prints))
    assert set(read) == {"private", "public"}
    for split, pool in pools.items():
        assert read[split].data == f"data-{split}"
        for name in ("confidences", "retain_acc", "test_acc", "forget_acc", "seconds"):
            assert np.array_equal(getattr(read[split].stats, name), getattr(pool, name))
        assert stats_fingerprint(read[split].stats) == prints[split]
    assert set(read_gate_pools(path, rows_for({"public": prints["public"]}))[0]) == {"public"}
    written = path.read_bytes()  # the same numbers written a day later: the same bytes
    monkeypatch.setattr(time, "time", lambda: 86_400.0 + real_time())
    write_gate_pools(path, {split: GatePool(p, f"data-{split}") for split, p in pools.items()})
    assert path.read_bytes() == written
    with pytest.raises(ValueError, match="private split's pool is not the one its gate rows"):
        read_gate_pools(path, rows_for({**prints, "private": prints["public"]}))
    write_gate_pools(path, {"public": GatePool(pools["public"], "data-public")})
    with pytest.raises(ValueError, match="lacks 'private.confidences'.*harness score"):
        read_gate_pools(path, rows_for(prints))
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="unreadable .npz.*harness score"):
        read_gate_pools(path, rows_for(prints))


def test_the_sample_is_the_first_runs_numbers_and_only_at_a_large_n() -> None:
    rng = np.random.default_rng(3)
    n = SAMPLE_MIN_MODELS
    runs = stats(rng.normal(0, 1, (n, 5)), rng.uniform(0.8, 1, n), rng.uniform(0.7, 0.9, n))
    first = stats(runs.confidences[:SAMPLE_RUNS], runs.retain_acc[:SAMPLE_RUNS],
                  runs.test_acc[:SAMPLE_RUNS])
    assert sample_fingerprint(runs) == stats_fingerprint(first) != stats_fingerprint(runs)
    later = stats(runs.confidences.copy(), runs.retain_acc, runs.test_acc)
    later.confidences[SAMPLE_RUNS, 0] += 1e-12  # a run after the sample
    assert sample_fingerprint(later) == sample_fingerprint(runs)
    for moved in ((SAMPLE_RUNS - 1, 4), (0, 0)):  # any number of a sampled run
        changed = stats(runs.confidences.copy(), runs.retain_acc, runs.test_acc)
        changed.confidences[moved] += 1e-12
        assert sample_fingerprint(changed) != sample_fingerprint(runs)
    assert sample_fingerprint(stats(runs.confidences[:n - 1], runs.retain_acc[:n - 1],
                                    runs.test_acc[:n - 1])) == ""


def test_a_row_may_be_sampled_only_for_the_code_that_produced_and_scored_it() -> None:
    sampled = replace(row(0.3), provenance="code", scorer="scorer", sample="s")
    assert sampled.can_sample("code", "scorer")
    assert not sampled.can_sample("other code", "scorer")
    assert not sampled.can_sample("code", "other scorer")
    assert not replace(sampled, sample="").can_sample("code", "scorer")  # a small N: none


def test_the_sample_columns_round_trip_and_an_older_gate_file_has_none(tmp_path) -> None:
    path = tmp_path / "leaderboard.csv"
    board(BASE, n=16).to_csv(path, index=False)
    rows = {"finetune": replace(row(0.30), provenance="0a1b", scorer="2c3d", sample="0042"),
            "gradient_ascent": row(0.10)}
    write_gate(gate_path(path), {"public": rows}, 16)
    read = read_gate(gate_path(path), read_leaderboard(path), str(path))
    assert (read["public", "finetune"].provenance, read["public", "finetune"].scorer,
            read["public", "finetune"].sample) == ("0a1b", "2c3d", "0042")  # "0042" stays text
    assert read["public", "gradient_ascent"].sample == ""
    older = pd.read_csv(gate_path(path), dtype=str).drop(columns=["provenance", "scorer",
                                                                  "sample"])
    older.to_csv(gate_path(path), index=False)
    read = read_gate(gate_path(path), read_leaderboard(path), str(path))
    assert not read["public", "finetune"].can_sample("0a1b", "2c3d")


def test_rows_reproduced_on_their_sample_pass_without_a_re_scored_row() -> None:
    rows = rows_of(BASE)
    current = board([BASE[1], BASE[2]])  # finetune was taken over on its sample
    report = compare(board(BASE), current, baseline_gate=gates(rows),
                     current_gate=gates({"gradient_ascent": rows["gradient_ascent"]}),
                     reproduced={("public", "finetune"): 0.0})
    assert report.exit_status == 0, report.problems
    verdicts = dict(zip(report.rows["submission"], report.rows["verdict"], strict=True))
    assert verdicts["finetune"] == f"ok (same code, first {SAMPLE_RUNS} runs the same)"
    assert report.rows.loc[0, "delta"] == 0
    # without it, the same re-scoring misses the row
    report = compare(board(BASE), current, baseline_gate=gates(rows),
                     current_gate=gates({"gradient_ascent": rows["gradient_ascent"]}))
    assert report.exit_status == 1 and "finetune" in report.problems[0]
    # a split whose every row was taken over counts as re-scored
    private = board(BASE[:1], split="private")
    report = compare(pd.concat([board(BASE), private]), board(BASE),
                     baseline_gate={**gates(rows), **gates(rows_of(BASE[:1]), "private")},
                     current_gate=gates(rows), reproduced={("private", "finetune"): 0.0})
    assert report.exit_status == 0, report.problems


def test_a_sample_apart_only_by_rounding_is_reproduced_and_any_other_difference_is_not() -> None:
    """Another CPU's rounding moves a sample's numbers by ~1e-5
    (``bench/bench_sample_across_cpus.py``); runs drawn afresh, a shifted example or moved
    accuracies are a different sample."""
    rng = np.random.default_rng(4)
    n, e = SAMPLE_MIN_MODELS, 6
    confidences = rng.normal(0, 2, (n, e))
    confidences[:, 5] = 7.0  # an example every run leaves alone (do_nothing): no spread
    runs = stats(confidences, rng.uniform(0.8, 1, n), rng.uniform(0.7, 0.9, n))
    base = with_sample(row(0.3, e=e), runs, "code", "scorer")
    assert (base.provenance, base.scorer) == ("code", "scorer")
    assert base.sample == sample_fingerprint(runs)

    def sampled(conf=None, retain=None, test=None, runs_=SAMPLE_RUNS) -> ModelStats:
        return stats(confidences[:runs_] if conf is None else conf,
                     runs.retain_acc[:runs_] if retain is None else retain,
                     runs.test_acc[:runs_] if test is None else test)

    assert base.sample_shift(sampled()) == 0.0  # the same numbers
    rounded = confidences[:SAMPLE_RUNS] + rng.normal(0, 1e-5, (SAMPLE_RUNS, e))
    assert 0 < base.sample_shift(sampled(rounded)) < SAMPLE_SHIFT / 10
    sd = confidences[:SAMPLE_RUNS].std(axis=0, ddof=1)
    moved = confidences[:SAMPLE_RUNS].copy()
    moved[:, 2] += 0.1 * sd[2]  # one example's mean moved by a tenth of its spread
    assert base.sample_shift(sampled(moved)) == pytest.approx(0.1)
    still = confidences[:SAMPLE_RUNS].copy()
    still[:, 5] += 0.002  # no spread: measured against the floor 0.01, a shift of 0.2
    assert base.sample_shift(sampled(still)) == pytest.approx(0.2)
    redrawn = rng.normal(0, 2, (SAMPLE_RUNS, e))  # the same code with other seeds
    redrawn[:, 5] = 7.0
    assert base.sample_shift(sampled(redrawn)) > 4 * SAMPLE_SHIFT
    flipped = runs.retain_acc[:SAMPLE_RUNS] + 0.002  # one more retain example in 500, every run
    assert base.sample_shift(sampled(retain=flipped)) == math.inf
    assert base.sample_shift(sampled(test=runs.test_acc[:SAMPLE_RUNS] - 0.002)) == math.inf
    broken = confidences[:SAMPLE_RUNS].copy()
    broken[3, 1] = np.nan
    assert base.sample_shift(sampled(broken)) == math.inf
    assert base.sample_shift(sampled(rounded[:, :4])) == math.inf  # other forget examples
    assert base.sample_shift(sampled(rounded[:8], runs_=8)) == math.inf  # too few runs
    # an older gate file keeps no summary: only the same numbers reproduce it
    assert replace(base, summary=None).sample_shift(sampled(rounded)) == math.inf
    small = stats(confidences[:n - 1], runs.retain_acc[:n - 1], runs.test_acc[:n - 1])
    assert with_sample(row(0.3, e=e), small, "code", "scorer").summary is None  # a small N


def test_the_sample_summaries_round_trip_with_the_pools_and_must_be_their_rows(tmp_path) -> None:
    rng = np.random.default_rng(6)
    n, e = SAMPLE_MIN_MODELS, 8
    runs = {name: stats(rng.normal(0, 1, (n, e)), rng.uniform(0.8, 1, n),
                        rng.uniform(0.7, 0.9, n)) for name in ("finetune", "kookmin")}
    pool = stats(rng.normal(0, 1, (16, e)), rng.uniform(0.8, 1, 16), rng.uniform(0.7, 0.9, 16))
    pooled = stats_fingerprint(pool)
    rows = {"public": {name: with_sample(row(0.2, e=e, pool=pooled), r, "code", "scorer")
                       for name, r in runs.items()}}
    rows["public"]["ceiling"] = row(0.1, e=e, pool=pooled)  # no runs of code: no sample
    path = gate_pool_path(tmp_path / "leaderboard.csv")
    plain = {("public", name): replace(r, summary=None) for name, r in rows["public"].items()}
    assert read_gate_pools(path, plain) == ({}, plain)  # no file (an older baseline): as they were
    write_gate_pools(path, {"public": GatePool(pool, "data")}, rows)
    _, read = read_gate_pools(path, plain)
    assert read["public", "ceiling"].summary is None
    for name, r in runs.items():
        kept, made = read["public", name].summary, rows["public"][name].summary
        assert np.array_equal(kept.mean, made.mean) and np.array_equal(kept.sd, made.sd)
        assert (kept.retain_acc, kept.test_acc) == (made.retain_acc, made.test_acc)
        assert read["public", name].sample_shift(stats(
            r.confidences[:SAMPLE_RUNS] + 1e-6, r.retain_acc[:SAMPLE_RUNS],
            r.test_acc[:SAMPLE_RUNS])) < SAMPLE_SHIFT
    stale = {**plain, ("public", "kookmin"): replace(plain["public", "kookmin"], sample="0" * 16)}
    with pytest.raises(ValueError, match="sample kept for kookmin .public. is not its gate row"):
        read_gate_pools(path, stale)
    arrays = dict(np.load(path))
    del arrays["public.sample.finetune.sd"]
    np.savez(path.with_name("cut.npz"), **arrays)
    with pytest.raises(ValueError, match="sample kept for finetune .public. is incomplete"):
        read_gate_pools(path.with_name("cut.npz"), plain)


def test_a_row_reproduced_within_rounding_says_how_far_its_sample_lay() -> None:
    rows = rows_of(BASE)
    report = compare(board(BASE), board([BASE[1], BASE[2]]), baseline_gate=gates(rows),
                     current_gate=gates({"gradient_ascent": rows["gradient_ascent"]}),
                     reproduced={("public", "finetune"): 0.0031})
    assert report.exit_status == 0, report.problems
    verdicts = dict(zip(report.rows["submission"], report.rows["verdict"], strict=True))
    assert verdicts["finetune"] == (f"ok (same code, first {SAMPLE_RUNS} runs within rounding: "
                                    "0.0031 sd)")
