"""The whole pipeline on the digits task with a small N."""

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.evaluation.gate import (
    gate_path,
    gate_pool_path,
    read_gate,
    read_gate_pools,
    stats_fingerprint,
)
from harness.evaluation.model_stats import ModelStats
from harness.execution.phases import EVALUATION, OWN_RUN_TIME, Phases, phases_path
from harness.execution.runner import WorkerPool
from harness.outputs.leaderboard import CEILING_ROW, POOL_ROW
from harness.pipeline import regression, scoring
from harness.pipeline.scoring import build_reference, score
from harness.pipeline.setup import measure_retrain_seconds
from harness.reference.pool import POOL, ReferenceStore
from harness.tasks import get_task

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"
N = 16

RAISES = '''
def unlearning(net, retain, forget, val):
    raise RuntimeError("deliberate failure")
'''


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    submissions = root / "submissions"
    submissions.mkdir()
    for name in ("do_nothing", "finetune", "gradient_ascent"):
        shutil.copy(EXAMPLES / f"{name}.py", submissions)
    (submissions / "raises.py").write_text(RAISES)
    task = get_task("digits", num_models=N)
    kwargs = dict(
        reference_root=root / "ref", output_dir=root / "results",
        leaderboard_path=root / "leaderboard.csv", jobs=2,
        # this test is about the ordering; budgets are tested apart (so is the yardstick)
        budget_seconds=float("inf"), timeout=600,
    )
    phases = Phases()
    board = score(task, submissions, **kwargs, phases=phases)
    # read now: the module's later scorings write over it
    phases.written = pd.read_csv(phases_path(kwargs["leaderboard_path"]))
    phases.gate = read_gate(gate_path(kwargs["leaderboard_path"]), board, "the board")
    phases.pools, _ = read_gate_pools(gate_pool_path(kwargs["leaderboard_path"]),
                                      phases.gate)
    return task, root, submissions, kwargs, board, phases


@pytest.mark.slow
def test_leaderboard_orders_the_baselines(scored):
    _, root, _, _, board, _ = scored
    by_name = board.set_index("submission")
    assert (by_name.loc[["do_nothing", "finetune"], "status"] == "ok").all()
    assert by_name.loc[CEILING_ROW, "status"] == "reference"
    do_nothing, finetune, ceiling = (
        by_name.loc[name, "final_score"] for name in ("do_nothing", "finetune", CEILING_ROW)
    )
    assert do_nothing == 0.0  # zero spread: every example gets the cap
    assert do_nothing < finetune < ceiling
    assert pd.isna(by_name.loc[CEILING_ROW, "rank"])
    written = pd.read_csv(root / "leaderboard.csv")
    assert list(written["submission"]) == list(board["submission"])
    assert (written["num_models"] == N).all() and (written["task"] == "digits").all()


@pytest.mark.slow
def test_a_raising_submission_is_an_error_row_and_harms_no_other(scored):
    _, _, _, _, board, _ = scored
    row = board.set_index("submission").loc["raises"]
    assert row["status"] == "error"
    assert "deliberate failure" in row["message"]
    assert pd.isna(row["rank"])
    assert board.set_index("submission").loc["finetune", "runs_ok"] == N


@pytest.mark.slow
def test_second_run_trains_nothing_and_reruns_nothing(scored, monkeypatch):
    task, root, submissions, kwargs, board, _ = scored
    (submissions / "late_arrival.py").write_text(
        (EXAMPLES / "do_nothing.py").read_text()
    )

    def no_training(*args, **kwargs):
        raise AssertionError("the cached pool was retrained")

    monkeypatch.setattr("harness.reference.pool.train_model", no_training)
    again = score(task, submissions, **kwargs, train_chunk=no_training)
    merged = again.set_index("submission")
    assert merged.loc["late_arrival", "status"] == "ok"
    for name in ("finetune", CEILING_ROW, "do_nothing"):
        for column in ("final_score", "final_score_lo", "final_score_hi"):
            assert merged.loc[name, column] == board.set_index("submission").loc[name, column]
    status = ReferenceStore(task, task.load_data(), kwargs["reference_root"]).status()
    assert status["models_done"] == N and status["original_model"]


