"""Speed of harness.evaluation.metric.epsilons against the literal dense reference, side by side.

    .venv/bin/python bench/bench_metric.py [--examples E] [--models N] [--literal-examples L]

Builds realistic random statistics (N models per side, E forget examples: some with identical
distributions, some shifted, some with different spreads, all overlapping), times the literal
reference (tests/literal_metric.py) on the first L examples and the fast version on the same
examples, checks that they agree, and prints milliseconds per example and the speed ratio.
Exits with status 1 if they disagree.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.evaluation import metric  # noqa: E402


def _load_literal():
    path = ROOT / "tests" / "literal_metric.py"
    spec = importlib.util.spec_from_file_location("literal_metric", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_inputs(num_models: int, num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unlearned and retrained statistics [N, E], shaped like logit-scaled confidences."""
    rng = np.random.default_rng(seed)
    mean_r = rng.normal(2.0, 1.5, num_examples)
    std_r = rng.uniform(0.5, 3.0, num_examples)
    kind = rng.choice(3, size=num_examples, p=[0.3, 0.4, 0.3])
    mean_u = np.where(kind == 1, mean_r + rng.normal(0.0, 1.0, num_examples), mean_r)
    std_u = np.where(kind == 2, std_r * rng.uniform(0.5, 2.0, num_examples), std_r)
    unlearned = rng.normal(mean_u, std_u, size=(num_models, num_examples))
    retrained = rng.normal(mean_r, std_r, size=(num_models, num_examples))
    return unlearned, retrained


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=200, help="forget examples for the fast run"
    )
    parser.add_argument("--models", type=int, default=512, help="models per side (N)")
    parser.add_argument(
        "--literal-examples", type=int, default=3, help="examples timed with the literal version"
    )
    parser.add_argument("--repeats", type=int, default=5, help="fast repeats (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.examples < 1 or args.literal_examples < 1 or args.models < 2 or args.repeats < 1:
        parser.error("--examples, --literal-examples, --repeats must be >= 1 and --models >= 2")

    literal = _load_literal()
    num_examples = max(args.examples, args.literal_examples)
    unlearned, retrained = make_inputs(args.models, num_examples, args.seed)
    few = slice(0, args.literal_examples)
    u_few, r_few = unlearned[:, few], retrained[:, few]

    # Cold: the first call also builds the cached epsilon table for this N.
    fast_few, cold = _timed(metric.epsilons, u_few, r_few)
    slow_few, slow_time = _timed(literal.literal_epsilons, u_few, r_few)
    warm = min(_timed(metric.epsilons, u_few, r_few)[1] for _ in range(args.repeats))
    everything, all_time = _timed(metric.epsilons, unlearned, retrained)

    n_few = args.literal_examples
    slow_ms, warm_ms, cold_ms = (1e3 * t / n_few for t in (slow_time, warm, cold))
    diff = float(np.max(np.abs(fast_few - slow_few)))
    exact = bool(np.array_equal(fast_few, slow_few))
    print(f"N = {args.models} models per side; literal on {n_few} examples, fast on the same")
    print(f"literal : {slow_ms:10.1f} ms/example")
    print(
        f"fast    : {warm_ms:10.2f} ms/example (best of {args.repeats}; first call {cold_ms:.2f})"
    )
    print(f"speed-up: {slow_ms / warm_ms:10.0f}x (same examples, same run)")
    all_ms = 1e3 * all_time / num_examples
    print(f"fast    : {all_ms:10.2f} ms/example over {num_examples} examples")
    print(f"agree   : max |fast - literal| = {diff:.3g}, exactly equal: {exact}")
    print(f"epsilons: {np.array2string(fast_few, precision=4)} (literal examples)")
    f = float(metric.points(everything, args.models).sum() / num_examples)
    print(f"F       : {f:.4f} over {num_examples} examples")
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
