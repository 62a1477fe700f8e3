"""Tuned settings: the committed record of the hyperparameters ``harness tune`` chose.

``submissions/tuned/<task>.json`` maps each tuned submission to its entry: the ``settings`` (the
keyword arguments passed to ``unlearning``) and their provenance (the submission's file hash, the
study's trials, N and split, the public score with its interval, the published constants' score
and the tuning time). The scorer reads it, without importing any submission, and passes each
submission its settings unless asked for the published constants (``--untuned``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from harness.core import files
from harness.methods.hyperparameters import SpaceError, check_settings
from harness.methods.loading import Submission

FOLDER = "tuned"


class TunedFileError(ValueError):
    """A tuned-settings file that cannot be read as one."""


def tuned_path(submissions_dir: Path, task_name: str) -> Path:
    return Path(submissions_dir) / FOLDER / f"{task_name}.json"


def read_tuned(path: Path) -> dict[str, dict]:
    """The entries of a tuned-settings file ({} when there is none); a damaged file is an error
    that names it, never silently ignored (it would score the published constants instead)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise TunedFileError(f"cannot read the tuned settings in {path}: {error}") from None
    if not isinstance(entries, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("settings"), dict)
        for entry in entries.values()
    ):
        raise TunedFileError(
            f"{path} must map each submission to an entry with a 'settings' dict"
        )
    return entries


def record(path: Path, name: str, entry: dict) -> None:
    """Write (or replace) ``name``'s entry, keeping the others; atomic."""
    entries = read_tuned(path)
    entries[name] = entry
    files.write_json(Path(path), dict(sorted(entries.items())))


def settings_for(
    submissions: Iterable[Submission], path: Path, untuned: bool = False
) -> tuple[dict[str, dict], dict[str, str]]:
    """Each submission's settings ({} for the published constants) and, for those whose tuned
    settings no longer fit their declaration, why (such a submission is rejected, not silently
    scored with other settings)."""
    entries = {} if untuned else read_tuned(path)
    settings, problems = {}, {}
    for submission in submissions:
        chosen = entries.get(submission.name, {}).get("settings", {})
        try:
            check_settings(submission.space, chosen)
        except SpaceError as error:
            problems[submission.name] = (
                f"its tuned settings in {path} no longer fit the file: {error}; run "
                f"`harness tune {submission.name}` again, or score with --untuned"
            )
            continue
        settings[submission.name] = dict(chosen)
    return settings, problems