def test_without_measures_the_scores_come_without_intervals_or_audits(scored):
    """What ``harness check`` asks for: the same scores and gate rows, no interval or audit
    phase."""
    task, _, submissions, kwargs, board, _ = scored
    phases, gate = Phases(), {}
    before = board.set_index("submission").drop(index=POOL_ROW)  # the audits' row
    names = [n for n in before.index if n != CEILING_ROW]  # not another test's late arrival
    again = score(task, submissions, **{**kwargs, "leaderboard_path": None}, phases=phases,
                  gate=gate, measures=False, names=names).set_index("submission")
    assert sorted(again.index) == sorted(before.index)
    pd.testing.assert_series_equal(again.loc[before.index, "final_score"], before["final_score"])
    assert again["final_score_se"].isna().all() and "intervals" not in phases.seconds
    assert "audits" not in phases.seconds and "gate" in phases.seconds
    assert set(gate) == set(before.index[before["final_score"].notna()])


def test_with_the_budget_and_the_timeout_given_no_retraining_is_timed(scored):
    _, _, _, kwargs, board, phases = scored
    assert kwargs["budget_seconds"] is not None and kwargs["timeout"] is not None
    assert board["retrain_seconds"].isna().all()
    assert phases.seconds["yardstick"] < 1  # read nothing, timed nothing


def test_with_every_run_recorded_no_worker_starts(scored, monkeypatch):
    """Nothing to run and no yardstick to time (a re-scoring, or ``harness check`` of unchanged
    code): no worker process is started, and the scores are the recorded ones. (Not ``raises``:
    failed runs are tried again.)"""
    task, _, submissions, kwargs, board, _ = scored

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker process was started")

    # as `harness check` without --timeout, which needs the yardstick: recorded here as the
    # workers would record it (its value is not what this test is about)
    store = ReferenceStore(task, task.load_data(), kwargs["reference_root"])
    workers = WorkerPool(task, store.original_path, jobs=kwargs["jobs"])
    monkeypatch.setattr(workers, "time_retrain", lambda: 1.25)
    measure_retrain_seconds(store, workers)
    options = {**kwargs, "leaderboard_path": None, "timeout": None}
    monkeypatch.setattr(WorkerPool, "_spawn", no_worker)
    phases = Phases()
    before = board.set_index("submission")
    names = ["do_nothing", "finetune", "gradient_ascent"]
    again = score(task, submissions, **options, phases=phases, names=names).set_index(
        "submission")
    pd.testing.assert_series_equal(again.loc[names, "final_score"],
                                   before.loc[names, "final_score"])
    assert (again["retrain_seconds"] == 1.25).all()
    assert "workers start" not in phases.seconds


SLEEPS = '''
import time


def unlearning(net, retain, forget, val):
    time.sleep(0.3)
'''


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """One reference cache for the small scorings (they test runs and records, not the cache):
    its original model, pool and yardstick are made once."""
    return tmp_path_factory.mktemp("small-ref")


@pytest.fixture()
def small(tmp_path, small_reference):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(EXAMPLES / "finetune.py", submissions)
    kwargs = dict(
        reference_root=small_reference, output_dir=tmp_path / "results",
        leaderboard_path=tmp_path / "leaderboard.csv", jobs=1, ceiling=False,
    )
    return get_task("digits", num_models=6), submissions, kwargs


def test_over_budget_submission_is_stopped_early_and_not_ranked(small):
    task, submissions, kwargs = small
    (submissions / "sleepy.py").write_text(SLEEPS)
    board = score(task, submissions, **kwargs, names=["sleepy"], budget_seconds=0.05)
    row = board.set_index("submission").loc["sleepy"]
    assert row["status"] == "over-budget"
    assert pd.isna(row["rank"]) and pd.isna(row["final_score"])
    assert row["seconds_per_run"] >= 0.3
    assert "exceeds the budget" in row["message"]
    runs = (kwargs["output_dir"]).glob("*/runs/sleepy.jsonl")
    assert len(next(runs).read_text().splitlines()) == 3  # BUDGET_PROBE_RUNS, not N


