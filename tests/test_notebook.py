"""harness.evaluate: a function from a notebook scores as the same code dropped into submissions/,
through the same pipeline; failures are rows; nothing lands in the working directory; and the
example notebook runs as a new user would run it."""

import inspect
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.execution.phases import OWN_RUN_TIME
from harness.execution.records import ERROR, OK
from harness.execution.store import ResultsStore
from harness.notebook import default_cache_dir, evaluate, function_file, pickled
from harness.pipeline.scoring import score
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"
N = 8  # at N = 2 every score is 0: at 8 the scores are nonzero and can differ
LR = 0.05


def method(net, retain, forget, val):
    """Fine-tunes on the retain set after nudging every weight at random: numbers that depend on
    the run's seed."""
    with torch.no_grad():
        for weights in net.parameters():
            weights.add_(0.01 * torch.randn_like(weights))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    net.train()
    for inputs, targets in retain:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(inputs), targets).backward()
        optimizer.step()
    return net.eval()


def with_rate(lr):
    """The same method built in a closure: the rate comes from the enclosing call."""

    def method(net, retain, forget, val):
        with torch.no_grad():
            for weights in net.parameters():
                weights.add_(0.01 * torch.randn_like(weights))
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        net.train()
        for inputs, targets in retain:
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(inputs), targets).backward()
            optimizer.step()
        return net.eval()

    return method


def fails(net, retain, forget, val):
    raise RuntimeError("deliberate failure in a notebook cell")


# the same code as `method`, as a file in submissions/
FILE = (f"import torch\nfrom torch import nn\n\nLR = {LR}\n\n\n{inspect.getsource(method)}\n"
        "unlearning = method\n")
