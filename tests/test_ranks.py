"""Rank intervals against independent evidence: hand-made replicates whose paired standard errors
are known exactly (orthogonal noise patterns), hand-worked Holm steps, and a literal Holm written
here (adjusted p-values, another formulation than the module's step-down loop) that recomputes
every interval of random replicate sets."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import hadamard
from scipy.stats import norm

from harness.evaluation.ranks import (
    holm,
    pairwise_p_values,
    rank_intervals,
    rank_text,
    significantly_above,
    tied_for_first,
)
from harness.evaluation.uncertainty import Replicates
from harness.outputs.leaderboard import markdown_table, read_leaderboard

B = 256  # example replicates of the hand-made sets
PATTERNS = hadamard(B)[1:].astype(float) * math.sqrt((B - 1) / B)  # mean 0, variance 1 each,
# pairwise uncorrelated: the variance of a difference is exactly the sum of the two variances


def made(score: float, sd: float, pattern: int, model_sd: float = 0.0) -> Replicates:
    """Replicates of ``score`` whose example part has standard deviation ``sd`` along its own
    orthogonal pattern (and a model part of ``model_sd`` along pattern 200's first 20 entries,
    shared by every set: it cancels in differences)."""
    examples = score + sd * PATTERNS[pattern]
    models = score + model_sd * PATTERNS[200, :20]
    return Replicates(score, score, examples, examples, models, models)


def literal_holm(p_values: list[float], alpha: float) -> list[bool]:
    """Holm through adjusted p-values: the j-th smallest p-value is adjusted to the running
    maximum of (m - i + 1) p_(i) over i <= j (capped at 1); reject where adjusted <= alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return [a <= alpha for a in adjusted]


def test_three_clearly_separated_rows_hold_one_rank_each():
    rows = [made(0.5, 0.01, 1), made(0.3, 0.01, 2), made(0.1, 0.01, 3)]
    assert rank_intervals(rows) == [(1, 1), (2, 2), (3, 3)]
    # the order of the input does not matter
    assert rank_intervals(rows[::-1]) == [(3, 3), (2, 2), (1, 1)]


def test_two_identical_rows_share_both_ranks():
    same_pattern = [made(0.2, 0.01, 1), made(0.2, 0.01, 1)]  # equal replicates: no difference
    other_pattern = [made(0.2, 0.01, 1), made(0.2, 0.01, 2)]  # equal scores, independent noise
    for rows in (same_pattern, other_pattern):
        assert rank_intervals(rows) == [(1, 2), (1, 2)]
    assert rank_intervals([made(0.2, 0.0, 1)]) == [(1, 1)]
    assert rank_intervals([]) == []


def test_a_chain_of_small_steps_does_not_join_the_ends():
    """a > b > c > d, 0.1 apart, each with sd 0.1 / sqrt(2): a neighbour's gap is 1 standard
    error of the difference (z = 1), two steps z = 2, the ends z = 3. By hand, two-sided normal
    p-values: 0.3173 (three neighbour pairs), 0.0455 (a-c, b-d), 0.0027 (a-d). Holm over 6
    pairs at 0.05: 0.0027 <= 0.05/6 = 0.0083 is rejected; 0.0455 > 0.05/5 = 0.01 stops it. So
    only a is above d: a 1-3, b 1-4, c 1-4, d 2-4; d is not tied for first. (Chaining the
    neighbours put all four in one group.)"""
    sd = 0.1 / math.sqrt(2)
    rows = [made(0.4, sd, 1), made(0.3, sd, 2), made(0.2, sd, 3), made(0.1, sd, 4)]
    p = pairwise_p_values(rows)
    assert p[0, 1] == pytest.approx(0.3173, abs=1e-4)
    assert p[0, 2] == pytest.approx(0.0455, abs=1e-4)
    assert p[0, 3] == pytest.approx(0.0027, abs=1e-4)
    assert rank_intervals(rows) == [(1, 3), (1, 4), (1, 4), (2, 4)]
    # at 0.99 not even the ends differ: 0.0027 > 0.01 / 6
    assert rank_intervals(rows, level=0.99) == [(1, 4)] * 4


def test_p_values_are_the_normal_ones_of_the_paired_difference():
    rows = [made(0.30, 0.02, 1, model_sd=0.5), made(0.25, 0.01, 2, model_sd=0.5)]
    z = 0.05 / math.hypot(0.02, 0.01)  # the shared model part cancels
    assert pairwise_p_values(rows)[0, 1] == pytest.approx(2 * norm.sf(z), rel=1e-9)
    # no spread at all: any gap is certain, no gap is no evidence
    flat = [made(0.3, 0.0, 1), made(0.2, 0.0, 2), made(0.2, 0.0, 3)]
    p = pairwise_p_values(flat)
    assert p[0, 1] == 0 and p[1, 2] == 1 and np.all(np.diag(p) == 1)


