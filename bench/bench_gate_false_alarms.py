"""The paired regression gate (``harness.evaluation.gate``): its false alarms, its power, and why.

    .venv/bin/python bench/bench_gate_false_alarms.py seeds [-n 64] [--split private]
        [--seeds 1 2 3 4 5] [--submissions kookmin fanchuan ...] [--baseline leaderboard.csv]
    .venv/bin/python bench/bench_gate_false_alarms.py halved-lr [-n 512] [--split private]
    .venv/bin/python bench/bench_gate_false_alarms.py parts --records results/digits-KEY
        --pool reference_models/digits-KEY [--leaderboard leaderboard.csv] [--split private]
    .venv/bin/python bench/bench_gate_false_alarms.py halves --records results/digits-KEY
        --pool reference_models/digits-KEY [--partitions 3]

``seeds``: copies the harness and the submissions (all shipped ones by default, with their tuned
settings) into a temporary folder, scores a baseline there (no ceiling; a budget no run reaches),
then runs ``harness check --run-seed R`` for each R: the same code and pool, other seeds for the
runs. With ``--baseline leaderboard.csv`` it checks that board in this checkout instead (at the
board's N; the seeds' run records go to ``--output``, where a second call reuses them). Every row
is re-run, so every row is tested; a failing check is a false alarm. Prints each seed's verdict and
smallest Holm-adjusted p, each row's scores over the baseline and the seeds with their sd beside
the runs' bootstrap standard error, the false alarms over seeds and over row tests, and the mean
and spread of the paired z = delta / se over all row tests (0 and 1 if the runs' bootstrap measures
the seed-to-seed spread).

``halved-lr``: scores kookmin alone as the baseline, halves every epoch's learning rate in a COPY
of submissions/kookmin.py (``_epoch_lrs``), and runs ``harness check``; prints its output.

``halves``: false alarms at N/2 without running anything: the N recorded runs of each row split in
two disjoint halves (runs 0..N/2-1 against the rest, then random splits), each half scored
against the first N/2 pool models, and the paired test applied between the halves as the gate
applies it (Holm over the rows).

``parts``: the variance parts of each row's final score, from the recorded runs of a scoring
(any provenance; the latest ok record of each run) and its pool, computed directly: examples (the
forget examples resampled, 2000 times), pool (the reference models resampled, runs fixed) and
runs (the runs resampled, pool fixed; what the gate uses), 20 replicates each. Beside them: the
old unpaired tolerance (3 sqrt(2) x the board's standard error, or the sum of the parts where no
board is given), the paired standard error sqrt(2) x runs, and the smallest drop the gate detects
(``harness.evaluation.gate.detectable_drop``): with half and with 80% probability, one row tested.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.core import files  # noqa: E402
from harness.core.seeds import derive_seed  # noqa: E402
from harness.evaluation.gate import LEVEL, detectable_drop, gate_row, holm, paired  # noqa: E402
from harness.evaluation.metric import epsilons, final_score, points  # noqa: E402
from harness.evaluation.model_stats import ModelStats  # noqa: E402

HALVED = ("    return [lr if k == peak else lr * k / peak for k in steps]",
          "    return [0.5 * (lr if k == peak else lr * k / peak) for k in steps]")


def harness(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=repo, env=env,
                          capture_output=True, text=True)


def copy_repo(repo: Path, names: list[str] | None) -> list[str]:
    shutil.copytree(ROOT / "harness", repo / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "submissions", repo / "submissions",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shipped = sorted(p.stem for p in (repo / "submissions").glob("*.py"))
    for stem in set(shipped) - set(names or shipped):
        (repo / "submissions" / f"{stem}.py").unlink()
    return sorted(names or shipped)


def baseline(repo: Path, args: argparse.Namespace, *only: str) -> None:
    extra = ["--only", *only] if only else []
    done = harness(repo, "score", "-n", args.num_models, "--split", args.split, "--no-ceiling",
                   "--budget", "1e9", "--jobs", args.jobs, "--reference-root",
                   args.reference_root, "--output", args.output, *extra)
    if done.returncode:
        sys.exit(done.stderr[-3000:])


def check(repo: Path, args: argparse.Namespace, *extra: str) -> subprocess.CompletedProcess:
    return harness(repo, "check", "--no-progress", "--split", args.split, "--budget", "1e9",
                   "--jobs", args.jobs, "--reference-root", args.reference_root, "--output",
                   args.output, *extra)


ROW = re.compile(r"^(public|private)\s+(\(.*?\)|\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)"
                 r"\s+(.+)$")


def scores_now(stdout: str) -> dict[str, tuple[float, float]]:
    """(baseline, now) of each row of a check's table."""
    return {m.group(2): (float(m.group(3)), float(m.group(4)))
            for m in map(ROW.match, stdout.splitlines()) if m and m.group(4) != "-"}


