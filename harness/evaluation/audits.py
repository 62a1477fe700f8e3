"""The audits the unlearning literature reports beside its tables, computed on the harness's own
models: pure functions, arrays in (``harness.evaluation.example_outputs``' per-example losses, the
metric's logit-scaled confidences), numbers out.

Per model (a submission's run, a pool or ceiling model):

* UA, RA, TA: unlearning accuracy ``1 - forget accuracy``, retain accuracy, test accuracy (Jia et
  al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023, Sec. 5; Fan et al.,
  "SalUn", ICLR 2024, Sec. 5), as fractions, not the papers' percentages.
* ``kit_mia``: the NeurIPS 2023 Machine Unlearning starting kit's membership inference attack.
* ``mia_efficacy``: the MIA-Efficacy of Jia et al. and Fan et al.

Per set of models against the retrained pool:

* each measure's absolute gap to the pool's mean, and Avg. Gap, the mean of the gaps of UA, RA,
  TA and MIA-Efficacy (Jia et al., NeurIPS 2023, Table 3 and Sec. 5);
* ``lira_aucs``: a per-example likelihood-ratio attack in the manner of LiRA's online attack
  (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022) as
  U-LiRA uses it for unlearning (Hayes et al., "Inexact Unlearning Needs More Careful
  Evaluations to Avoid a False Sense of Privacy", 2024).

Intervals, all at ``LEVEL`` (95%): a mean over models has Student's t-interval
``mean +- t(n-1) * sd / sqrt(n)`` (``mean_interval``); a gap, Avg. Gap and the LiRA numbers have
the percentile interval of a bootstrap over models (``BOOTSTRAP_REPLICATES`` replicates, the
set's models and the pool's resampled independently; for LiRA, within each half). At small N
LiRA's interval sits low: a resample's repeated models make its fitted Gaussians noisier than
the estimate's, so its AUCs are lower; with hundreds of models a side the effect fades.
"""

from __future__ import annotations

import math

import numpy as np

from harness.core.defaults import LEVEL
from harness.evaluation.example_outputs import true_class_confidence

# The starting kit's attack: ``cross_val_score(LogisticRegression(), X, y,
# cv=StratifiedShuffleSplit(n_splits=10, random_state=0), scoring="accuracy")`` (its
# ``simple_mia``); LogisticRegression's defaults: L2 penalty, C = 1, an unpenalised intercept.
KIT_SPLITS = 10
KIT_SPLIT_SEED = 0
KIT_C = 1.0
# MIA-Efficacy's classifier: ``SVC(C=3, gamma="auto", kernel="rbf")`` (Jia et al.'s and Fan et
# al.'s ``SVC_MIA``, in their released evaluation code).
SVC_C = 3.0
# LiRA: the statistic's Gaussians get at least this standard deviation (a side whose models all
# give one value, e.g. confidences saturated at the metric's 1e-45 floor, would give 0).
MIN_SD = 1e-6
EXPOSED_AUC = 0.9  # an example "told apart" when its per-example AUC reaches this
BOOTSTRAP_REPLICATES = 1000  # for gaps and Avg. Gap (means of precomputed values: cheap)
LIRA_REPLICATES = 100  # for the LiRA numbers (each replicate ranks every example again)
NEWTON_STEPS = 100
MODEL_CHUNK_VALUES = 1_000_000  # samples of the kit's attack fitted at once (models x examples)
PRECOMPUTED_KERNEL_MAX = 2000  # shadow examples up to which the SVC gets its kernel as a matrix
GAP_MEASURES = ("ua", "ra", "ta", "mia_efficacy")  # Avg. Gap's four (Jia et al. 2023)
MEASURES = ("ua", "ra", "ta", "mia", "mia_efficacy")


