"""What produced a run: the digest that decides whether a recorded run may be reused.

A run record is valid only for exactly what produced it: the submission file, the repository code
it imports (the toolkit, a helper module beside it), the harness code that runs and evaluates it
(the runner and everything it imports, the task's module), the task's configuration, the data and
the numeric stack's versions. Any change to one of these gives another digest, and the runs are
done again.

Imported code is followed within the repository (the folder holding the ``harness`` package)
and the submission's folder, with ``harness.core.sources``, the one digest the harness has.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.sources import PACKAGE, REPOSITORY, code_digest

RUNNER = PACKAGE / "execution" / "runner.py"


def run_digest(submission_path: Path, task_files: list[Path], context: str) -> str:
    """The digest of what produces a submission's runs: its file and the repository code it
    imports, the runner and what it imports, the task's code (``tasks.base.task_code``), and
    ``context`` (the task's configuration, data fingerprint and versions, as text)."""
    submission_path = Path(submission_path).resolve()
    return code_digest([submission_path, RUNNER, *task_files],
                       [REPOSITORY, submission_path.parent], context)


def runner_digest(task_files: list[Path], context: str = "") -> str:
    """The digest of the harness code a run executes on the harness's side (the runner and all
    it imports, the task's code): what a Dask worker must share with the scorer."""
    return code_digest([RUNNER, *task_files], [REPOSITORY], context)
