"""The results store: raw records of every run, written as each run finishes.

``<output>/<task>-<key>/runs/<submission>.jsonl`` holds one JSON line per finished run. A scoring
that is interrupted resumes from these lines: runs of an unchanged submission (same file hash, same
seed) are never redone. A torn last line from a killed process is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from harness.records import RunResult
from harness.submissions import Submission


class ResultsStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.runs_directory = self.directory / "runs"

    def ensure_writable(self) -> None:
        """Fail early, before any work, when the output folder cannot be written."""
        try:
            self.runs_directory.mkdir(parents=True, exist_ok=True)
            probe = self.runs_directory / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise PermissionError(
                f"output folder {self.directory} is not writable: {error.strerror}"
            ) from None

    def _path(self, name: str) -> Path:
        return self.runs_directory / f"{name}.jsonl"

    def load_runs(self, submission: Submission) -> dict[int, RunResult]:
        """Finished runs recorded for this exact file (other versions' runs are ignored)."""
        path = self._path(submission.name)
        runs: dict[int, RunResult] = {}
        if not path.exists():
            return runs
        for line in path.read_text().splitlines():
            try:
                record = RunResult(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line torn by an interruption
            if record.file_hash == submission.file_hash:
                runs[record.run_index] = record
        return runs

    def append(self, result: RunResult) -> None:
        with open(self._path(result.submission), "a") as handle:
            handle.write(json.dumps(asdict(result)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