def test_interrupted_scoring_resumes_without_redoing_runs(small, monkeypatch):
    task, submissions, kwargs = small
    kwargs["budget_seconds"] = float("inf")  # about resuming: a busy machine must not judge time
    first = score(task, submissions, **kwargs)
    records = next(kwargs["output_dir"].glob("*/runs/finetune.jsonl"))
    lines = records.read_text().splitlines()
    records.write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])  # killed mid-write

    from harness.execution.runner import WorkerPool

    served = []
    original_run = WorkerPool.run

    def counting_run(self, requests, on_result, skip=None):
        requests = list(requests)
        served.extend(requests)
        return original_run(self, requests, on_result, skip)

    monkeypatch.setattr(WorkerPool, "run", counting_run)
    again = score(task, submissions, **kwargs)
    assert sorted(r.run_index for r in served) == [2, 3, 4, 5]
    assert again.set_index("submission").loc["finetune", "final_score"] == (
        first.set_index("submission").loc["finetune", "final_score"])


def test_unknown_submission_name_is_a_clear_error(small):
    task, submissions, kwargs = small
    with pytest.raises(ValueError, match="unknown submission.*nope.*found: finetune"):
        score(task, submissions, **kwargs, names=["nope"])


def test_unwritable_output_folder_fails_before_any_work(small, tmp_path):
    task, submissions, kwargs = small
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    fresh = tmp_path / "ref"
    with pytest.raises(PermissionError, match="not writable"):
        score(task, submissions, **{**kwargs, "output_dir": blocker / "out",
                                    "reference_root": fresh})
    assert not fresh.exists()  # nothing was trained


@pytest.mark.slow
def test_every_score_has_an_interval_and_a_rank_range(scored):
    _, _, _, _, board, _ = scored
    rows = board.set_index("submission")
    for name in ("do_nothing", "finetune", "gradient_ascent", CEILING_ROW):
        low, value, high = rows.loc[name, ["final_score_lo", "final_score", "final_score_hi"]]
        assert low <= value <= high, name
    assert rows.loc["do_nothing", "final_score_hi"] == 0.0  # no spread, no doubt
    assert rows.loc[CEILING_ROW, "final_score_hi"] > rows.loc[CEILING_ROW, "final_score_lo"]
    ranked = board[board["status"] == "ok"]
    low, rank, high = (ranked[c].astype(int).tolist() for c in ("rank_lo", "rank", "rank_hi"))
    assert all(1 <= lo <= r <= hi <= len(ranked) for lo, r, hi in zip(low, rank, high, strict=True))
    assert low[0] == 1  # nothing scores above the first (ranges need not be sorted: the noise
    # of each row differs)
    assert rows.loc[CEILING_ROW, ["rank", "rank_lo", "rank_hi"]].isna().all()


@pytest.mark.slow
def test_the_phases_add_up_and_are_written_beside_the_leaderboard(scored):
    """Every phase of a first scoring was timed (nothing was cached), the runs phase holds the
    submissions' own time, and the table beside the leaderboard says the same."""
    task, _, _, _, board, phases = scored
    expected = ["set-up", "original model", "reference pool", "ceiling pool", "workers start",
                "yardstick", "runs", OWN_RUN_TIME, EVALUATION, "intervals", "gate", "audits",
                "leaderboard"]
    assert list(phases.seconds) == expected
    assert all(seconds > 0 for seconds in phases.seconds.values())
    # the runs' own seconds, divided by the 2 workers, fit in the runs phase's wall time
    ok = board[board["status"] == "ok"]
    own = (ok["seconds_per_run"] * ok["runs_ok"]).sum() / 2
    assert phases.seconds[OWN_RUN_TIME] == pytest.approx(own, rel=0.5)
    assert phases.seconds[OWN_RUN_TIME] < phases.seconds["runs"]
    assert phases.total() == pytest.approx(
        sum(s for name, s in phases.seconds.items() if name not in (OWN_RUN_TIME, EVALUATION)))
    assert 0 < phases.harness_share() < 1
    table = phases.written
    assert set(table["split"]) == {task.split}
    written = dict(zip(table["phase"], table["seconds"], strict=True))
    assert written["runs"] == pytest.approx(phases.seconds["runs"])
    assert written["total"] == pytest.approx(phases.total())
    # the gate's rows beside it: one per row with a score (read_gate checks them against it)
    scored_rows = board[board["final_score"].notna()]
    assert sorted(name for _, name in phases.gate) == sorted(scored_rows["submission"])


