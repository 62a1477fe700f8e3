"""From a notebook: evaluate an ``unlearning`` function in one call, and explore the result.

The competition was a notebook competition: methods were written and changed in cells.
``evaluate`` scores a function defined in a cell (closures and the globals it uses included), a
submission file or a shipped method, beside shipped methods, through the pipeline of
``harness score``: its worker processes, the ingestion process and the sandbox. A function cannot
cross into those processes as an object, and they must not trust the notebook, so it crosses as a
submission file: it is serialised by value with cloudpickle into a generated file that holds
``unlearning = cloudpickle.loads(b"...")``, which the pipeline treats like any other file.

What is kept where: ``cache_dir`` (default ``$XDG_CACHE_HOME/unlearning-harness``, else
``~/.cache/unlearning-harness``) holds ``reference_models/`` (the original model and the pools)
and ``results/`` (the run records and intervals, and under ``results/functions/`` the generated
files), the layout ``harness score`` uses in its working directory: ``cache_dir="."`` in the
repository shares the CLI's caches. Nothing is written to the working directory unless
``save_to`` names a folder there.

Caching: a run record is reused when the submission file is byte-for-byte the same
(``harness.execution.provenance``). Pickling the same function gives the same bytes, and the file
names that its code carries are cut to their base names (a notebook cell's file name changes with
each kernel), so the same code reuses its runs, after a kernel restart too. Except: cloudpickle
gives a class defined in the notebook an identifier drawn anew in each kernel, so a function that
uses such a class is run again after a restart (within one kernel its runs are reused).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import html
import io
import math
import os
import re
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.core import files
from harness.core.defaults import LEVEL
from harness.core.progress import Reporter, progress_bars
from harness.evaluation.model_stats import ModelStats
from harness.evaluation.ranks import LEGEND, rank_text
from harness.execution.phases import Phases, phase_table
from harness.execution.provenance import REPOSITORY
from harness.execution.records import OK, Outcome, RunResult
from harness.outputs.leaderboard import CEILING_ROW, REFERENCE, board_splits, finite, split_rows

if TYPE_CHECKING:
    from harness.tasks.base import Task

SHIPPED = REPOSITORY / "submissions"  # the shipped methods that ``against`` names
FUNCTIONS = "functions"  # the generated files' folder, under the results folder
SHOWN_COLUMNS = [
    ("rank", "rank"), ("ranks", "ranks"), ("submission", "submission"),
    ("final_score", "final score"), ("final_score_lo", "low"), ("final_score_hi", "high"),
    ("forget_quality", "F"), ("retain_acc", "retain acc"), ("test_acc", "test acc"),
    ("seconds_per_run", "s / run"), ("runs_ok", "runs ok"), ("status", "status"),
]
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a submission name: a file stem the scorer reads


def default_cache_dir() -> Path:
    """Where ``evaluate`` keeps its caches when not told: the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unlearning-harness"


# -- a function as a submission file -----------------------------------------------------------
def _by_value(function: Callable) -> types.ModuleType | None:
    """The module to pickle by value beside the notebook's ``__main__`` (which cloudpickle always
    pickles by value): the function's own, unless the runs can import it themselves (the harness,
    the standard library, installed packages). A test module or a file beside the notebook
    cannot be imported inside the sandbox."""
    target = function.func if isinstance(function, functools.partial) else function
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    if module is None or module.__name__ == "__main__":
        return None
    top = module.__name__.split(".")[0]
    where = Path(getattr(module, "__file__", None) or "")
    installed = {"site-packages", "dist-packages"} & set(where.parts)
    if top == "harness" or top in sys.stdlib_module_names or installed or not where.name:
        return None
    return module


def _pickler_class() -> type:
    import cloudpickle

    class StablePickler(cloudpickle.CloudPickler):
        """Cuts the file name each code object carries to its base name: a notebook cell's
        (``/tmp/ipykernel_<pid>/<hash>.py``) changes with each kernel, and the bytes must not."""

        def reducer_override(self, obj: object) -> object:
            if isinstance(obj, types.CodeType):
                stable = os.path.basename(obj.co_filename)
                if stable != obj.co_filename:
                    return copy.copy, (obj.replace(co_filename=stable),)
            return super().reducer_override(obj)

    return StablePickler


