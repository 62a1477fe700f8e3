"""The results store: raw records of every run, written as each run finishes.

``<output>/<task>-<key>/runs/<submission>.jsonl`` holds one JSON line per finished run; a run's
per-example losses (``harness.evaluation.example_outputs``) are an array file beside it, written
first. A scoring that is interrupted resumes from these lines: ``ok`` runs of exactly the same code
and task (same provenance digest, see ``harness.execution.provenance``) are never redone; failed
ones are tried again. A torn last line from a killed process is ignored.
"""

from __future__ import annotations

import json
import os
import types
import typing
from dataclasses import asdict
from pathlib import Path

from harness.evaluation.example_outputs import read_run_outputs, run_outputs_path, write_run_outputs
from harness.execution.records import ARRAY_FIELDS, OK, RunResult

_HINTS = {k: v for k, v in typing.get_type_hints(RunResult).items() if k not in ARRAY_FIELDS}


def _fits(value: object, hint: object) -> bool:
    """Whether a parsed JSON value has the basic type a RunResult field declares."""
    if hint is float:  # JSON writes 1.0 as 1.0, but accept whole numbers too
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    return isinstance(hint, type) and isinstance(value, hint)


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

    def load_runs(self, name: str, provenance: str, ok_only: bool = True) -> dict[int, RunResult]:
        """The runs of submission ``name`` recorded as ``ok`` for exactly this ``provenance``
        (``harness.execution.provenance.run_digest``). Failed runs are left out, so they are tried
        again; runs of other code are ignored. A line that is not a complete record (torn, not JSON,
        other fields or wrongly typed values) is skipped: its run is done again, not trusted.
        With ``ok_only=False``, each run's latest record whatever its status (failures with
        their messages, for ``harness.notebook``). An ``ok`` run's losses are read from its
        array file; a record without one (written before the losses were kept, or whose file
        was lost) is still loaded, with ``losses`` None: its row's loss-based audits are empty."""
        path = self._path(name)
        runs: dict[int, RunResult] = {}
        if not path.exists():
            return runs
        for line in path.read_bytes().splitlines():
            try:
                fields = json.loads(line.decode())
            except ValueError:  # bad UTF-8 as well as bad JSON: a line torn by an interruption
                continue
            if not isinstance(fields, dict) or set(fields) != set(_HINTS):
                continue
            if not all(_fits(fields[key], hint) for key, hint in _HINTS.items()):
                continue
            record = RunResult(**fields)
            if record.provenance == provenance and (record.status == OK or not ok_only):
                runs[record.run_index] = record
        for record in runs.values():
            if record.status == OK:
                record.losses = read_run_outputs(run_outputs_path(
                    self.runs_directory, name, provenance, record.run_index))
        return runs

    def append(self, result: RunResult) -> None:
        """Record one finished run: its losses' array file first (when it has them), then its
        JSON line."""
        if result.losses is not None:
            write_run_outputs(run_outputs_path(
                self.runs_directory, result.submission, result.provenance, result.run_index),
                result.losses)
        record = {k: v for k, v in asdict(result).items() if k not in ARRAY_FIELDS}
        path = self._path(result.submission)
        with open(path, "a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():  # after a torn last line, start a new one: the record stays whole
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write((json.dumps(record) + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
