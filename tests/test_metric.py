"""Tests of harness.evaluation.metric: hand-worked cases, and agreement with a slow literal
reference."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.evaluation import metric


def _load_literal():
    """The literal reference lives next to this file; load it by path, whatever sys.path is."""
    path = Path(__file__).with_name("literal_metric.py")
    spec = importlib.util.spec_from_file_location("literal_metric", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lit = _load_literal()

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _read_only(*arrays):
    out = []
    for a in arrays:
        a = np.array(a, copy=True)
        a.setflags(write=False)
        out.append(a)
    return out


def _agree(u, r):
    """epsilons and forget_quality agree with the literal reference (epsilons bit for bit)."""
    fast = metric.epsilons(u, r)
    slow = lit.literal_epsilons(u, r)
    assert fast.dtype == np.float64 and fast.shape == (u.shape[1],)
    np.testing.assert_array_equal(fast, slow)
    slow_points = lit.literal_points(slow, u.shape[0])
    np.testing.assert_array_equal(metric.points(fast, u.shape[0]), slow_points)
    assert metric.forget_quality(u, r) == sum(slow_points.tolist()) / u.shape[1]
    return fast


# --- logit_scaled_confidence ---------------------------------------------------------------------


def test_confidence_hand_worked():
    logits = np.array([[0.0, 0.0, -50.0], [math.log(3.0), 0.0, -50.0], [2.0, 0.0, 0.0]])
    targets = np.array([0, 0, 1])
    s = metric.logit_scaled_confidence(logits, targets)
    assert s.dtype == np.float64 and s.shape == (3,)
    # p = (1/2, 1/2, ~0): log p_y - log(rest) = 0 (up to the e^-50 class).
    assert s[0] == pytest.approx(0.0, abs=1e-20)
    # p = (3/4, 1/4, ~0): log 3.
    assert s[1] == pytest.approx(math.log(3.0), rel=1e-12)
    # p_1 = 1 / (e^2 + 2), rest = (e^2 + 1) / (e^2 + 2): -log(e^2 + 1).
    assert s[2] == pytest.approx(-math.log(math.e**2 + 1), rel=1e-12)


def test_confidence_saturates_at_log_1e45():
    s = metric.logit_scaled_confidence(np.array([[0.0, -1000.0], [0.0, -1000.0]]), [1, 0])
    assert s[0] == math.log(1e-45) - math.log(1 + 1e-45)
    assert s[1] == math.log(1 + 1e-45) - math.log(1e-45)


def test_confidence_exponentiates_in_the_logits_dtype():
    # float32 logits: exp(-100) is a float32 subnormal, then normalised in float64.
    logits32 = np.array([[0.0, 100.0]], dtype=np.float32)
    e = float(np.exp(np.float32(-100.0)))
    expected = math.log(e / (1.0 + e) + 1e-45) - math.log(1.0 / (1.0 + e) + 1e-45)
    got = metric.logit_scaled_confidence(logits32, np.array([0]))
    assert got[0] == expected
    got64 = metric.logit_scaled_confidence(logits32.astype(np.float64), np.array([0]))
    assert got64[0] != got[0]


def test_confidence_accepts_torch_and_does_not_modify_inputs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    targets = rng.integers(0, 4, size=6)
    logits_ro, targets_ro = _read_only(logits, targets)
    from_numpy = metric.logit_scaled_confidence(logits_ro, targets_ro)
    tl, tt = torch.from_numpy(logits.copy()), torch.from_numpy(targets.copy())
    from_torch = metric.logit_scaled_confidence(tl.requires_grad_(), tt)
    np.testing.assert_array_equal(from_numpy, from_torch)
    np.testing.assert_array_equal(tl.detach().numpy(), logits)
    np.testing.assert_array_equal(logits_ro, logits)


@pytest.mark.parametrize(
    ("logits", "targets", "match"),
    [
        (np.zeros(3), np.zeros(3, dtype=int), "2-D"),
        (np.zeros((2, 3, 1)), np.zeros(2, dtype=int), "2-D"),
        (np.zeros((2, 3)), np.zeros(3, dtype=int), "one entry per row"),
        (np.zeros((2, 3)), np.zeros((2, 1), dtype=int), "one entry per row"),
        (np.zeros((2, 3)), np.zeros(2), "integer"),
        (np.zeros((2, 3)), np.array([0, 3]), r"\[0, 2\]"),
        (np.zeros((2, 3)), np.array([-1, 0]), r"\[0, 2\]"),
        (np.array([[0.0, np.nan]]), np.array([0]), "non-finite"),
        (np.array([[0.0, np.inf]]), np.array([0]), "non-finite"),
        (np.zeros((2, 0)), np.zeros(2, dtype=int), "class"),
    ],
)
def test_confidence_rejects_bad_input(logits, targets, match):
    with pytest.raises(ValueError, match=match):
        metric.logit_scaled_confidence(logits, targets)


# --- epsilons: hand-worked cases -----------------------------------------------------------------


def test_constant_unlearned_models_get_the_cap_and_zero_quality():
    # A submission that returns the original model unchanged: no spread across its runs.
    rng = np.random.default_rng(1)
    r = rng.normal(2.0, 1.0, size=(64, 3))
    u = np.tile(np.array([[1.0, 2.0, 3.0]]), (64, 1))
    np.testing.assert_array_equal(metric.epsilons(u, r), [50.0, 50.0, 50.0])
    assert metric.forget_quality(u, r) == 0.0
    _agree(u, r)


def test_two_constants():
    # Both ranges are 0: the official 0/0 ratio is nan, so no cap; attacks separate perfectly.
    u = np.zeros((8, 1))
    r = np.ones((8, 1))
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metric.epsilons(u, r)[0] == 50.0
        assert metric.epsilons(r, u)[0] == 50.0
    _agree(u, r)
    _agree(r, u)


def test_same_constant_on_both_sides_is_epsilon_zero():
    # Every attack is discarded (the official code would fail an assertion): defined as 0.
    u = np.full((8, 2), 3.0)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(metric.epsilons(u, u.copy()), [0.0, 0.0])
    np.testing.assert_array_equal(lit.literal_epsilons(u, u), [0.0, 0.0])


def test_perfectly_separated_sides_get_the_cap():
    rng = np.random.default_rng(2)
    u = rng.uniform(0.0, 1.0, size=(32, 2))
    r = rng.uniform(3.0, 4.0, size=(40, 2))
    np.testing.assert_array_equal(metric.epsilons(u, r), [50.0, 50.0])
    np.testing.assert_array_equal(metric.epsilons(r, u), [50.0, 50.0])
    assert metric.forget_quality(u, r) == 0.0


def test_range_ratio_rule():
    rng = np.random.default_rng(3)
    wide = np.concatenate([[0.0, 1.0], rng.uniform(0.0, 1.0, size=30)])
    narrow_capped = 0.5 + np.concatenate([[0.0, 0.0099], rng.uniform(0.0, 0.0099, size=30)])
    narrow_kept = 0.5 + np.concatenate([[0.0, 0.02], rng.uniform(0.0, 0.02, size=30)])
    u = np.stack([narrow_capped, narrow_kept], axis=1)
    r = np.stack([wide, wide], axis=1)
    eps = _agree(u, r)
    assert eps[0] == 50.0
    assert 0.0 < eps[1] < 50.0


def test_identical_distributions_score_far_below_one():
    # Two independent halves of the same pool score ~0.2 at N = 512, not 1.
    rng = np.random.default_rng(4)
    u = rng.normal(2.0, 1.5, size=(512, 60))
    r = rng.normal(2.0, 1.5, size=(512, 60))
    assert 0.08 < metric.forget_quality(u, r) < 0.4


@pytest.mark.parametrize("kind", ["overlapping", "ties", "unequal", "near_ratio"])
def test_agrees_with_literal_at_512_models(kind):
    rng = np.random.default_rng(5)
    n_u, n_r = (512, 512) if kind != "unequal" else (512, 300)
    if kind == "overlapping":
        u = rng.normal([1.0, 3.0], [1.0, 2.0], size=(n_u, 2))
        r = rng.normal([1.5, 3.0], [1.2, 1.0], size=(n_r, 2))
    elif kind == "ties":
        u = rng.choice([-1.0, 0.0, 0.5, 2.0], size=(n_u, 2))
        r = rng.choice([-1.0, 0.5, 2.0, 3.0], size=(n_r, 2), p=[0.1, 0.2, 0.3, 0.4])
    elif kind == "unequal":
        u = rng.gumbel(2.0, 1.0, size=(n_u, 2))
        r = rng.gumbel(2.5, 1.0, size=(n_r, 2))
    else:
        u = np.tile([0.0, 1.0], n_u // 2)[:, None] + rng.uniform(0, 1e-3, size=(n_u, 1))
        r = 0.4 + np.tile([0.0, 0.0101], n_r // 2)[:, None] + rng.uniform(0, 1e-4, size=(n_r, 1))
    _agree(u, r)


def test_literal_forget_quality_matches():
    rng = np.random.default_rng(6)
    u = rng.normal(0.0, 1.0, size=(20, 4))
    r = rng.normal(0.3, 1.0, size=(25, 4))
    assert metric.forget_quality(u, r) == lit.literal_forget_quality(u, r)


# --- points --------------------------------------------------------------------------------------


def test_points_at_bucket_edges():
    eps = np.array([0.0, 0.49, 0.5, 1.0, 6.49, 6.5, 6.99, 7.0, 50.0, np.nan])
    expected = [1.0, 1.0, 0.5, 0.25, 2.0**-12, 2.0**-13, 2.0**-13, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(metric.points(eps, 512), expected)
    np.testing.assert_array_equal(lit.literal_points(eps, 512), expected)


def test_fourteen_buckets_up_to_seven_at_512_models():
    assert math.ceil(math.log(512 - 1)) == 7
    middles = np.arange(15) * 0.5 + 0.25
    expected = [2.0**-k for k in range(14)] + [0.0]
    np.testing.assert_array_equal(metric.points(middles, 512), expected)


def test_two_models_score_nothing():
    np.testing.assert_array_equal(metric.points([0.0, 0.3, 10.0], 2), [0.0, 0.0, 0.0])
    rng = np.random.default_rng(7)
    u, r = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    assert metric.forget_quality(u, r) == 0.0


@given(
    eps=hnp.arrays(np.float64, st.integers(0, 20), elements=st.floats(-1.0, 60.0)),
    n=st.integers(2, 5000),
)
@settings(max_examples=100, deadline=None)
def test_points_match_the_bucket_loop(eps, n):
    np.testing.assert_array_equal(metric.points(eps, n), lit.literal_points(eps, n))


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, "512", None])
def test_points_rejects_bad_model_counts(bad):
    with pytest.raises(ValueError, match="num_models"):
        metric.points([0.1], bad)


# --- final_score ---------------------------------------------------------------------------------


def test_final_score():
    assert metric.final_score(0.5, 0.9, 0.9, 0.8, 0.8) == 0.5
    got = metric.final_score(0.2, [0.8, 1.0], np.array([0.9, 0.9]), 0.6, torch.tensor([0.8, 0.4]))
    assert got == pytest.approx(0.2 * (0.9 / 0.9) * (0.6 / 0.6))
    assert metric.final_score(0.4, 0.45, 0.9, 0.3, 0.6) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.5, 0.9, 0.0, 0.8, 0.8), "> 0"),
        ((0.5, 0.9, 0.9, 0.8, 0.0), "> 0"),
        ((0.5, [], 0.9, 0.8, 0.8), "empty"),
        ((0.5, 0.9, np.nan, 0.8, 0.8), "finite"),
        ((1.5, 0.9, 0.9, 0.8, 0.8), "forget_quality"),
        ((-0.1, 0.9, 0.9, 0.8, 0.8), "forget_quality"),
    ],
)
def test_final_score_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        metric.final_score(*args)


# --- input handling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("u", "r", "match"),
    [
        (np.zeros(5), np.zeros((5, 1)), "2-D"),
        (np.zeros((5, 1, 1)), np.zeros((5, 1)), "2-D"),
        (np.zeros((5, 2)), np.zeros((5, 3)), "same forget examples"),
        (np.zeros((5, 0)), np.zeros((5, 0)), "empty"),
        (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2 models"),
        (np.zeros((5, 2)), np.zeros((1, 2)), "at least 2 models"),
        (np.array([[0.0], [np.nan]]), np.zeros((2, 1)), "non-finite"),
        (np.zeros((2, 1)), np.array([[0.0], [np.inf]]), "non-finite"),
        (np.array([["a"], ["b"]]), np.zeros((2, 1)), "numeric"),
        (np.array([[0.0], [1e6]]), np.array([[1.0], [5e5]]), "thresholds"),
    ],
)
def test_epsilons_and_quality_reject_bad_input(u, r, match):
    with pytest.raises(ValueError, match=match):
        metric.epsilons(u, r)
    with pytest.raises(ValueError, match=match):
        metric.forget_quality(u, r)


def test_rejects_bad_delta():
    with pytest.raises(ValueError, match="delta"):
        metric.epsilons(np.zeros((2, 1)), np.ones((2, 1)), delta=1.0)


def test_inputs_are_not_modified_and_torch_is_accepted():
    rng = np.random.default_rng(8)
    u = rng.normal(size=(10, 3))
    r = rng.normal(0.5, 2.0, size=(12, 3))
    u_ro, r_ro = _read_only(u, r)
    eps = metric.epsilons(u_ro, r_ro)
    metric.forget_quality(u_ro, r_ro)
    np.testing.assert_array_equal(u_ro, u)
    np.testing.assert_array_equal(r_ro, r)
    np.testing.assert_array_equal(metric.epsilons(torch.from_numpy(u), torch.from_numpy(r)), eps)
    # float32 inputs are promoted to float64 before anything is compared.
    u32 = u.astype(np.float32)
    np.testing.assert_array_equal(metric.epsilons(u32, r), metric.epsilons(u32.astype(float), r))


def test_chunking_and_table_fallback_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(9)
    u = rng.normal(size=(30, 7))
    r = rng.normal(0.4, 1.3, size=(20, 7))
    reference = metric.epsilons(u, r)
    monkeypatch.setattr(metric, "_CHUNK_EXAMPLES", 3)
    np.testing.assert_array_equal(metric.epsilons(u, r), reference)
    monkeypatch.setattr(metric, "_MAX_TABLE_ENTRIES", 0)
    np.testing.assert_array_equal(metric.epsilons(u, r), reference)


def test_epsilon_table_matches_literal_rule_for_every_count_pair():
    n_pos, n_neg = 7, 5
    table = metric._epsilon_table(n_pos, n_neg, 1e-5).reshape(n_pos + 1, n_neg + 1)
    for fn in range(n_pos + 1):
        for fp in range(n_neg + 1):
            pos_hit = np.array([0.0] * fn + [1.0] * (n_pos - fn))  # 1 = predicted positive
            neg_hit = np.array([1.0] * fp + [0.0] * (n_neg - fp))
            tpr = np.array([np.mean(pos_hit.astype(np.float32))])
            fnr = np.array([np.mean((1 - pos_hit).astype(np.float32))])
            fpr = np.array([np.mean(neg_hit.astype(np.float32))])
            tnr = np.array([np.mean((1 - neg_hit).astype(np.float32))])
            expected = lit._rates_epsilon(tpr, fnr, fpr, tnr, 1e-5)[0]
            if np.isnan(expected):
                assert table[fn, fp] == -np.inf, (fn, fp)
            else:
                assert table[fn, fp] == expected, (fn, fp)
    assert table[0, 0] == np.inf  # perfect attack
    assert table[n_pos, n_neg] == -np.inf  # FPR = FNR = 1: both logarithms undefined


# --- vectorised left thresholds ------------------------------------------------------------------


def _scalar_lefts(rights, width):
    return np.stack(
        [np.linspace((r - width) - 2.0, (r - width) + 2.0, num=400) for r in rights], axis=1
    )


@given(
    rights=hnp.arrays(
        np.float64, st.integers(1, 30), elements=st.floats(-250.0, 250.0, allow_subnormal=True)
    ),
    width=st.floats(0.0, 50.0, allow_subnormal=True),
)
@settings(max_examples=100, deadline=None)
def test_vectorised_left_thresholds_are_bit_identical(rights, width):
    shifted = rights - width
    got = metric._left_thresholds(shifted - 2.0, shifted + 2.0)
    expected = _scalar_lefts(rights, width)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


def test_left_thresholds_fall_back_when_a_step_is_zero():
    rights = np.array([1.0, 1e17, 3.5])  # at 1e17 the +-2 buffer vanishes: step 0
    shifted = rights - 0.25
    got = metric._left_thresholds(shifted - 2.0, shifted + 2.0)
    np.testing.assert_array_equal(got.view(np.int64), _scalar_lefts(rights, 0.25).view(np.int64))


def test_realistic_rights_are_bit_identical():
    rng = np.random.default_rng(10)
    for _ in range(5):
        lo, width = rng.uniform(-100, 100), rng.uniform(0, 10)
        rights = np.linspace((lo + width) - 2.0, (lo + width) + 2.0 + 2.0, num=401)
        shifted = rights - width
        got = metric._left_thresholds(shifted - 2.0, shifted + 2.0)
        expected = _scalar_lefts(rights, width)
        np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


# --- property tests against the literal reference ------------------------------------------------

KINDS = [
    "normal",
    "identical",
    "ties",
    "separated",
    "constant_u",
    "constants",
    "near_ratio",
    "wide",
    "confidences",
]


def _column(kind, rng, n_u, n_r):
    if kind == "normal":
        return (
            rng.normal(rng.uniform(-3, 3), rng.uniform(0.05, 3), n_u),
            rng.normal(rng.uniform(-3, 3), rng.uniform(0.05, 3), n_r),
        )
    if kind == "identical":
        mean, std = rng.uniform(-3, 3), rng.uniform(0.05, 3)
        return rng.normal(mean, std, n_u), rng.normal(mean, std, n_r)
    if kind == "ties":
        support = rng.choice([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5, 3.0], size=4, replace=False)
        return rng.choice(support, n_u), rng.choice(support[: rng.integers(1, 5)], n_r)
    if kind == "separated":
        gap = rng.uniform(0.0, 5.0) * rng.choice([-1.0, 1.0])
        return rng.uniform(0, 1, n_u), gap + rng.uniform(0, 1, n_r)
    if kind == "constant_u":
        return np.full(n_u, rng.uniform(-3, 3)), rng.normal(0, 1, n_r)
    if kind == "constants":
        a = rng.choice([0.0, 1.0, 0.3, 0.3 + 1e-9, 0.305, 4.0])
        b = rng.choice([0.0, 1.0, 0.3, 0.3 + 1e-9, 0.305, 4.0])
        return np.full(n_u, a), np.full(n_r, b)
    if kind == "near_ratio":
        # One side's range is 1, the other's about 1% of it (the cap rule's edge).
        ratio = 0.01 * (1.0 + rng.choice([-1e-3, -1e-9, 0.0, 1e-9, 1e-3]))
        offset = rng.uniform(0, 1)

        def wide(n):
            return np.concatenate([[0.0, 1.0], rng.uniform(0, 1, n - 2)])

        def narrow(n):
            return offset + np.concatenate([[0.0, ratio], rng.uniform(0, ratio, n - 2)])

        return (wide(n_u), narrow(n_r)) if rng.random() < 0.5 else (narrow(n_u), wide(n_r))
    if kind == "wide":
        return rng.normal(0, 30, n_u), rng.normal(5, 20, n_r)
    # Logit-scaled confidences of random logits, including saturated ones.
    scale = rng.choice([1.0, 10.0, 200.0])
    return (
        metric.logit_scaled_confidence(rng.normal(0, scale, (n_u, 3)), np.zeros(n_u, dtype=int)),
        metric.logit_scaled_confidence(rng.normal(1, scale, (n_r, 3)), np.zeros(n_r, dtype=int)),
    )


def _fix_length(values, n, rng):
    if values.shape[0] >= n:
        return values[:n]
    return np.concatenate([values, rng.choice(values, n - values.shape[0])])


@st.composite
def statistic_pairs(draw, max_models=64, max_examples=3):
    n_u = draw(st.integers(2, max_models))
    n_r = draw(st.one_of(st.just(n_u), st.integers(2, max_models)))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=max_examples))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    columns = []
    for kind in kinds:
        u, r = _column(kind, rng, n_u, n_r)
        columns.append((_fix_length(u, n_u, rng), _fix_length(r, n_r, rng)))
    u = np.stack([c[0] for c in columns], axis=1)
    r = np.stack([c[1] for c in columns], axis=1)
    return u, r


@given(statistic_pairs())
@PROPERTY_SETTINGS
def test_epsilons_match_the_literal_reference(pair):
    u, r = pair
    u_ro, r_ro = _read_only(u, r)
    _agree(u_ro, r_ro)
    np.testing.assert_array_equal(u_ro, u)


@given(
    data=st.data(),
    n_u=st.integers(2, 12),
    n_r=st.integers(2, 12),
    e=st.integers(1, 2),
)
@PROPERTY_SETTINGS
def test_epsilons_match_on_arbitrary_small_values(data, n_u, n_r, e):
    values = st.one_of(
        st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.01, 2.0]),
        st.floats(-5.0, 5.0, allow_subnormal=True),
    )
    u = data.draw(hnp.arrays(np.float64, (n_u, e), elements=values))
    r = data.draw(hnp.arrays(np.float64, (n_r, e), elements=values))
    _agree(u, r)


# --- the pruned search of the interval attacks ---------------------------------------------------


def _three_ways(u, r, monkeypatch):
    """Epsilons from the pruned search of the interval attacks, from the same search without
    pruning (every left end searched), and from searching linspace's left ends without a table."""
    pruned = metric.epsilons(u, r)
    monkeypatch.setattr(metric, "_BLOCK_SIZES", ())
    every_left_end = metric.epsilons(u, r)
    monkeypatch.setattr(metric, "_MAX_TABLE_ENTRIES", 0)
    return pruned, every_left_end, metric.epsilons(u, r)