def test_holm_by_hand():
    """m = 4 at 0.05: sorted 0.005 <= 0.0125 and 0.01 <= 0.05/3 are rejected; 0.03 > 0.025 stops
    it, so 0.04 is not rejected although it is below 0.05 / 1."""
    p = [0.01, 0.04, 0.03, 0.005]
    assert list(holm(p, 0.05)) == [True, False, False, True]
    assert literal_holm(p, 0.05) == [True, False, False, True]
    assert list(holm([0.05, 0.05], 0.1)) == [True, True]  # equal p-values fall together
    assert list(holm([], 0.05)) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.sampled_from([0.01, 0.05, 0.2]))
def test_holm_matches_the_adjusted_p_value_formulation(p, alpha):
    assert list(holm(p, alpha)) == literal_holm(p, alpha)


def test_a_three_row_example_against_the_literal_holm():
    """Scores 0.30, 0.26, 0.215 with sds 0.01, 0.02, 0.005; z = gap / sqrt(sd_i^2 + sd_j^2):
    a-b 1.79 (p 0.0736), a-c 7.60 (p 3e-14), b-c 2.18 (p 0.0290). Holm over 3: a-c <= 0.05/3
    is rejected, then 0.0290 > 0.05/2 stops it: b-c, significant alone, is not after the
    correction. a 1-2, b 1-3, c 2-3."""
    scores, sds = [0.30, 0.26, 0.215], [0.01, 0.02, 0.005]
    rows = [made(s, sd, i + 1) for i, (s, sd) in enumerate(zip(scores, sds, strict=True))]
    pairs = [(0, 1), (0, 2), (1, 2)]
    p = [2 * norm.sf(abs(scores[i] - scores[j]) / math.hypot(sds[i], sds[j])) for i, j in pairs]
    assert p == pytest.approx([0.0736, 0.0000, 0.0290], abs=1e-4)
    assert pairwise_p_values(rows)[[0, 0, 1], [1, 2, 2]] == pytest.approx(p, rel=1e-9)
    rejected = literal_holm(p, 0.05)
    assert rejected == [False, True, False]
    assert rank_intervals(rows) == [(1, 2), (1, 3), (2, 3)]


