"""The regression gate against real regressions, injected into a copy of the repository: each
must make `harness check` fail naming the submission (injections in different files in one
check, two checks in all), and unchanged code re-scored from a clean cache with another --jobs
must pass.

The copy holds the harness and four shipped submissions; the baseline is scored there at N = 32
on the public split (at N = 32 the guarded scores already stand clear of their noise, which the
fixture checks). Every check runs the real command in a subprocess, so the changed files are
what the workers import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ("kookmin", "fanchuan", "finetune", "do_nothing")
N = "32"

pytestmark = pytest.mark.slow


def harness(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=repo, env=env, capture_output=True,
        text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "harness", repo / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "submissions").mkdir()
    for name in SUBMISSIONS:
        shutil.copy(ROOT / "submissions" / f"{name}.py", repo / "submissions")
    # a budget no run reaches: this test is about scores, and a busy machine must not turn a
    # timing verdict into a regression
    done = harness(repo, "score", "-n", N, "--split", "public", "--no-ceiling", "--jobs", "2",
                   "--budget", "1e9", "--timeout", "600")
    assert done.returncode == 0, done.stderr[-2000:]
    board = pd.read_csv(repo / "leaderboard.csv").set_index("submission")
    # the guarded scores must stand clear of their own noise, or the test proves nothing
    for name in ("kookmin", "fanchuan", "finetune"):
        assert board.loc[name, "final_score"] > 3 * 2**0.5 * board.loc[name, "final_score_se"]
    return repo


def check(repo: Path, *extra: str) -> subprocess.CompletedProcess:
    return harness(repo, "check", "--baseline", "leaderboard.csv", "--no-progress",
                   "--budget", "1e9", "--timeout", "600", *extra)


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    return text


INJECTIONS = {
    # a method turned into a no-op through the shared module it imports
    "no-op in the toolkit": ("harness/methods/toolkit.py", '''    device = device_of(net)
    forget_batches = rebatch(forget)
''', '''    return net.eval()
    device = device_of(net)
    forget_batches = rebatch(forget)
''', "fanchuan"),
    "constant weakened": ("submissions/kookmin.py", "reinit_fraction=0.3",
                          "reinit_fraction=0.01", "kookmin"),
    "utility collapsed": ("submissions/kookmin.py", "    return net.eval()\n",
                          "    with torch.no_grad():\n        for p in net.parameters():\n"
                          "            p.add_(torch.randn_like(p))\n    return net.eval()\n",
                          "kookmin"),
    "starts failing": ("submissions/finetune.py", "    device = next(net.parameters()).device",
                       "    raise RuntimeError('broken by a refactoring')", "finetune"),
}


# Injections in different files are checked together: each victim is judged by its own row, and
# rows that another injection did not change come out the same (their runs are reproduced, not
# tested). Together is no easier to catch than alone: Holm's correction over more changed rows
# asks each for at least as much. Two rounds, since two injections edit kookmin; the second also
# removes a submission.
ROUNDS = {
    "toolkit no-op, constant weakened, starts failing": (
        ["no-op in the toolkit", "constant weakened", "starts failing"], None),
    "utility collapsed, a submission removed": (["utility collapsed"], "do_nothing"),
}


@pytest.mark.parametrize("round_", list(ROUNDS))
def test_injected_regressions_fail_the_check_naming_each_submission(repo, round_):
    injections, removed = ROUNDS[round_]
    originals = {}
    try:
        for injection in injections:
            relative, old, new, _ = INJECTIONS[injection]
            assert relative not in originals, "one injection per file and round"
            originals[relative] = edit(repo / relative, old, new)
        if removed is not None:
            path = repo / "submissions" / f"{removed}.py"
            originals[path.relative_to(repo).as_posix()] = path.read_text()
            path.unlink()
        done = check(repo)
    finally:
        for relative, text in originals.items():
            (repo / relative).write_text(text)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    victims = {INJECTIONS[injection][3] for injection in injections}
    for victim in victims:
        assert f"FAIL: {victim} (public)" in done.stdout, done.stdout[-3000:]
    if removed is not None:
        assert f"FAIL: {removed} (public): missing" in done.stdout
    untouched = set(SUBMISSIONS) - victims - {removed}
    for name in untouched:  # no injection reaches another submission's row
        assert f"FAIL: {name} " not in done.stdout, done.stdout[-3000:]


def test_unchanged_code_from_a_clean_cache_with_other_jobs_passes(repo):
    # 3 workers where the baseline had 2 (1 would prove the same, at twice CI's time)
    done = check(repo, "--jobs", "3", "--reference-root", "fresh-ref", "--output", "fresh-out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "PASS" in done.stdout
    # every score was reproduced exactly, not merely within the tolerance
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("public")]
    assert rows and all(row[4] in ("+0.00000", "-") for row in rows), done.stdout