# -- intervals ---------------------------------------------------------------------------------
def mean_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): Student's t-interval of the mean of ``values`` (nan when fewer than
    two finite values)."""
    from scipy import stats as scipy_stats

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        mean = float(values.mean()) if len(values) else math.nan
        return mean, math.nan, math.nan
    mean = float(values.mean())
    half = float(scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1)) * float(
        values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the finite replicates."""
    replicates = np.asarray(replicates, dtype=np.float64)
    replicates = replicates[np.isfinite(replicates)]
    if not len(replicates):
        return math.nan, math.nan
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# -- per model ---------------------------------------------------------------------------------
def balanced_indices(n_a: int, n_b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions kept of two groups of sizes ``n_a`` and ``n_b``: all of the smaller, a seeded
    subsample (sorted, without replacement) of the larger to the smaller's size, as the starting
    kit balances forget and test losses before its attack."""
    rng = np.random.default_rng(seed)
    size = min(n_a, n_b)
    a = np.arange(n_a) if n_a == size else np.sort(rng.choice(n_a, size, replace=False))
    b = np.arange(n_b) if n_b == size else np.sort(rng.choice(n_b, size, replace=False))
    return a, b


def kit_splits(num_each: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions [splits, k] of the starting kit's ``StratifiedShuffleSplit(
    n_splits=10, random_state=0)`` (test size 0.1) over its samples: ``num_each`` test losses
    (label 0) then ``num_each`` forget losses (label 1). They depend on the labels alone, so every
    model shares them."""
    from sklearn.model_selection import StratifiedShuffleSplit

    labels = np.r_[np.zeros(num_each, int), np.ones(num_each, int)]
    splitter = StratifiedShuffleSplit(n_splits=KIT_SPLITS, random_state=KIT_SPLIT_SEED)
    pairs = list(splitter.split(np.zeros((len(labels), 1)), labels))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _objective(w: np.ndarray, b: np.ndarray, x: np.ndarray, s: np.ndarray, c: float) -> np.ndarray:
    return 0.5 * w**2 + c * np.logaddexp(0.0, -s * (w[:, None] * x + b[:, None])).sum(-1)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = KIT_C) -> tuple[np.ndarray, np.ndarray]:
    """(w, b) minimising ``w^2 / 2 + c * sum log(1 + exp(-s (w x + b)))`` (s = +-1 from labels
    ``y`` in {0, 1}), for every row of ``x`` [..., n] at once: scikit-learn's
    ``LogisticRegression(C=c)`` on one feature (L2 penalty on the weight, the intercept
    unpenalised). Solved by Newton steps on the 2-by-2 problem with a backtracking (Armijo) line
    search, each problem until its Newton decrement is negligible: the convex problem's one
    minimiser, which scikit-learn's L-BFGS (tolerance 1e-4) approaches; the two can differ in the
    last digits, so a test point right at the boundary can be classed otherwise."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape[:-1]
    s = np.broadcast_to(np.where(np.asarray(y) > 0, 1.0, -1.0), x.shape).reshape(-1, x.shape[-1])
    x = x.reshape(-1, x.shape[-1])
    w, b = np.zeros(len(x)), np.zeros(len(x))
    values = _objective(w, b, x, s, c)
    active = np.arange(len(x))
    for _ in range(NEWTON_STEPS):
        xa, sa, wa, ba = x[active], s[active], w[active], b[active]
        with np.errstate(over="ignore"):  # exp overflowing to inf gives p = 0, its limit
            p = 1.0 / (1.0 + np.exp(-(wa[:, None] * xa + ba[:, None])))  # P(label 1)
        r = p - (sa > 0)  # d loss / dz
        g_w = wa + c * (r * xa).sum(-1)
        g_b = c * r.sum(-1)
        q = c * p * (1.0 - p)
        h_ww = 1.0 + (q * xa * xa).sum(-1)
        h_wb = (q * xa).sum(-1)
        h_bb = q.sum(-1) + 1e-300
        det = h_ww * h_bb - h_wb**2
        lost = ~(det > 0)  # the penalty's share rounded away (huge losses, saturated p)
        if lost.any():  # the same determinant without the cancellation: h_bb (1 + weighted SS)
            mean = h_wb[lost] / h_bb[lost]
            det[lost] = h_bb[lost] * (1.0 + (q[lost] * (xa[lost] - mean[:, None]) ** 2).sum(-1))
        d_w = -(h_bb * g_w - h_wb * g_b) / det
        d_b = -(h_ww * g_b - h_wb * g_w) / det
        decrease = g_w * d_w + g_b * d_b  # minus the squared Newton decrement
        value = values[active]
        going = -decrease > 1e-20 * (1.0 + value)
        if not going.any():
            break
        active, xa, sa, wa, ba = active[going], xa[going], sa[going], wa[going], ba[going]
        d_w, d_b, decrease, value = d_w[going], d_b[going], decrease[going], value[going]
        step = np.ones(len(active))
        slack = 1e-13 * (1.0 + value)  # the objective's rounding: a full step near the end
        for _ in range(50):  # halve the step where the objective does not fall enough
            trial = _objective(wa + step * d_w, ba + step * d_b, xa, sa, c)
            short = trial > value + 1e-4 * step * decrease + slack
            if not short.any():
                break
            step = np.where(short, step / 2, step)
        w[active] = wa + step * d_w
        b[active] = ba + step * d_b
        values[active] = trial
    return w.reshape(shape), b.reshape(shape)


def kit_mia(forget_losses: np.ndarray, test_losses: np.ndarray, seed: int) -> np.ndarray:
    """Per model [M]: the starting kit's attack accuracy. Its samples are the model's per-example
    cross-entropy losses, test (label 0) then forget (label 1), the larger set subsampled to the
    smaller's size (``balanced_indices`` from ``seed``, the same examples for every model); the
    accuracy is the mean over the 10 stratified shuffle splits of a logistic regression fitted on
    the split's 90% and scored on its 10%. The retrained models' value is the target, not 0.5
    (a cross-validated classifier without signal need not score 0.5)."""
    forget_losses = np.atleast_2d(forget_losses)
    test_losses = np.atleast_2d(test_losses)
    keep_test, keep_forget = balanced_indices(test_losses.shape[1], forget_losses.shape[1], seed)
    samples = np.concatenate([test_losses[:, keep_test], forget_losses[:, keep_forget]], axis=1)
    labels = np.r_[np.zeros(len(keep_test)), np.ones(len(keep_forget))]
    try:
        train, test = kit_splits(len(keep_test))
    except ValueError:  # too few examples for a stratified 10% test split (under 6 a side)
        return np.full(len(samples), np.nan)
    accuracy = np.empty(len(samples))
    step = max(1, MODEL_CHUNK_VALUES // samples.shape[1])  # bounded memory on large sets
    for first in range(0, len(samples), step):
        chunk = samples[first:first + step]
        w, b = fit_logistic(chunk[:, train], labels[train])  # [models, splits]
        decision = w[..., None] * chunk[:, test] + b[..., None]
        predicted = decision > 0  # scikit-learn predicts label 1 where the decision is positive
        accuracy[first:first + step] = (predicted == (labels[test] > 0)).mean(axis=(1, 2))
    return accuracy


def mia_efficacy(
    retain_losses: np.ndarray, test_losses: np.ndarray, forget_losses: np.ndarray, seed: int
) -> np.ndarray:
    """Per model [M]: MIA-Efficacy, the share of forget examples a membership classifier calls
    non-members (Jia et al. 2023; Fan et al. 2024). The classifier is ``SVC(C=3, gamma="auto")`` on
    the true-class confidence, trained on retain examples (members, 1) against test examples
    (non-members, 0), the two balanced (``harness.evaluation.example_outputs`` keeps as many retain
    examples as test ones; ``balanced_indices`` from ``seed`` otherwise). Higher is more forgetting;
    a retrained model is the target."""
    retain = true_class_confidence(np.atleast_2d(retain_losses))
    test = true_class_confidence(np.atleast_2d(test_losses))
    forget = true_class_confidence(np.atleast_2d(forget_losses))
    keep_retain, keep_test = balanced_indices(retain.shape[1], test.shape[1], seed)
    labels = np.r_[np.ones(len(keep_retain)), np.zeros(len(keep_test))]
    if not len(keep_test) or not forget.shape[1]:
        return np.full(len(forget), np.nan)
    import sklearn

    values = np.empty(len(forget))
    size = len(labels)  # reused: no fresh pages per model
    kernel = np.empty((size, size)) if size <= PRECOMPUTED_KERNEL_MAX else None
    # One fit per distinct model: runs that hand back the same weights (doing nothing, or a
    # method that draws nothing at random) have the same inputs and so the same value.
    # scikit-learn's checks of its parameters and of the inputs (finite: computed here) add to
    # every fit and change nothing.
    known: dict[bytes, float] = {}
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for m in range(len(forget)):
            shadow = np.r_[retain[m, keep_retain], test[m, keep_test]]
            key = shadow.tobytes() + forget[m].tobytes()
            if key not in known:
                known[key] = 1.0 - svc_members(shadow, labels, forget[m], kernel).mean()
            values[m] = known[key]
    return values


def rbf_kernel(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``exp(-gamma (a_i - b_j)^2)`` of one feature, with ``gamma="auto"`` = 1 / features = 1,
    computed in one array (``out`` where given), without temporaries."""
    kernel = np.subtract.outer(a, b, out=out)
    np.square(kernel, out=kernel)
    np.negative(kernel, out=kernel)
    return np.exp(kernel, out=kernel)