def tested_rows(stdout: str) -> list[tuple[str, float, float, float, str]]:
    """(submission, delta, half-width of the 95% interval, Holm p, verdict) of each tested row."""
    out = []
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match and match.group(7) != "-":
            lo, hi = (float(x) for x in match.group(6).split(".."))
            out.append((match.group(2), float(match.group(5)), (hi - lo) / 2,
                        float(match.group(7)), match.group(8).strip()))
    return out


def cmd_seeds(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if args.baseline:  # the committed board, in this checkout
            repo, board = ROOT, Path(args.baseline).resolve()
            extra = ("--baseline", str(board))
        else:
            repo, board, extra = Path(folder), Path(folder) / "leaderboard.csv", ()
            copy_repo(repo, args.submissions)
            baseline(repo, args)
        alarms, row_tests, row_alarms, z, spread = 0, 0, 0, [], {}
        for seed in args.seeds:
            done = check(repo, args, "--run-seed", str(seed), *extra)
            if done.returncode not in (0, 1):
                sys.exit(done.stderr[-3000:])
            for name, (before, now) in scores_now(done.stdout).items():
                spread.setdefault(name, [before]).append(now)
            rows = tested_rows(done.stdout)
            alarms += done.returncode == 1
            row_tests += len(rows)
            row_alarms += sum(verdict == "DROP" for *_, verdict in rows)
            z += [delta / (half / 1.959964) for _, delta, half, _, _ in rows if half > 0]
            smallest = min((p for *_, p, _ in rows), default=math.nan)
            print(f"run seed {seed}: {'FALSE ALARM' if done.returncode else 'pass'}; "
                  f"{len(rows)} row(s) tested, smallest Holm p {smallest:.3f}", flush=True)
            if done.returncode:
                print(done.stdout[-2500:])
        import pandas as pd

        gate = pd.read_csv(board.with_suffix(".gate.csv"))
        gate = gate[gate["split"] == args.split].set_index("submission")
        print("row: the baseline's score, then each seed's; their sd; the bootstrap's se; ratio")
        ratios = []
        for name, values in spread.items():
            sd, se = np.std(values, ddof=1), gate.loc[name, "runs_se"]
            if se > 0 and sd > 0:  # sd 0: the same runs every time (a reference row), not tested
                ratios.append((sd / se) ** 2)
            print(f"  {name}: {' '.join(f'{v:.5f}' for v in values)}; sd {sd:.5f}; bootstrap se "
                  f"{se:.5f}; {sd / se if se > 0 else math.nan:.2f}")
        print(f"variance over seeds / bootstrap variance, mean over {len(ratios)} rows: "
              f"{np.mean(ratios):.2f}")
        print(f"N = {gate['num_models'].iloc[0]}, {args.split} split, {len(spread)} rows, level "
              f"{LEVEL}: {alarms} false alarm(s) in {len(args.seeds)} seeds; {row_alarms} of "
              f"{row_tests} row tests failed; paired z over the row tests: mean "
              f"{np.mean(z):+.2f}, sd {np.std(z, ddof=1):.2f} (n = {len(z)})")


def cmd_halved_lr(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder)
        copy_repo(repo, ["kookmin"])
        baseline(repo, args, "kookmin")
        path = repo / "submissions" / "kookmin.py"
        text = path.read_text()
        if HALVED[0] not in text:
            sys.exit(f"{HALVED[0]!r} not in kookmin.py: the edit no longer applies")
        path.write_text(text.replace(*HALVED))
        done = check(repo, args)
        print(f"N = {args.num_models}, {args.split} split, kookmin's learning-rate schedule "
              f"halved: harness check exit {done.returncode}")
        print(done.stdout)


def recorded(runs: Path, name: str) -> ModelStats | None:
    """The latest ok record of each run of ``name`` (any provenance), all runs or None."""
    latest = {}
    for line in (runs / f"{name}.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("status") == "ok":
            latest[record["run_index"]] = record
    if not latest or sorted(latest) != list(range(len(latest))):
        return None
    rows = [latest[i] for i in range(len(latest))]
    return ModelStats(
        np.array([r["confidences"] for r in rows]), np.array([r["retain_acc"] for r in rows]),
        np.array([r["test_acc"] for r in rows]), np.array([r["forget_acc"] for r in rows]),
        np.array([r["seconds"] for r in rows]))


def parts(stats: ModelStats, pool: ModelStats, seed: int, replicates: int = 20) -> dict:
    """Standard errors of the final score from each part, resampled alone."""
    row = gate_row(stats, pool, seed, replicates)
    ratio = row.final_score / row.points.mean() if row.points.mean() > 0 else 0.0
    rng = np.random.default_rng(seed + 1)
    e = len(row.points)
    examples = row.points[rng.integers(0, e, (2000, e))].mean(axis=1) * ratio
    n_r, n_u = len(pool), len(stats)
    pooled = []
    for _ in range(replicates):
        draw = rng.integers(0, n_r, n_r)
        f = float(points(epsilons(stats.confidences, pool.confidences[draw]), n_u).mean())
        pooled.append(final_score(f, stats.retain_acc, pool.retain_acc[draw], stats.test_acc,
                                  pool.test_acc[draw]))
    return {"score": row.final_score, "examples": float(np.std(examples, ddof=1)),
            "pool": float(np.std(pooled, ddof=1)), "runs": row.runs_se}


def cmd_parts(args: argparse.Namespace) -> None:
    import pandas as pd
    from joblib import Parallel, delayed

    pool = ModelStats.concatenate([ModelStats(**files.read_npz(p))
                                   for p in sorted(Path(args.pool).glob("pool-*.npz"))])
    runs = Path(args.records) / "runs"
    named = {p.stem: s for p in sorted(runs.glob("*.jsonl")) if (s := recorded(runs, p.stem))}
    named = {k: s for k, s in named.items() if len(s) == len(pool)}
    board = None
    if args.leaderboard:
        board = pd.read_csv(args.leaderboard)
        board = board[board["split"] == args.split].set_index("submission")
    found = Parallel(n_jobs=int(args.jobs))(
        delayed(parts)(s, pool, derive_seed(0, "bench-parts", k)) for k, s in named.items())
    table = pd.DataFrame(found, index=list(named)).sort_values("score", ascending=False)
    total = np.sqrt(table["examples"] ** 2 + table["pool"] ** 2 + table["runs"] ** 2)
    board_se = (board["final_score_se"].reindex(table.index) if board is not None else total)
    table["old tolerance"] = 3 * math.sqrt(2) * board_se.fillna(total)
    table["paired se"] = math.sqrt(2) * table["runs"]
    table["detects 50%"] = [detectable_drop(se) for se in table["runs"]]
    table["detects 80%"] = [detectable_drop(se, power=0.8) for se in table["runs"]]
    table["50% of score"] = table["detects 50%"] / table["score"]
    print(f"N = {len(pool)}, {len(table)} rows; standard errors of the final score by part "
          f"({args.records}, pool {args.pool})")
    with pd.option_context("display.width", 200, "display.float_format", "{:.5f}".format):
        print(table.to_string())


def halves(stats: ModelStats, pool: ModelStats, order: np.ndarray, seed: int) -> tuple:
    """(delta, se) of the paired test between the two halves of ``stats``' runs in ``order``
    against the first half of the pool: two disjoint sets of runs of the same code."""
    half = len(order) // 2
    a, b = (ModelStats(*(getattr(stats, f)[idx] for f in vars(stats))) for idx in
            (order[:half], order[half:]))
    small = ModelStats(*(getattr(pool, f)[:half] for f in vars(pool)))
    first, second = gate_row(a, small, seed), gate_row(b, small, seed + 1)
    return paired(first, second)


def cmd_halves(args: argparse.Namespace) -> None:
    from joblib import Parallel, delayed

    pool = ModelStats.concatenate([ModelStats(**files.read_npz(p))
                                   for p in sorted(Path(args.pool).glob("pool-*.npz"))])
    runs = Path(args.records) / "runs"
    named = {p.stem: s for p in sorted(runs.glob("*.jsonl")) if (s := recorded(runs, p.stem))}
    named = {k: s for k, s in named.items() if len(s) == len(pool)}
    n = len(pool)
    alarms, z, row_alarms = 0, [], 0
    for partition in range(args.partitions):
        # partition 0: runs 0..N/2-1 against N/2..N-1 (the runs of N/2 and those another run
        # seed would add); then random splits of the N runs into halves
        order = (np.arange(n) if partition == 0
                 else np.random.default_rng(partition).permutation(n))
        tests = Parallel(n_jobs=int(args.jobs))(
            delayed(halves)(s, pool, order, derive_seed(partition, "bench-halves", k))
            for k, s in named.items())
        adjusted = holm([t.p for t in tests])
        failed = [k for k, p, t in zip(named, adjusted, tests, strict=True)
                  if p <= LEVEL and t.delta < 0]
        alarms += bool(failed)
        row_alarms += len(failed)
        z += [t.delta / t.se for t in tests if t.se > 0]
        print(f"partition {partition}: {'FALSE ALARM ' + ', '.join(failed) if failed else 'pass'}"
              f"; smallest Holm p {min(adjusted):.3f}", flush=True)
    print(f"N = {n // 2} (halves of {n} recorded runs, first {n // 2} pool models), "
          f"{len(named)} rows, level {LEVEL}: {alarms} false alarm(s) in {args.partitions} "
          f"partitions; {row_alarms} of {len(z)} row tests failed; paired z: mean "
          f"{np.mean(z):+.2f}, sd {np.std(z, ddof=1):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("seeds", "halved-lr", "parts", "halves"):
        sub = commands.add_parser(name)
        sub.add_argument("-n", "--num-models", default="64" if name == "seeds" else "512")
        sub.add_argument("--split", default="private")
        sub.add_argument("--jobs", default="2")
        sub.add_argument("--reference-root", default=str(ROOT / "reference_models"),
                         help="pool cache (shared between runs of this benchmark)")
        sub.add_argument("--output", default="results",
                         help="run records (default: in the temporary copy); a folder given "
                         "here keeps them, and a second call reuses the baseline's runs")
    commands.choices["seeds"].add_argument("--seeds", type=int, nargs="+",
                                           default=[1, 2, 3, 4, 5])
    commands.choices["seeds"].add_argument("--submissions", nargs="*", default=None,
                                           help="default: every shipped submission")
    commands.choices["seeds"].add_argument(
        "--baseline", default=None,
        help="a board scored in this checkout (e.g. leaderboard.csv, with its gate file): "
        "checked as it is, at its N, instead of scoring a baseline in a copy")
    for name in ("parts", "halves"):
        commands.choices[name].add_argument("--records", required=True,
                                            help="a scoring's results folder (holding runs/)")
        commands.choices[name].add_argument("--pool", required=True,
                                            help="the reference folder of that scoring's pool")
    commands.choices["halves"].add_argument("--partitions", type=int, default=3)
    commands.choices["parts"].add_argument("--leaderboard", default=None,
                                           help="the board of that scoring (its standard errors)")
    args = parser.parse_args()
    {"seeds": cmd_seeds, "halved-lr": cmd_halved_lr, "parts": cmd_parts,
     "halves": cmd_halves}[args.command](args)


if __name__ == "__main__":
    main()
