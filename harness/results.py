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
        """Finished runs recorded for this exact file (other versions' runs are ignored). A line
        that is not a complete record (torn, not JSON, other fields or wrongly typed values) is
        skipped: its run is done again rather than trusted."""
        path = self._path(submission.name)
        runs: dict[int, RunResult] = {}
        if not path.exists():
            return runs
        import dataclasses
        import types
        import typing

        hints = typing.get_type_hints(RunResult)
        names = {f.name for f in dataclasses.fields(RunResult)}

        def fits(value: object, hint: object) -> bool:
            """Whether a parsed JSON value has the basic type a RunResult field declares."""
            if hint is float:  # JSON writes 1.0 as 1.0, but accept whole numbers too
                return isinstance(value, int | float) and not isinstance(value, bool)
            if hint is int:
                return isinstance(value, int) and not isinstance(value, bool)
            if hint is type(None):
                return value is None
            origin, args = typing.get_origin(hint), typing.get_args(hint)
            if origin in (typing.Union, types.UnionType):
                return any(fits(value, arg) for arg in args)
            if origin is list:
                return isinstance(value, list) and all(fits(v, args[0]) for v in value)
            return isinstance(hint, type) and isinstance(value, hint)

        for line in path.read_bytes().splitlines():
            try:
                fields = json.loads(line.decode())
            except ValueError:  # bad UTF-8 as well as bad JSON
                continue  # a line torn by an interruption
            # a line that parses but is not a whole record (other fields, other types) is
            # damage too: skipped, so that its run is redone rather than trusted
            if not isinstance(fields, dict) or set(fields) != names:
                continue
            if not all(fits(fields[name], hints[name]) for name in names):
                continue
            record = RunResult(**fields)
            if record.file_hash == submission.file_hash:
                runs[record.run_index] = record
        return runs

    def append(self, result: RunResult) -> None:
        with open(self._path(result.submission), "a") as handle:
            handle.write(json.dumps(asdict(result)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