def pickled(function: Callable) -> bytes:
    """``function`` serialised by value, with its closure and the globals it uses."""
    import cloudpickle

    module = _by_value(function)
    register = module is not None and module.__name__ not in (
        cloudpickle.list_registry_pickle_by_value()
    )
    if register:
        cloudpickle.register_pickle_by_value(module)
    try:
        buffer = io.BytesIO()
        _pickler_class()(buffer).dump(function)
        return buffer.getvalue()
    finally:
        if register:
            cloudpickle.unregister_pickle_by_value(module)


def function_file(function: Callable, name: str, folder: Path) -> Path:
    """The submission file that holds ``function`` as ``unlearning``, written once under
    ``folder/<content hash>/<name>.py`` (the hash keeps each version's records apart; the stem
    names the submission, and with it the runs' seeds)."""
    origin = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"
    text = (
        f'"""{name}: the function {origin}, evaluated with harness.evaluate and serialised by '
        f'value with cloudpickle."""\n\nimport cloudpickle\n\n'
        f"unlearning = cloudpickle.loads({pickled(function)!r})\n"
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(folder) / digest / f"{name}.py"
    if not path.exists():
        files.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _checked_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{what}: {name!r} cannot name a submission (letters, digits and _, starting with a "
            f"letter); pass name='my_method'"
        )
    return name


def _shipped(name: str, submissions_dir: Path) -> Path:
    path = Path(submissions_dir) / f"{name}.py"
    if not path.is_file():
        found = sorted(p.stem for p in Path(submissions_dir).glob("*.py")
                       if not p.name.startswith("_"))
        raise ValueError(
            f"no shipped method {name!r} in {submissions_dir}; found: "
            f"{', '.join(found) or 'none'}"
        )
    return path.resolve()


def _entry(
    unlearning: Callable | str | os.PathLike, name: str | None, submissions_dir: Path,
    functions: Path,
) -> tuple[str, Path]:
    """(the submission's name, its file) for a function, a path or a shipped method's name."""
    if callable(unlearning):
        default = getattr(unlearning, "__name__", None)
        if name is None and default is None:
            raise ValueError("this callable has no __name__: pass name='my_method'")
        name = _checked_name(name or default, "the submission's name")
        return name, function_file(unlearning, name, functions)
    text = os.fspath(unlearning)
    if _NAME.fullmatch(text) and not Path(text).exists():
        path = _shipped(text, submissions_dir)
    else:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"submission file not found: {path}")
    return _checked_name(name or path.stem, "the submission's name"), path.resolve()


def _submissions_folder(
    folder: Path, paths: dict[str, Path], tuned: dict[str, dict], task_name: str
) -> None:
    """The folder ``score`` reads: a link per submission (the scorer resolves links, so runs are
    recorded under the real file, as ``harness score`` records them) and the tuned settings of
    these submissions only."""
    from harness.methods.tuned_settings import tuned_path

    for name, path in paths.items():
        (folder / f"{name}.py").symlink_to(path)
    if tuned:
        files.write_json(tuned_path(folder, task_name), tuned)


