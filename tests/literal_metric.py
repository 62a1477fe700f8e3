"""A slow, literal reimplementation of the official metric, used as independent evidence.

It follows the published evaluation algorithm step by step: every attack is evaluated densely
(one boolean comparison per model and threshold, float32 means over models), the interval attacks'
left thresholds come from one scalar np.linspace call per right threshold, and the points come
from a plain loop over buckets. It shares no code with ``harness/evaluation/metric.py`` on purpose:
the tests and the bench compare the two. Only for tests and the bench; seconds per example at N =
512.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

_THRESHOLD_CHUNK = 1024  # single thresholds evaluated at once
_RIGHT_CHUNK = 16  # right thresholds (x 400 left thresholds) evaluated at once


def _rates_epsilon(tpr, fnr, fpr, tnr, delta):
    """Per-attack epsilon from float32 rates; nan marks a discarded attack."""
    result = np.full(tpr.shape, np.nan, dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        perfect = (fpr + fnr == 0) & (tpr + tnr == 2)
        zero_product = fpr * fnr == 0
        usable = ~perfect & ~zero_product
        f_p = fpr[usable]
        f_n = fnr[usable]
        eps1 = np.log(1 - delta - f_p) - np.log(f_n)
        eps2 = np.log(1 - delta - f_n) - np.log(f_p)
        best = np.nanmax(np.stack([eps1, eps2]), axis=0)
        best = np.clip(best, 0, None)
    result[usable] = best
    result[perfect] = np.inf
    return result


def _single_threshold_epsilons(pos, neg, delta):
    lo = min(np.min(pos), np.min(neg))
    hi = max(np.max(pos), np.max(neg))
    count = int(math.ceil((hi - lo) * 100))
    thresholds = torch.linspace(float(lo), float(hi), count, dtype=torch.float32)
    thresholds = thresholds.numpy().astype(np.float64)
    found = []
    for begin in range(0, count, _THRESHOLD_CHUNK):
        t = thresholds[begin : begin + _THRESHOLD_CHUNK][None, :]
        tpr = np.mean((pos[:, None] >= t).astype(np.float32), axis=0)
        fnr = np.mean((pos[:, None] < t).astype(np.float32), axis=0)
        fpr = np.mean((neg[:, None] >= t).astype(np.float32), axis=0)
        tnr = np.mean((neg[:, None] < t).astype(np.float32), axis=0)
        found.append(_rates_epsilon(tpr, fnr, fpr, tnr, delta))
    return found


def _double_threshold_epsilons(pos, neg, range_pos, range_neg, delta):
    width = range_neg if range_pos > range_neg else range_pos
    if range_pos >= range_neg:
        a, b = neg, pos
    else:
        a, b = pos, neg
    min_ = (np.min(a) + width) - 2.0
    max_ = np.max(a) + 2.0
    count = int(np.ceil((max_ - min_) * 100))
    rights = np.linspace(min_, max_, num=count)
    found = []
    for begin in range(0, count, _RIGHT_CHUNK):
        chunk = rights[begin : begin + _RIGHT_CHUNK]
        lefts = np.stack(
            [np.linspace((r - width) - 2.0, (r - width) + 2.0, num=400) for r in chunk]
        )  # [chunk, 400]
        upper = chunk[:, None]
        a_inside = (a[:, None, None] >= lefts[None]) & (a[:, None, None] <= upper[None])
        b_inside = (b[:, None, None] >= lefts[None]) & (b[:, None, None] <= upper[None])
        tpr = np.mean(a_inside.astype(np.float32), axis=0).ravel()
        fnr = np.mean((~a_inside).astype(np.float32), axis=0).ravel()
        fpr = np.mean(b_inside.astype(np.float32), axis=0).ravel()
        tnr = np.mean((~b_inside).astype(np.float32), axis=0).ravel()
        found.append(_rates_epsilon(tpr, fnr, fpr, tnr, delta))
    return found


def literal_example_epsilon(u, r, delta=1e-5):
    """Epsilon of one forget example: u and r are 1-D float64 statistics of both model sides."""
    if np.median(r) > np.median(u):
        pos, neg = r, u
    else:
        pos, neg = u, r
    range_pos = np.max(pos) - np.min(pos)
    range_neg = np.max(neg) - np.min(neg)
    largest = range_pos if range_pos > range_neg else range_neg
    smallest = range_neg if range_pos > range_neg else range_pos
    with np.errstate(invalid="ignore"):
        ratio = np.float64(smallest) / np.float64(largest)  # 0 / 0 is nan: not capped
    if ratio < 0.01:
        return 50.0
    per_attack = _single_threshold_epsilons(pos, neg, delta)
    per_attack += _double_threshold_epsilons(pos, neg, range_pos, range_neg, delta)
    every = np.concatenate(per_attack) if per_attack else np.array([])
    if every.size == 0 or np.all(np.isnan(every)):
        return 0.0  # no attack kept: defined as 0 (the official code asserts here)
    return float(np.clip(np.nanmax(every), 0.0, 50.0))


def literal_epsilons(unlearned, retrained, delta=1e-5):
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    return np.array(
        [literal_example_epsilon(u[:, j], r[:, j], delta) for j in range(u.shape[1])],
        dtype=np.float64,
    )


def literal_points(eps, num_models):
    max_eps = math.ceil(math.log(num_models - 1))
    starts = []
    start = 0.0
    while start + 0.5 <= max_eps:
        starts.append(start)
        start += 0.5
    result = []
    for value in eps:
        earned = 0.0
        for k, bucket_start in enumerate(starts):
            if value < bucket_start + 0.5:
                earned = 2.0**-k
                break
        result.append(earned)
    return np.array(result, dtype=np.float64)


def literal_forget_quality(unlearned, retrained):
    eps = literal_epsilons(unlearned, retrained)
    total = 0.0
    for earned in literal_points(eps, np.asarray(unlearned).shape[0]):
        total += earned
    return total / len(eps)