def svc_members(
    shadow: np.ndarray, labels: np.ndarray, x: np.ndarray, kernel: np.ndarray | None = None
) -> np.ndarray:
    """Which of ``x`` ``SVC(C=3, gamma="auto").fit(shadow[:, None], labels)`` predicts members
    (label 1). The same fit, on the same kernel computed here (``kernel="precomputed"``: libsvm
    then spends its time on the optimisation, not on the kernel) up to
    ``PRECOMPUTED_KERNEL_MAX`` examples, and the prediction from its
    decision function ``sum_i dual_coef_i K(x, sv_i) + intercept`` (positive: the second class)
    for all of ``x`` at once. ``kernel``: a [len(shadow)]-square array to compute the kernel
    matrix in (overwritten; libsvm keeps no reference to it)."""
    from sklearn.svm import SVC

    if len(shadow) <= PRECOMPUTED_KERNEL_MAX:
        classifier = SVC(C=SVC_C, kernel="precomputed").fit(
            rbf_kernel(shadow, shadow, kernel), labels)
        support = shadow[classifier.support_]
    else:  # a matrix too large to hold: libsvm computes the kernel as it needs it
        classifier = SVC(C=SVC_C, gamma="auto", kernel="rbf").fit(shadow[:, None], labels)
        support = classifier.support_vectors_[:, 0]
    return rbf_kernel(x, support) @ classifier.dual_coef_[0] + classifier.intercept_[0] > 0