# -- progress that renders in Jupyter and in a terminal ----------------------------------------
def _in_jupyter() -> bool:
    """Whether this runs in a Jupyter kernel (IPython is never imported to find out)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class ProgressReporter(Reporter):
    """Progress bars (rich's, as the CLI shows them): in a terminal a live display on stderr; in
    Jupyter the same bars as an HTML output updated in place (no widget extension needed)."""

    REFRESH_SECONDS = 0.3

    def __init__(self) -> None:
        from rich.console import Console

        self.jupyter = _in_jupyter()
        console = (Console(file=io.StringIO(), force_jupyter=False) if self.jupyter
                   else Console(stderr=True))
        self.progress = progress_bars(console, auto_refresh=not self.jupyter)
        self.bars: dict[str, int] = {}
        self.notes: list[str] = []
        self.handle = None  # the Jupyter output the bars are drawn into
        self.shown_at = 0.0
        self.started = False

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started and not self.jupyter:
            self.progress.stop()
        self._show(force=True)

    def stage(self, name: str, total: int, done: int = 0) -> None:
        if not self.started and not self.jupyter:
            self.progress.start()
        self.started = True
        if name in self.bars:
            self.progress.reset(self.bars[name], total=total, completed=done)
        else:
            self.bars[name] = self.progress.add_task(name, total=total, completed=done)
        self._show(force=True)

    def advance(self, name: str, amount: int = 1) -> None:
        self.progress.advance(self.bars[name], amount)
        self._show()

    def message(self, text: str) -> None:
        if self.jupyter:
            self.notes.append(text)
            self._show(force=True)
        else:
            self.progress.console.print(f"[dim]{text}[/dim]")

    def _show(self, force: bool = False) -> None:
        """Redraw the Jupyter output, at most every ``REFRESH_SECONDS`` unless ``force``."""
        if not self.jupyter or (not force and time.monotonic() - self.shown_at
                                < self.REFRESH_SECONDS):
            return
        from IPython.display import HTML, display
        from rich.console import Console

        self.shown_at = time.monotonic()
        drawn = Console(file=io.StringIO(), record=True, width=110, force_jupyter=False)
        drawn.print(self.progress.get_renderable())
        for note in self.notes:
            drawn.print(f"[dim]{note}[/dim]")
        page = HTML(drawn.export_html(
            inline_styles=True,
            code_format='<pre style="font-size:0.8em;line-height:1.25">{code}</pre>',
        ))
        if self.handle is None:
            self.handle = display(page, display_id=True)
        else:
            self.handle.update(page)


# -- the result --------------------------------------------------------------------------------
@dataclass
class Plot:
    """One of the report's figures as PNG bytes: shown inline in Jupyter, or ``save``d."""

    title: str
    png: bytes

    def _repr_png_(self) -> bytes:
        return self.png

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        files.atomic_write(path, lambda tmp: tmp.write_bytes(self.png))
        return path


def _drawn(title: str, draw: Callable[[Path], None]) -> Plot:
    """A report plot function's figure, drawn into a temporary file and read back."""
    with tempfile.TemporaryDirectory(prefix="harness-plot-") as folder:
        path = Path(folder) / "plot.png"
        draw(path)
        return Plot(title, path.read_bytes())


def _budget_source(retrain_seconds: float) -> str:
    """Where a board's budget came from, for its header."""
    if math.isnan(retrain_seconds):  # given, with the hard timeout: no yardstick was timed
        return "(given; no retraining timed)"
    return f"(a share of one retraining, {retrain_seconds:.3f} s here)"


def _text(key: str, row: pd.Series) -> str:
    """A leaderboard cell as the CLI's table prints it ('-' where there is no number)."""
    if key == "ranks":
        return rank_text(row.get("rank_lo"), row.get("rank_hi"))
    value = row[key]
    if key in ("submission", "status"):
        return str(value)
    if not finite(value):
        return "-"
    if key in ("rank", "runs_ok"):
        return str(int(float(value)))
    digits = {"seconds_per_run": 3, "retain_acc": 4, "test_acc": 4}.get(key, 5)
    return f"{float(value):.{digits}f}"


@dataclass(eq=False)
class Evaluation:
    """What ``evaluate`` found: the leaderboard rows of each split (intervals and the ceiling
    included), every run's record, the pools the scores were measured against, and where the
    time went. Shown in a cell, it is a summary; its methods give the numbers behind it and the
    report's plots."""

    name: str  # the evaluated submission
    task: Task
    leaderboard: pd.DataFrame  # every split's rows, the final (private) split first
    phases: dict[str, Phases]  # split -> the wall seconds of each phase
    pools: dict[str, ModelStats]  # split -> the reference pool's numbers
    records: dict[str, dict[str, dict[int, RunResult]]]  # split -> submission -> run -> record
    reference_root: Path
    output_dir: Path
    _epsilons: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def splits(self) -> list[str]:
        return board_splits(self.leaderboard)

    def _split(self, split: str | None) -> str:
        split = split or self.splits[0]
        if split not in self.splits:
            raise ValueError(f"split {split!r} was not scored; scored: {', '.join(self.splits)}")
        return split

    def rows(self, split: str | None = None) -> pd.DataFrame:
        """The leaderboard rows of one split (default: the final one, private when scored)."""
        return split_rows(self.leaderboard, self._split(split)).reset_index(drop=True)

    def row(self, submission: str | None = None, split: str | None = None) -> pd.Series:
        """One submission's row (default: the evaluated one)."""
        rows = self.rows(split).set_index("submission")
        name = submission or self.name
        if name not in rows.index:
            raise KeyError(f"no row {name!r}; rows: {', '.join(rows.index)}")
        return rows.loc[name]

    def budget(self, split: str | None = None) -> float:
        """Seconds a run may take: the share of one retraining on this machine."""
        return float(self.rows(split)["budget_seconds"].iloc[0])

    def runs(self, split: str | None = None) -> pd.DataFrame:
        """Every run's record (one row per submission and run), failures with their message and
        output (the traceback's tail); the confidences are left to ``confidences``."""
        found = self.records[self._split(split)]
        rows = [
            {k: v for k, v in vars(record).items() if k != "confidences"}
            for runs in found.values() for _, record in sorted(runs.items())
        ]
        return pd.DataFrame(rows, columns=[n for n in RunResult.field_names()
                                           if n != "confidences"])

    def _stats(self, submission: str | None, split: str | None) -> ModelStats:
        split, name = self._split(split), submission or self.name
        runs = self.records[split].get(name, {})
        stats = Outcome(name, None, runs=runs).stats(self.task.num_models)
        if stats is None:
            ok = sum(r.status == OK for r in runs.values())
            raise KeyError(
                f"{name} has {ok} of {self.task.num_models} runs ok on the {split} split: only "
                f"a submission whose runs all finished has confidences and epsilons"
            )
        return stats

    def confidences(self, submission: str | None = None, split: str | None = None) -> np.ndarray:
        """[N, E]: the logit-scaled confidence of each run's model on each forget example (the
        statistic the attacks compare with the pool's, ``pools[split].confidences``)."""
        return self._stats(submission, split).confidences

    def epsilons(self, submission: str | None = None, split: str | None = None) -> np.ndarray:
        """[E]: the per-example epsilon against the pool (the metric's core; F averages their
        points)."""
        from harness.evaluation.metric import epsilons

        key = (submission or self.name, self._split(split))
        if key not in self._epsilons:
            self._epsilons[key] = epsilons(
                self.confidences(*key), self.pools[key[1]].confidences
            )
        return self._epsilons[key]

    def traceback(self, submission: str | None = None, split: str | None = None) -> str:
        """The first failed run's message and output (its traceback's tail); '' when none
        failed."""
        runs = self.records[self._split(split)].get(submission or self.name, {})
        failed = [r for _, r in sorted(runs.items()) if r.status != OK]
        if not failed:
            return ""
        first = failed[0]
        return f"run {first.run_index} ({first.status}): {first.message}\n{first.output}".strip()

    def _scored(self, split: str) -> dict[str, np.ndarray]:
        """The confidences of every row whose runs all finished ok."""
        found = {}
        for name in self.rows(split)["submission"]:
            try:
                found[name] = self.confidences(name, split)
            except KeyError:
                continue
        return found

    # the report's plots
    def plot_scores(self, split: str | None = None) -> Plot:
        """Every final score with its interval; the ceiling as a band."""
        from harness.outputs.report import plot_scores

        board = self.rows(split)
        return _drawn("scores", lambda path: plot_scores(board, path))

    def plot_epsilons(self, split: str | None = None) -> Plot:
        """Each scored submission's share of forget examples per epsilon bucket."""
        from harness.outputs.report import plot_epsilons

        split = self._split(split)
        eps = {name: self.epsilons(name, split) for name in self._scored(split)}
        order = list(self.rows(split)["submission"])
        return _drawn("epsilons", lambda path: plot_epsilons(
            eps, self.task.num_models, order, path))

    def plot_time(self, split: str | None = None) -> Plot:
        """Final score against seconds per run, with the time budget."""
        from harness.outputs.report import plot_time

        board, budget = self.rows(split), self.budget(split)
        return _drawn("time", lambda path: plot_time(board, budget, path))

    def plot_examples(self, submission: str | None = None, split: str | None = None) -> Plot:
        """A submission's and the pool's confidences on the forget examples where the scored
        submissions' epsilons differ most: what the attacks try to separate."""
        from harness.outputs.report import NUM_EXAMPLES_SHOWN, chosen_examples, plot_examples

        split, name = self._split(split), submission or self.name
        eps = {n: self.epsilons(n, split) for n in self._scored(split)}
        if name not in eps:
            self.confidences(name, split)  # raises, saying why
        chosen = chosen_examples(eps, NUM_EXAMPLES_SHOWN)
        pool = self.pools[split].confidences
        return _drawn("examples", lambda path: plot_examples(
            name, self.confidences(name, split), pool, eps[name], chosen, path))

    def save(self, folder: Path | str) -> Path:
        """Write ``leaderboard.csv`` (with its phase times beside it) and the HTML report of the
        final split (``report/index.html``) into ``folder``, as ``harness score`` and ``harness
        report`` would; returns the report's page."""
        from harness.outputs.report import write_report
        from harness.pipeline.scoring import write_leaderboard

        folder = Path(folder)
        write_leaderboard(folder / "leaderboard.csv", self.leaderboard, self.phases)
        split = self.splits[0]
        return write_report(
            self.rows(split), self.pools[split], self._scored(split), folder / "report",
            self.budget(split), self.leaderboard, phase_table(self.phases),
        )

    # how it shows
    def _failures(self, split: str) -> list[tuple[str, str, str]]:
        return [
            (str(row["submission"]), str(row["status"]), self.traceback(row["submission"], split)
             or str(row["message"]))
            for _, row in self.rows(split).iterrows()
            if row["status"] not in (OK, REFERENCE)
        ]

    def _header(self, split: str) -> str:
        first = self.rows(split).iloc[0]
        return (
            f"{self.name} on task {first['task']}, {split} split, N = {int(first['num_models'])}, "
            f"root seed {int(first['root_seed'])}; time budget {self.budget(split):.3f} s per run "
            f"{_budget_source(float(first['retrain_seconds']))}; pool "
            f"retain acc {float(first['ref_retain_acc']):.4f}, test acc "
            f"{float(first['ref_test_acc']):.4f}; {LEVEL:.0%} bootstrap intervals; {LEGEND}"
        )

    def __repr__(self) -> str:
        parts = []
        for split in self.splits:
            table = pd.DataFrame({
                title: [_text(key, row) for _, row in self.rows(split).iterrows()]
                for key, title in SHOWN_COLUMNS
            })
            parts += [self._header(split), table.to_string(index=False)]
            parts += [f"{name} ({status}): {text}" for name, status, text
                      in self._failures(split)]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(title)}</th>" for _, title in SHOWN_COLUMNS)
        parts = []
        for split in self.splits:
            body = []
            for _, row in self.rows(split).iterrows():
                mark = ' style="font-weight:bold"' if row["submission"] == self.name else ""
                grey = ' style="color:#888"' if row["submission"] == CEILING_ROW else mark
                cells = "".join(f"<td>{html.escape(_text(key, row))}</td>"
                                for key, _ in SHOWN_COLUMNS)
                body.append(f"<tr{grey}>{cells}</tr>")
            parts.append(f"<p>{html.escape(self._header(split))}</p>"
                         f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
                         f"</tbody></table>")
            for name, status, text in self._failures(split):
                parts.append(f"<details><summary><b>{html.escape(name)}</b>: "
                             f"{html.escape(status)}</summary><pre>{html.escape(text)}</pre>"
                             f"</details>")
        rows = "".join(
            f"<tr><td>{html.escape(r.split)}</td><td>{html.escape(r.phase)}</td><td>"
            + (f"{r.seconds:.0%}" if r.phase.startswith("harness share") else f"{r.seconds:.1f}")
            + "</td></tr>"
            for r in phase_table(self.phases).itertuples()
        )
        parts.append("<details><summary>where the time went (wall seconds)</summary><table>"
                     f"<tr><th>split</th><th>phase</th><th>seconds</th></tr>{rows}</table>"
                     "</details>")
        return f"<div>{''.join(parts)}</div>"


