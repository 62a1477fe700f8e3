"""How long-running stages report progress: a do-nothing base class the CLI (a live display)
and the notebook API (a progress bar) extend; the Python API stays quiet by default."""

from __future__ import annotations

from typing import Any


class Reporter:
    """Progress callbacks; the CLI shows them live, the Python API stays quiet by default."""

    def stage(self, name: str, total: int, done: int = 0) -> None: ...
    def advance(self, name: str, amount: int = 1) -> None: ...
    def message(self, text: str) -> None: ...
    def activity(self, worker: str, text: str) -> None:
        """What one worker of a cluster has done (``harness.execution.cluster``)."""


def progress_bars(console: Any, *, rate: bool = False, **options: Any) -> Any:
    """rich's ``Progress`` with the columns the CLI and the notebook both show: the stage, its
    bar, done of total, the rate (``rate``: a task field ``rate`` each bar must carry), time
    elapsed and left. rich is imported here, when bars are drawn, not with the package."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
        *([TextColumn("{task.fields[rate]:>10}")] if rate else []), TimeElapsedColumn(),
        TextColumn("left"), TimeRemainingColumn(), console=console, **options,
    )
