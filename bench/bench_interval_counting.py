"""The two ways ``harness.evaluation.metric`` counts an example's interval attacks, side by side:
from the values' side (``_left_counts_reached``) and by searching every left end among the values.
Both give the same epsilons (checked here); this prints the milliseconds per forget example of each
at several N (models per side), from which ``metric._FEW_VALUES``, the crossover, is set.

    .venv/bin/python bench/bench_interval_counting.py [--examples 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metric import make_inputs  # noqa: E402

from harness.evaluation import metric  # noqa: E402


def per_example_ms(u: np.ndarray, r: np.ndarray, few_values: int, repeats: int) -> tuple:
    metric._FEW_VALUES = few_values
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = metric.epsilons(u, r)
        times.append((time.perf_counter() - start) * 1e3 / u.shape[1])
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("N per side, values: from the values' side, searching, ratio (ms per example)")
    for n in (8, 16, 32, 64, 96, 128, 512):
        u, r = make_inputs(n, args.examples, seed=n)
        values_ms, a = per_example_ms(u, r, 10**9, args.repeats)
        search_ms, b = per_example_ms(u, r, 0, args.repeats)
        if not np.array_equal(a, b):
            sys.exit(f"the two ways disagree at N = {n}")
        ratio = values_ms / search_ms
        print(f"{n:4d}, {2 * n:4d}: {values_ms:6.2f}, {search_ms:6.2f}, {ratio:.2f}")


if __name__ == "__main__":
    main()