# -- the call ----------------------------------------------------------------------------------
def evaluate(
    unlearning: Callable | str | os.PathLike,
    task: str | Task = "digits",
    *,
    n: int | None = None,
    split: str = "private",
    against: Sequence[str] | str = (),
    name: str | None = None,
    root_seed: int | None = None,
    jobs: int | None = None,
    workers_per_device: int | None = None,
    budget_seconds: float | None = None,
    timeout: float | None = None,
    ceiling: bool = True,
    untuned: bool = False,
    sandbox: str = "auto",
    progress: bool = True,
    cache_dir: Path | str | None = None,
    reference_root: Path | str | None = None,
    output_dir: Path | str | None = None,
    submissions_dir: Path | str = SHIPPED,
    save_to: Path | str | None = None,
    **task_options: object,
) -> Evaluation:
    """Score ``unlearning`` beside the shipped methods ``against`` on ``task``, as ``harness
    score`` scores files, and return an ``Evaluation`` to explore.

    ``unlearning`` is a function (defined in a cell, a closure, a ``functools.partial``: it runs
    as serialised by value, see the module's docstring), a submission file's path or a shipped
    method's name. ``name`` names its row and seeds its runs (default: the function's
    ``__name__`` or the file's stem): the same code under the same name and task scores the same
    as the file ``submissions/<name>.py`` under ``harness score``. ``n``, ``root_seed`` and
    ``task_options`` (``data_dir``, ``device``, ``checkpoint``, ``forget_index``) set the task as
    the CLI's options do; ``split`` is ``private`` (the default, as ``harness score``),
    ``public`` or ``both``. Runs already recorded for the same files are reused; the shipped
    methods use their tuned settings unless ``untuned``. ``cache_dir`` holds the caches
    (``reference_root`` and ``output_dir`` each override one); ``save_to`` writes the
    leaderboard and the report there (``Evaluation.save``).

    A submission that fails is a row with its status and message (``Evaluation.traceback`` gives
    the traceback's tail); what keeps the harness from scoring at all (unknown names, missing
    data, an unwritable cache, ``sandbox="on"`` without bubblewrap) is raised as one exception
    whose message says what is wrong, as the CLI's ``harness: error:`` line does.
    """
    from harness.execution.sandbox import SandboxUnavailable

    try:
        return _evaluate(
            unlearning, task, n=n, split=split, against=against, name=name,
            root_seed=root_seed, jobs=jobs, workers_per_device=workers_per_device,
            budget_seconds=budget_seconds, timeout=timeout, ceiling=ceiling, untuned=untuned,
            sandbox=sandbox, progress=progress, cache_dir=cache_dir,
            reference_root=reference_root, output_dir=output_dir,
            submissions_dir=submissions_dir, save_to=save_to, task_options=task_options,
        )
    except (ValueError, KeyError, FileNotFoundError, PermissionError,
            SandboxUnavailable) as error:
        raise error.with_traceback(None) from None  # the message says it; the stack would not