def per_model(
    forget_acc: np.ndarray,
    retain_acc: np.ndarray,
    test_acc: np.ndarray,
    forget_losses: np.ndarray | None,
    test_losses: np.ndarray | None,
    retain_losses: np.ndarray | None,
    seed: int,
) -> dict[str, np.ndarray]:
    """Every per-model measure [M] of a set of models; the two attacks are nan when the losses
    are not known (run records from before they were kept)."""
    values = {
        "ua": 1.0 - np.asarray(forget_acc, dtype=np.float64),
        "ra": np.asarray(retain_acc, dtype=np.float64),
        "ta": np.asarray(test_acc, dtype=np.float64),
    }
    if forget_losses is None or test_losses is None or retain_losses is None:
        values["mia"] = np.full(len(values["ua"]), np.nan)
        values["mia_efficacy"] = np.full(len(values["ua"]), np.nan)
    else:
        values["mia"] = kit_mia(forget_losses, test_losses, seed)
        values["mia_efficacy"] = mia_efficacy(retain_losses, test_losses, forget_losses, seed)
    return values


# -- per example: the likelihood-ratio attack --------------------------------------------------
def _gaussian_llr(
    fit_in: np.ndarray, fit_out: np.ndarray, scored: np.ndarray
) -> np.ndarray:
    """log N(x; IN) - log N(x; OUT) of ``scored`` [k, E], each example's two Gaussians fitted
    (mean, MLE standard deviation floored at ``MIN_SD``) to its column of ``fit_in``/``fit_out``."""
    mu_in, mu_out = fit_in.mean(0), fit_out.mean(0)
    sd_in = np.maximum(fit_in.std(0), MIN_SD)
    sd_out = np.maximum(fit_out.std(0), MIN_SD)
    return (-0.5 * ((scored - mu_in) / sd_in) ** 2 - np.log(sd_in)
            + 0.5 * ((scored - mu_out) / sd_out) ** 2 + np.log(sd_out))


