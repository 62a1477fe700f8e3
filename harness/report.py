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

import argparse
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness import cache
from harness.metric import BUCKET_WIDTH, EPSILON_CAP, epsilons, points
from harness.records import OK

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from harness.records import ModelStats
    from harness.tasks.base import Task

# The columns a leaderboard CSV must have for the report and the regression check.
IDENTITY_COLUMNS = ("task", "num_models", "root_seed")
BOARD_COLUMNS = ("submission", "status", "final_score", *IDENTITY_COLUMNS)

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
def check_board_columns(board: pd.DataFrame, what: str) -> None:
    """Raise a one-line ValueError when ``board`` lacks the columns every consumer relies on."""
    missing = [c for c in BOARD_COLUMNS if c not in board.columns]
    if missing:
        raise ValueError(
            f"{what} is not a leaderboard: missing column(s) {', '.join(missing)} "
            f"(expected the CSV written by `harness score`)"
        )
    if board.empty:
        raise ValueError(f"{what} has no rows")
    if board["submission"].duplicated().any():
        names = sorted(set(board.loc[board["submission"].duplicated(), "submission"]))
        raise ValueError(f"{what} lists submission(s) more than once: {', '.join(names)}")


def read_leaderboard(path: Path) -> pd.DataFrame:
    """A leaderboard CSV, validated, or a clear FileNotFoundError / ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"leaderboard {path} not found (run `harness score` to write it)")
    try:
        board = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable CSV: {first}") from None
    check_board_columns(board, str(path))
    return board


def board_identity(board: pd.DataFrame, what: str = "leaderboard") -> tuple[str, int, int]:
    """(task, N, root seed) of a leaderboard; every row must agree, or scores are not comparable."""
    identity = []
    for column in IDENTITY_COLUMNS:
        values = board[column].dropna().unique()
        if len(values) != 1:
            found = ", ".join(map(str, values)) or "none"
            raise ValueError(f"{what} must have one value of {column!r}; found {found}")
        identity.append(values[0])
    task, num_models, root_seed = identity
    try:
        return str(task), int(num_models), int(root_seed)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: num_models and root_seed must be integers; got {num_models!r}, {root_seed!r}"
        ) from None


def task_for_board(
    board: pd.DataFrame,
    what: str,
    task_name: str | None = None,
    num_models: int | None = None,
    root_seed: int | None = None,
    device: str | None = None,
) -> Task:
    """The task a leaderboard was scored on; explicit options must agree with the recorded ones."""
    from harness.tasks import get_task

    recorded = board_identity(board, what)
    asked = (task_name, num_models, root_seed)
    for label, have, want in zip(("task", "N", "root seed"), recorded, asked, strict=True):
        if want is not None and want != have:
            raise ValueError(f"{what} was scored with {label} {have}, not {want}")
    name, n, seed = recorded
    overrides = {"num_models": n, "root_seed": seed}
    if device:
        overrides["device"] = device
    return get_task(name, **overrides)


def load_records(
    board: pd.DataFrame, task: Task, reference_root: Path, output_dir: Path
) -> tuple[ModelStats, dict[str, np.ndarray]]:
    """The cached pool and the forget-set confidences [N, E] of every scored row's runs.

    Nothing is trained: a pool that is not fully cached is an error. Runs are matched by the
    provenance the leaderboard recorded; a scored row whose N runs are not all recorded is left
    out (and named on stderr by the command).
    """
    from harness.pool import ReferenceStore
    from harness.records import Outcome
    from harness.results import ResultsStore
    store = ReferenceStore(task, task.load_data(), Path(reference_root))
    status = store.status()
    if not status["original_model"] or status["models_done"] < status["models_total"]:
        raise FileNotFoundError(
            f"the reference pool of task {task.name} at N={task.num_models} is not cached under "
            f"{store.directory} ({status['models_done']} of {status['models_total']} models): "
            f"run `harness score` first"
        )
    pool = store.pool()
    results = ResultsStore(Path(output_dir) / store.directory.name)
    runs: dict[str, np.ndarray] = {}
    for _, row in board.iterrows():
        if not finite(row.get("final_score")):
            continue
        name, provenance = str(row["submission"]), row.get("provenance")
        recorded = results.load_runs(name, provenance if isinstance(provenance, str) else "")
        stats = Outcome(name, None, runs=recorded).stats(task.num_models)
        if stats is not None:
            runs[name] = stats.confidences
    return pool, runs


def example_epsilons(
    runs_by_submission: dict[str, np.ndarray], pool: ModelStats
) -> dict[str, np.ndarray]:
    """Per-forget-example epsilon [E] of every submission against the pool (the metric's core)."""
    return {name: epsilons(u, pool.confidences) for name, u in runs_by_submission.items()}


# -- plots -------------------------------------------------------------------------------------
def finite(value: object) -> bool:
    """True for a finite number; False for nan, None, pd.NA and text (CSV cells can be any)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _new_figure(width: float, height: float) -> Figure:
    """A figure detached from pyplot (no global backend, no GUI); matplotlib is imported only
    when a report is drawn, so the CLI starts without it."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    cache.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))


def _empty(figure: Figure, text: str) -> None:
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555")
    ax.set_axis_off()


def _column(board: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as floats (all nan when the CSV lacks it)."""
    if name not in board:
        return np.full(len(board), np.nan)
    return pd.to_numeric(board[name], errors="coerce").to_numpy(dtype=float)


def _ratio(row: pd.Series, ours: str, reference: str) -> float:
    value, ref = row.get(ours), row.get(reference)
    return float(value) / float(ref) if finite(value) and finite(ref) and ref else math.nan


def plot_scores(board: pd.DataFrame, path: Path) -> None:
    """(a) Final score and its three factors, so a low score can be traced to its cause."""
    scored = board[board["final_score"].map(finite)]
    figure = _new_figure(max(9.0, 0.65 * len(scored)), 4.8)
    if scored.empty:
        _empty(figure, "no submission has a final score")
        return _save(figure, path)
    ax = figure.add_subplot()
    parts = [
        ("final score", _column(scored, "final_score")),
        ("forgetting quality F", _column(scored, "forget_quality")),
        ("retain ratio RA_U/RA_R",
         np.array([_ratio(r, "retain_acc", "ref_retain_acc") for _, r in scored.iterrows()])),
        ("test ratio TA_U/TA_R",
         np.array([_ratio(r, "test_acc", "ref_test_acc") for _, r in scored.iterrows()])),
    ]
    x = np.arange(len(scored))
    width = 0.8 / len(parts)
    for i, (label, values) in enumerate(parts):
        values = np.asarray(values, dtype=float)
        bars = ax.bar(x + (i - 1.5) * width, np.nan_to_num(values), width, label=label,
                      color=COLORS[i])
        if i > 0:  # label the final score only: four numbers per bar group are unreadable
            continue
        for bar, value in zip(bars, values, strict=True):
            if math.isfinite(value):
                ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 2), rotation=90,
                            textcoords="offset points")
    ax.axhline(1.0, color="#999", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, _labels(scored), fontsize=9, rotation=40, ha="right")
    ax.set_ylabel("value")
    ax.set_ylim(0, max(1.15, float(np.nanmax([np.nanmax(v) for _, v in parts])) * 1.12))
    ax.set_title("final score = F x (RA_U / RA_R) x (TA_U / TA_R)")
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(figure, path)


def _labels(rows: pd.DataFrame) -> list[str]:
    return [
        f"#{int(r['rank'])} {r['submission']}" if finite(r.get("rank")) else str(r["submission"])
        for _, r in rows.iterrows()
    ]


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
    ax.set_xlabel("seconds per run (mean)")
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
TABLE_COLUMNS = [
    ("rank", "rank"), ("submission", "submission"), ("final_score", "final score"),
    ("forget_quality", "F"), ("retain_acc", "retain acc"), ("test_acc", "test acc"),
    ("forget_acc", "forget acc"), ("seconds_per_run", "s / run"), ("runs_ok", "runs ok"),
    ("status", "status"), ("message", "message"),
]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1000px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { padding: 0.3rem 0.5rem; border-bottom: 1px solid #e5e5e5; text-align: right;
         vertical-align: top; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
td.status { white-space: nowrap; }
td.message { color: #666; max-width: 22rem; overflow-wrap: anywhere; }
tr.unranked td { color: #888; }
.status-ok { color: #2a7d3b; font-weight: 600; }
.status-bad { color: #b3261e; font-weight: 600; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
"""


def _cell(key: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in (
        "<NA>", "nan", ""
    ):
        return "-"
    if key in ("rank", "runs_ok", "num_models", "root_seed") and finite(value):
        return str(int(float(value)))
    if key == "seconds_per_run" and finite(value):
        return f"{float(value):.3f}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4f}"
    return str(value)


def _table(board: pd.DataFrame) -> str:
    text_columns = ("submission", "status", "message")
    head = "".join(
        f'<th class="text">{t}</th>' if k in text_columns else f"<th>{t}</th>"
        for k, t in TABLE_COLUMNS
    )
    rows = []
    for _, row in board.iterrows():
        cells = []
        for key, _ in TABLE_COLUMNS:
            text = html.escape(_cell(key, row.get(key)))
            if key == "status":
                css = "status-ok" if row["status"] == OK else "status-bad"
                cells.append(f'<td class="text status {css}">{text}</td>')
            elif key == "message":
                cells.append(f'<td class="text message">{text}</td>')
            elif key == "submission":
                cells.append(f'<td class="text">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        ranked = "" if finite(row.get("rank")) else ' class="unranked"'
        rows.append(f"<tr{ranked}>{''.join(cells)}</tr>")
    return (
        f'<table id="leaderboard"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _figure(key: str, caption: str) -> str:
    return (
        f'<figure id="plot-{key}"><img src="{PLOT_FILES[key]}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _page(board: pd.DataFrame, budget: float, figures: list[str], notes: list[str]) -> str:
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
<h2>Ranking</h2>
{_table(board)}
{note_html}
<h2>Plots</h2>
{"".join(figures)}
</body>
</html>
"""


def write_report(
    board: pd.DataFrame,
    pool: ModelStats,
    runs_by_submission: dict[str, np.ndarray],
    out_dir: Path,
    budget: float,
) -> Path:
    """Write the plots and ``index.html`` into ``out_dir``; returns the page's path.

    ``board`` is the leaderboard (as ``build_leaderboard`` returns it or as read from its CSV),
    ``pool`` the reference pool, ``runs_by_submission`` the forget-set confidences [N, E] of the
    submissions whose runs are known, ``budget`` the time budget in seconds per run. Each file is
    written atomically; the page is written last.
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
    figures.append(_figure("scores", "Final score per submission with its three factors: "
                           "forgetting quality F and the retain and test accuracy ratios to the "
                           "retrained pool (dashed line: ratio 1)."))
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
    missing = [n for n in order if n not in runs and finite(
        board.loc[board["submission"] == n, "final_score"].iloc[0])]
    if missing:
        notes.append(f"No run records for {', '.join(missing)}: left out of the epsilon plots.")
    page = out_dir / "index.html"
    text = _page(board, budget, figures, notes)
    cache.atomic_write(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return page


# -- command -----------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    """``harness report``: the report of an already scored leaderboard (nothing is trained)."""
    import sys

    path = Path(args.leaderboard)
    board = read_leaderboard(path)
    task = task_for_board(board, str(path), args.task, args.num_models, args.root_seed,
                          getattr(args, "device", None))
    pool, runs = load_records(board, task, Path(args.reference_root), Path(args.output))
    scored = [n for n, s in zip(board["submission"], board["final_score"], strict=True)
              if finite(s)]
    lost = [n for n in scored if n not in runs]
    if lost:
        print(f"harness: warning: no complete run records under {args.output} for "
              f"{', '.join(lost)}; left out of the epsilon plots", file=sys.stderr)
    budget = float(board["budget_seconds"].iloc[0]) if "budget_seconds" in board else math.nan
    page = write_report(board, pool, runs, Path(args.report_dir), budget)
    print(f"wrote {page}", file=sys.stderr)
    return 0


def recorded_identity_options(parser: argparse.ArgumentParser, whose: str) -> None:
    """Re-declare --task, -n and --root-seed for commands that read them from a CSV: their
    default is the recorded value (None here), and a given value must match it. Needs a parser
    made with ``conflict_handler="resolve"`` after the shared task options were added."""
    parser.add_argument("--task", default=None, help=f"task name (default: {whose})")
    parser.add_argument("--num-models", "-n", type=int, default=None,
                        help=f"N (default: {whose}; a different N is an error, scores compare "
                        f"only at equal N)")
    parser.add_argument("--root-seed", type=int, default=None,
                        help=f"the task's root seed (default: {whose})")


def add_report_command(
    subparsers: argparse._SubParsersAction,
    task_options: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    """Register ``harness report``; ``task_options`` adds the shared --task/-n/... options."""
    parser = subparsers.add_parser(
        "report", conflict_handler="resolve",
        help="write a static HTML report (plots and table) of a scored leaderboard",
        description="Write report/index.html and its plots from leaderboard.csv, the cached "
        "reference pool and the run records. Trains nothing: run `harness score` first. The task, "
        "N and root seed default to the leaderboard's.",
    )
    task_options(parser)
    recorded_identity_options(parser, "the leaderboard's")
    parser.add_argument("--output", default="results",
                        help="folder of the run records, as given to `harness score`")
    parser.add_argument("--leaderboard", default="leaderboard.csv", help="the scored CSV")
    parser.add_argument("--report-dir", default="report", help="folder to write (default: report)")
    parser.set_defaults(func=cmd_report)
    return parser
