"""What a small scoring pays for its workers: start two workers and do M runs, this checkout
against an earlier revision side by side.

Each measurement is a fresh process that starts ``WorkerPool(jobs=2)`` on the default task (its
original model cached beforehand), runs a submission that returns at once M times and ends;
with ``--pools K``, it does so K times in a row in the same process, as a test suite's
scorings, a notebook's ``evaluate`` calls or ``--split both``'s two splits do. It
prints, per M, the median wall seconds and the machine's busy CPU seconds over the same time
(``/proc/stat``: the sandboxed processes are not all reaped by it, so its own rusage misses some;
run it on an otherwise quiet machine), the two checkouts alternating, and the ratios (this /
earlier). Small M is most tests and ``harness validate``; large M the default scoring.

    .venv/bin/python bench/bench_worker_start.py --baseline 7f5e930 [--runs 16 400] [--repeats 5]
        [--pools 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkouts import side_by_side

SCRIPT = """
import sys
from pathlib import Path
from harness.core.seeds import run_seed
from harness.execution.runner import RunRequest, WorkerPool
from harness.methods.loading import inspect_submission
from harness.reference.pool import ReferenceStore
from harness.tasks import get_task

if __name__ == "__main__":
    runs, root, folder = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    pools = int(sys.argv[4])
    task = get_task("digits")
    store = ReferenceStore(task, task.load_data(), root)
    store.original_model()
    path = folder / "returns_at_once.py"
    path.write_text("def unlearning(net, retain, forget, val):\\n    return net\\n")
    submission = inspect_submission(path)
    for _ in range(pools):
        done = []
        with WorkerPool(task, store.original_path, jobs=2) as workers:
            workers.run([RunRequest(submission, i, run_seed(task.root_seed, "r", i))
                         for i in range(runs)], done.append)
        assert len(done) == runs and all(r.status == "ok" for r in done), done[:1]
"""


def busy_seconds() -> float:
    """CPU seconds the machine has spent busy since boot, all cores (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(runs: int, checkout: Path, environment: dict, root: Path, folder: Path,
            pools: int = 1):
    """Wall seconds and the machine's busy CPU seconds of ``pools`` starts, each followed by
    ``runs`` runs, in one process."""
    before = busy_seconds()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", SCRIPT, str(runs), str(root), str(folder), str(pools)],
                   cwd=checkout, env=environment, check=True, capture_output=True)
    return time.perf_counter() - start, busy_seconds() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier revision (git)")
    parser.add_argument("--runs", type=int, nargs="+", default=[16, 400])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pools", type=int, default=1, help="pools started one after another")
    args = parser.parse_args()
    measured: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with side_by_side(args.baseline) as checkouts, tempfile.TemporaryDirectory() as scratch:
        roots = {name: Path(scratch) / name for name in checkouts}
        for name, (checkout, environment) in checkouts.items():  # the original models
            measure(1, checkout, environment, roots[name], Path(scratch))
        for repeat in range(args.repeats):
            order = list(checkouts) if repeat % 2 == 0 else list(reversed(checkouts))
            for runs in args.runs:
                for name in order:
                    value = measure(runs, *checkouts[name], roots[name], Path(scratch),
                                    args.pools)
                    measured.setdefault((runs, name), []).append(value)
    print(f"medians over {args.repeats} repeats (earlier = {args.baseline}); two workers, "
          f"{args.pools} pool(s) one after another in one process")
    for runs in args.runs:
        (w0, c0), (w1, c1) = (
            tuple(statistics.median(v[i] for v in measured[(runs, name)]) for i in (0, 1))
            for name in ("earlier", "this"))
        print(f"{args.pools} x (start + {runs} runs): wall {w0:.2f} -> {w1:.2f} s ({w1 / w0:.2f}), "
              f"CPU {c0:.2f} -> {c1:.2f} s ({c1 / c0:.2f})")


if __name__ == "__main__":
    main()