def _task(task: str | Task, task_options: dict) -> Task:
    from harness.tasks import get_task

    options = {k: v for k, v in task_options.items() if v is not None}
    if isinstance(task, str):
        return get_task(task, **options)
    return task.with_options(**options) if options else task


def _evaluate(
    unlearning: Callable | str | os.PathLike, task: str | Task, *, n: int | None, split: str,
    against: Sequence[str] | str, name: str | None, root_seed: int | None, jobs: int | None,
    workers_per_device: int | None, budget_seconds: float | None, timeout: float | None,
    ceiling: bool, untuned: bool, sandbox: str, progress: bool, cache_dir: Path | str | None,
    reference_root: Path | str | None, output_dir: Path | str | None,
    submissions_dir: Path | str, save_to: Path | str | None, task_options: dict,
) -> Evaluation:
    import warnings

    from harness.execution import sandbox as sandboxes
    from harness.execution.runner import workers_for
    from harness.methods.tuned_settings import read_tuned, tuned_path
    from harness.pipeline.scoring import score_splits

    splits = {"both": ["public", "private"], "public": ["public"], "private": ["private"]}
    if split not in splits:
        raise ValueError(f"split must be public, private or both; got {split!r}")
    task = _task(task, {**task_options, "num_models": n, "root_seed": root_seed})
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    reference_root = Path(reference_root or cache_dir / "reference_models")
    output_dir = Path(output_dir or cache_dir / "results")
    submissions_dir = Path(submissions_dir)

    name, path = _entry(unlearning, name, submissions_dir, output_dir / FUNCTIONS)
    others = list(dict.fromkeys([against] if isinstance(against, str) else against))
    if name in others:
        raise ValueError(f"{name!r} is both the evaluated submission and in `against`: pass "
                         f"name='another_name'")
    paths = {name: path, **{other: _shipped(other, submissions_dir) for other in others}}
    shipped = read_tuned(tuned_path(submissions_dir, task.name))
    tuned = {other: shipped[other] for other in others if other in shipped}
    if path.parent == submissions_dir.resolve() and path.stem in shipped:
        tuned[name] = shipped[path.stem]  # a shipped method evaluated under its own settings
    if not sandboxes.resolve(sandbox) and sandbox == "auto":
        warnings.warn(sandboxes.unavailable_notice(), stacklevel=3)

    phases: dict[str, Phases] = {}
    reporter = ProgressReporter() if progress else None
    with tempfile.TemporaryDirectory(prefix="harness-evaluate-") as folder:
        _submissions_folder(Path(folder), paths, tuned, task.name)
        options = dict(
            reference_root=reference_root, output_dir=output_dir, leaderboard_path=None,
            jobs=workers_for(task.device, jobs, workers_per_device), timeout=timeout,
            budget_seconds=budget_seconds, reporter=reporter, ceiling=ceiling, untuned=untuned,
            workers_per_device=workers_per_device, sandbox=sandbox, phases=phases,
        )
        if reporter is None:
            board = score_splits(task, splits[split], Path(folder), **options)
        else:
            with reporter:
                board = score_splits(task, splits[split], Path(folder), **options)
    result = _gathered(name, task, board, phases, reference_root, output_dir)
    if save_to is not None:
        result.save(save_to)
    return result


def _gathered(
    name: str, task: Task, board: pd.DataFrame, phases: dict[str, Phases],
    reference_root: Path, output_dir: Path,
) -> Evaluation:
    """The pools and every row's run records, read back from the caches the scoring wrote."""
    from harness.execution.store import ResultsStore
    from harness.reference.pool import ReferenceStore

    pools, records = {}, {}
    for split in board_splits(board):
        store = ReferenceStore(task.with_options(split=split),
                               task.with_options(split=split).load_data(), reference_root)
        pools[split] = store.read_pool()
        results = ResultsStore(output_dir / store.directory.name)
        records[split] = {
            str(row["submission"]): results.load_runs(
                str(row["submission"]), str(row["provenance"]), ok_only=False)
            for _, row in split_rows(board, split).iterrows()
            if isinstance(row["provenance"], str) and row["provenance"]
        }
    return Evaluation(name, task, board, phases, pools, records, reference_root, output_dir)


__all__ = ["Evaluation", "Plot", "ProgressReporter", "default_cache_dir", "evaluate"]
