"""This checkout's ``metric.epsilons`` against an earlier revision's, side by side, same inputs.

    .venv/bin/python bench/bench_metric_speed.py --baseline a92d813 [--examples 200] [--repeats 7]

The earlier revision's ``harness/evaluation/metric.py`` is loaded from a temporary git worktree
(``checkouts.side_by_side``) into this process next to this checkout's. Both run on bench_metric's
inputs (``make_inputs``) at N = 8, 64 and 512 models per side, alternating call by call so that a
busy machine slows both alike; each time is the best of the repeats, in CPU seconds of this
process. Prints milliseconds per forget example and the ratio, and checks that both give the same
epsilons bit for bit (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metric import make_inputs  # noqa: E402
from checkouts import side_by_side  # noqa: E402

from harness.evaluation import metric  # noqa: E402


def _load_metric(checkout: Path):
    path = checkout / "harness" / "evaluation" / "metric.py"
    spec = importlib.util.spec_from_file_location("earlier_metric", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_ms_per_example(epsilons, u: np.ndarray, r: np.ndarray) -> tuple[float, np.ndarray]:
    start = time.process_time()
    result = epsilons(u, r)
    return (time.process_time() - start) * 1e3 / u.shape[1], result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the earlier revision (git)")
    parser.add_argument("--examples", type=int, default=200, help="forget examples per N")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", type=int, nargs="+", default=[8, 64, 512])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with side_by_side(args.baseline) as checkouts:
        earlier = _load_metric(checkouts["earlier"][0])
    print(f"ms per forget example (CPU, best of {args.repeats}), {args.examples} examples; "
          f"earlier = {args.baseline}")
    print(f"{'N':>5} {'earlier':>9} {'this':>9} {'ratio':>7}  equal")
    agree = True
    for n in args.models:
        u, r = make_inputs(n, args.examples, args.seed)
        earlier.epsilons(u[:, :2], r[:, :2])  # builds the cached tables for this N
        metric.epsilons(u[:, :2], r[:, :2])
        best = {"earlier": np.inf, "this": np.inf}
        results = {}
        for _ in range(args.repeats):
            for name, module in (("earlier", earlier), ("this", metric)):
                ms, results[name] = _cpu_ms_per_example(module.epsilons, u, r)
                best[name] = min(best[name], ms)
        equal = bool(np.array_equal(results["earlier"], results["this"]))
        agree &= equal
        ratio = best["earlier"] / best["this"]
        print(f"{n:5d} {best['earlier']:9.3f} {best['this']:9.3f} {ratio:6.1f}x  {equal}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
