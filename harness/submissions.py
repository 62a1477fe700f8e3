"""Finding and checking submissions without running them.

A submission is ``submissions/<name>.py`` defining ``unlearning(net, retain, forget, val)``; files
starting with ``_`` are ignored. The scorer's own process only parses the file (``ast``): the code
runs in worker processes. Optional module constants (plain literals): ``NAME``, ``DESCRIPTION``,
``REFERENCE``, and ``BUDGET_EXEMPT = True`` for reference points such as retraining, which are
scored in full but never ranked when they exceed the time budget.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ENTRY_POINT = "unlearning"
ENTRY_ARGS = ("net", "retain", "forget", "val")
CONSTANTS = ("NAME", "DESCRIPTION", "REFERENCE", "BUDGET_EXEMPT")


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
    budget_exempt: bool = False


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
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    if ENTRY_POINT not in functions:
        raise SubmissionError(
            f"{path.name} defines no top-level function `{ENTRY_POINT}({', '.join(ENTRY_ARGS)})`"
        )
    problem = _entry_point_problem(functions[ENTRY_POINT])
    if problem:
        raise SubmissionError(f"{path.name}: {problem}")
    constants: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in CONSTANTS:
                try:
                    constants[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    raise SubmissionError(
                        f"{path.name}: {target.id} must be a plain literal"
                    ) from None
    docstring = ast.get_docstring(tree) or ""
    return Submission(
        name=path.stem,
        path=path.resolve(),
        file_hash=hashlib.sha256(source).hexdigest()[:16],
        title=str(constants.get("NAME", path.stem)),
        description=str(constants.get("DESCRIPTION", docstring.strip().split("\n")[0])),
        reference=str(constants.get("REFERENCE", "")),
        budget_exempt=bool(constants.get("BUDGET_EXEMPT", False)),
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


def load_module(submission: Submission) -> ModuleType:
    """Import a submission file as a module (in a worker process)."""
    module_name = f"_submission_{submission.name}_{submission.file_hash}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, submission.path)
    if spec is None or spec.loader is None:
        raise SubmissionError(f"cannot import {submission.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
