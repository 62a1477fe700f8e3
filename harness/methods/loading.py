"""Finding and checking submissions without running them.

A submission is ``submissions/<name>.py`` defining ``unlearning(net, retain, forget, val)``:
whatever the module holds under that name after import (a top-level function, one defined under
``if``, ``try`` or ``with``, an assignment or an import), called positionally. Files starting
with ``_`` are ignored. The scorer's own process only parses the file (``ast``): the code
runs in worker processes. Optional module constants (plain literals): ``NAME``, ``DESCRIPTION``,
``REFERENCE``, and ``SEARCH_SPACE`` with the keyword arguments ``harness tune`` may change
(``harness.methods.hyperparameters``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from harness.methods.hyperparameters import SPACE_CONSTANT, Hyperparameter, SpaceError, parse_space

ENTRY_POINT = "unlearning"
ENTRY_ARGS = ("net", "retain", "forget", "val")
CONSTANTS = ("NAME", "DESCRIPTION", "REFERENCE", SPACE_CONSTANT)


class SubmissionError(ValueError):
    """A submission that cannot be run at all (rejected before any run)."""


@dataclass(frozen=True)
class Submission:
    name: str  # the file stem: the submission's identity on the leaderboard and in seeds
    path: Path
    file_hash: str
    title: str = ""
    description: str = ""
    reference: str = ""
    # the declared hyperparameters (name -> range and published default); empty: not tunable
    space: dict[str, Hyperparameter] = field(default_factory=dict, hash=False, compare=False)


def _entry_point_problem(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    if isinstance(function, ast.AsyncFunctionDef):
        return f"`{ENTRY_POINT}` must be a plain function, not `async def`"
    args = function.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    required = len(positional) - len(args.defaults)
    if args.vararg is None and len(positional) < len(ENTRY_ARGS):
        return (
            f"`{ENTRY_POINT}` takes {len(positional)} positional argument(s); it must accept "
            f"4: {ENTRY_POINT}({', '.join(ENTRY_ARGS)})"
        )
    if required > len(ENTRY_ARGS):
        return f"`{ENTRY_POINT}` requires {required} arguments; the harness passes only 4"
    kw_defaults = zip(args.kwonlyargs, args.kw_defaults, strict=True)
    missing_kw = [a.arg for a, default in kw_defaults if default is None]
    if missing_kw:
        return f"`{ENTRY_POINT}` has required keyword-only arguments: {', '.join(missing_kw)}"
    return None


def _module_bindings(body: list[ast.stmt], name: str) -> list[ast.AST]:
    """The statements that bind ``name`` when the module runs: at top level or inside ``if``,
    ``try``, ``with`` and loops (competition notebooks defined ``unlearning`` under an ``if``),
    not inside functions or classes."""
    found: list[ast.AST] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                found.append(node)
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            if name in names:
                found.append(node)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name) == name for alias in node.names):
                found.append(node)
        for block in ("body", "orelse", "finalbody"):
            found += _module_bindings(getattr(node, block, []), name)
        for handler in getattr(node, "handlers", []):
            found += _module_bindings(handler.body, name)
    return found


def _keyword_defaults(
    function: ast.FunctionDef, constants: dict[str, object]
) -> dict[str, object]:
    """The arguments of ``unlearning`` after the four positional ones that have a default, with
    that default's value (a literal, or a module constant bound to a literal)."""
    args = function.args
    positional = args.posonlyargs + args.args
    with_defaults = positional[len(positional) - len(args.defaults):]
    pairs = list(zip(with_defaults, args.defaults, strict=True))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d]
    found = {}
    for arg, node in pairs:
        if arg in positional[: len(ENTRY_ARGS)]:
            continue
        if isinstance(node, ast.Name) and node.id in constants:
            found[arg.arg] = constants[node.id]
            continue
        try:
            found[arg.arg] = ast.literal_eval(node)
        except ValueError:
            found[arg.arg] = _UNREADABLE
    return found


_UNREADABLE = object()  # a default that is neither a literal nor a module constant