def _edge_columns(n_u, n_r, rng):
    """[N_u, E] and [N_r, E]: hand-made hard cases for the interval attacks, one per column."""
    same = rng.normal(0.0, 1.0, max(n_u, n_r))
    big = 1.5 * 2.0**53  # float64 spacing 2 there: many left ends round to the same value
    columns = [
        (np.round(rng.normal(1.0, 1.5, n_u), 1), np.round(rng.normal(1.3, 1.0, n_r), 1)),  # ties
        (np.full(n_u, 0.7), rng.normal(0.5, 1.0, n_r)),  # a constant side inside the other
        (rng.normal(0.0, 2.0, n_u), np.full(n_r, 5.5)),  # a constant side outside the other
        (rng.normal(0.0, 0.3, n_u), rng.normal(0.0, 2.0, n_r)),  # one side inside the other
        (rng.normal(0.2, 2.0, n_u), rng.normal(0.0, 0.3, n_r)),  # ... the other way round
        (rng.uniform(0.0, 3.0, n_u), rng.uniform(2.6, 3.0, n_r)),  # inside, at the edge
        (same[:n_u], same[:n_r]),  # the same values on both sides
        (rng.normal(2.0, 1.0, n_u), rng.normal(2.0, 1.0, n_r)),  # identical distributions
        (rng.uniform(0.0, 1.0, n_u), rng.uniform(1.5, 2.5, n_r)),  # apart by less than BUFFER
        (rng.normal(0.0, 30.0, n_u), rng.normal(5.0, 20.0, n_r)),  # wide: many thresholds
        (big + 2.0 * rng.integers(0, 150, n_u), big + 2.0 * rng.integers(40, 200, n_r)),
    ]
    return np.stack([c[0] for c in columns], 1), np.stack([c[1] for c in columns], 1)


