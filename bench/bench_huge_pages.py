"""When does collapsing the ingestion process's memory into huge pages pay for itself?

Every run is a fork of the ingestion process (``harness.execution.ingestion``). A fork copies one
page-table entry per 4 KiB page of its private memory and the run's exit releases each again;
backed by 2 MiB pages (``collapse_into_huge_pages``) there are 512 times fewer. The collapse
itself costs time once. This sets up a process as the ingestion process is set up (torch, the
toolkit, the digits model, one warm-up step, frozen garbage), then times ``--forks`` forks of a
child that does a little torch work and exits (fork to reaped), collapses, and times as many
again, alternating blocks of 25 so that a change in the machine's load hits both. It prints the
collapse's wall and CPU seconds, the median fork with each kind of page, and the number of runs
after which the collapse has paid for itself (``ingestion.COLLAPSE_AFTER_RUNS`` is chosen from
it).

    .venv/bin/python bench/bench_huge_pages.py [--forks 400]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

import torch

from harness.execution.ingestion import collapse_into_huge_pages, warm_up
from harness.methods import toolkit
from harness.tasks import get_task

BLOCK = 25


def fork_seconds(count: int) -> list[float]:
    """Wall seconds of ``count`` forks, each from fork to reaped, the child adding two tensors."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0 if (torch.ones(64) + 1).sum().item() == 128 else 1)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--forks", type=int, default=400, help="forks timed with each kind")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("digits")
    data = task.load_data()
    toolkit.set_current_task(task)
    model = task.make_model().eval()
    warm_up(model, task, data)
    gc.collect()
    gc.freeze()
    small = fork_seconds(args.forks)
    wall, cpu = time.perf_counter(), time.process_time()
    asked = collapse_into_huge_pages()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    huge = fork_seconds(args.forks)
    # the same again with the kinds interleaved is not possible (a collapse cannot be undone);
    # instead report each half's median and the spread of the 4 KiB blocks among themselves
    blocks = [statistics.median(small[i:i + BLOCK]) for i in range(0, len(small), BLOCK)]
    before, after = statistics.median(small), statistics.median(huge)
    print(f"collapse: {asked / 2**20:.0f} MiB asked, {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"fork to reaped, median of {args.forks}: 4 KiB pages {before * 1e3:.2f} ms "
          f"(blocks of {BLOCK}: {min(blocks) * 1e3:.2f} to {max(blocks) * 1e3:.2f}), huge pages "
          f"{after * 1e3:.2f} ms")
    if before > after:
        print(f"the collapse pays for itself after {wall / (before - after):.0f} runs")
    else:
        print("huge pages made forks no cheaper here (an older kernel, or none free)")


if __name__ == "__main__":
    main()
