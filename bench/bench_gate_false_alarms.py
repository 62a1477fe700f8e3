"""How often the regression gate fails unchanged code: false alarms over reruns.

    .venv/bin/python bench/bench_gate_false_alarms.py [--reruns 5] [-n 64]
                                                      [--submissions kookmin fanchuan ...]

Copies the harness and the named submissions into a temporary folder, scores a baseline there
(public split, no ceiling), then re-scores the unchanged code --reruns times, each from a clean
cache (fresh pool and run records) and alternating --jobs between 1 and 2, and runs `harness
check` against the baseline every time. Prints each rerun's verdict, the largest |delta| seen,
and the number of false alarms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def harness(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=repo, env=env,
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reruns", type=int, default=5)
    parser.add_argument("-n", "--num-models", default="64")
    parser.add_argument("--submissions", nargs="*",
                        default=["kookmin", "fanchuan", "finetune", "do_nothing"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder)
        shutil.copytree(ROOT / "harness", repo / "harness",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (repo / "submissions").mkdir()
        for name in args.submissions:
            shutil.copy(ROOT / "submissions" / f"{name}.py", repo / "submissions")
        done = harness(repo, "score", "-n", args.num_models, "--split", "public", "--no-ceiling")
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        alarms, largest = 0, 0.0
        for rerun in range(args.reruns):
            jobs = str(1 + rerun % 2)
            done = harness(repo, "check", "--no-progress", "--jobs", jobs, "--reference-root",
                           f"ref-{rerun}", "--output", f"out-{rerun}")
            deltas = [abs(float(line.split()[4])) for line in done.stdout.splitlines()
                      if line.startswith("public") and line.split()[4] != "-"]
            largest = max([largest, *deltas])
            alarms += done.returncode != 0
            verdict = "PASS" if done.returncode == 0 else "FALSE ALARM"
            print(f"rerun {rerun + 1} (--jobs {jobs}): {verdict}; largest |delta| "
                  f"{max(deltas, default=0.0):.5f}")
            if done.returncode:
                print(done.stdout[-1500:])
        print(f"{alarms} false alarm(s) in {args.reruns} reruns; largest |delta| {largest:.5f}")


if __name__ == "__main__":
    main()
