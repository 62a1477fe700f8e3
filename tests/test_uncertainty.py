"""Bootstrap intervals and paired comparisons, against independent evidence: the analytic
standard error of a mean and the spread of scores over independent redraws of the models (the
rank intervals built on the paired comparisons: tests/test_ranks.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.evaluation.metric import epsilons, forget_quality, points
from harness.evaluation.uncertainty import (
    difference_se,
    own_seed,
    plan,
    replicates,
    significantly_different,
)

N, E = 24, 20


def dataset(rng: np.random.Generator, shift: np.ndarray) -> tuple[np.ndarray, ...]:
    unlearned = rng.normal(shift, 1.0, (N, E))
    reference = rng.normal(0.0, 1.0, (N, E))
    ones = np.ones(N)
    return unlearned, ones, ones, reference, ones, ones


def test_the_examples_part_is_the_standard_error_of_a_mean():
    rng = np.random.default_rng(0)
    data = dataset(rng, rng.normal(0, 0.5, E))
    shared = plan(E, N, seed=1, example_replicates=4000, model_replicates=2)
    result = replicates(*data, shared, own_seed(1, "a"))
    per_example = points(epsilons(data[0], data[3]), N)
    analytic = per_example.std(ddof=0) / math.sqrt(E)  # the bootstrap's plug-in variance
    assert np.std(result.f_examples, ddof=1) == pytest.approx(analytic, rel=0.08)
    assert result.forget_quality == pytest.approx(forget_quality(data[0], data[3]))


@pytest.mark.slow
def test_the_models_part_matches_the_spread_of_independent_redraws():
    """With the forget examples fixed, scores of independent redraws of both sets of models
    spread by some sd; the bootstrap over models, from one draw, estimates it."""
    rng = np.random.default_rng(1)
    shift = rng.normal(0, 0.4, E)
    redraws = [forget_quality(*(lambda d: (d[0], d[3]))(dataset(rng, shift))) for _ in range(40)]
    truth = np.std(redraws, ddof=1)
    estimates = []
    for seed in range(4):
        result = replicates(*dataset(rng, shift), plan(E, N, seed, model_replicates=20),
                            own_seed(seed, "a"))
        estimates.append(np.std(result.f_models, ddof=1))
    assert 0.6 * truth < np.mean(estimates) < 1.6 * truth


def test_interval_contains_the_estimate_and_no_spread_means_no_doubt():
    rng = np.random.default_rng(2)
    data = dataset(rng, np.zeros(E))
    result = replicates(*data, plan(E, N, 3, model_replicates=5), own_seed(3, "a"))
    low, high = result.interval()
    assert low <= result.final_score <= high and high > low
    constant = (np.zeros((N, E)), *data[1:])  # no spread: every example at the cap, F = 0
    nothing = replicates(*constant, plan(E, N, 3, model_replicates=5), own_seed(3, "b"))
    assert nothing.final_score == 0 and nothing.interval() == (0.0, 0.0)


def test_a_set_compared_with_itself_never_differs():
    rng = np.random.default_rng(3)
    data = dataset(rng, np.zeros(E))
    shared = plan(E, N, 4, model_replicates=4)
    a = replicates(*data, shared, own_seed(4, "a"))
    assert difference_se(a, a) == 0 and not significantly_different(a, a)


def test_plan_refuses_too_little_to_resample():
    with pytest.raises(ValueError, match="at least one forget example"):
        plan(0, 10, 0)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_z_score_is_the_normal_quantile(level):
    """Against scipy's normal quantile (the harness computes it without importing scipy)."""
    from scipy.stats import norm

    from harness.evaluation.uncertainty import z_score

    assert z_score(level) == pytest.approx(float(norm.ppf(0.5 + level / 2)), rel=1e-12)
    with pytest.raises(ValueError):
        z_score(1.0)
