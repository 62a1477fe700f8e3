"""What produced a run: the digest that decides whether a recorded run may be reused.

A run record is valid only for exactly what produced it: the submission file, the repository code
it imports (the toolkit, a helper module beside it), the harness code that runs and evaluates it
(the runner and everything it imports, the task's module), the task's configuration, the data and
the numeric stack's versions. Any change to one of these gives another digest, and the runs are
done again.

Imported code is found statically: the ``import`` statements of a file (anywhere in it, so
imports inside functions count) are resolved with ``importlib.util.find_spec``, and every module
whose file lies inside the repository (the folder holding the ``harness`` package) or beside the
submission is followed in turn. A package's ``__init__.py`` is hashed but what it re-exports is
not followed (``harness/__init__.py`` re-exports the whole public API). Installed packages (also a
virtual environment inside the repository) are represented by the versions instead.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the ``harness`` package
REPOSITORY = PACKAGE.parent
RUNNER = PACKAGE / "execution" / "runner.py"


def _imported_modules(tree: ast.AST, search: list[str]) -> set[Path]:
    """The source files of the modules the tree's imports name: ``from a import b`` means the
    submodule ``a.b`` where there is one, else module ``a`` itself."""
    files: set[Path | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            files.update(_module_file(alias.name, search) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = _module_file(f"{node.module}.{alias.name}", search)
                files.add(submodule or _module_file(node.module, search))
    return {f for f in files if f is not None}


def _installed(path: Path) -> bool:
    """Whether a file belongs to an installed package (a virtual environment may lie inside the
    repository): those are represented by the versions, not hashed."""
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return "site-packages" in path.parts or any(path.is_relative_to(p) for p in prefixes)


def _module_file(name: str, search: list[str]) -> Path | None:
    """The source file of module ``name`` (searching ``search`` first), or None."""
    saved = sys.path[:]
    sys.path[:0] = search
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        spec = None
    finally:
        sys.path[:] = saved
    origin = getattr(spec, "origin", None)
    if origin is None or not origin.endswith(".py"):
        return None
    return Path(origin).resolve()


def code_files(entries: Iterable[Path], roots: Iterable[Path]) -> list[Path]:
    """``entries`` and every file they import, transitively, that lies under one of ``roots``."""
    roots = [Path(r).resolve() for r in roots]
    todo = [Path(e).resolve() for e in entries]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.name == "__init__.py":
            continue  # a package's index: hashed, but what it re-exports is not followed
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # unreadable: its bytes still go into the digest
        for found in _imported_modules(tree, [str(path.parent)]):
            if any(found.is_relative_to(root) for root in roots) and not _installed(found):
                todo.append(found)
    return sorted(seen)


def digest_files(paths: Iterable[Path]) -> str:
    """A short hash of files' contents, each named relative to the repository when it lies in it
    (so a checkout elsewhere gives the same digest)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p).resolve() for p in paths):
        name = path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path
        digest.update(str(name).encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def run_digest(submission_path: Path, task_module: Path, context: str) -> str:
    """The digest of what produces a submission's runs: its file and the repository code it
    imports, the runner and what it imports, the task's module, and ``context`` (the task's
    configuration, data fingerprint and versions, as text)."""
    submission_path = Path(submission_path).resolve()
    files = code_files(
        [submission_path, RUNNER, Path(task_module)], [REPOSITORY, submission_path.parent]
    )
    return hashlib.sha256(f"{digest_files(files)}|{context}".encode()).hexdigest()[:16]
