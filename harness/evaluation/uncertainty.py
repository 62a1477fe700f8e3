"""How sure a score is: bootstrap intervals and paired comparisons of the official metric.

Pure functions over arrays (no I/O), like ``harness.evaluation.metric``, which they call.

What is resampled. A score averages over three samples: the forget examples (F is a mean of
per-example points), the N unlearned models and the N reference models (each example's epsilon
compares their two distributions; the utility ratios average their accuracies). The variance of a
score is estimated as the sum of two bootstrap components (the two-way, "pigeonhole" idea of
resampling rows and columns, split into its two margins):

* examples: the forget examples are resampled with replacement, models held fixed. Each
  replicate is a mean of the fixed per-example points, so thousands of replicates cost nothing.
* models: the unlearned and the reference models are resampled with replacement (all examples),
  and every example's epsilon is computed again. This is the expensive part (one metric
  evaluation per replicate), so it uses few replicates (``MODEL_REPLICATES``); a standard error
  from 20 replicates is itself uncertain by about 16%.

The interval is ``estimate +- z * sqrt(var_examples + var_models)`` (normal, level ``LEVEL``),
clipped to the metric's range. Summing the two margins counts their interaction twice, so the
interval errs on the wide side.

Paired comparison. Submissions scored against the same pool share the example draws and the
reference-model draws of every replicate (their own models are drawn independently), so the
difference of two submissions' replicates carries the shared noise only once. Two scores differ
significantly when ``|a - b| > z * se(a - b)``.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass

import numpy as np

from harness.core.defaults import LEVEL
from harness.evaluation.metric import epsilons, points

EXAMPLE_REPLICATES = 2000
MODEL_REPLICATES = 20


@dataclass(frozen=True)
class Plan:
    """The draws shared by every submission scored against one pool."""

    examples: np.ndarray  # [B_e, E] example indices
    reference_models: np.ndarray  # [B_m, N_r] reference-model indices
    seed: int

    @property
    def model_replicates(self) -> int:
        return len(self.reference_models)


def plan(
    num_examples: int,
    num_reference: int,
    seed: int,
    example_replicates: int = EXAMPLE_REPLICATES,
    model_replicates: int = MODEL_REPLICATES,
) -> Plan:
    """Draw the shared resamples from ``seed``."""
    if num_examples < 1 or num_reference < 2:
        raise ValueError("need at least one forget example and two reference models")
    rng = np.random.default_rng([seed, 0])
    return Plan(
        examples=rng.integers(0, num_examples, (example_replicates, num_examples)),
        reference_models=rng.integers(0, num_reference, (model_replicates, num_reference)),
        seed=seed,
    )


@dataclass(frozen=True)
class Replicates:
    """Bootstrap replicates of one set of models' F and final score against the pool."""

    forget_quality: float
    final_score: float
    f_examples: np.ndarray  # [B_e]
    score_examples: np.ndarray  # [B_e]
    f_models: np.ndarray  # [B_m]
    score_models: np.ndarray  # [B_m]

    def se(self, what: str = "final_score") -> float:
        examples, models = self._parts(what)
        return math.sqrt(_var(examples) + _var(models))

    def interval(self, what: str = "final_score", level: float = LEVEL) -> tuple[float, float]:
        estimate = self.forget_quality if what == "forget_quality" else self.final_score
        half = z_score(level) * self.se(what)
        low = max(0.0, estimate - half)
        high = estimate + half
        return low, (min(1.0, high) if what == "forget_quality" else high)

    def _parts(self, what: str) -> tuple[np.ndarray, np.ndarray]:
        if what == "forget_quality":
            return self.f_examples, self.f_models
        if what == "final_score":
            return self.score_examples, self.score_models
        raise ValueError(f"what must be 'forget_quality' or 'final_score', got {what!r}")

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in vars(self).items()}


def _var(values: np.ndarray) -> float:
    """Sample variance of the finite replicates (a replicate whose resampled reference models
    all have accuracy 0 has no defined ratio and is left out)."""
    values = np.asarray(values)[np.isfinite(values)]
    return float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


def z_score(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return statistics.NormalDist().inv_cdf(0.5 + level / 2)


def _ratio(ra_u, ra_r, ta_u, ta_r) -> float:
    """(RA_U / RA_R) (TA_U / TA_R); nan where a reference mean is 0."""
    ra_r, ta_r = float(np.mean(ra_r)), float(np.mean(ta_r))
    if ra_r <= 0 or ta_r <= 0:
        return math.nan
    return (float(np.mean(ra_u)) / ra_r) * (float(np.mean(ta_u)) / ta_r)


def own_seed(plan_seed: int, name: str) -> int:
    """The seed of one submission's own model draws (independent of the other submissions)."""
    return int.from_bytes(hashlib.sha256(f"{plan_seed}:{name}".encode()).digest()[:8], "little")


def replicates(
    unlearned: np.ndarray,
    retain_acc: np.ndarray,
    test_acc: np.ndarray,
    reference: np.ndarray,
    ref_retain_acc: np.ndarray,
    ref_test_acc: np.ndarray,
    shared: Plan,
    seed: int,
) -> Replicates:
    """The bootstrap replicates of a set of models (``unlearned`` [N_u, E] confidences and their
    accuracies) against the pool (``reference`` [N_r, E]), with the ``shared`` draws and
    ``seed`` for this set's own model draws."""
    unlearned = np.asarray(unlearned, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    n_u = unlearned.shape[0]
    per_example = points(epsilons(unlearned, reference), n_u)
    f = float(per_example.mean())
    ratio = _ratio(retain_acc, ref_retain_acc, test_acc, ref_test_acc)
    f_examples = per_example[shared.examples].mean(axis=1)
    rng = np.random.default_rng(seed)
    f_models, score_models = [], []
    for ref_draw in shared.reference_models:
        own = rng.integers(0, n_u, n_u)
        eps = epsilons(unlearned[own], reference[ref_draw])
        f_b = float(points(eps, n_u).mean())
        f_models.append(f_b)
        score_models.append(
            f_b * _ratio(retain_acc[own], ref_retain_acc[ref_draw], test_acc[own],
                         ref_test_acc[ref_draw])
        )
    return Replicates(
        forget_quality=f,
        final_score=f * ratio,
        f_examples=f_examples,
        score_examples=f_examples * ratio,
        f_models=np.array(f_models),
        score_models=np.array(score_models),
    )


def difference_se(a: Replicates, b: Replicates, what: str = "final_score") -> float:
    """Standard error of ``a - b`` for two sets scored with the same plan (paired)."""
    a_examples, a_models = a._parts(what)
    b_examples, b_models = b._parts(what)
    return math.sqrt(_var(a_examples - b_examples) + _var(a_models - b_models))


def significantly_different(
    a: Replicates, b: Replicates, what: str = "final_score", level: float = LEVEL
) -> bool:
    """Whether ``a`` and ``b`` differ beyond the paired noise, at ``level``."""
    estimate_a = a.forget_quality if what == "forget_quality" else a.final_score
    estimate_b = b.forget_quality if what == "forget_quality" else b.final_score
    gap = abs(estimate_a - estimate_b)
    return gap > 0 and gap > z_score(level) * difference_se(a, b, what)

