"""How long-running stages report progress: a do-nothing base class the CLI (a live display)
and the notebook API (a progress bar) extend; the Python API stays quiet by default."""

from __future__ import annotations


class Reporter:
    """Progress callbacks; the CLI shows them live, the Python API stays quiet by default."""

    def stage(self, name: str, total: int, done: int = 0) -> None: ...
    def advance(self, name: str, amount: int = 1) -> None: ...
    def message(self, text: str) -> None: ...
    def activity(self, worker: str, text: str) -> None:
        """What one worker of a cluster has done (``harness.execution.cluster``)."""
