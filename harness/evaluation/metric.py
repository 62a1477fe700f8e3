"""The official forgetting-quality metric of the NeurIPS 2023 Machine Unlearning competition.

Pure functions over arrays, no I/O. They reproduce the semantics of the published evaluation code
(DeepMind's ``unlearning_metric``) exactly, including its float32 rates and float32 thresholds,
but count each attack's errors with sorting and binary search instead of evaluating every attack
densely, and skip the interval attacks that exact bounds show cannot beat the best one found
(``_best_interval``). About half a millisecond per forget example at N = 512: hundreds of times
faster than the dense evaluation (``bench/bench_metric.py`` measures both;
``tests/literal_metric.py`` is the dense one), and 8.5 times faster than searching every interval
attack as a92d813 did (``.venv/bin/python bench/bench_metric_speed.py --baseline a92d813``, on 2
cores busy with other work: 4.82 against 0.57 ms per example at N = 512, 6.6 times at N = 64,
1.7 times at N = 8; the same epsilons, checked).

Reading the numbers:

* The metric depends on N, the number of models on each side: the points scale has
  ``ceil(ln(N - 1))`` as its top (7 at N = 512) and finer rates become measurable as N grows.
  Scores are comparable only at equal N, so always record N next to a score.
* The best reachable forgetting quality F is far below 1: two independent halves of the same
  retrained pool (identical distributions) score only about 0.2 at N = 512, because the best of
  thousands of attacks on finite samples always finds some apparent separation.

Where the constants come from (all from the published evaluation code):

* ``DELTA = 1e-5``: the delta of (epsilon, delta)-differential privacy used in the per-attack bound.
* ``EPSILON_CAP = 50``: the clip applied to every example's epsilon (perfect attacks give +inf).
* ``RANGE_RATIO = 0.01``: when one side's range is less than 1% of the other's, the example gets
  the cap without running attacks.
* ``THRESHOLDS_PER_UNIT = 100``: thresholds per unit of statistic, for both attack families.
* ``BUFFER = 2.0``: how far the interval attacks' thresholds extend beyond the narrower side.
* ``NUM_LEFT_THRESHOLDS = 400``: left ends tried for every right end of an interval attack.
* ``BUCKET_WIDTH = 0.5``: width of the epsilon buckets; bucket k (0-based) is worth 2**-k points.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from harness.evaluation.model_stats import ModelStats

DELTA = 1e-5
EPSILON_CAP = 50.0
RANGE_RATIO = 0.01
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0
NUM_LEFT_THRESHOLDS = 400
BUCKET_WIDTH = 0.5

# Not in the official code: it would try to allocate terabytes instead. Logit-scaled confidences
# lie within about +-104, which needs at most ~21,000 thresholds.
MAX_THRESHOLDS = 10_000_000

# Forget examples processed per batch, so memory stays bounded whatever E is.
_CHUNK_EXAMPLES = 256

# Epsilon tables above this many entries are not built; attacks are then scored directly, and
# every left end of the interval attacks is searched.
_MAX_TABLE_ENTRIES = 4_000_000

# Block sizes (in left ends) of the interval attacks' pruned search (``_best_interval``), coarse
# to fine; a last pass searches what is left one by one. Any sizes give the same epsilons; these
# were among the fastest of those timed at N = 64 and 512.
_BLOCK_SIZES = (96, 12)


def _to_numpy(x: Any) -> Any:
    """Torch tensors become numpy arrays (bfloat16 has no numpy twin, so it becomes float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()
    return x


def logit_scaled_confidence(logits: Any, targets: Any) -> np.ndarray:
    """LiRA's logit-scaled confidence log(p_y) - log(sum of the other p), one value per row.

    This is the statistic the official metric compares between unlearned and retrained models.
    The arithmetic follows the published code: the max-shift and exp happen in the logits' own
    dtype (so float32 logits give float32 exponentials, including their underflow), then the
    probabilities are normalised in float64; 1e-45 keeps both logarithms finite.

    ``logits``: [n, C] numpy array or torch tensor; ``targets``: [n] integer class indices.
    Returns float64 [n]. The inputs are never modified.
    """
    z = np.array(_to_numpy(logits), copy=True)
    t = np.array(_to_numpy(targets), copy=True)
    if z.dtype.kind not in "fiub":
        raise ValueError(f"logits must be real numbers; got dtype {z.dtype}")
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D [examples, classes]; got shape {z.shape}")
    n, num_classes = z.shape
    if num_classes == 0:
        raise ValueError("logits must have at least one class column")
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(
            f"targets must be 1-D with one entry per row of logits ({n}); got shape {t.shape}"
        )
    if n and t.dtype.kind not in "iu":
        raise ValueError(f"targets must be integer class indices; got dtype {t.dtype}")
    if n and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(
            f"targets must lie in [0, {num_classes - 1}]; got values from {t.min()} to {t.max()}"
        )
    if not np.isfinite(z).all():
        raise ValueError("logits contain non-finite values (nan or inf)")
    t = t.astype(np.intp)

    shifted = z - z.max(axis=1, keepdims=True)
    exps = np.exp(shifted).astype(np.float64)
    probs = exps / exps.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    p_correct = probs[rows, t].copy()
    probs[rows, t] = 0.0
    p_wrong = probs.sum(axis=1)
    return np.log(p_correct + 1e-45) - np.log(p_wrong + 1e-45)


def _as_statistics(x: Any, name: str) -> np.ndarray:
    """Validates one side's [models, examples] statistics and returns them as float64."""
    try:
        arr = np.asarray(_to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array [models, examples]: {err}") from err
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [models, forget examples]; got shape {arr.shape}")
    return arr


def _validated(unlearned: Any, retrained: Any) -> tuple[np.ndarray, np.ndarray]:
    u = _as_statistics(unlearned, "unlearned")
    r = _as_statistics(retrained, "retrained")
    if u.shape[1] != r.shape[1]:
        raise ValueError(
            "unlearned and retrained must cover the same forget examples (columns); got "
            f"{u.shape[1]} and {r.shape[1]}"
        )
    if u.shape[1] == 0:
        raise ValueError("the forget set is empty (0 columns): there is nothing to score")
    for arr, name in ((u, "unlearned"), (r, "retrained")):
        if arr.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 models (rows); got {arr.shape[0]}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return u, r


def _attack_epsilons(
    fn: np.ndarray, fp: np.ndarray, n_pos: int, n_neg: int, delta: float
) -> np.ndarray:
    """Epsilon of attacks given their false-negative and false-positive counts (broadcast).

    Rates are float32 means of 0/1 outcomes, i.e. float32(count) / float32(n), and the bound is
    evaluated in float32 exactly as the official code does. +inf marks a perfect attack; -inf marks
    a discarded one (exactly one error rate zero, or both logarithms undefined), so a max over
    attacks ignores it.
    """
    f32 = np.float32
    fn = np.asarray(fn)
    fp = np.asarray(fp)
    fnr = fn.astype(f32) / f32(n_pos)
    tpr = (n_pos - fn).astype(f32) / f32(n_pos)
    fpr = fp.astype(f32) / f32(n_neg)
    tnr = (n_neg - fp).astype(f32) / f32(n_neg)
    one_minus_delta = f32(1 - delta)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        perfect = (fpr + fnr == 0) & (tpr + tnr == 2)
        discarded = fpr * fnr == 0
        eps1 = np.log(one_minus_delta - fpr) - np.log(fnr)
        eps2 = np.log(one_minus_delta - fnr) - np.log(fpr)
        eps = np.maximum(np.fmax(eps1, eps2), f32(0))  # fmax = nanmax of the pair; nan stays
    eps = np.where(discarded | np.isnan(eps), f32(-np.inf), eps)
    return np.where(perfect, f32(np.inf), eps).astype(f32)


@functools.lru_cache(maxsize=32)
def _epsilon_table(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """Flat table: entry fn * (n_neg + 1) + fp is the epsilon of an attack with those counts.

    Every attack's epsilon depends only on its two error counts, so one table per
    (n_pos, n_neg, delta) replaces millions of logarithms by lookups.
    """
    fn = np.arange(n_pos + 1)[:, None]
    fp = np.arange(n_neg + 1)[None, :]
    table = _attack_epsilons(fn, fp, n_pos, n_neg, delta).ravel()
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=32)
def _epsilon_bounds(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """Flat like ``_epsilon_table``: entry (fn, fp) is the largest epsilon of any attack with at
    least fn false negatives and at least fp false positives.

    An upper bound for a group of attacks known only by their smallest counts, valid whatever the
    table's shape (no monotonicity is assumed: it is a running maximum of the table itself).
    """
    table = _epsilon_table(n_pos, n_neg, delta).reshape(n_pos + 1, n_neg + 1)[::-1, ::-1]
    bounds = np.maximum.accumulate(np.maximum.accumulate(table, axis=0), axis=1)
    bounds = np.ascontiguousarray(bounds[::-1, ::-1]).ravel()
    bounds.setflags(write=False)
    return bounds


def _best_attack(index: np.ndarray, n_pos: int, n_neg: int, delta: float) -> float:
    """Largest epsilon over attacks given as flat indices fn * (n_neg + 1) + fp.

    -inf when every attack is discarded.
    """
    if index.size == 0:
        return -math.inf
    if (n_pos + 1) * (n_neg + 1) <= _MAX_TABLE_ENTRIES:
        return float(_epsilon_table(n_pos, n_neg, delta).take(index).max())
    fn, fp = np.divmod(index, n_neg + 1)
    return float(_attack_epsilons(fn, fp, n_pos, n_neg, delta).max())


def _thresholds_needed(span: float, what: str) -> int:
    count = int(math.ceil(span * THRESHOLDS_PER_UNIT))
    if count > MAX_THRESHOLDS:
        raise ValueError(
            f"the {what} attacks would need {count} thresholds: the statistics spread over "
            f"{span:g} units, far beyond logit-scaled confidences (within about +-104)"
        )
    return count


def _left_thresholds(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """[NUM_LEFT_THRESHOLDS, J]: column j equals np.linspace(starts[j], stops[j], 400).

    One vectorised np.linspace performs the same float64 operations per column as the scalar
    calls of the official code, unless some step is zero (numpy then switches every column to
    another formula), in which case the scalar calls are made one by one.
    """
    if np.any((stops - starts) / (NUM_LEFT_THRESHOLDS - 1) == 0):
        columns = [
            np.linspace(a, b, num=NUM_LEFT_THRESHOLDS) for a, b in zip(starts, stops, strict=True)
        ]
        return np.stack(columns, axis=1)
    return np.linspace(starts, stops, num=NUM_LEFT_THRESHOLDS)


def _best_interval(
    values: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    steps: np.ndarray,
    g_right: np.ndarray,
    left_part: np.ndarray,
    right_part: np.ndarray,
    below_out: np.ndarray,
    table: np.ndarray,
    bounds: np.ndarray,
    best: float,
) -> float:
    """The larger of ``best`` and every interval attack's epsilon, searching only the left ends
    whose attacks might beat the best found so far.

    Left end k of right end j, but for the last (``stops[j]``), is ``k * steps[j] + starts[j]``
    (linspace's own float64 operations, for positive steps), so non-decreasing in k. Blocks of
    left ends are searched at their ends only: a left end between two searched ones, with g_lo
    <= g_hi values below them, has a count g in between, so its attack has at least the false
    negatives at g_lo and at least the false positives at g_hi, and ``bounds`` there caps every
    attack of the block. A block whose cap does not beat the best attack found so far is
    dropped, the others are split into finer blocks (``_BLOCK_SIZES``) and searched likewise:
    the result is the exhaustive maximum, exactly, whatever the table.
    """
    g_stop = np.minimum(np.searchsorted(values, stops, side="left"), g_right)
    best = max(best, float(table.take(left_part.take(g_stop) + right_part).max()))
    column = np.arange(starts.shape[0])  # each block's right end, its left ends lo..hi
    lo = np.zeros(column.shape[0])
    hi = np.full(column.shape[0], NUM_LEFT_THRESHOLDS - 2.0)
    previous = NUM_LEFT_THRESHOLDS - 2
    for size in (*_BLOCK_SIZES, 1):
        # Every size-th left end of each block, its ends included (floats, as linspace's k).
        k = np.arange(-(-previous // size) + 1.0) * size + lo[:, None]
        np.minimum(k, hi[:, None], out=k)
        lefts = k * steps[column, None] + starts[column, None]
        g = np.searchsorted(values, lefts.ravel(), side="left").reshape(lefts.shape)
        np.minimum(g, g_right[column, None], out=g)
        index = left_part.take(g) + right_part[column, None]
        best = max(best, float(table.take(index).max()))
        if size == 1:
            break  # every left end of the open blocks was searched
        # A block's cap: the false negatives at its lower end, the false positives at its upper
        # end (fp falls by the outer values between them). Ends one count apart leave no other
        # attack inside.
        out = below_out.take(g)
        corner = index[:, :-1] - (out[:, 1:] - out[:, :-1])
        block, sub = np.nonzero((g[:, 1:] - g[:, :-1] > 1) & (bounds.take(corner) > best))
        if block.size == 0:
            break
        lo, hi, column = k[block, sub], k[block, sub + 1], column[block]
        previous = size
    return best


def _example_epsilon(
    u_sorted: np.ndarray, r_sorted: np.ndarray, u_median: float, r_median: float, delta: float
) -> float:
    """Epsilon of one forget example from both sides' statistics, sorted ascending.

    Every attack is reduced to its two error counts. Both sides are merged into one sorted
    array, so one binary search per threshold gives the number g of values below it, and
    prefix counts of each side over the merged order turn g into the counts of both sides.
    Of the interval attacks' left ends, only those whose attacks might beat the best one found
    are searched (``_best_interval``).
    """
    if r_median > u_median:
        pos, neg = r_sorted, u_sorted
    else:
        pos, neg = u_sorted, r_sorted
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    range_pos = float(pos[-1] - pos[0])
    range_neg = float(neg[-1] - neg[0])
    largest = range_pos if range_pos > range_neg else range_neg
    smallest = range_neg if range_pos > range_neg else range_pos
    # Both ranges zero: the official 0/0 is nan, which is not < 0.01, so the attacks run.
    if largest > 0 and smallest / largest < RANGE_RATIO:
        return EPSILON_CAP

    merged = np.concatenate((pos, neg))
    order = np.argsort(merged, kind="stable")
    values = merged[order]
    # below_pos[g] / below_neg[g]: how many of the g smallest values come from each side.
    below_pos = np.zeros(n_pos + n_neg + 1, dtype=np.intp)
    np.cumsum(order < n_pos, out=below_pos[1:])
    below_neg = np.arange(n_pos + n_neg + 1) - below_pos

    # Single-threshold attacks: predict "positive" when the value is >= t. With g values < t,
    # fn = below_pos[g] and fp = n_neg - below_neg[g].
    lo = float(values[0])
    hi = float(values[-1])
    count = _thresholds_needed(hi - lo, "single-threshold")
    thresholds = torch.linspace(lo, hi, count, dtype=torch.float32).numpy().astype(np.float64)
    below = np.searchsorted(values, thresholds, side="left")
    gap_index = below_pos * (n_neg + 1) + (n_neg - below_neg)
    best = _best_attack(gap_index.take(below), n_pos, n_neg, delta)
    if best == math.inf:
        return EPSILON_CAP

    # Double-threshold attacks: predict "inner" (the narrower side, A) when l <= value <= r.
    width = range_neg if range_pos > range_neg else range_pos
    if range_pos >= range_neg:
        inner, below_in, below_out = neg, below_neg, below_pos
    else:
        inner, below_in, below_out = pos, below_pos, below_neg
    n_in = inner.shape[0]
    n_out = n_pos + n_neg - n_in
    min_ = (float(inner[0]) + width) - BUFFER
    max_ = float(inner[-1]) + BUFFER
    rights = np.linspace(min_, max_, num=_thresholds_needed(max_ - min_, "double-threshold"))
    if rights.size:
        shifted = rights - width
        starts, stops = shifted - BUFFER, shifted + BUFFER
        # Values in l <= c <= r are those with merged positions in [g_l, g_r), where g_l counts
        # values < l and g_r values <= r; when l > r the interval is empty (g_l := g_r).
        g_right = np.searchsorted(values, rights, side="right")
        # fn = n_in - (below_in[g_r] - below_in[g_l]); fp = below_out[g_r] - below_out[g_l]:
        # the flat table index splits into a per-right part and a per-left part.
        right_part = (n_in - below_in[g_right]) * (n_out + 1) + below_out[g_right]
        left_part = below_in * (n_out + 1) - below_out
        steps = (stops - starts) / (NUM_LEFT_THRESHOLDS - 1)
        if np.all(steps > 0) and (n_in + 1) * (n_out + 1) <= _MAX_TABLE_ENTRIES:
            best = _best_interval(
                values, starts, stops, steps, g_right, left_part, right_part, below_out,
                _epsilon_table(n_in, n_out, delta), _epsilon_bounds(n_in, n_out, delta), best,
            )
        else:  # linspace computes otherwise (a zero step), or no table: search every left end
            lefts = _left_thresholds(starts, stops)  # [400, J]
            g_left = np.searchsorted(values, lefts.ravel(), side="left").reshape(lefts.shape)
            np.minimum(g_left, g_right, out=g_left)
            index = left_part.take(g_left)
            index += right_part
            best = max(best, _best_attack(index.ravel(), n_in, n_out, delta))

    if best == -math.inf:
        # No attack kept (e.g. both sides the same constant). The official code fails an
        # assertion here; no attack distinguishes the two sets, so the example's epsilon is 0.
        return 0.0
    return min(max(best, 0.0), EPSILON_CAP)


def epsilons(unlearned: Any, retrained: Any, delta: float = DELTA) -> np.ndarray:
    """Per-forget-example epsilon of the official metric, float64 [E], each in [0, 50].

    ``unlearned`` is [N_u, E] and ``retrained`` is [N_r, E]: one statistic (usually
    ``logit_scaled_confidence``) per model and forget example; N_u and N_r may differ.
    Epsilon is the strongest membership-inference evidence, over thousands of threshold and
    interval attacks, that the unlearned models' outputs differ from retrained ones'.

    One case the official code leaves undefined: when both sides are the same constant, every
    attack is discarded (the official code fails an assertion); we return 0 there, since no attack
    distinguishes the two sets. Inputs are never modified.
    """
    u, r = _validated(unlearned, retrained)
    delta = float(delta)
    if not 0 <= delta < 1:
        raise ValueError(f"delta must lie in [0, 1); got {delta}")
    num_examples = u.shape[1]
    out = np.empty(num_examples, dtype=np.float64)
    for start in range(0, num_examples, _CHUNK_EXAMPLES):
        stop = min(start + _CHUNK_EXAMPLES, num_examples)
        # Always copies (the inputs are never sorted in place): one row per example.
        u_chunk = np.array(u[:, start:stop].T, order="C")
        r_chunk = np.array(r[:, start:stop].T, order="C")
        u_medians = np.median(u_chunk, axis=1)
        r_medians = np.median(r_chunk, axis=1)
        u_chunk.sort(axis=1)
        r_chunk.sort(axis=1)
        for i in range(stop - start):
            out[start + i] = _example_epsilon(
                u_chunk[i], r_chunk[i], float(u_medians[i]), float(r_medians[i]), delta
            )
    return out


def points(eps: Any, num_models: int) -> np.ndarray:
    """Points per example: 2**-k for an epsilon in bucket k = [k/2, k/2 + 1/2), float64.

    The buckets stop at max_eps = ceil(ln(num_models - 1)) (7, so 14 buckets, at N = 512): rates
    are multiples of 1/N, so larger epsilons are not resolved. An epsilon at or beyond max_eps, or
    nan, earns 0; a negative one falls in bucket 0. ``num_models`` is the number of unlearned
    models (N = 2 gives no bucket at all, so every example earns 0).
    """
    try:
        n = operator.index(num_models)
    except TypeError:
        n = None
    if n is None or n < 2:
        raise ValueError(f"num_models must be an integer >= 2; got {num_models!r}")
    values = np.asarray(_to_numpy(eps), dtype=np.float64)
    max_eps = math.ceil(math.log(n - 1))
    num_buckets = max(0, math.floor(max_eps / BUCKET_WIDTH))
    with np.errstate(invalid="ignore"):
        bucket = np.maximum(np.floor(values / BUCKET_WIDTH), 0.0)  # first bucket with eps < end
        scored = bucket < num_buckets  # False for nan and at/beyond max_eps
    out = np.zeros(values.shape, dtype=np.float64)
    out[scored] = np.exp2(-bucket[scored])
    return out


def forget_quality(unlearned: Any, retrained: Any) -> float:
    """Forgetting quality F in [0, 1]: mean points over the forget set (N = unlearned models)."""
    u, r = _validated(unlearned, retrained)
    eps = epsilons(u, r)
    return float(points(eps, u.shape[0]).sum() / eps.shape[0])


def _mean_accuracy(x: Any, name: str) -> float:
    try:
        arr = np.asarray(_to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number or an array of numbers: {err}") from err
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return float(arr.mean())


def final_score(
    forget_quality: float,
    retain_acc_unlearned: Any,
    retain_acc_retrained: Any,
    test_acc_unlearned: Any,
    test_acc_retrained: Any,
) -> float:
    """Competition score F * (RA_U / RA_R) * (TA_U / TA_R).

    Forgetting only counts if utility survives: the accuracies are means over models (scalars or
    arrays), and the retrained means must be positive.
    """
    f = float(forget_quality)
    if not 0 <= f <= 1:
        raise ValueError(f"forget_quality must lie in [0, 1]; got {f}")
    ra_u = _mean_accuracy(retain_acc_unlearned, "retain_acc_unlearned")
    ra_r = _mean_accuracy(retain_acc_retrained, "retain_acc_retrained")
    ta_u = _mean_accuracy(test_acc_unlearned, "test_acc_unlearned")
    ta_r = _mean_accuracy(test_acc_retrained, "test_acc_retrained")
    if ra_r <= 0 or ta_r <= 0:
        raise ValueError("the retrained models' mean retain and test accuracies must be > 0")
    return f * (ra_u / ra_r) * (ta_u / ta_r)


def official_scores(stats: ModelStats, pool: ModelStats) -> tuple[float, float]:
    """(forgetting quality F, final score) of a set of models against the reference pool."""
    quality = forget_quality(stats.confidences, pool.confidences)
    return quality, final_score(
        quality, stats.retain_acc, pool.retain_acc, stats.test_acc, pool.test_acc
    )