# -- random replicate sets ---------------------------------------------------------------------
@st.composite
def replicate_sets(draw) -> list[Replicates]:
    """2 to 7 rows; each row's replicates are its score plus a shared noise (the same draws of
    examples and reference models for every row) scaled by a row's own weight, plus its own
    noise; some rows have none. Scores are drawn from few values so that ties happen."""
    k = draw(st.integers(2, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shared_e, shared_m = rng.normal(size=300), rng.normal(size=20)
    rows = []
    for _ in range(k):
        score = draw(st.sampled_from([0.0, 0.01, 0.02, 0.03, 0.05, 0.1]))
        own = draw(st.sampled_from([0.0, 0.002, 0.01, 0.03]))
        weight = draw(st.sampled_from([0.0, 0.5, 1.0]))
        examples = score + 0.01 * weight * shared_e + own * rng.normal(size=300)
        models = score + 0.01 * weight * shared_m + own * rng.normal(size=20)
        rows.append(Replicates(score, score, examples, examples, models, models))
    return rows


def literal_intervals(rows: list[Replicates], alpha: float) -> tuple[list[tuple[int, int]], set]:
    """The intervals recomputed here: paired se from the replicates, normal p-values, the
    literal Holm; also the set of (above, below) pairs it finds significant."""
    k = len(rows)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    p = []
    for i, j in pairs:
        gap = rows[i].final_score - rows[j].final_score
        se = math.sqrt(np.var(rows[i].score_examples - rows[j].score_examples, ddof=1)
                       + np.var(rows[i].score_models - rows[j].score_models, ddof=1))
        p.append(1.0 if gap == 0 else 0.0 if se == 0 else 2 * norm.sf(abs(gap) / se))
    above = set()
    for (i, j), reject in zip(pairs, literal_holm(p, alpha), strict=True):
        if reject:
            above.add((i, j) if rows[i].final_score > rows[j].final_score else (j, i))
    intervals = [(1 + sum((j, i) in above for j in range(k)),
                  k - sum((i, j) in above for j in range(k))) for i in range(k)]
    return intervals, above


@settings(max_examples=150, deadline=None)
@given(replicate_sets(), st.sampled_from([0.9, 0.95, 0.99]))
def test_random_sets_match_the_literal_computation_and_its_properties(rows, level):
    intervals = rank_intervals(rows, level)
    expected, above = literal_intervals(rows, 1 - level)
    assert intervals == expected
    assert {tuple(x) for x in np.argwhere(significantly_above(rows, level))} == above
    scores = [r.final_score for r in rows]
    for i, (lo, hi) in enumerate(intervals):
        # the row's place in the sorted scores (any place among equal scores) is in its range
        assert lo <= 1 + sum(s > scores[i] for s in scores)
        assert hi >= sum(s >= scores[i] for s in scores)
        for j, (lo_j, hi_j) in enumerate(intervals):
            if hi < lo_j:  # ranges that do not overlap: the pair differs at the adjusted level
                assert (i, j) in above
            if (i, j) in above:  # a row significantly above another sits above it at both ends
                assert lo < lo_j and hi < hi_j
                for m in range(len(rows)):  # and significance is transitive
                    if (j, m) in above:
                        assert (i, m) in above


# -- how the ranges are shown and read ---------------------------------------------------------
def test_rank_text():
    assert rank_text(3, 3) == "3"
    assert rank_text(1, 5) == "1-5"
    assert rank_text(1.0, 5.0) == "1-5"  # as a CSV reads an integer column with gaps
    assert rank_text(pd.NA, pd.NA) == "-" and rank_text(None, 2) == "-"
    assert rank_text(float("nan"), 2) == "-"


def old_board(tmp_path) -> pd.DataFrame:
    """A leaderboard CSV as written before rank intervals: a rank_group column."""
    board = pd.DataFrame({
        "rank": [1, 2, None], "rank_group": [1, 1, None], "submission": ["a", "b", "ceiling"],
        "status": ["ok", "ok", "reference"], "final_score": [0.02, 0.01, 0.05],
        "final_score_lo": [0.01, 0.0, 0.04], "final_score_hi": [0.03, 0.02, 0.06],
        "forget_quality": [0.02, 0.01, 0.05], "retain_acc": [1.0, 1.0, 1.0],
        "test_acc": [0.9, 0.9, 0.9], "seconds_per_run": [0.1, 0.1, None],
        "settings": ["published"] * 3, "task": "digits", "num_models": 8, "root_seed": 0,
        "split": "private",
    })
    path = tmp_path / "old.csv"
    board.to_csv(path, index=False)
    return read_leaderboard(path)


def test_an_old_board_is_read_with_empty_rank_ranges(tmp_path):
    board = old_board(tmp_path)
    assert "rank_group" not in board.columns
    assert board["rank_lo"].isna().all() and board["rank_hi"].isna().all()
    assert tied_for_first(board) == []
    table = markdown_table(board).splitlines()
    assert table[0].startswith("| rank | ranks | submission |")
    assert table[2].startswith("| 1 | - | a |") and table[4].startswith("| - | - | ceiling |")


def test_the_cli_table_shows_ranges_and_who_is_tied_for_first(tmp_path):
    from rich.console import Console

    from harness.cli import print_leaderboard

    board = old_board(tmp_path)
    board["rank_lo"] = pd.array([1, 1, pd.NA], dtype="Int64")
    board["rank_hi"] = pd.array([1, 2, pd.NA], dtype="Int64")
    for column in ("ref_retain_acc", "ref_test_acc", "budget_seconds"):
        board[column] = 1.0
    board["message"] = ""
    console = Console(record=True, width=200, file=io.StringIO())
    print_leaderboard(board, console)
    text = console.export_text()
    assert "│   1-2 │ b " in text and "│     1 │ a " in text and "│     - │ ceiling " in text
    assert "private: tied for first (2 of 2 ranked): a, b" in text
    assert "a row whose range contains 1 is tied for first" in text


def test_the_leaderboard_gives_ranked_rows_a_range_and_the_others_none():
    """``build_leaderboard`` with hand-made replicates: the ranges follow them (the three ranked
    rows are the chain's a, b and d), failed rows and the ceiling have none."""
    from harness.evaluation.model_stats import ModelStats
    from harness.execution.records import Outcome, RunResult
    from harness.outputs.leaderboard import CEILING_ROW, build_leaderboard
    from harness.tasks import get_task

    n, e = 4, 3
    task = get_task("digits", num_models=n, root_seed=0)
    pool = ModelStats(np.zeros((n, e)), np.ones(n), np.ones(n), np.ones(n), np.ones(n))

    def outcome(name: str, status: str, level: float) -> Outcome:
        runs = {i: RunResult(name, "h", "p", i, i, status, seconds=0.01, retain_acc=1.0,
                             test_acc=1.0, forget_acc=1.0, confidences=[level + i] * e)
                for i in range(n)}
        return Outcome(name, None, runs=runs, provenance="p")

    outcomes = [outcome("a", "ok", 3.0), outcome("b", "ok", 2.0), outcome("d", "ok", 1.0),
                outcome("broken", "error", 0.0)]
    sd = 0.1 / math.sqrt(2)
    uncertainty = {"a": made(0.4, sd, 1), "b": made(0.3, sd, 2), "d": made(0.1, sd, 4),
                   CEILING_ROW: made(0.5, sd, 5)}
    board = build_leaderboard(
        task, pool, outcomes, budget=1.0, retrain_seconds=1.0,
        versions={"harness": "0", "torch": "0", "python": "0"}, uncertainty=uncertainty,
        ceiling=pool,
    ).set_index("submission")
    expected, _ = literal_intervals([uncertainty[name] for name in ("a", "b", "d")], 0.05)
    assert list(board.loc[["a", "b", "d"], "rank_lo"]) == [lo for lo, _ in expected]
    assert list(board.loc[["a", "b", "d"], "rank_hi"]) == [hi for _, hi in expected]
    assert expected == [(1, 2), (1, 3), (2, 3)]  # a vs d: z = 3 > Holm's bar over 3 pairs
    assert board.loc[["broken", CEILING_ROW], ["rank_lo", "rank_hi"]].isna().all().all()