def test_the_gate_rows_pool_is_written_beside_the_leaderboard(scored):
    task, root, _, kwargs, _, phases = scored
    pool = build_reference(ReferenceStore(task, task.load_data(), kwargs["reference_root"]))
    written = phases.pools[task.split]
    assert written.data == task.load_data().fingerprint
    assert stats_fingerprint(written.stats) == stats_fingerprint(pool)
    assert {row.pool for row in phases.gate.values()} == {stats_fingerprint(pool)}


def _as_another_cpu_trains_it(pool, task, data, indices):
    """A chunk of ``pool`` as another machine (or, observed once, another process) trains it
    from the same recipe and seeds: every confidence a little off (other vector units sum in
    another order; ``bench/bench_pool_across_cpus.py``)."""
    rows = {name: values[indices] for name, values in pool.to_arrays().items()}
    wobble = 1e-3 * np.cos(np.arange(rows["confidences"].size))
    rows["confidences"] = rows["confidences"] + wobble.reshape(rows["confidences"].shape)
    return ModelStats(**rows)


def test_check_pairs_with_the_baseline_s_pool_where_this_machine_trains_another(
    scored, tmp_path, monkeypatch
):
    """The baseline committed on one machine, CI on another: CI's pool differs a little,
    so the check scores against the baseline's committed pool numbers (and trains no pool); a
    baseline without them can only say the pools differ."""
    task, _, _, kwargs, _, _ = scored
    names = ["do_nothing", "finetune"]
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for name in names:  # the runs recorded by the fixture's scoring
        shutil.copy(EXAMPLES / f"{name}.py", submissions)
    here = build_reference(ReferenceStore(task, task.load_data(), kwargs["reference_root"]))
    baseline = tmp_path / "leaderboard.csv"
    score(task, submissions, **{**kwargs, "leaderboard_path": baseline,
                                "reference_root": tmp_path / "elsewhere"},
          train_chunk=partial(_as_another_cpu_trains_it, here), ceiling=False)
    theirs, _ = read_gate_pools(gate_pool_path(baseline),
                                read_gate(gate_path(baseline), pd.read_csv(baseline), "baseline"))
    assert stats_fingerprint(theirs[task.split].stats) != stats_fingerprint(here)  # premise
    options = dict(submissions_dir=submissions, reference_root=kwargs["reference_root"],
                   output_dir=kwargs["output_dir"], jobs=2, budget_seconds=float("inf"),
                   timeout=600)

    aside = tmp_path / "aside.npz"
    gate_pool_path(baseline).rename(aside)  # a baseline from before the pool was committed
    report = regression.check(baseline, **options)
    assert report.exit_status == 1
    assert set(report.rows["verdict"]) == {"not comparable"}
    aside.rename(gate_pool_path(baseline))

    def no_pool(store, reporter=None, train_chunk=None, jobs=1, which=POOL):
        assert which != POOL, "the check trained a reference pool"
        return build_reference(store, reporter, train_chunk, jobs, which)

    monkeypatch.setattr(scoring, "build_reference", no_pool)
    report = regression.check(baseline, **options)
    assert report.exit_status == 0, report.problems
    assert sorted(report.rows["submission"]) == names
    assert set(report.rows["verdict"]) == {"ok (same runs)"}


def test_a_given_pool_is_for_scores_without_audits(scored):
    task, _, submissions, kwargs, _, phases = scored
    with pytest.raises(ValueError, match="no per-example losses for the audits"):
        score(task, submissions, **{**kwargs, "leaderboard_path": None},
              reference_pool=phases.pools[task.split])
