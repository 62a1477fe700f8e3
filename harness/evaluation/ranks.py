"""Rank intervals: the ranks each submission could hold, from all pairwise paired comparisons.

A ranked row's interval ``rank_lo``..``rank_hi`` is ``1 + (rows significantly above it)`` to
``K - (rows significantly below it)`` among the K ranked rows. "Significantly" is decided for all
K(K-1)/2 pairs at once:

* each pair is compared paired (``harness.evaluation.uncertainty.difference_se``: both rows share
  the example and reference-model draws of every bootstrap replicate, so the shared noise cancels in
  their difference); its two-sided p-value is the normal one of ``z = gap / se(gap)``;
* Holm's step-down correction over all pairs (Holm 1979, "A simple sequentially rejective
  multiple test procedure", Scand. J. Statist. 6:65-70) keeps the chance of any false
  rejection, over the whole family, at most ``1 - level`` whatever the dependence between the
  tests (they share rows, so they are dependent). A rejected pair is read in the direction of its
  gap.

Why this is a joint statement: when no rejection is false, every row counted above a row truly
lies above it and every row counted below truly lies below, so every row's true rank lies in its
interval; all intervals hold together with probability at least ``level``, up to the normal
approximation of the bootstrap and the directional reading of the rejections (Shaffer 1980,
Ann. Statist. 8:1342-1347, proved it for independent statistics; here it is the usual reading).
Ranks bounded by counting the pairwise comparisons that exclude a tie are the joint rank region
of Klein, Wright and Wieczorek (2020), "A joint confidence region for an overall ranking of
populations", JRSS C 69:589-606; Holm's correction here in place of their Bonferroni one is
never less powerful. Unlike chaining adjacent comparisons, small steps do not add up into one
group.

Two consequences the tests check, both exact for finite replicates: (1) a significant pair is
transitive (i above m, m above j gives i above j): the paired standard error obeys the triangle
inequality (it is a seminorm of the replicate differences, and ``i - j = (i - m) + (m - j)``
replicate by replicate), so ``z(i, j) >= min(z(i, m), z(m, j))``, and Holm rejects every p-value
at most a rejected one. Hence (2) when the intervals of two rows do not overlap, the two differ
significantly: ``rank_hi(i) < rank_lo(j)`` needs (rows below i) + (rows above j) >= K, which,
unless j is among the rows below i, needs a row m below i and above j, and (1) then puts j below
i.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.core.defaults import LEVEL
from harness.evaluation.uncertainty import difference_se

if TYPE_CHECKING:
    from harness.evaluation.uncertainty import Replicates

TIED_FOR_FIRST = "tied for first"
LEGEND = (
    f"ranks: the range of ranks each row could hold, all rows at once at {LEVEL:.0%} (paired "
    f"bootstrap comparisons of every pair, Holm's correction); a row whose range contains 1 is "
    f"{TIED_FOR_FIRST}"
)


def pairwise_p_values(rows: Sequence[Replicates]) -> np.ndarray:
    """[K, K] two-sided p-values of the paired final-score differences (1 on the diagonal and
    where two scores are equal; 0 where they differ with no spread at all)."""
    k = len(rows)
    p = np.ones((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            gap = abs(rows[i].final_score - rows[j].final_score)
            se = difference_se(rows[i], rows[j])
            if gap > 0:
                p[i, j] = p[j, i] = math.erfc(gap / se / math.sqrt(2)) if se > 0 else 0.0
    return p


def holm(p_values: Sequence[float] | np.ndarray, alpha: float) -> np.ndarray:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``: sorted
    ascending, the k-th smallest p-value (k from 1) is rejected while it is at most
    ``alpha / (m - k + 1)``; the first that is not stops it."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    rejected = np.zeros(m, dtype=bool)
    for k, index in enumerate(np.argsort(p, kind="stable")):
        if not p[index] <= alpha / (m - k):
            break
        rejected[index] = True
    return rejected


def significantly_above(rows: Sequence[Replicates], level: float = LEVEL) -> np.ndarray:
    """[K, K] booleans: ``above[i, j]`` when row i scores significantly above row j, with Holm's
    correction over every pair at family-wise level ``1 - level``."""
    k = len(rows)
    above = np.zeros((k, k), dtype=bool)
    if k < 2:
        return above
    upper = np.triu_indices(k, 1)
    rejected = holm(pairwise_p_values(rows)[upper], 1 - level)
    for i, j, reject in zip(*upper, rejected, strict=True):
        if reject:
            if rows[i].final_score > rows[j].final_score:
                above[i, j] = True
            else:
                above[j, i] = True
    return above


def rank_intervals(rows: Sequence[Replicates], level: float = LEVEL) -> list[tuple[int, int]]:
    """(rank_lo, rank_hi) of every row: 1 + the rows significantly above it, and the number of
    rows minus those significantly below it. The order of ``rows`` does not matter."""
    above = significantly_above(rows, level)
    k = len(rows)
    return [(1 + int(above[:, i].sum()), k - int(above[i, :].sum())) for i in range(k)]


def rank_text(low: object, high: object) -> str:
    """A rank interval for people: ``3`` when it is one rank, ``1-5`` otherwise, ``-`` when the
    row is not ranked (or the board predates rank intervals)."""
    try:
        low, high = int(float(low)), int(float(high))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return "-"
    return str(low) if low == high else f"{low}-{high}"


def tied_for_first(board: pd.DataFrame) -> list[str]:
    """The ranked rows of one split whose rank range contains 1, best first."""
    if "rank_lo" not in board.columns:
        return []
    low = pd.to_numeric(board["rank_lo"], errors="coerce")
    return [str(name) for name in board.loc[low == 1, "submission"]]


def tied_for_first_text(board: pd.DataFrame) -> str:
    """One sentence naming the rows tied for first ("" when the board has no rank ranges)."""
    names = tied_for_first(board)
    if not names:
        return ""
    return f"{TIED_FOR_FIRST} ({len(names)} of {int(board['rank'].notna().sum())} ranked): " + (
        ", ".join(names))