@pytest.mark.parametrize(
    ("n_u", "n_r"), [(2, 2), (2, 5), (8, 8), (8, 13), (64, 64), (64, 40), (512, 512), (512, 300)]
)
def test_pruned_search_matches_literal_on_edge_cases(n_u, n_r, monkeypatch):
    rng = np.random.default_rng(n_u * 1000 + n_r)
    u, r = _edge_columns(n_u, n_r, rng)
    pruned, every_left_end, searched = _three_ways(u, r, monkeypatch)
    np.testing.assert_array_equal(pruned, lit.literal_epsilons(u, r))
    np.testing.assert_array_equal(pruned, every_left_end)
    np.testing.assert_array_equal(pruned, searched)


@pytest.mark.parametrize("n", [2, 5, 16, 64, 130, 512])
def test_pruned_and_exhaustive_searches_agree_bit_for_bit(n, monkeypatch):
    rng = np.random.default_rng(n)
    u = rng.normal(1.0, 1.5, size=(n, 40))
    r = rng.normal(1.3, 1.0, size=(n + 3, 40))
    u[:, :8] = np.round(u[:, :8], 1)  # ties within a side
    r[:, 8:12] = np.round(u[0, 8:12], 1)  # a constant side
    u[:, 12:16] *= 40.0  # wide statistics: many thresholds
    r[:, 16:20] = np.resize(u[:, 16:20], (n + 3, 4))  # the same values on both sides
    pruned, every_left_end, searched = _three_ways(u, r, monkeypatch)
    np.testing.assert_array_equal(pruned, every_left_end)
    np.testing.assert_array_equal(pruned, searched)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 3)),
               elements=st.floats(-30, 30, allow_nan=False).map(lambda x: round(x, 2))),
    hnp.arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 3)),
               elements=st.floats(-30, 30, allow_nan=False).map(lambda x: round(x, 2))),
)
@PROPERTY_SETTINGS
def test_pruned_and_exhaustive_searches_agree_on_arbitrary_values(u, r):
    e = min(u.shape[1], r.shape[1])
    with pytest.MonkeyPatch.context() as monkeypatch:
        pruned, every_left_end, searched = _three_ways(u[:, :e], r[:, :e], monkeypatch)
    np.testing.assert_array_equal(pruned, every_left_end)
    np.testing.assert_array_equal(pruned, searched)