def example_aucs(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Per column [E]: the AUC of scores ``positive`` [a, E] against ``negative`` [b, E], i.e.
    P(positive > negative) + P(tie) / 2 (the Mann-Whitney statistic over a * b; nan where a
    score is nan), counted exactly in one sort per column: a positive's negatives below it and
    those not above it, read at the ends of its run of equal scores, sum to twice the pairs it
    wins plus its ties."""
    a, b = len(positive), len(negative)
    scores = np.concatenate([positive, negative]).T  # [E, a + b]
    order = np.argsort(scores, axis=1)
    ordered = np.take_along_axis(scores, order, axis=1)
    negatives_upto = np.cumsum(order >= a, axis=1)  # negatives at or before each position
    position = np.broadcast_to(np.arange(a + b), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)  # where a run of equal scores begins
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, a + b)[:, ::-1], axis=1)[:, ::-1]
    below = np.where(first > 0, np.take_along_axis(negatives_upto, first - 1, axis=1), 0)
    not_above = np.take_along_axis(negatives_upto, last, axis=1)
    twice = np.where(order < a, below + not_above, 0).sum(axis=1)
    aucs = twice / 2 / (a * b)
    aucs[np.isnan(scores).any(axis=1)] = np.nan
    return aucs


def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitting, scored) model positions: the first ``n // 2`` and the rest."""
    return np.arange(n // 2), np.arange(n // 2, n)


def lira_aucs(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """Per forget example [E]: the AUC of a per-example likelihood-ratio attack telling the
    unlearned models (IN) from the retrained ones (OUT). For each example, a Gaussian is fitted
    to the logit-scaled confidences (``metric.logit_scaled_confidence``, LiRA's statistic) of
    the first half of each side's models; the other halves are scored by the log likelihood ratio
    of the two Gaussians, and the AUC of those scores is the example's. 0.5: indistinguishable;
    1: every held-out unlearned model scores above every retrained one. ``unlearned`` [N, E],
    ``retrained`` [N', E]."""
    unlearned = np.asarray(unlearned, dtype=np.float64)
    retrained = np.asarray(retrained, dtype=np.float64)
    fit_in, score_in = halves(len(unlearned))
    fit_out, score_out = halves(len(retrained))
    return _lira_from(unlearned, retrained, fit_in, score_in, fit_out, score_out)


def _lira_from(u, r, fit_in, score_in, fit_out, score_out) -> np.ndarray:
    fitted_in, fitted_out = u[fit_in], r[fit_out]
    return example_aucs(_gaussian_llr(fitted_in, fitted_out, u[score_in]),
                        _gaussian_llr(fitted_in, fitted_out, r[score_out]))


def lira_summary(aucs: np.ndarray) -> tuple[float, float]:
    """(mean AUC over forget examples, share of examples with AUC >= ``EXPOSED_AUC``)."""
    return float(np.mean(aucs)), float(np.mean(aucs >= EXPOSED_AUC))


# -- a row's columns ---------------------------------------------------------------------------
def audit_columns(
    own: dict[str, np.ndarray],
    pool: dict[str, np.ndarray],
    own_confidences: np.ndarray | None,
    pool_confidences: np.ndarray,
    seed: int,
    level: float = LEVEL,
) -> dict[str, float]:
    """The leaderboard's audit columns of one set of models (``own``: ``per_model``'s values)
    against the pool's (``pool``). Each measure: its mean over models with its t-interval; its
    absolute gap to the pool's mean (``<m>_gap``) and ``avg_gap`` with bootstrap intervals;
    ``lira_auc`` and ``lira_exposed`` (the mean per-example AUC and the share of examples at
    AUC >= 0.9) with bootstrap intervals. ``own_confidences`` None: the pool's own row (no
    gaps, no attack of the pool against itself)."""
    columns: dict[str, float] = {}
    for name in MEASURES:
        columns[name], columns[f"{name}_lo"], columns[f"{name}_hi"] = mean_interval(
            own[name], level)
    if own_confidences is None:
        return columns
    rng = np.random.default_rng(seed)
    n_own, n_pool = len(own["ua"]), len(pool["ua"])
    own_draws = rng.integers(0, n_own, (BOOTSTRAP_REPLICATES, n_own))
    pool_draws = rng.integers(0, n_pool, (BOOTSTRAP_REPLICATES, n_pool))
    gap_replicates = {}
    for name in MEASURES:
        columns[f"{name}_gap"] = abs(float(np.mean(own[name]) - np.mean(pool[name])))
        gap_replicates[name] = np.abs(own[name][own_draws].mean(1) - pool[name][pool_draws].mean(1))
        columns[f"{name}_gap_lo"], columns[f"{name}_gap_hi"] = percentile_interval(
            gap_replicates[name], level)
    columns["avg_gap"] = float(np.mean([columns[f"{m}_gap"] for m in GAP_MEASURES]))
    columns["avg_gap_lo"], columns["avg_gap_hi"] = percentile_interval(
        np.mean([gap_replicates[m] for m in GAP_MEASURES], axis=0), level)
    u = np.asarray(own_confidences, dtype=np.float64)
    r = np.asarray(pool_confidences, dtype=np.float64)
    columns["lira_auc"], columns["lira_exposed"] = lira_summary(lira_aucs(u, r))
    fit_in, score_in = halves(len(u))
    fit_out, score_out = halves(len(r))
    replicates = np.array([
        lira_summary(_lira_from(
            u, r, rng.choice(fit_in, len(fit_in)), rng.choice(score_in, len(score_in)),
            rng.choice(fit_out, len(fit_out)), rng.choice(score_out, len(score_out)),
        ))
        for _ in range(LIRA_REPLICATES)
    ])
    columns["lira_auc_lo"], columns["lira_auc_hi"] = percentile_interval(replicates[:, 0], level)
    columns["lira_exposed_lo"], columns["lira_exposed_hi"] = percentile_interval(
        replicates[:, 1], level)
    return columns


AUDIT_COLUMNS = [
    f"{name}{suffix}"
    for name in (*MEASURES, *(f"{m}_gap" for m in MEASURES), "avg_gap", "lira_auc",
                 "lira_exposed")
    for suffix in ("", "_lo", "_hi")
]
