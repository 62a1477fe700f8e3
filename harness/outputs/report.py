"""The report: a self-contained folder (PNG plots and ``index.html``) that explains a leaderboard.

The leaderboard gives one number per submission; the report shows where it comes from: the parts
of the final score, how each submission's per-example epsilons fall into the metric's point
buckets, where each submission sits against the time budget, and, for a few forget examples, the
unlearned and retrained confidence distributions that the attacks compare.

The page is static: relative image paths, inline CSS, no scripts, fonts or network, so it can be
opened straight from disk, attached to a CI run or copied anywhere.

``write_report`` is the pure-ish core (it only writes files into its folder, each atomically, the
page last so it never points at a missing image). ``harness report`` finds its inputs: the
leaderboard CSV, the cached reference pool and the run records; it never trains anything.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.core import files
from harness.core.defaults import LEVEL
from harness.evaluation.metric import BUCKET_WIDTH, EPSILON_CAP, epsilons, points
from harness.evaluation.ranks import (
    LEGEND,
    TIED_FOR_FIRST,
    rank_text,
    tied_for_first,
    tied_for_first_text,
)
from harness.execution.records import OK
from harness.methods.hyperparameters import PUBLISHED, describe
from harness.outputs.disagreement import PLOT_FILE, disagreement_section, plot_disagreement
from harness.outputs.leaderboard import (
    IDENTITY_COLUMNS,
    board_splits,
    check_board_columns,
    finite,
    rank_correlation,
    settings_kind,
    significantly_above,
    split_rows,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from harness.evaluation.model_stats import ModelStats

PLOT_FILES = {
    "scores": "scores.png",
    "epsilons": "epsilons.png",
    "time": "time.png",
    "examples": "examples.png",
}
NUM_EXAMPLES_SHOWN = 4
DPI = 110
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3"]


# -- inputs ------------------------------------------------------------------------------------
def example_epsilons(
    runs_by_submission: dict[str, np.ndarray], pool: ModelStats
) -> dict[str, np.ndarray]:
    """Per-forget-example epsilon [E] of every submission against the pool (the metric's core)."""
    return {name: epsilons(u, pool.confidences) for name, u in runs_by_submission.items()}


# -- plots -------------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Figure:
    """A figure detached from pyplot (no global backend, no GUI); matplotlib is imported only
    when a report is drawn, so the CLI starts without it."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    files.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))


def _empty(figure: Figure, text: str) -> None:
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555")
    ax.set_axis_off()


def _column(board: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as floats (all nan when the CSV lacks it)."""
    if name not in board:
        return np.full(len(board), np.nan)
    return pd.to_numeric(board[name], errors="coerce").to_numpy(dtype=float)


def plot_scores(board: pd.DataFrame, path: Path) -> None:
    """(a) Every final score with its interval, best at the top, on a scale where scores a
    hundred times apart are both visible (linear up to a small threshold, logarithmic above);
    the ceiling row is drawn as a band: the best score reachable."""
    scored = board[board["final_score"].map(finite)]
    figure = _new_figure(9.0, max(3.0, 0.38 * len(scored) + 1.4))
    if scored.empty:
        _empty(figure, "no submission has a final score")
        return _save(figure, path)
    ax = figure.add_subplot()
    values = _column(scored, "final_score")
    low = _column(scored, "final_score_lo") if "final_score_lo" in scored else values
    high = _column(scored, "final_score_hi") if "final_score_hi" in scored else values
    low, high = np.where(np.isfinite(low), low, values), np.where(np.isfinite(high), high, values)
    y = np.arange(len(scored))[::-1]
    first = set(tied_for_first(scored))
    for i, (_, row) in enumerate(scored.iterrows()):
        ceiling = row["status"] == "reference"
        color = ("#C44E52" if ceiling else COLORS[2] if row["submission"] in first
                 else COLORS[0] if row["status"] == OK else "#999")
        ax.errorbar(values[i], y[i], xerr=[[values[i] - low[i]], [high[i] - values[i]]],
                    fmt="D" if ceiling else "o", color=color, capsize=3, markersize=5,
                    label=TIED_FOR_FIRST if row["submission"] in first else None)
        if ceiling:
            ax.axvspan(low[i], high[i], color="#C44E52", alpha=0.08)
    if first:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[:1], labels[:1], fontsize=8, loc="lower right")
    positive = values[values > 0]
    threshold = float(positive.min()) / 2 if positive.size else 1e-5
    ax.set_xscale("symlog", linthresh=threshold)
    ax.set_xlim(left=0, right=float(np.nanmax(high)) * 1.5 if np.nanmax(high) > 0 else 1)
    ax.set_yticks(y, _labels(scored), fontsize=8)
    ax.set_xlabel(f"final score with its {LEVEL:.0%} interval (symmetric-log scale: linear below "
                  f"{threshold:.1g})")
    ax.grid(axis="x", color="#eee")
    return _save(figure, path)


