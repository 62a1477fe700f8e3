"""Harness overhead per run: everything except the submission's own function.

Runs a submission that returns immediately M times through long-lived workers, as the scorer
does: each run a process forked by the ingestion process (a fresh model copy and loaders, the
submission imported, its weights handed back, every process of the run ended), the weights
evaluated in the evaluation process, the result sent back and appended to the results store. It
prints the wall time per run beyond the submission's own. Target: under 20 ms on the default
task. ``bench/bench_isolation.py`` compares it with an earlier revision side by side.

    .venv/bin/python bench/bench_runner.py [--runs 300] [--jobs 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.core.seeds import run_seed
from harness.execution.records import OK
from harness.execution.runner import RunRequest, WorkerPool
from harness.execution.store import ResultsStore
from harness.methods.loading import inspect_submission
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task

IMMEDIATE = "def unlearning(net, retain, forget, val):\n    return net\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--task", default="digits")
    parser.add_argument("--sandbox", default="auto", choices=["auto", "on", "off"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        task = get_task(args.task)
        store = ReferenceStore(task, task.load_data(), tmp / "ref")
        store.original_model()
        path = tmp / "immediate.py"
        path.write_text(IMMEDIATE)
        submission = inspect_submission(path)
        results = ResultsStore(tmp / "results")
        results.ensure_writable()
        requests = [
            RunRequest(submission, i, run_seed(task.seed, submission.name, i))
            for i in range(args.runs)
        ]
        finished = []

        def on_result(result):
            results.append(result)
            finished.append(result)

        with WorkerPool(task, store.directory / "original.pt", jobs=args.jobs,
                        sandbox=args.sandbox) as workers:
            workers.run(requests[:5], lambda r: None)  # workers started and warm
            start = time.perf_counter()
            workers.run(requests, on_result)
            wall = time.perf_counter() - start

    assert all(r.status == OK for r in finished), {r.status for r in finished}
    inside = sum(r.seconds for r in finished)
    per_run_ms = 1000 * (wall - inside / args.jobs) / args.runs
    print(f"task {args.task}, {args.runs} runs, {args.jobs} worker(s)")
    print(f"wall time {wall:.3f} s; submission's own time {inside * 1000 / args.runs:.3f} ms/run")
    print(f"harness overhead: {per_run_ms:.2f} ms per run (target < 20 ms)")


if __name__ == "__main__":
    main()