@pytest.fixture
def fresh_bounds():
    """The cached bounds are dropped before and after a test that replaces the epsilon table."""
    metric._epsilon_bounds.cache_clear()
    yield
    metric._epsilon_bounds.cache_clear()


@pytest.mark.parametrize(("n_pos", "n_neg"), [(1, 1), (7, 5), (4, 9)])
def test_epsilon_bounds_are_the_largest_epsilon_with_at_least_those_counts(n_pos, n_neg):
    table = metric._epsilon_table(n_pos, n_neg, 1e-5).reshape(n_pos + 1, n_neg + 1)
    bounds = metric._epsilon_bounds(n_pos, n_neg, 1e-5).reshape(n_pos + 1, n_neg + 1)
    for fn in range(n_pos + 1):
        for fp in range(n_neg + 1):
            assert bounds[fn, fp] == table[fn:, fp:].max()


def test_pruning_is_exact_even_where_the_table_is_not_monotone(monkeypatch, fresh_bounds):
    # Random bumps break the table's monotonicity in both counts; the pruned search must still
    # find the largest epsilon, as searching every left end does.
    real_table = metric._epsilon_table

    def bumpy_table(n_pos, n_neg, delta):
        table = real_table(n_pos, n_neg, delta).copy()
        rng = np.random.default_rng(n_pos * 1000 + n_neg)
        bumps = rng.random(table.shape) < 0.01
        table[bumps] = rng.uniform(1.0, 9.0, bumps.sum()).astype(np.float32)
        return table

    rng = np.random.default_rng(11)
    u = rng.normal(1.0, 1.5, size=(64, 30))
    r = rng.normal(1.3, 1.0, size=(70, 30))
    plain = metric.epsilons(u, r)
    metric._epsilon_bounds.cache_clear()
    monkeypatch.setattr(metric, "_epsilon_table", bumpy_table)
    bumpy = metric.epsilons(u, r)
    assert (bumpy != plain).sum() >= 10  # the bumps decide many examples
    monkeypatch.setattr(metric, "_BLOCK_SIZES", ())
    np.testing.assert_array_equal(bumpy, metric.epsilons(u, r))