def _labels(rows: pd.DataFrame) -> list[str]:
    """``seif (#1, ranks 1-5)``; the ranks are left out when the board has none."""
    labels = []
    for _, r in rows.iterrows():
        ranks = rank_text(r.get("rank_lo"), r.get("rank_hi"))
        if not finite(r.get("rank")):
            labels.append(str(r["submission"]))
        elif ranks == "-":
            labels.append(f"{r['submission']} (#{int(r['rank'])})")
        else:
            labels.append(f"{r['submission']} (#{int(r['rank'])}, ranks {ranks})")
    return labels


def plot_epsilons(
    eps_by_submission: dict[str, np.ndarray], num_models: int, order: list[str], path: Path
) -> None:
    """(b) Share of forget examples per epsilon bucket: the buckets are what F averages."""
    names = [n for n in order if n in eps_by_submission]
    max_eps = math.ceil(math.log(num_models - 1))
    num_buckets = math.floor(max_eps / BUCKET_WIDTH)
    edges = [k * BUCKET_WIDTH for k in range(num_buckets + 1)]
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f">= {max_eps}")
    figure = _new_figure(9, 0.6 + 1.55 * max(1, len(names)))
    if not names:
        _empty(figure, "no run records to compute epsilons from")
        return _save(figure, path)
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        eps = eps_by_submission[name]
        bucket = np.minimum(np.floor(eps / BUCKET_WIDTH), num_buckets).astype(int)
        share = np.bincount(bucket, minlength=num_buckets + 1) / len(eps)
        colors = [COLORS[0]] * num_buckets + ["#C44E52"]
        ax.bar(np.arange(num_buckets + 1), share, color=colors)
        quality = points(eps, num_models).mean()
        ax.set_title(f"{name}: F = {quality:.3f}, median epsilon {np.median(eps):.2f}",
                     fontsize=9, loc="left")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[-1].set_xticks(np.arange(num_buckets + 1), labels, rotation=45, ha="right")
    axes[-1].set_xlabel(
        f"per-example epsilon bucket (bucket k earns 2^-k points; red: >= {max_eps} earns 0)",
        fontsize=8,
    )
    return _save(figure, path)


