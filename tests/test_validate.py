"""``harness validate``: plain-words findings for one submission."""

import dataclasses
from pathlib import Path

import pytest

from harness.pipeline.validate import validate
from harness.tasks import get_task

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"
BAD = Path(__file__).resolve().parent / "bad_submissions"
GOOD = Path(__file__).resolve().parent / "good_submissions"
HOSTILE = Path(__file__).resolve().parent / "hostile"


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ref")


@pytest.mark.parametrize(
    "path, passed, words",
    [
        (GOOD / "adds_noise.py", True, "within the time budget"),
        (BAD / "raises.py", False, "this submission always fails"),
        (EXAMPLES / "do_nothing.py", False, "exactly the same model outputs"),
        # frozen clocks at import and 100 epochs of fine-tuning: timed from outside, too slow
        (HOSTILE / "patches_clock.py", False, "too slow"),
        (EXAMPLES / "bad_teacher.py", True,
         "declares 4 hyperparameters (lr, epochs, retain_fraction, temperature) for `harness "
         "tune bad_teacher`; these runs use the published defaults"),
    ],
)
def test_validate_explains_the_outcome(reference_root, path, passed, words):
    result = validate(path, get_task("digits"), runs=2, reference_root=reference_root)
    assert result.passed is passed
    assert any(words in finding for finding in result.findings), result.findings
    assert len(result.runs) == 2


def test_a_syntax_error_is_rejected_without_running(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def unlearning(net, retain, forget, val)\n    pass\n")
    result = validate(path, get_task("digits"), reference_root=tmp_path / "ref")
    assert not result.passed and result.runs == []
    assert "syntax error" in result.findings[0] and "line 1" in result.findings[0]
    assert not (tmp_path / "ref").exists()  # nothing was trained


def test_a_too_slow_submission_is_reported(reference_root, tmp_path):
    path = tmp_path / "slow.py"
    path.write_text(
        "import time\n\ndef unlearning(net, retain, forget, val):\n    time.sleep(1.0)\n"
    )
    result = validate(path, get_task("digits"), runs=1, reference_root=reference_root)
    assert not result.passed
    assert any("too slow" in finding for finding in result.findings)


def test_validate_runs_and_times_in_the_workers_it_is_given(tmp_path, monkeypatch):
    """``jobs`` workers (``--workers-per-device`` on a GPU task) serve the runs and the
    yardstick alike, so the budget is measured under the runs' concurrency (the pool itself is
    tested in test_runner.py; here only that validate hands it ``jobs``)."""
    import sys

    module = sys.modules["harness.pipeline.validate"]
    seen = []

    class Stop(Exception):
        pass

    def recording_pool(task, original_path, jobs=1, **options):
        seen.append(jobs)
        raise Stop

    monkeypatch.setattr(module, "WorkerPool", recording_pool)
    task = get_task("digits")
    quick = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=1))
    with pytest.raises(Stop):
        validate(GOOD / "adds_noise.py", quick, runs=2, reference_root=tmp_path, jobs=3)
    assert seen == [3]
