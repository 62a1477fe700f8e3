"""The command line: a thin layer whose errors are one line and a non-zero exit."""

from pathlib import Path

import pytest

from harness.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"


def test_tasks_lists_the_tasks_and_shows_one_in_detail(capsys):
    assert main(["tasks"]) == 0
    assert "digits: The embedded default task" in capsys.readouterr().out
    assert main(["tasks", "digits"]) == 0
    assert "digits: N=512" in capsys.readouterr().out


def test_score_scores_the_final_ranking_by_default():
    from harness.cli import build_parser

    assert build_parser().parse_args(["score"]).split == "private"
    assert build_parser().parse_args(["score", "--split", "both"]).split == "both"


@pytest.mark.parametrize("argv", [["--help"], ["tasks"], ["score", "--bogus"]])
def test_the_quick_commands_import_no_heavy_module(argv):
    """``--help``, ``tasks`` and argument errors answer without importing torch, pandas or
    scipy (``bench/bench_cli_startup.py`` times them)."""
    import subprocess
    import sys

    code = ("import sys\nfrom harness.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'pandas', 'scipy', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


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


ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_table_is_the_committed_leaderboard():
    """The README's leaderboard table is generated from leaderboard.csv by `harness table
    --readme README.md`; after any re-scoring it must be regenerated, not edited."""
    from harness.cli import TABLE_END, TABLE_START
    from harness.outputs.leaderboard import markdown_table, read_leaderboard

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert shown == markdown_table(read_leaderboard(ROOT / "leaderboard.csv"))


def test_table_writes_between_the_markers_only(tmp_path, capsys):
    from harness.cli import TABLE_END, TABLE_START

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{TABLE_START}\nold\n{TABLE_END}\noutro\n")
    assert main(["table", "--leaderboard", str(ROOT / "leaderboard.csv"),
                 "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    (tmp_path / "plain.md").write_text("no markers")
    assert main(["table", "--leaderboard", str(ROOT / "leaderboard.csv"),
                 "--readme", str(tmp_path / "plain.md")]) == 2
    assert "markers" in capsys.readouterr().err


def test_progress_keeps_one_line_per_cluster_worker():
    import io

    from rich.console import Console

    from harness.cli import RichReporter

    with RichReporter(Console(file=io.StringIO(), width=120)) as reporter:
        reporter.stage("reference pool", 8)
        reporter.activity("tcp://a:1", "2 models trained")
        reporter.activity("tcp://b:1", "2 models trained")
        reporter.activity("tcp://a:1", "4 models trained")
        lines = [t.description for t in reporter.progress.tasks]
    assert lines == ["reference pool", "  tcp://a:1: 4 models trained",
                     "  tcp://b:1: 2 models trained"]


def test_progress_bars_show_the_stage_its_count_time_left_and_the_rate_where_asked():
    """The CLI's bars and the notebook's are one set of columns; only the CLI's carry a rate."""
    import io

    from rich.console import Console

    from harness.core.progress import progress_bars

    shown = {}
    for rate in (True, False):
        console = Console(file=io.StringIO(), width=120)
        with progress_bars(console, rate=rate, auto_refresh=False) as progress:
            fields = {"rate": "12.5/s"} if rate else {}
            progress.add_task("reference pool", total=8, completed=3, **fields)
        shown[rate] = console.file.getvalue()
    for text in shown.values():
        assert "reference pool" in text and "3/8" in text and "left" in text
    assert "12.5/s" in shown[True] and "/s" not in shown[False]


@pytest.mark.parametrize("command", [["score"], ["validate", "x.py"], ["check"], ["tune", "x"]])
def test_sandbox_on_without_bubblewrap_is_a_one_line_error(command, tmp_path, capsys,
                                                            monkeypatch):
    """``--sandbox on`` fails before any work where bwrap is missing; every command that runs
    submissions takes the option."""
    from harness.execution import sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    code = main([*command, "--sandbox", "on", "--reference-root", str(tmp_path / "ref")]
                + (["--baseline", str(EXAMPLES.parent / "leaderboard.csv")]
                   if command == ["check"] else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "bubblewrap" in err[0] and "--sandbox off" in err[0]
    assert not (tmp_path / "ref").exists()


def test_sandbox_auto_without_bubblewrap_says_so_once(monkeypatch, capsys):
    import argparse

    from harness.cli import sandbox_mode
    from harness.execution import sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    assert sandbox_mode(argparse.Namespace(sandbox="auto")) == "auto"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sandbox" in err[0]
    assert sandbox.resolve("auto") is False and sandbox.resolve("off") is False


def test_a_bwrap_that_cannot_start_a_sandbox_counts_as_none(monkeypatch, tmp_path):
    """Installed but refused its namespaces (some distributions forbid unprivileged ones):
    ``auto`` runs unsandboxed and says why, ``on`` fails with bwrap's own error."""
    from harness.execution import sandbox

    refusing = tmp_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                        "exit 1\n")
    refusing.chmod(0o755)
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(refusing))
    sandbox._start_problem.cache_clear()
    try:
        assert sandbox.resolve("auto") is False
        assert "No permissions to creating new namespace" in sandbox.unavailable_notice()
        with pytest.raises(sandbox.SandboxUnavailable, match="could not start a sandbox"):
            sandbox.resolve("on")
    finally:
        sandbox._start_problem.cache_clear()


def test_a_second_score_on_the_same_folders_waits_for_the_first(tmp_path, monkeypatch, capsys):
    """Two ``harness score`` on the same caches once both built the pool and ran every run; the
    second now waits for the first's lock, says so, and then finds the work done."""
    from lock_holder import hold

    from harness.cli import lock_path
    from harness.pipeline import scoring

    output, marker = tmp_path / "results", tmp_path / "first-done"
    holder = hold(lock_path(output), marker, 1.0)
    started = []

    def fake_score_splits(task, splits, submissions_dir, **kwargs):
        started.append(marker.exists())
        raise SystemExit(0)

    monkeypatch.setattr(scoring, "score_splits", fake_score_splits)
    with pytest.raises(SystemExit):
        main(["score", "--output", str(output), "--reference-root", str(tmp_path / "ref"),
              "--leaderboard", str(tmp_path / "lb.csv"), "--sandbox", "off"])
    holder.wait()
    assert started == [True]  # the scoring began only once the first had finished
    err = " ".join(capsys.readouterr().err.split())
    assert f"waiting for process {holder.pid}, which is working on {output.resolve()}" in err
    assert not output.exists()  # the lock lies elsewhere: nothing was created among the caches