OPTIONS = dict(n=N, jobs=1, budget_seconds=float("inf"), timeout=600, ceiling=False,
               progress=False)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The file scored by `score` (as `harness score` scores it), then the module's function, the
    closure and a failing function evaluated beside fine-tuning; all from an empty working
    directory, with the user's cache folder in a temporary one."""
    root = tmp_path_factory.mktemp("notebook")
    workdir = root / "workdir"
    workdir.mkdir()
    submissions = root / "submissions"
    submissions.mkdir()
    (submissions / "method.py").write_text(FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        patch.chdir(workdir)
        cache = default_cache_dir()
        task = get_task("digits", num_models=N, split="private")
        board = score(
            task, submissions, reference_root=cache / "reference_models",
            output_dir=cache / "results", leaderboard_path=None, jobs=1,
            budget_seconds=float("inf"), timeout=600, ceiling=False,
        )
        results = {
            "module": evaluate(method, **OPTIONS),
            "closure": evaluate(with_rate(LR), **OPTIONS),
            "fails": evaluate(fails, against=["finetune"], **OPTIONS),
        }
        again = evaluate(method, **OPTIONS)
        written = sorted(p.name for p in workdir.iterdir())
        store = ReferenceStore(task, task.load_data(), cache / "reference_models")
    runs = ResultsStore(cache / "results" / store.directory.name).load_runs(
        "method", board.set_index("submission").loc["method", "provenance"])
    file_confidences = np.array([runs[i].confidences for i in range(N)])
    return root, cache, board, file_confidences, results, again, written


@pytest.mark.slow
def test_a_function_and_a_closure_score_as_the_same_code_in_a_file(evaluated):
    _, _, board, file_confidences, results, _, _ = evaluated
    from_file = board.set_index("submission").loc["method"]
    assert from_file["status"] == OK and from_file["final_score"] > 0
    for how in ("module", "closure"):
        row = results[how].row("method")
        assert row["status"] == OK
        assert row["file_hash"] != from_file["file_hash"]  # its own, generated file ran
        for column in ("final_score", "forget_quality", "retain_acc", "test_acc", "forget_acc"):
            assert row[column] == from_file[column], (how, column)
    # run by run, the same models: the file's records against the function's
    np.testing.assert_array_equal(results["module"].confidences(), file_confidences)
    np.testing.assert_array_equal(results["closure"].confidences(), file_confidences)


@pytest.mark.slow
def test_nothing_is_written_to_the_working_directory(evaluated):
    _, cache, _, _, results, _, written = evaluated
    assert written == []
    assert results["module"].output_dir == cache / "results"
    assert results["module"].reference_root == cache / "reference_models"
    assert list((cache / "results" / "functions").glob("*/method.py"))


@pytest.mark.slow
def test_the_same_function_again_reuses_its_runs(evaluated):
    _, _, _, _, results, again, _ = evaluated
    assert again.phases["private"].seconds[OWN_RUN_TIME] == 0  # no run was done
    assert again.row("method")["final_score"] == results["module"].row("method")["final_score"]


def test_the_pickled_function_is_the_same_bytes_whatever_the_cell_file(tmp_path):
    """A notebook cell's file name changes with each kernel; the generated file must not, or
    its runs would be done again after a restart."""
    source = "def cell(net, retain, forget, val):\n    return None\n"
    functions = []
    for kernel in ("/tmp/ipykernel_101/4242.py", "/tmp/ipykernel_202/4242.py"):
        namespace = {"__name__": "__main__"}
        exec(compile(source, kernel, "exec"), namespace)
        functions.append(namespace["cell"])
    assert pickled(functions[0]) == pickled(functions[1])
    first = function_file(functions[0], "cell", tmp_path)
    assert function_file(functions[1], "cell", tmp_path) == first
    assert first.name == "cell.py" and first.parent.parent == tmp_path


@pytest.mark.slow
def test_a_failing_function_is_a_row_with_its_message_and_traceback(evaluated):
    _, _, _, _, results, _, _ = evaluated
    failing = results["fails"]
    row = failing.row("fails")
    assert row["status"] == ERROR
    assert "deliberate failure in a notebook cell" in row["message"]
    tail = failing.traceback("fails")
    assert "RuntimeError" in tail and "in fails" in tail
    runs = failing.runs()
    assert (runs.loc[runs["submission"] == "fails", "status"] == ERROR).sum() == N
    assert failing.row("finetune")["status"] == OK and failing.row("finetune")["final_score"] > 0
    shown = failing._repr_html_()
    assert "<details>" in shown and "deliberate failure in a notebook cell" in shown
    assert "fails" in repr(failing) and "finetune" in repr(failing)


def test_a_harness_error_is_one_clear_exception(tmp_path):
    with pytest.raises(ValueError, match="no shipped method 'no_such_method'") as raised:
        evaluate(method, n=N, against=["no_such_method"], cache_dir=tmp_path, progress=False)
    frames = [Path(f.filename).name for f in traceback.extract_tb(raised.value.__traceback__)]
    assert frames == ["test_notebook.py", "notebook.py"]  # the call, then where it was raised
    with pytest.raises(ValueError, match="pass name="):
        evaluate(lambda net, retain, forget, val: None, cache_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_the_result_explores_and_saves_like_the_report(evaluated, tmp_path):
    _, _, _, _, results, _, _ = evaluated
    result = results["fails"]
    eps = result.epsilons("finetune")
    assert eps.shape == (result.confidences("finetune").shape[1],)
    for plot in (result.plot_scores(), result.plot_epsilons(), result.plot_time(),
                 result.plot_examples("finetune")):
        assert plot.png.startswith(b"\x89PNG")
    with pytest.raises(KeyError, match=f"0 of {N} runs ok"):
        result.epsilons("fails")
    page = result.save(tmp_path / "saved")
    assert page == tmp_path / "saved" / "report" / "index.html" and page.is_file()
    assert (tmp_path / "saved" / "leaderboard.csv").is_file()
    assert (tmp_path / "saved" / "leaderboard.phases.csv").is_file()


@pytest.mark.slow
def test_the_example_notebook_runs_as_a_new_user_runs_it(evaluated, tmp_path, monkeypatch):
    """Its digits cells in a fresh kernel, from an empty folder; the cells tagged ``cifar10``
    need a data folder and a GPU and are left out, as the notebook says."""
    import nbformat
    from nbclient import NotebookClient

    root = evaluated[0]
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))  # the pool is cached already
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    left_out = [c for c in notebook.cells if "cifar10" in c.metadata.get("tags", [])]
    assert left_out and all(c.cell_type == "code" for c in left_out)
    notebook.cells = [c for c in notebook.cells if c not in left_out]
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("finetune" in page and "my_method" in page for page in shown)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert list(tmp_path.iterdir()) == []
