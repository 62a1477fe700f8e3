"""The command line: a thin layer whose errors are one line and a non-zero exit."""

from pathlib import Path

import pytest

from harness.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"


def test_tasks_lists_the_default_task(capsys):
    assert main(["tasks"]) == 0
    assert "digits: N=512" in capsys.readouterr().out


def test_unknown_task_is_a_one_line_error(capsys):
    assert main(["pool", "--status", "--task", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown task 'nope'" in err[0] and "digits" in err[0]


def test_unknown_submission_is_a_one_line_error(tmp_path, capsys):
    code = main([
        "score", "-n", "4", "--only", "nope", "--submissions", str(EXAMPLES),
        "--reference-root", str(tmp_path / "ref"), "--output", str(tmp_path / "out"),
        "--leaderboard", str(tmp_path / "lb.csv"),
    ])
    assert code == 2
    assert "unknown submission(s): nope" in capsys.readouterr().err
    assert not (tmp_path / "lb.csv").exists()


def test_missing_baseline_is_a_one_line_error(tmp_path, capsys):
    assert main(["check", "--baseline", str(tmp_path / "missing.csv")]) == 2
    assert "harness: error:" in capsys.readouterr().err


def test_pool_status_shows_the_cache(tmp_path, capsys):
    assert main(["pool", "-n", "4", "--status", "--reference-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "models_done: 0" in out and "models_total: 4" in out


@pytest.mark.slow
def test_pool_builds_then_reports_done(tmp_path, capsys):
    assert main(["pool", "-n", "4", "--reference-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "models_done: 4" in out and "original_model: True" in out