def _declared_space(
    path: Path, bindings: list[ast.AST], constants: dict[str, object]
) -> dict[str, Hyperparameter]:
    if SPACE_CONSTANT not in constants:
        return {}
    functions = [b for b in bindings if isinstance(b, ast.FunctionDef)]
    if len(bindings) != 1 or len(functions) != 1:
        raise SubmissionError(
            f"{path.name}: {SPACE_CONSTANT} needs exactly one `def {ENTRY_POINT}(...)` in the "
            "file, whose keyword arguments it names"
        )
    defaults = _keyword_defaults(functions[0], constants)
    unreadable = [n for n in constants[SPACE_CONSTANT] if defaults.get(n) is _UNREADABLE]
    if unreadable:
        raise SubmissionError(
            f"{path.name}: the default of {', '.join(unreadable)} must be a literal or a module "
            "constant bound to a literal (the published constant)"
        )
    try:
        return parse_space(constants[SPACE_CONSTANT], defaults)
    except SpaceError as error:
        raise SubmissionError(f"{path.name}: {error}") from None


def inspect_submission(path: Path) -> Submission:
    """Parse ``path`` and check its entry point; raise ``SubmissionError`` saying what is wrong."""
    path = Path(path)
    try:
        source = path.read_bytes()
    except OSError as error:
        raise SubmissionError(f"cannot read {path}: {error.strerror}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        raise SubmissionError(
            f"syntax error in {path.name}, line {error.lineno}: {error.msg}"
        ) from None
    bindings = _module_bindings(tree.body, ENTRY_POINT)
    if not bindings:
        raise SubmissionError(
            f"{path.name} defines no `{ENTRY_POINT}({', '.join(ENTRY_ARGS)})` (looked for a "
            f"function, an assignment or an import of that name at module level, also under "
            f"`if`, `try` or `with`)"
        )
    for node in bindings:  # each definition that may be the one in force must be callable alike
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            problem = _entry_point_problem(node)
            if problem:
                raise SubmissionError(f"{path.name}: {problem}")
    constants: dict[str, object] = {}  # every top-level NAME = <literal>
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    constants[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    if target.id in CONSTANTS:
                        raise SubmissionError(
                            f"{path.name}: {target.id} must be a plain literal"
                        ) from None
    space = _declared_space(path, bindings, constants)
    docstring = ast.get_docstring(tree) or ""
    return Submission(
        name=path.stem,
        path=path.resolve(),
        file_hash=hashlib.sha256(source).hexdigest()[:16],
        title=str(constants.get("NAME", path.stem)),
        description=str(constants.get("DESCRIPTION", docstring.strip().split("\n")[0])),
        reference=str(constants.get("REFERENCE", "")),
        space=space,
    )


def discover(directory: Path) -> tuple[list[Submission], dict[str, str]]:
    """All submissions in ``directory``: (the valid ones, {name: reason} for the rejected)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"submissions folder not found: {directory}")
    found, rejected = [], {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            found.append(inspect_submission(path))
        except SubmissionError as error:
            rejected[path.stem] = str(error)
    return found, rejected


def entry_point(module: ModuleType) -> Callable:
    """What the module holds as ``unlearning`` after import, however it got there."""
    entry = getattr(module, ENTRY_POINT, None)
    if not callable(entry):
        raise SubmissionError(
            f"after import, the submission holds no callable `{ENTRY_POINT}` (found "
            f"{type(entry).__name__}); did the `if` that defines it take another branch?"
        )
    return entry


def module_name(submission: Submission) -> str:
    """The name a submission's file is imported under (its file's hash in it)."""
    return f"_submission_{submission.name}_{submission.file_hash}"


def load_module(submission: Submission) -> ModuleType:
    """Import a submission file as a module."""
    return import_file(submission.path, module_name(submission))


def import_file(path: Path, name: str) -> ModuleType:
    """Import the file at ``path`` as module ``name`` (once: it stays in ``sys.modules``, unless
    its code fails)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SubmissionError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