def plot_time(board: pd.DataFrame, budget: float, path: Path) -> None:
    """(c) Final score against seconds per run: what is ranked must sit left of the budget."""
    figure = _new_figure(9, 4.2)
    ax = figure.add_subplot()
    timed = board[[finite(s) for s in _column(board, "seconds_per_run")]]
    for i, (_, row) in enumerate(timed.iterrows()):
        scored = finite(row["final_score"])
        y = float(row["final_score"]) if scored else 0.0
        ax.scatter(float(row["seconds_per_run"]), y, s=50, zorder=3,
                   color=COLORS[i % len(COLORS)] if scored else "#999",
                   marker="o" if row["status"] == OK else "x")
        ax.annotate(f"{row['submission']} ({row['status']})" if row["status"] != OK
                    else str(row["submission"]), (float(row["seconds_per_run"]), y),
                    xytext=(6, 4), textcoords="offset points", fontsize=8)
    if finite(budget):
        ax.axvline(float(budget), color="#C44E52", linestyle="--", linewidth=1.2,
                   label=f"time budget {float(budget):.3g} s")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    seconds = [float(s) for s in timed["seconds_per_run"]] + ([float(budget)] if finite(
        budget) else [])
    if seconds and min(seconds) > 0 and max(seconds) / min(seconds) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("seconds per run (median, as the budget judges)")
    ax.set_ylabel("final score (0 when not scored)")
    ax.set_title("score against time (x: failed or unranked; right of the line: over budget)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.12)
    return _save(figure, path)


def chosen_examples(eps_by_submission: dict[str, np.ndarray], count: int) -> np.ndarray:
    """Forget examples where submissions disagree most (highest epsilon variance across them);
    with a single submission, its highest-epsilon examples. Ties keep the lower index."""
    stacked = np.stack(list(eps_by_submission.values()))
    spread = stacked.var(axis=0) if len(stacked) > 1 else stacked[0]
    return np.argsort(-spread, kind="stable")[:count]


def plot_examples(
    name: str,
    unlearned: np.ndarray,
    retrained: np.ndarray,
    eps: np.ndarray,
    examples: np.ndarray,
    path: Path,
) -> None:
    """(d) What the attacks see: unlearned vs retrained confidences on single forget examples."""
    cols = 2
    rows = math.ceil(len(examples) / cols)
    figure = _new_figure(9, 0.4 + 2.7 * rows)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, j in zip(axes, examples, strict=False):
        u, r = unlearned[:, j], retrained[:, j]
        lo, hi = float(min(u.min(), r.min())), float(max(u.max(), r.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 25)
        ax.hist(r, bins=bins, alpha=0.55, color=COLORS[0], label=f"retrained pool ({len(r)})")
        ax.hist(u, bins=bins, alpha=0.55, color=COLORS[1], label=f"{name} ({len(u)})")
        capped = " (the cap)" if eps[j] >= EPSILON_CAP else ""
        ax.set_title(f"forget example {int(j)}: epsilon {eps[j]:.2f}{capped}", fontsize=9)
        ax.set_xlabel("logit-scaled confidence", fontsize=8)
        ax.set_ylabel("models", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    for ax in axes[len(examples):]:
        ax.set_axis_off()
    figure.suptitle(f"unlearned ({name}) vs retrained confidences", fontsize=10)
    return _save(figure, path)


# -- the page ----------------------------------------------------------------------------------
# The ranking table, as (key, title, width in ch of the table's font): a fixed layout, one line
# per row; what does not fit a cell (a long name, a message) is cut with an ellipsis and kept
# whole in the cell's title and in the settings-and-notes table below it. The note column takes
# what is left of the page.
TABLE_COLUMNS = [
    ("rank", "rank", 6), ("ranks", "ranks", 7), ("submission", "submission", 19),
    ("final_score", "final score", 9), ("final_score_lo", "low", 9),
    ("final_score_hi", "high", 9), ("forget_quality", "F", 8), ("retain_acc", "retain acc", 8),
    ("test_acc", "test acc", 8), ("forget_acc", "forget acc", 8), ("seconds_per_run", "s / run", 7),
    ("runs_ok", "runs ok", 6), ("status", "status", 11), ("settings", "settings", 10),
    ("message", "note", None),
]
TEXT_COLUMNS = ("submission", "status", "settings", "message")
BASELINES = ("do_nothing", "finetune")  # what a method must beat to have done anything

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
table.fixed { table-layout: fixed; }
th, td { padding: 0.3rem 0.45rem; border-bottom: 1px solid #e5e5e5; text-align: right;
         vertical-align: top; overflow-wrap: break-word; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
#leaderboard td { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
td.message { color: #666; }
tr.unranked td { color: #888; }
tr.first td.ranks { font-weight: 600; }
.status-ok { color: #2a7d3b; font-weight: 600; }
.status-bad { color: #b3261e; font-weight: 600; }
details { margin: 0.6rem 0; }
summary { cursor: pointer; color: #333; font-size: 0.9rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
"""


def _settings_text(value: object) -> str:
    """A leaderboard's settings cell for people: ``published`` or ``lr=0.0123, epochs=7``."""
    if not isinstance(value, str) or value in ("", PUBLISHED):
        return PUBLISHED if value == PUBLISHED else "-"
    try:
        return describe(json.loads(value))
    except (ValueError, AttributeError):
        return value


def _cell(key: str, value: object) -> str:
    if key == "settings":
        return _settings_text(value)
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in (
        "<NA>", "nan", ""
    ):
        return "-"
    if key in ("rank", "runs_ok", "num_models", "root_seed") and finite(value):
        return str(int(float(value)))
    if key == "seconds_per_run" and finite(value):
        return f"{float(value):.3f}"
    if key.startswith("final_score") and finite(value):
        return f"{float(value):.5f}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4f}"
    return str(value)


def _ranks(row: pd.Series) -> str:
    return rank_text(row.get("rank_lo"), row.get("rank_hi"))


def _table(board: pd.DataFrame) -> str:
    """The ranking: one line per row (see ``TABLE_COLUMNS``)."""
    columns = "".join(f'<col style="width: {w}ch">' if w else "<col>"
                      for _, _, w in TABLE_COLUMNS)
    head = "".join(f'<th class="text">{t}</th>' if k in TEXT_COLUMNS else f"<th>{t}</th>"
                   for k, t, _ in TABLE_COLUMNS)
    rows = []
    for _, row in board.iterrows():
        cells = []
        for key, _, _ in TABLE_COLUMNS:
            if key == "ranks":
                cells.append(f'<td class="ranks">{html.escape(_ranks(row))}</td>')
            elif key == "settings":
                kind, full = settings_kind(row.get("settings")), _cell(key, row.get(key))
                cells.append(f'<td class="text" title="{html.escape(full)}">{kind}</td>')
            elif key in TEXT_COLUMNS:
                text = html.escape(_cell(key, row.get(key)))
                css = {"status": "text status status-" + ("ok" if row["status"] == OK else "bad"),
                       "message": "text message"}.get(key, "text")
                cells.append(f'<td class="{css}" title="{text}">{text}</td>')
            else:
                cells.append(f"<td>{html.escape(_cell(key, row.get(key)))}</td>")
        css = [] if finite(row.get("rank")) else ["unranked"]
        if finite(row.get("rank_lo")) and int(float(row["rank_lo"])) == 1:
            css.append("first")
        rows.append(f'<tr class="{" ".join(css)}">{"".join(cells)}</tr>' if css else
                    f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table id="leaderboard" class="fixed"><colgroup>{columns}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _notes_table(board: pd.DataFrame) -> str:
    """Every row's settings and note in full, on demand: what the ranking table cuts short."""
    rows = []
    for _, row in board.iterrows():
        settings = _cell("settings", row.get("settings"))
        note = _cell("message", row.get("message"))
        if settings == "-" and note == "-":
            continue
        rows.append(f'<tr><td class="text">{html.escape(str(row["submission"]))}</td>'
                    f'<td class="text">{html.escape(settings)}</td>'
                    f'<td class="text message">{html.escape(note)}</td></tr>')
    if not rows:
        return ""
    return (f"<details id=\"notes\"><summary>Settings and notes of {len(rows)} rows, in full"
            f"</summary><table class=\"fixed\"><colgroup><col style=\"width: 19ch\">"
            f"<col style=\"width: 45%\"><col></colgroup><thead><tr><th class=\"text\">"
            f"submission</th><th class=\"text\">settings</th><th class=\"text\">note</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></details>")


def _figure(key: str, caption: str) -> str:
    return (
        f'<figure id="plot-{key}"><img src="{PLOT_FILES[key]}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _splits_section(both: pd.DataFrame | None) -> str:
    """Public against private, as the competition ranked on private after tuning on public: a
    large gap, or a low rank correlation, is overfitting to the public split or noise."""
    if both is None or set(board_splits(both)) != {"public", "private"}:
        return ""
    public = split_rows(both, "public").set_index("submission")
    rows = []
    for _, row in split_rows(both, "private").iterrows():
        name = row["submission"]
        other = public.loc[name] if name in public.index else None
        cells = [html.escape(str(name)), html.escape(_cell("settings", row.get("settings")))]
        for source in (row, other):
            for key in ("final_score", "final_score_lo", "final_score_hi"):
                value = source.get(key) if source is not None else None
                cells.append(html.escape(_cell(key, value)))
            cells.append(html.escape(_ranks(source) if source is not None else "-"))
        rows.append("<tr><td class=\"text\">" + "</td><td>".join(cells[:1]) +
                    "</td><td class=\"text\">" + "</td><td>".join(cells[1:]) + "</td></tr>")
    head = ("<tr><th class=\"text\">submission</th><th class=\"text\">settings</th>"
            "<th>private</th><th>low</th><th>high</th><th>ranks</th><th>public</th><th>low</th>"
            "<th>high</th><th>ranks</th></tr>")
    correlation = rank_correlation(both)
    text = f"{correlation:.3f}" if math.isfinite(correlation) else "- (fewer than 3 ranked)"
    return (f"<h2>Public and private splits</h2><p class=\"meta\">The final ranking is the "
            f"private split's. Tuned settings were chosen on the public split: a tuned row whose "
            f"private score falls far below its public one overfitted it. Spearman rank "
            f"correlation of the scores ranked on both: <b>{text}</b>. "
            f"{html.escape(tuning_gap(both))}</p><table id=\"splits\"><thead>{head}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def tuning_gap(both: pd.DataFrame) -> str:
    """How the tuned rows fared on the split they were not tuned on: how many of them score on
    the private split below the low end of their public interval."""
    public = split_rows(both, "public").set_index("submission")
    private = split_rows(both, "private").set_index("submission")
    tuned = [n for n in private.index if n in public.index
             and settings_kind(private.loc[n, "settings"]) == "tuned"
             and finite(private.loc[n, "final_score"]) and finite(public.loc[n, "final_score"])]
    if not tuned:
        return "No row uses tuned settings."
    below = [n for n in tuned if private.loc[n, "final_score"] < public.loc[n, "final_score_lo"]]
    return (f"{len(tuned)} rows use tuned settings; {len(below)} of them score on the private "
            f"split below their public interval" + (f" ({', '.join(below)})." if below else "."))


def baselines_beaten(board: pd.DataFrame) -> str:
    """How many ranked rows beat doing nothing and the starting kit's fine-tuning beyond noise."""
    parts = []
    for baseline in BASELINES:
        if baseline in set(board["submission"]):
            above = significantly_above(board, baseline)
            parts.append(f"{len(above)} above {baseline}")
    if not parts:
        return ""
    return ("Significantly (at the interval level, unpaired, so conservative): "
            + "; ".join(parts) + ".")


def _phases_section(phases: pd.DataFrame | None) -> str:
    """Where the scoring's wall time went: a phase per row, a split per column."""
    from harness.execution.phases import SHARE

    if phases is None or phases.empty:
        return ""
    splits = list(dict.fromkeys(phases["split"]))
    seconds = phases.pivot_table(index="phase", columns="split", values="seconds", sort=False)
    rows = []
    for phase, values in seconds.iterrows():
        share = phase == SHARE
        cells = "".join(
            f"<td>{values[s]:.0%}</td>" if share else f"<td>{values[s]:.1f}</td>" for s in splits
        )
        rows.append(f"<tr><td>{html.escape(str(phase))}</td>{cells}</tr>")
    head = "".join(f"<th>{html.escape(s)}</th>" for s in splits)
    return ("<h2>Where the time went</h2><p class=\"meta\">Wall seconds of each phase of the "
            "scoring that wrote this leaderboard; the runs' parts are the submissions' own time "
            "and the evaluation of their weights, each divided by the workers.</p>"
            f"<table><thead><tr><th>phase</th>{head}</tr></thead>{''.join(rows)}</table>")


def _ranking_legend(board: pd.DataFrame) -> str:
    """Who is tied for first, what the rank ranges mean, what beats the baselines."""
    tied = tied_for_first_text(board) or "no rank ranges on this board (scored before them)"
    parts = [tied, LEGEND]
    return " ".join(f"{p[:1].upper()}{p[1:]}." for p in parts) + (
        f" {baselines_beaten(board)}" if baselines_beaten(board) else "")


def _page(
    board: pd.DataFrame, budget: float, lead: str, figures: list[str], notes: list[str],
    both_splits: pd.DataFrame | None = None,
    phases: pd.DataFrame | None = None,
) -> str:
    first = board.iloc[0]
    task, n, seed = (first.get(c) for c in IDENTITY_COLUMNS)
    n_text, seed_text = _cell("num_models", n), _cell("root_seed", seed)
    meta = [f"task <b>{html.escape(str(task))}</b>", f"N = <b>{html.escape(n_text)}</b>",
            f"root seed {html.escape(seed_text)}",
            f"time budget {_cell('seconds_per_run', budget)} s per run"]
    for key, label in (("ref_retain_acc", "pool retain acc"), ("ref_test_acc", "pool test acc")):
        if finite(first.get(key)):
            meta.append(f"{label} {float(first[key]):.4f}")
    versions = [f"{c.split('_')[0]} {first[c]}" for c in
                ("harness_version", "torch_version", "python_version")
                if isinstance(first.get(c), str)]
    note_html = "".join(f'<p class="meta">{html.escape(n)}</p>' for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unlearning leaderboard: {html.escape(str(task))}, N = {html.escape(n_text)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>Unlearning leaderboard</h1>
<p class="meta">{" &middot; ".join(meta)}</p>
<p class="meta">{html.escape(", ".join(versions))}. Scores compare only at equal N and task.</p>
<h2>Ranking ({html.escape(str(first.get("split", "public")))} split)</h2>
{lead}
<p class="meta">{html.escape(_ranking_legend(board))}</p>
{_table(board)}
{_notes_table(board)}
{note_html}
{_splits_section(both_splits)}
<h2>More plots</h2>
{"".join(figures)}
{_phases_section(phases)}
</body>
</html>
"""


def write_report(
    board: pd.DataFrame,
    pool: ModelStats,
    runs_by_submission: dict[str, np.ndarray],
    out_dir: Path,
    budget: float,
    both_splits: pd.DataFrame | None = None,
    phases: pd.DataFrame | None = None,
) -> Path:
    """Write the plots and ``index.html`` into ``out_dir``; returns the page's path.

    ``board`` is the leaderboard of one split (as ``build_leaderboard`` returns it or as read
    from its CSV), ``pool`` that split's reference pool, ``runs_by_submission`` the forget-set
    confidences [N, E] of the submissions whose runs are known, ``budget`` the time budget in
    seconds per run, ``both_splits`` the whole leaderboard when it holds a public and a private
    split (the page then compares them), ``phases`` the table of where the scoring's time went
    (``harness.execution.phases``, written beside the leaderboard). Each file is written
    atomically; the page is written last.
    """
    check_board_columns(board, "leaderboard")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = list(board["submission"])
    runs = {name: np.asarray(runs_by_submission[name], dtype=np.float64)
            for name in order if name in runs_by_submission}
    eps = example_epsilons(runs, pool)
    num_models = next(iter(runs.values())).shape[0] if runs else int(board["num_models"].iloc[0])

    figures = []
    plot_scores(board, out_dir / PLOT_FILES["scores"])
    lead = _figure("scores", "Final score of every submission with its bootstrap interval and "
                   "the range of ranks it could hold (green: tied for first, its range contains "
                   "1); the shaded band is the retrained ceiling, an independent retrained pool "
                   "scored as a submission.")
    notes = []
    if eps:
        plot_epsilons(eps, num_models, order, out_dir / PLOT_FILES["epsilons"])
        figures.append(_figure("epsilons", "Per-example epsilon of each submission, bucketed as "
                               "the metric scores them; F is the mean points over the forget set. "
                               "Mass in the low buckets means the unlearned models are hard to "
                               "tell from retrained ones."))
    plot_time(board, budget, out_dir / PLOT_FILES["time"])
    figures.append(_figure("time", "Final score against mean seconds per run; the dashed line is "
                           "the time budget (a share of retraining from scratch on this machine)."))
    if eps:
        best = next(n for n in order if n in eps)
        examples = chosen_examples(eps, NUM_EXAMPLES_SHOWN)
        plot_examples(best, runs[best], pool.confidences, eps[best], examples,
                      out_dir / PLOT_FILES["examples"])
        how = ("where the submissions' epsilons differ most" if len(eps) > 1
               else "with the highest epsilon")
        figures.append(_figure("examples", f"Confidence distributions of {best} (the best-ranked "
                               f"submission with run records) and of the retrained pool on the "
                               f"{len(examples)} forget examples {how}; the attacks try to "
                               f"separate exactly these two histograms."))
    # its own section, after the plots: the audits' rankings against the official one
    figures.append(disagreement_section(board, plot_disagreement(board, out_dir / PLOT_FILE)))
    missing = [n for n in order if n not in runs and finite(
        board.loc[board["submission"] == n, "final_score"].iloc[0])]
    if missing:
        notes.append(f"No run records for {', '.join(missing)}: left out of the epsilon plots.")
    page = out_dir / "index.html"
    text = _page(board, budget, lead, figures, notes, both_splits, phases)
    files.atomic_write(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return page
