"""Leaderboard rows built from run records: the time column is the number the budget judges."""

import numpy as np

from harness.evaluation.model_stats import ModelStats
from harness.execution.records import OK, Outcome, RunResult
from harness.outputs.leaderboard import build_leaderboard
from harness.tasks import get_task

VERSIONS = {"harness": "0", "torch": "0", "python": "0"}


def test_seconds_per_run_is_the_median_the_budget_judges():
    """One slow run among fast ones: the budget rule judges the median (under the budget, so the
    row is ranked), and the row shows that median, not the mean (above the budget), which once
    put a ranked row right of the budget line in the report's time plot."""
    n, examples = 4, 6
    task = get_task("digits", num_models=n)
    rng = np.random.default_rng(0)
    pool = ModelStats(confidences=rng.normal(size=(n, examples)), retain_acc=np.ones(n),
                      test_acc=np.ones(n), forget_acc=np.ones(n), seconds=np.ones(n))
    seconds = [0.01, 0.02, 0.03, 1.0]  # median 0.025, mean 0.265; the budget 0.1 between
    runs = {i: RunResult("m", "hash", "prov", i, i, OK, seconds=s, retain_acc=1.0, test_acc=1.0,
                         forget_acc=1.0, confidences=list(rng.normal(size=examples)))
            for i, s in enumerate(seconds)}
    outcome = Outcome("m", None, runs)
    assert not outcome.stop_if_over_budget(0.1)
    board = build_leaderboard(task, pool, [outcome], budget=0.1, retrain_seconds=0.5,
                              versions=VERSIONS)
    row = board.iloc[0]
    assert row["status"] == OK and row["rank"] == 1
    assert row["seconds_per_run"] == np.median(seconds) < 0.1 < np.mean(seconds)


def test_a_stall_every_worker_shares_does_not_stop_a_fast_submission():
    """Two workers: the first run of each stalled together (wall 1.12 s, as a busy disk once
    made them), the next ones took 20 ms. Three runs were enough to stop it with one worker;
    with two, the early stop waits for five, of which the stalled two are a minority. A slow
    submission is still stopped, after five runs."""
    def outcome(seconds: list[float]) -> Outcome:
        return Outcome("m", None, {i: RunResult("m", "h", "p", i, i, OK, seconds=s)
                                   for i, s in enumerate(seconds)})

    stalled = [1.12, 1.12, 0.016]
    assert outcome(stalled).stop_if_over_budget(0.1, at_once=1)  # the rule before
    assert not outcome(stalled).stop_if_over_budget(0.1, at_once=2)
    assert not outcome([*stalled, 0.02, 0.018]).stop_if_over_budget(0.1, at_once=2)
    assert not outcome([0.5] * 4).stop_if_over_budget(0.1, at_once=2)
    assert outcome([0.5] * 5).stop_if_over_budget(0.1, at_once=2)
