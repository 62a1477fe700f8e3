"""This checkout and an earlier revision side by side, for benchmarks that compare the two: the
earlier one in a temporary ``git worktree``, run in the same virtual environment from its own
folder (``PYTHONPATH``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def side_by_side(baseline: str) -> Iterator[dict[str, tuple[Path, dict[str, str]]]]:
    """``{"earlier": (folder, environment), "this": (folder, environment)}`` while in the block."""
    with tempfile.TemporaryDirectory() as tmp:
        earlier = Path(tmp) / "earlier"
        subprocess.run(["git", "worktree", "add", "--detach", str(earlier), baseline],
                       cwd=REPOSITORY, check=True, capture_output=True)
        try:
            yield {
                "earlier": (earlier, {**os.environ, "PYTHONPATH": str(earlier)}),
                "this": (REPOSITORY, dict(os.environ)),
            }
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)],
                           cwd=REPOSITORY, check=False, capture_output=True)
