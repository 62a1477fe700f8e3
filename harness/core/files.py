"""Content-hashed, atomic, checksummed files: the only way the harness writes what it caches.

Writes land on disk before they become visible (flushed and fsynced, then renamed), and readers
that feed caches (``read_json_or_none``, ``read_npz_or_none``) answer None for anything they cannot
trust, so a damaged file is rebuilt, never used and never a crash.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def config_hash(config: Any) -> str:
    """A short content hash of a JSON-able configuration (keys sorted, so order is irrelevant)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; skipped where the OS cannot open folders."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows, where a folder cannot be opened this way
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse to sync a folder; the rename still happened
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp_path)``, fsync, then rename, so that readers never see a partial
    file and a crash or power loss right after the rename cannot leave an empty or torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with open(tmp, "rb+") as handle:  # ``write`` closed its own handle: sync the contents
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_json(path: Path, obj: Any) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    atomic_write(path, write)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; raises on a missing or malformed file (see
    ``read_json_or_none`` for cache files, where damage must mean "rebuild")."""
    return json.loads(Path(path).read_text())


def read_json_or_none(path: Path, expected: type | tuple[type, ...] = dict) -> Any:
    """The JSON value in ``path`` when it is one of the ``expected`` types, else None: a missing,
    unreadable, empty, truncated or non-JSON file, or one holding the wrong kind of value (a list
    where a dict belongs), is treated as absent so that the caller rebuilds it."""
    try:
        value = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
        return None
    return value if isinstance(value, expected) else None


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)


class CorruptFileError(ValueError):
    """A cache file that exists but cannot be read back (truncated, damaged, not the format)."""


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file. A file that exists but cannot be decoded raises
    ``CorruptFileError`` (naming the file), one error a caller can treat as "missing"."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise CorruptFileError(f"{path}: unreadable .npz ({type(error).__name__})") from error
    if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
        raise CorruptFileError(f"{path}: not an .npz archive")
    try:
        with data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CorruptFileError(f"{path}: unreadable .npz ({type(error).__name__})") from error


def read_npz_or_none(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``path``, or None when it is missing or cannot be decoded."""
    try:
        return read_npz(path)
    except (FileNotFoundError, CorruptFileError):
        return None


def versions() -> dict[str, str]:
    """Versions of what can change the numbers (recorded with every result and cache)."""
    import sklearn
    import torch

    from harness.core.defaults import VERSION

    return {
        "harness": VERSION,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
    }


def numeric_versions() -> dict[str, str]:
    """The part of ``versions`` that goes into cache keys: major.minor of the numeric stack."""

    def major_minor(version: str) -> str:
        return ".".join(version.split("+")[0].split(".")[:2])

    found = versions()
    return {name: major_minor(found[name]) for name in ("torch", "numpy")}


@contextmanager
def exclusive(
    path: Path, waiting: Callable[[str], None] | None = None, what: str | None = None
) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if missing) for the block, so that two
    commands working on the same cache (two terminals, a CI matrix on a shared folder) take
    turns instead of both doing all the work. When another process holds it, ``waiting`` is
    told once (with that process's id and ``what`` it works on, by default the lock's folder) and
    the block waits; the second then finds the first's work done. The lock ends with its
    process, however that ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if waiting is not None:
                waiting(f"waiting for {holder}, which is working on {what or path.parent}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