def test_pruned_search_finds_every_left_ends_attack():
    # A value on every left end (linspace's own: one ulp off changes a count) gives each left
    # end of a right end its own count, so its own attack. A table that rewards that attack and
    # no other (every other entry -inf, bounds to match) is only found by a search that
    # evaluates that very left end, whichever blocks the pruning drops.
    rng = np.random.default_rng(12)
    rights = np.array([-0.4, 0.3])
    shifted = rights - 2.5  # a width above BUFFER: every left end lies below its right end
    starts, stops = shifted - 2.0, shifted + 2.0
    lefts = metric._left_thresholds(starts, stops)  # [400, 2], from linspace
    values = np.sort(np.concatenate([lefts.ravel(), rng.uniform(-5.0, 1.0, 300)]))
    below_in = np.concatenate([[0], np.cumsum(rng.random(values.shape[0]) < 0.5)])
    below_out = np.arange(values.shape[0] + 1) - below_in
    n_in, n_out = int(below_in[-1]), int(below_out[-1])
    g_right = np.searchsorted(values, rights, side="right")
    right_part = (n_in - below_in[g_right]) * (n_out + 1) + below_out[g_right]
    left_part = below_in * (n_out + 1) - below_out
    every = left_part[np.searchsorted(values, lefts, side="left")] + right_part  # [400, 2]
    steps = (stops - starts) / (metric.NUM_LEFT_THRESHOLDS - 1)
    for j in range(2):
        assert np.unique(every[:, j]).shape[0] == metric.NUM_LEFT_THRESHOLDS
        one = slice(j, j + 1)
        for index in every[:, j]:
            table = np.full((n_in + 1) * (n_out + 1), -np.inf, dtype=np.float32)
            table[index] = 1.0
            bounds = np.full((n_in + 1, n_out + 1), -np.inf, dtype=np.float32)
            fn, fp = divmod(int(index), n_out + 1)
            bounds[: fn + 1, : fp + 1] = 1.0
            found = metric._best_interval(
                values, starts[one], stops[one], steps[one], g_right[one], left_part,
                right_part[one], below_out, table, bounds.ravel(), -math.inf,
            )
            assert found == 1.0, np.flatnonzero(every[:, j] == index)


def test_zero_steps_fall_back_to_searching_every_left_end(monkeypatch):
    # Near 1.5 * 2**54 float64 numbers are 4 apart: some right ends' +-2 buffers vanish, so
    # linspace switches to its zero-step formula and the left ends are not k * step + start.
    rng = np.random.default_rng(0)
    u = 1.5 * 2.0**54 + 4.0 * rng.integers(0, 40, size=(8, 3))
    r = 1.5 * 2.0**54 + 4.0 * rng.integers(10, 60, size=(9, 3))
    steps = []
    real_left_thresholds = metric._left_thresholds

    def spy(starts, stops):
        steps.append((stops - starts) / (metric.NUM_LEFT_THRESHOLDS - 1))
        return real_left_thresholds(starts, stops)

    monkeypatch.setattr(metric, "_left_thresholds", spy)
    np.testing.assert_array_equal(metric.epsilons(u, r), lit.literal_epsilons(u, r))
    assert steps and any((s == 0).any() and (s > 0).any() for s in steps)
