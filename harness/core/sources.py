"""The harness's one way to say which code produced a number: the files a piece of code runs
(``code_files``: an entry file and what it imports, followed statically) and a digest of their
contents (``source_digest``). The reference pool's key, a run record's provenance and a Dask
worker's code check are all made of these two.

Imported code is found statically: the ``import`` statements of a file (anywhere in it, so
imports inside functions count) are resolved with ``importlib.util.find_spec``, and every module
whose file lies inside the given roots is followed in turn. A package's ``__init__.py`` is hashed
but what it re-exports is not followed (``harness/__init__.py`` names the whole public API).
Installed packages (also a virtual environment inside the repository) are represented by the
versions instead.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the ``harness`` package
REPOSITORY = PACKAGE.parent  # the folder holding ``harness/``


def source_digest(paths: Iterable[Path], root: Path = REPOSITORY) -> str:
    """A short hash of the contents of the source files ``paths`` (for cache keys: code that
    trains or evaluates cached models is part of what determines their numbers).

    Each file is named by its path relative to ``root`` (its bare name when outside ``root``),
    so the same checkout in another folder gives the same digest; order and repeats do not
    matter. Any byte change counts, so a comment-only edit also invalidates the cache: a
    retraining too many is the accepted price of never reusing numbers from other code."""
    root = Path(root).resolve()
    named: dict[str, Path] = {}
    for path in paths:
        resolved = Path(path).resolve()
        try:
            name = resolved.relative_to(root).as_posix()
        except ValueError:
            name = resolved.name
        named[name] = resolved
    digest = hashlib.sha256()
    for name in sorted(named):
        content = named[name].read_bytes()
        for part in (name.encode(), str(len(content)).encode(), content):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()[:16]



def _imported_modules(tree: ast.AST, search: list[str]) -> set[Path]:
    """The source files of the modules the tree's imports run: ``from a import b`` means the
    submodule ``a.b`` where there is one, else module ``a`` itself; importing a submodule runs
    its packages' ``__init__.py`` too."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    parents = {name.rsplit(".", i)[0] for name in names for i in range(name.count(".") + 1)}
    files = {_module_file(name, search) for name in names | parents}
    return {f for f in files if f is not None}


def _installed(path: Path) -> bool:
    """Whether a file belongs to an installed package (a virtual environment may lie inside the
    repository): those are represented by the versions, not hashed."""
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return "site-packages" in path.parts or any(path.is_relative_to(p) for p in prefixes)


def _module_file(name: str, search: list[str]) -> Path | None:
    """The source file of module ``name`` (searching ``search`` first, then ``sys.path``), or
    None. Found package by package with the path finder, which reads folders and imports
    nothing: ``importlib.util.find_spec("a.b")`` would run package ``a`` (submission code, in
    the scorer's process)."""
    locations: list[str] | None = [*search, *sys.path]
    spec = None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        if locations is None:  # the previous part is a module, not a package
            return None
        dotted = ".".join(parts[:depth])
        try:
            spec = importlib.machinery.PathFinder.find_spec(dotted, locations)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return None
        locations = spec.submodule_search_locations
        locations = list(locations) if locations is not None else None
    origin = getattr(spec, "origin", None)
    if origin is None or not origin.endswith(".py"):
        return None
    return Path(origin).resolve()


def code_files(entries: Iterable[Path], roots: Iterable[Path]) -> list[Path]:
    """``entries`` and every file they import, transitively, that lies under one of ``roots``."""
    roots = [Path(r).resolve() for r in roots]
    # a root's parent too: ``harness.x`` is found from the folder holding ``harness/`` whether or
    # not that folder is on ``sys.path`` (the ``harness`` command of an editable install: not)
    search = [*map(str, roots), *(str(r.parent) for r in roots)]
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
        # resolved as a run would: beside the file, then in the roots and their parents (the
        # repository holds the ``harness`` package however it is installed), then on ``sys.path``
        for found in _imported_modules(tree, [str(path.parent), *search]):
            if any(found.is_relative_to(root) for root in roots) and not _installed(found):
                todo.append(found)
    return sorted(seen)


def code_digest(entries: Iterable[Path], roots: Iterable[Path], context: str = "") -> str:
    """The digest of ``entries``, every file they import under ``roots`` (``code_files``) and
    ``context`` (what else decides the numbers, as text)."""
    digest = source_digest(code_files(entries, roots))
    return hashlib.sha256(f"{digest}|{context}".encode()).hexdigest()[:16]
