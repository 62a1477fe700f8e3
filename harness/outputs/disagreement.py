"""The report's "Where the measures disagree" section: the ranked submissions ranked again by each
of the literature's audits (``harness.evaluation.audits``), the Spearman rank correlation of each
audit's ranking with the official one, and the official score plotted against the likelihood-ratio
attack's mean AUC, so that a reader sees which methods the official metric and an attack judge
differently.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core import files
from harness.core.defaults import LEVEL
from harness.execution.records import OK
from harness.outputs.leaderboard import CEILING_ROW, finite

PLOT_FILE = "disagreement.png"
# (column, heading, True when higher is better): the official score, then the audits, each
# ranked so that 1 is the row closest to retrained models by that measure
MEASURES = [
    ("final_score", "official score", True),
    ("avg_gap", "Avg. Gap", False),
    ("ua_gap", "UA gap", False),
    ("ta_gap", "TA gap", False),
    ("mia_gap", "kit MIA gap", False),
    ("mia_efficacy_gap", "MIA-Efficacy gap", False),
    ("lira_auc", "LiRA mean AUC", False),
    ("lira_exposed", "LiRA share AUC >= 0.9", False),
]


def measure_ranks(board: pd.DataFrame) -> pd.DataFrame:
    """The ranked rows' rank (1 = best, ties share the mean rank) by every measure the board
    has, one column per measure, rows in the official order."""
    ranked = board[board["status"] == OK].set_index("submission")
    ranks = {}
    for column, _, higher in MEASURES:
        if column in ranked and ranked[column].map(finite).all():
            values = pd.to_numeric(ranked[column])
            ranks[column] = (-values if higher else values).rank(method="average")
    return pd.DataFrame(ranks, index=ranked.index)


def correlations(ranks: pd.DataFrame) -> dict[str, float]:
    """Spearman's rank correlation of each audit's ranking with the official one (1: the same
    order; nan with fewer than three rows)."""
    found = {}
    for column in ranks.columns:
        if column == "final_score":
            continue
        if len(ranks) < 3:
            found[column] = math.nan
        else:
            found[column] = float(np.corrcoef(ranks["final_score"], ranks[column])[0, 1])
    return found


def plot_disagreement(board: pd.DataFrame, path: Path) -> bool:
    """Official score (x) against the LiRA mean AUC (y) with their intervals, every ranked row and
    the ceiling; False (nothing written) when the board has no LiRA column."""
    if "lira_auc" not in board or not board["lira_auc"].map(finite).any():
        return False
    from matplotlib.figure import Figure

    shown = board[board["lira_auc"].map(finite) & board["final_score"].map(finite)]
    figure = Figure(figsize=(9, 5.5))
    ax = figure.add_subplot()
    for _, row in shown.iterrows():
        ceiling = row["submission"] == CEILING_ROW
        x, y = float(row["final_score"]), float(row["lira_auc"])
        xerr = [[x - _or(row.get("final_score_lo"), x)], [_or(row.get("final_score_hi"), x) - x]]
        yerr = [[y - _or(row.get("lira_auc_lo"), y)], [_or(row.get("lira_auc_hi"), y) - y]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="D" if ceiling else "o", capsize=2,
                    markersize=5, color="#C44E52" if ceiling else "#4C72B0")
        ax.annotate(str(row["submission"]), (x, y), xytext=(5, 3), textcoords="offset points",
                    fontsize=7)
    ax.axhline(0.5, color="#999", linestyle=":", linewidth=1)
    positive = shown["final_score"][shown["final_score"] > 0]
    ax.set_xscale("symlog", linthresh=float(positive.min()) / 2 if len(positive) else 1e-5)
    ax.set_xlim(left=0, right=float(shown["final_score"].max()) * 1.6 or 1.0)
    ax.set_xlabel(f"official final score ({LEVEL:.0%} interval; symmetric-log scale)")
    ax.set_ylabel("LiRA mean per-example AUC (0.5: chance)")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    files.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    return True


def _or(value: object, default: float) -> float:
    return float(value) if finite(value) else default


def disagreement_section(board: pd.DataFrame, plotted: bool) -> str:
    """The section's HTML ("" when the board has no audit columns: one written before them)."""
    ranks = measure_ranks(board)
    if len(ranks.columns) < 2:
        return ""
    headings = {column: heading for column, heading, _ in MEASURES}
    head = "".join(f"<th>{html.escape(headings[c])}</th>" for c in ranks.columns)
    body = []
    for name, row in ranks.iterrows():
        cells = "".join(f"<td>{value:g}</td>" for value in row)
        body.append(f'<tr><td class="text">{html.escape(str(name))}</td>{cells}</tr>')
    found = correlations(ranks)
    text = ", ".join(
        f"{headings[c]} {value:.2f}" if math.isfinite(value) else f"{headings[c]} -"
        for c, value in found.items())
    shift = (ranks.drop(columns="final_score").sub(ranks["final_score"], axis=0)).abs().max(axis=1)
    moved = shift.sort_values(ascending=False, kind="stable").head(3)
    movers = "; ".join(f"{html.escape(str(n))} (up to {v:g} places)" for n, v in moved.items()
                       if v > 0)
    figure = (f'<figure id="plot-disagreement"><img src="{PLOT_FILE}" alt="official score '
              f'against the LiRA mean AUC"><figcaption>Official score against the mean '
              f'per-example AUC of the likelihood-ratio attack, each with its {LEVEL:.0%} '
              f'interval; the red diamond is the retrained ceiling (what chance looks like at '
              f'this N). Higher right is what the official metric prefers; lower is what the '
              f'attack prefers.</figcaption></figure>') if plotted else ""
    return (
        "<h2>Where the measures disagree</h2>"
        '<p class="meta">The ranked submissions ranked again by each audit (1: closest to the '
        "retrained pool by that measure; gaps are to the pool's mean; LiRA is the per-example "
        "likelihood-ratio attack against the pool). Spearman rank correlation of each audit's "
        f"ranking with the official one (1: the same order): {text}. Largest moves from the "
        f"official rank: {movers or 'none'}.</p>"
        f'<table id="disagreement"><thead><tr><th class="text">submission</th>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>{figure}"
    )
