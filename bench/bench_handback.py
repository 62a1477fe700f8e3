"""What handing back one model costs: a ResNet-18 (cifar10's model) from a run to its evaluation.

Times, on this machine's CPU, each step the harness does with a run's weights: the run's child
serialises the state dict (``torch.save`` to bytes), writes it to a pipe that the ingestion process
reads in frames (``harness.execution.ingestion``) and sends on to the evaluation process, which
loads it with ``torch.load(weights_only=True)``, checks it (``runner.weights_problem``) and loads
it into a model (one per evaluation process, every tensor replaced). The two pipe hops (run to
ingestion process, ingestion process to evaluation) are measured as one pipe, twice.

    .venv/bin/python bench/bench_handback.py [--task cifar10] [--repeats 10]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import os
import statistics
import time

import torch

from harness.execution.ingestion import PIPE_BYTES, read_frame, write_frame
from harness.execution.runner import _fold_reparametrisations, weights_problem
from harness.tasks import get_task


def through_a_pipe(payload: bytes) -> bytes:
    """``payload`` written to a pipe in a frame by another process and read here, as a run's
    weights travel (the ingestion process's pipe size)."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    writer = os.fork()
    if writer == 0:
        os.close(read_end)
        write_frame(write_end, payload)
        os._exit(0)
    os.close(write_end)
    received = read_frame(read_end, 2 * len(payload), time.monotonic() + 60)
    os.waitpid(writer, 0)
    os.close(read_end)
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="cifar10")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    task = get_task(args.task, device="cpu")
    model = task.make_model()
    steps: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        marks = [time.perf_counter()]
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        weights = buffer.getvalue()
        marks.append(time.perf_counter())
        received = through_a_pipe(through_a_pipe(weights))
        marks.append(time.perf_counter())
        state = torch.load(io.BytesIO(received), map_location="cpu", weights_only=True)
        marks.append(time.perf_counter())
        assert weights_problem(model, _fold_reparametrisations(state)) is None
        model.load_state_dict(state)
        marks.append(time.perf_counter())
        names = ["serialise (torch.save)", "two pipe hops", "torch.load(weights_only=True)",
                 "check and load the weights into the scored model"]
        for name, start, end in zip(names, marks[:-1], marks[1:], strict=True):
            steps.setdefault(name, []).append(end - start)
    size = len(weights) / 2**20
    print(f"{args.task}: {type(model).__name__}, state dict {size:.1f} MiB, "
          f"median of {args.repeats}")
    total = 0.0
    for name, seconds in steps.items():
        median = statistics.median(seconds) * 1000
        total += median
        print(f"  {name}: {median:.1f} ms")
    print(f"  total: {total:.1f} ms per run")


if __name__ == "__main__":
    main()
