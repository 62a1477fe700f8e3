"""Which code produced a number: ``harness.core.sources`` (files followed through their imports,
and their digest), the task's code, and a run's provenance built from them."""

import sys
import textwrap
import types
from pathlib import Path

import pytest

from harness.core.sources import PACKAGE, REPOSITORY, code_digest, code_files
from harness.execution.provenance import RUNNER, run_digest, runner_digest
from harness.tasks import get_task
from harness.tasks.base import task_code
from harness.tasks.digits import DigitsTask


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


PROJECT = {
    "entry.py": """
        import helper
        def unlearning(net, retain, forget, val):
            from pkg import inner  # an import inside a function counts
            return helper.f(inner.g())
    """,
    "helper.py": "def f(x):\n    return x\n",
    "pkg/__init__.py": "",
    "pkg/inner.py": "import json\ndef g():\n    return 1\n",
    "unrelated.py": "x = 1\n",
}


def test_code_files_follow_imports_within_the_roots(tmp_path):
    root = write(tmp_path / "a", PROJECT)
    found = {p.relative_to(root).as_posix() for p in code_files([root / "entry.py"], [root])}
    # json is installed code (represented by the versions), unrelated.py is not imported
    assert found == {"entry.py", "helper.py", "pkg/__init__.py", "pkg/inner.py"}


def test_the_package_s_imports_are_followed_however_the_harness_is_started(monkeypatch):
    """The pool key and the interval, audit and gate caches follow ``harness.*`` imports from
    the package. The ``harness`` command of an editable install does not put the repository on
    ``sys.path`` (``python -m harness.cli`` from the repository does): the files followed, and so
    the keys, were three files in the first case and 21 in the second, so the pool was trained
    again between the two and a change to the training loop did not invalidate it."""
    entry = [PACKAGE / "reference" / "pool.py"]
    without = [p for p in sys.path if Path(p or ".").resolve() != REPOSITORY]
    monkeypatch.setattr(sys, "path", without)
    found = code_files(entry, [PACKAGE])
    assert {PACKAGE / "training" / "loop.py", PACKAGE / "evaluation" / "metric.py"} <= set(found)
    monkeypatch.setattr(sys, "path", [str(REPOSITORY), *without])
    assert code_files(entry, [PACKAGE]) == found


def test_the_digest_follows_the_imported_code_not_the_folder(tmp_path):
    first = write(tmp_path / "a", PROJECT)
    digest = code_digest([first / "entry.py"], [first])
    moved = write(tmp_path / "elsewhere" / "b", PROJECT)
    assert code_digest([moved / "entry.py"], [moved]) == digest  # another checkout, same code
    (first / "unrelated.py").write_text("x = 2\n")
    assert code_digest([first / "entry.py"], [first]) == digest
    (first / "pkg" / "inner.py").write_text("def g():\n    return 2\n")
    assert code_digest([first / "entry.py"], [first]) != digest  # an imported file changed
    assert code_digest([moved / "entry.py"], [moved], "other settings") != digest


def test_a_run_s_provenance_covers_the_submission_the_runner_and_the_task(tmp_path):
    folder = write(tmp_path, PROJECT)
    task_files, _ = task_code(DigitsTask)
    digest = run_digest(folder / "entry.py", task_files, "context")
    assert run_digest(folder / "entry.py", task_files, "other context") != digest
    (folder / "helper.py").write_text("def f(x):\n    return -x\n")
    assert run_digest(folder / "entry.py", task_files, "context") != digest
    assert RUNNER.is_file()
    assert runner_digest(task_files) != runner_digest([])  # the task's module is in it


def test_the_task_code_is_its_class_s_modules():
    files, text = task_code(type(get_task("digits")))
    assert {p.name for p in files} == {"digits.py", "base.py"} and text == ""


def test_a_task_class_without_a_file_has_a_provenance(monkeypatch):
    """A task class defined where there is no file (a notebook cell, ``python -c``) once made
    ``provenance_of`` fail on ``sys.modules[...].__file__``; its code now counts by its text
    where it can be read, else by its name."""
    from harness.methods.loading import inspect_submission
    from harness.pipeline.scoring import provenance_of

    module = types.ModuleType("a_notebook")
    monkeypatch.setitem(sys.modules, "a_notebook", module)
    exec("from harness.tasks.digits import DigitsTask\n"
         "class NotebookDigits(DigitsTask):\n    pass\n", module.__dict__)
    base = get_task("digits", num_models=4)
    task = module.NotebookDigits(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    files, text = task_code(type(task))
    assert {p.name for p in files} == {"digits.py", "base.py"}
    assert text == "a_notebook.NotebookDigits"  # no source to read: its name stands in
    submission = inspect_submission(Path("submissions/finetune.py"))
    data = task.load_data()
    digest = provenance_of(task, data, submission)
    assert digest != provenance_of(base, data, submission)


@pytest.mark.parametrize("edit", ["runner", "task"])
def test_a_dask_worker_s_code_check_covers_what_a_run_executes(edit, tmp_path):
    """The cluster's check compares ``runner_digest``: the runner and everything it imports
    (the toolkit, the example format, the pool's evaluation), and the task's code."""
    task_files, _ = task_code(DigitsTask)
    followed = {p.relative_to(RUNNER.parents[1]).as_posix()
                for p in code_files([RUNNER, *task_files], [RUNNER.parents[2]])}
    assert {"execution/runner.py", "execution/ingestion.py", "methods/toolkit.py",
            "data/examples.py", "reference/pool.py", "tasks/digits.py"} <= followed
    extra = write(tmp_path, {"t.py": "x = 1\n"}) / "t.py"
    before = runner_digest([*task_files, extra])
    extra.write_text("x = 2\n")
    assert runner_digest([*task_files, extra]) != before


def test_following_a_submission_s_imports_runs_none_of_its_code(tmp_path):
    """Resolving ``from pkg import inner`` once imported ``pkg`` in the scorer's process (as
    ``importlib.util.find_spec`` does for a dotted name): a package beside a submission ran
    its ``__init__`` there. Now the files are found without importing anything."""
    marker = tmp_path / "ran"
    folder = write(tmp_path / "s", {**PROJECT, "pkg/__init__.py": f"open({str(marker)!r}, 'w')\n"})
    found = code_files([folder / "entry.py"], [folder])
    assert folder / "pkg" / "__init__.py" in found and not marker.exists()
    assert "pkg" not in sys.modules
