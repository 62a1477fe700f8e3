"""What a run's clock charges it on a busy machine, this checkout against an earlier revision.

Runs a shipped submission (``--submission``, fine-tuning by default) ``--runs`` times through
``--jobs`` workers (as ``harness score`` does: every core busy), in each checkout, alternating,
and prints per checkout the median of the judged seconds (what the budget compares), of the
run's CPU seconds, their ratio, and the runs per second. On a machine whose cores are all busy,
a run's wall time grows with whatever else runs beside it; the judged time should be the run's
own work, not the harness's.

    .venv/bin/python bench/bench_run_clock.py --baseline 1cf1d53 [--runs 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from checkouts import REPOSITORY, side_by_side

ONE_CHECKOUT = """
import json, sys, tempfile, time
from pathlib import Path
from harness.reference.pool import ReferenceStore
from harness.execution.runner import RunRequest, WorkerPool
from harness.core.seeds import run_seed
from harness.methods.loading import inspect_submission
from harness.tasks import get_task

if __name__ == "__main__":
    runs, jobs, path = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    with tempfile.TemporaryDirectory() as tmp:
        task = get_task("digits", num_models=runs)
        store = ReferenceStore(task, task.load_data(), Path(tmp))
        store.original_model()
        sub = inspect_submission(path)
        results = []
        with WorkerPool(task, store.directory / "original.pt", jobs=jobs) as pool:
            pool.run([RunRequest(sub, i, run_seed(0, "warm", i)) for i in range(2 * jobs)],
                     lambda r: None)
            start = time.perf_counter()
            pool.run([RunRequest(sub, i, run_seed(0, sub.name, i)) for i in range(runs)],
                     results.append)
            wall = time.perf_counter() - start
    print(json.dumps({"seconds": [r.seconds for r in results],
                      "cpu": [r.cpu_seconds for r in results], "per_second": runs / wall}))
"""


def measure(checkout, environment, runs: int, jobs: int, submission: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", ONE_CHECKOUT, str(runs), str(jobs),
         str(REPOSITORY / "submissions" / f"{submission}.py")],
        cwd=checkout, env=environment, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier revision (git)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--submission", default="finetune")
    args = parser.parse_args()
    measured: dict[str, list[dict]] = {}
    with side_by_side(args.baseline) as checkouts:
        for round_ in range(args.rounds):
            order = list(checkouts) if round_ % 2 == 0 else list(reversed(checkouts))
            for name in order:
                measured.setdefault(name, []).append(
                    measure(*checkouts[name], args.runs, args.jobs, args.submission))
    print(f"{args.submission}, {args.runs} runs x {args.rounds} rounds, {args.jobs} workers "
          f"(earlier = {args.baseline}): medians")
    for name, rounds in measured.items():
        judged = statistics.median(s for r in rounds for s in r["seconds"])
        cpu = statistics.median(s for r in rounds for s in r["cpu"])
        rate = statistics.median(r["per_second"] for r in rounds)
        print(f"{name:>8}: judged {judged * 1e3:.1f} ms, CPU {cpu * 1e3:.1f} ms, judged/CPU "
              f"{judged / cpu:.2f}, {rate:.1f} runs/s")


if __name__ == "__main__":
    main()
