"""What the paired CI gate needs of a scoring, and the paired test itself.

Why paired. ``harness check`` re-scores the same forget examples against the same reference pool
(both are fixed by the task's seeds), so a row's re-scored final score and its baseline share
everything but the submission's own runs. Conditioned on the examples and the pool, the
difference ``D = S_now - S_base`` of two scorings of the same method (say with other run seeds)
has mean 0 and variance ``Var_runs(S_now) + Var_runs(S_base)``: the example and pool parts of a
score's uncertainty, which make the leaderboard's intervals wide, cancel.

What is estimated. ``Var_runs(S)`` is a bootstrap over the runs with the pool and the examples
held fixed: the N runs are resampled with replacement, every example's epsilon is computed again,
and the final score ``F x (RA_U / RA_R)(TA_U / TA_R)`` is recomputed from the same resampled runs,
so the forgetting quality and the utility ratios move together (their covariance is kept; no
delta-method approximation is needed). ``REPLICATES`` replicates per row (a standard error from 20
replicates is itself uncertain by about 16%). Measured against real re-scorings with other run
seeds (``bench/bench_gate_false_alarms.py seeds``, README): at N = 512, the board's N, it matches
the seed-to-seed spread (five seeds: no false alarm in 80 row tests, paired z sd 1.04); at N = 64
it is too narrow for some methods (z sd 1.32, one row 3.5 to 5.6 standard errors below its
baseline in three of five seeds): with few runs, resampling them with replacement does not
reproduce how the best of the metric's attacks moves when runs are drawn afresh, and the test is
more sensitive than its nominal level.

The test. One-sided: a row fails when ``z = D / sqrt(se_base^2 + se_now^2)`` is significantly
below 0, with Holm's step-down correction over the rows tested at once (Holm 1979, "A simple
sequentially rejective multiple test procedure", Scand. J. Statist. 6: 65-70; valid under any
dependence between the rows) at family-wise level ``LEVEL``. Rows whose runs are the baseline's
(same numbers, fingerprinted) and whose score is the baseline's are reproduced, not tested: their
difference is 0 by construction, so they are not counted in the family. Rows whose runs are the
baseline's but whose score differs were changed by the scoring code itself, not by noise: any drop
fails.

Stored with the leaderboard (``leaderboard.gate.csv``, a few kilobytes): per split and row, the
fingerprints of the pool (its confidences on the forget examples and accuracies) and of the runs,
the final score, the runs' bootstrap standard error, and the per-example points (one character
each: bucket k of the official metric, worth 2**-k, or ``.`` for 0), which pin the forget set and
show which examples moved.

The sample. Each row also records what produced its runs (the run records' provenance digest:
the submission, the code it imports, the runner, the task, the data, the versions), the digest
of the code that turns runs into scores (``scorer``) and a fingerprint of its first
``SAMPLE_RUNS`` runs' numbers (``sample``). Where all three are unchanged, ``harness check``
re-runs only those first runs: the same code and settings give the same runs seed by seed, and
the sample shows that this machine reproduces them. Another CPU sums floating point in another
order (other vector units), trains another original model and no run comes out bit for bit the
same, so the sample is also kept as numbers (``SampleSummary``: per forget example the mean and
standard deviation of its confidences over the sampled runs, and the mean accuracies): a sample
that differs only by such rounding, every example's mean within ``SAMPLE_SHIFT`` of its standard
deviation and the accuracies within ``SAMPLE_ACCURACY``, is reproduced as well. Measured with the
kernels held to SSE (``ATEN_CPU_CAPABILITY=default``, ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``,
``ONEDNN_MAX_CPU_ISA=SSE41``: another original model too) against AVX2's, the largest shift of
the board's 17 submissions was 0.0027 standard deviations (``bench/bench_sample_across_cpus.py``);
runs drawn with other seeds move a mean by about ``1 / sqrt(SAMPLE_RUNS / 2)``, 0.25 of one. A
row whose sample differs more, or whose code changed, is re-run in full and tested. Only at
``N >= SAMPLE_MIN_MODELS``, where the sample saves most.

And the pool's numbers themselves (``leaderboard.gate.npz``, about 0.5 MB a split): the same
recipe and seeds train another pool on another CPU (floating point summed in another order by
other vector units; ``bench/bench_pool_across_cpus.py`` trains the pool with this machine's
kernels and with AVX2's and compares), and, observed once, in another process on the same
machine (README, "Where the pool is trained again"); a pool that differs cannot be paired with.
``harness check`` scores the re-run submissions against these committed numbers instead of a pool
trained where it runs, so the comparison is paired on any machine. The same file keeps each
row's ``SampleSummary`` (two numbers per forget example, about 2 kB a row).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core import files, sources
from harness.evaluation.metric import epsilons, final_score, points
from harness.evaluation.model_stats import ModelStats
from harness.tasks.base import fingerprint

REPLICATES = 20
LEVEL = 0.05  # family-wise, one-sided
CODES = "0123456789abcdefghijklmnopqrstuvwxyz"
ZERO = "."
COLUMNS = ["split", "submission", "num_models", "final_score", "pool", "runs", "runs_se",
           "replicates", "points"]
SAMPLE_COLUMNS = ["provenance", "scorer", "sample"]  # optional: a file without them re-runs all
SAMPLE_RUNS = 32  # a row's first runs that the check re-runs where its code is unchanged
SAMPLE_MIN_MODELS = 4 * SAMPLE_RUNS  # below this N every run is re-run
SAMPLE_SHIFT = 0.05  # largest shift of an example's mean confidence, in standard deviations
SAMPLE_SD_FLOOR = 0.01  # the standard deviation taken where the runs barely spread (do_nothing)
SAMPLE_ACCURACY = 1e-3  # largest shift of the sample's mean retain or test accuracy


@dataclass(frozen=True)
class GateRow:
    """One row's share of the paired gate: its score and what a paired comparison needs."""

    final_score: float
    points: np.ndarray  # [E] per-example points of the official metric
    runs_se: float  # bootstrap standard error of the final score over the runs (pool fixed)
    replicates: int
    pool: str  # fingerprint of the reference pool's numbers on this forget set
    runs: str  # fingerprint of the runs' numbers
    provenance: str = ""  # the runs' provenance digest ("" for the ceiling: no runs of code)
    scorer: str = ""  # digest of the code that turned the runs into the score
    sample: str = ""  # fingerprint of the first SAMPLE_RUNS runs ("" below SAMPLE_MIN_MODELS)
    # the sample's numbers, summarised (kept in ``leaderboard.gate.npz``; None where not known)
    summary: SampleSummary | None = None

    def can_sample(self, provenance: str, scorer: str) -> bool:
        """Whether the check may re-run only this row's sample: it has one, and its runs were
        produced and scored by the code that would produce and score them now."""
        return bool(self.sample) and (self.provenance, self.scorer) == (provenance, scorer)

    def sample_shift(self, sampled: ModelStats) -> float:
        """How far the re-run ``sampled`` runs lie from this row's sample: 0 for the same
        numbers, ``SampleSummary.shift`` where they differ, infinity where no summary is known."""
        if stats_fingerprint(_first_runs(sampled)) == self.sample:
            return 0.0
        if self.summary is None or len(sampled) < SAMPLE_RUNS:
            return math.inf
        return self.summary.shift(SampleSummary.of(sampled))


@dataclass(frozen=True)
class SampleSummary:
    """The first ``SAMPLE_RUNS`` runs' numbers as the check compares them across machines: per
    forget example the mean and standard deviation of the confidences, and the mean retain and
    test accuracies (the module docstring, "The sample")."""

    mean: np.ndarray  # [E]
    sd: np.ndarray  # [E], ddof 1
    retain_acc: float
    test_acc: float

    @classmethod
    def of(cls, stats: ModelStats) -> SampleSummary:
        first = _first_runs(stats)
        confidences = np.asarray(first.confidences, dtype=np.float64)
        return cls(confidences.mean(axis=0), confidences.std(axis=0, ddof=1),
                   float(np.mean(first.retain_acc)), float(np.mean(first.test_acc)))

    def shift(self, other: SampleSummary) -> float:
        """The largest shift of an example's mean confidence from this summary's, in this
        summary's standard deviations (at least ``SAMPLE_SD_FLOOR``), or infinity where another
        number of examples was summarised or an accuracy moved by more than
        ``SAMPLE_ACCURACY``. Reproduced where at most ``SAMPLE_SHIFT``."""
        moved = np.abs([other.retain_acc - self.retain_acc, other.test_acc - self.test_acc])
        if other.mean.shape != self.mean.shape or not np.all(moved <= SAMPLE_ACCURACY):
            return math.inf
        scale = np.maximum(self.sd, SAMPLE_SD_FLOOR)
        shift = float(np.max(np.abs(other.mean - self.mean) / scale, initial=0.0))
        return shift if math.isfinite(shift) else math.inf


def stats_fingerprint(stats: ModelStats) -> str:
    """What identifies a set of models' numbers for the metric (confidences and accuracies; the
    first ``SAMPLE_RUNS`` of a row's runs give its ``sample_fingerprint``)."""
    return fingerprint(stats.confidences, stats.retain_acc, stats.test_acc)


def sample_fingerprint(stats: ModelStats) -> str:
    """The fingerprint of the first ``SAMPLE_RUNS`` runs' numbers, or "" below
    ``SAMPLE_MIN_MODELS`` runs."""
    if len(stats) < SAMPLE_MIN_MODELS:
        return ""
    return stats_fingerprint(_first_runs(stats))


def with_sample(row: GateRow, stats: ModelStats, provenance: str, scorer: str) -> GateRow:
    """``row`` with what the check's sample needs of its runs ``stats``: the code that
    produced and scored them, and the first ``SAMPLE_RUNS`` runs' fingerprint and summary (none
    below ``SAMPLE_MIN_MODELS`` runs)."""
    sample = sample_fingerprint(stats)
    return replace(row, provenance=provenance, scorer=scorer, sample=sample,
                   summary=SampleSummary.of(stats) if sample else None)


def _first_runs(stats: ModelStats, runs: int = SAMPLE_RUNS) -> ModelStats:
    """The numbers of the first ``runs`` models of ``stats``."""
    return ModelStats(**{name: values[:runs] for name, values in stats.to_arrays().items()})


def gate_row(
    stats: ModelStats, pool: ModelStats, seed: int, replicates: int = REPLICATES
) -> GateRow:
    """Per-example points of ``stats`` (runs) against ``pool``, and the bootstrap of the final
    score over the runs with the pool and the forget examples fixed (see the module docstring)."""
    unlearned = np.asarray(stats.confidences, dtype=np.float64)
    reference = np.asarray(pool.confidences, dtype=np.float64)
    n = unlearned.shape[0]
    per_example = points(epsilons(unlearned, reference), n)
    score = final_score(float(per_example.mean()), stats.retain_acc, pool.retain_acc,
                        stats.test_acc, pool.test_acc)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(replicates):
        own = rng.integers(0, n, n)
        f = float(points(epsilons(unlearned[own], reference), n).mean())
        draws.append(final_score(f, stats.retain_acc[own], pool.retain_acc, stats.test_acc[own],
                                 pool.test_acc))
    se = float(np.std(draws, ddof=1)) if replicates > 1 else 0.0
    return GateRow(score, per_example, se, replicates, stats_fingerprint(pool),
                   stats_fingerprint(stats))


def gate_rows(
    scored: dict[str, ModelStats],
    pool: ModelStats,
    seeds: dict[str, int],
    directory: Path,
    jobs: int = 1,
    known: dict[str, GateRow] | None = None,
) -> dict[str, GateRow]:
    """``gate_row`` of every scored set of models, in ``jobs`` processes. A row of ``known``
    (the baseline's) with the same pool and runs is taken as it is (the same numbers would come
    out); others are cached in ``directory`` under a hash of what they depend on."""
    known = known or {}
    pool_print = stats_fingerprint(pool)
    source = sources.code_digest([Path(__file__)], [sources.PACKAGE])  # and the metric it imports
    found, todo, paths = {}, [], {}
    for name, stats in scored.items():
        runs_print = stats_fingerprint(stats)
        old = known.get(name)
        if old is not None and (old.pool, old.runs) == (pool_print, runs_print):
            found[name] = old
            continue
        paths[name] = directory / (
            f"{name}-{files.config_hash([pool_print, runs_print, seeds[name], REPLICATES, source])}"
            ".npz")
        arrays = files.read_npz_or_none(paths[name])
        if arrays is None:
            todo.append(name)
        else:
            found[name] = GateRow(
                float(arrays["final_score"]), arrays["points"], float(arrays["runs_se"]),
                int(arrays["replicates"]), pool_print, runs_print)
    if todo:
        from joblib import Parallel, delayed

        computed = Parallel(n_jobs=max(1, min(jobs, len(todo))))(
            delayed(gate_row)(scored[name], pool, seeds[name]) for name in todo)
        for name, row in zip(todo, computed, strict=True):
            files.write_npz(paths[name], {
                "final_score": np.float64(row.final_score), "points": row.points,
                "runs_se": np.float64(row.runs_se), "replicates": np.int64(row.replicates)})
            found[name] = row
    return found


# -- the file beside the leaderboard -------------------------------------------------------------
def gate_path(leaderboard: Path) -> Path:
    """Where a leaderboard's gate data lies: beside it (``leaderboard.gate.csv``)."""
    return Path(leaderboard).with_suffix(".gate.csv")


def encode_points(values: np.ndarray) -> str:
    """Points 2**-k as the character ``CODES[k]``, 0 as ``ZERO``; one character per example."""
    out = []
    for value in np.asarray(values, dtype=np.float64):
        if value == 0:
            out.append(ZERO)
            continue
        k = -math.log2(value)
        if k != round(k) or not 0 <= k < len(CODES):
            raise ValueError(f"not a point value of the metric: {value!r}")
        out.append(CODES[round(k)])
    return "".join(out)


def decode_points(text: str) -> np.ndarray:
    """The inverse of ``encode_points``."""
    if not isinstance(text, str) or any(c != ZERO and c not in CODES for c in text):
        raise ValueError(f"not an encoding of per-example points: {str(text)[:40]!r}")
    return np.array([0.0 if c == ZERO else 2.0 ** -CODES.index(c) for c in text])


def write_gate(path: Path, rows: dict[str, dict[str, GateRow]], num_models: int) -> None:
    """``rows`` (split -> submission -> GateRow) as the CSV ``read_gate`` reads."""
    table = pd.DataFrame([
        {"split": split, "submission": name, "num_models": num_models,
         "final_score": row.final_score, "pool": row.pool, "runs": row.runs,
         "runs_se": row.runs_se, "replicates": row.replicates,
         "points": encode_points(row.points), "provenance": row.provenance,
         "scorer": row.scorer, "sample": row.sample}
        for split, named in rows.items() for name, row in named.items()
    ], columns=COLUMNS + SAMPLE_COLUMNS)
    files.atomic_write(Path(path), lambda tmp: table.to_csv(tmp, index=False))


def read_gate(path: Path, board: pd.DataFrame, board_name: str) -> dict[tuple[str, str], GateRow]:
    """The gate rows of ``board`` ((split, submission) -> GateRow) from ``path``, checked against
    the board: every row with a final score has its gate row, at the same N, with the same score
    and the same number of forget examples in a split. Raises FileNotFoundError or ValueError
    saying what to regenerate."""
    path = Path(path)
    redo = (f"regenerate both with `harness score` (it writes {path.name} beside "
            f"{Path(board_name).name}), or give --tolerance for an unpaired absolute rule")
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the paired gate needs the per-example points and run spread of "
            f"the baseline {board_name}; {redo}")
    try:
        table = pd.read_csv(path, dtype=dict.fromkeys(
            ["pool", "runs", "points", *SAMPLE_COLUMNS], str), keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable gate file ({error}); {redo}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}; {redo}")
    rows: dict[tuple[str, str], GateRow] = {}
    for record in table.to_dict("records"):
        rows[(str(record["split"]), str(record["submission"]))] = GateRow(
            float(record["final_score"]), decode_points(record["points"]),
            float(record["runs_se"]), int(record["replicates"]), str(record["pool"]),
            str(record["runs"]), *(str(record.get(c, "")) for c in SAMPLE_COLUMNS))
    problems = []
    split_of = board["split"] if "split" in board.columns else pd.Series("public", board.index)
    sizes: dict[str, set[int]] = {}
    for (_, entry), split in zip(board.iterrows(), split_of, strict=True):
        score = pd.to_numeric(entry["final_score"], errors="coerce")
        if not math.isfinite(score):
            continue
        key = (str(split), str(entry["submission"]))
        row = rows.get(key)
        if row is None:
            problems.append(f"{key[1]} ({key[0]}) has no gate row")
        elif not math.isclose(row.final_score, float(score), rel_tol=1e-9, abs_tol=1e-15):
            problems.append(f"{key[1]} ({key[0]}) scores {float(score):.6g} on the board, "
                            f"{row.final_score:.6g} in the gate file")
        else:
            sizes.setdefault(key[0], set()).add(len(row.points))
    n_file = set(table["num_models"].astype(int))
    n_board = set(pd.to_numeric(board["num_models"]).dropna().astype(int))
    if table.shape[0] and n_file != n_board:
        problems.insert(0, f"N differs: {sorted(n_file)} in the gate file, {sorted(n_board)} on "
                        "the board")
    problems += [f"the {split} rows cover different numbers of forget examples: {sorted(e)}"
                 for split, e in sizes.items() if len(e) > 1]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if
                                            len(problems) > 3 else "")
        raise ValueError(f"{path} does not match {board_name}: {shown}; {redo}")
    return rows


# -- the pool beside the leaderboard ------------------------------------------------------------
@dataclass(frozen=True)
class GatePool:
    """A split's reference-pool numbers that its gate rows were computed against."""

    stats: ModelStats  # written and read back without the per-example losses (``POOL_FIELDS``)
    data: str  # fingerprint of the task's data and split indices, the forget set's included


POOL_FIELDS = ("confidences", "retain_acc", "test_acc", "forget_acc", "seconds")


def gate_pool_path(leaderboard: Path) -> Path:
    """Where a leaderboard's pool numbers lie: beside it (``leaderboard.gate.npz``)."""
    return Path(leaderboard).with_suffix(".gate.npz")


def write_gate_pools(
    path: Path, pools: dict[str, GatePool], rows: dict[str, dict[str, GateRow]] | None = None
) -> None:
    """``pools`` (split -> GatePool) and the sample summaries of the gate ``rows`` (split ->
    submission -> GateRow) as the compressed ``.npz`` ``read_gate_pools`` reads (the same
    numbers give the same bytes: a board regenerated with an unchanged pool and runs leaves the
    committed file unchanged)."""
    arrays = {}
    for split, pool in pools.items():
        arrays.update({f"{split}.{name}": getattr(pool.stats, name) for name in POOL_FIELDS})
        arrays[f"{split}.data"] = np.array(pool.data)
    for split, named in (rows or {}).items():
        for name, row in named.items():
            if row.summary is not None:
                key = f"{split}.sample.{name}"
                arrays[f"{key}.mean"], arrays[f"{key}.sd"] = row.summary.mean, row.summary.sd
                arrays[f"{key}.accuracy"] = np.array([row.summary.retain_acc,
                                                      row.summary.test_acc])
                arrays[f"{key}.fingerprint"] = np.array(row.sample)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    files.atomic_write(Path(path), write)


def read_gate_pools(
    path: Path, rows: dict[tuple[str, str], GateRow]
) -> tuple[dict[str, GatePool], dict[tuple[str, str], GateRow]]:
    """What ``path`` (``leaderboard.gate.npz``) keeps for the gate ``rows``: the pools (split ->
    GatePool) of their splits, each checked against its rows' pool fingerprint, and the rows with
    their sample summaries (a row without one is reproduced only by the same numbers). No file (a
    baseline from before it was written): no pools, the check pairs with a pool trained here, and
    the rows as they were. Raises ValueError saying what to regenerate when the file is
    unreadable, lacks a pool, or keeps a pool or sample other than its rows'."""
    path = Path(path)
    if not path.exists():
        return {}, rows
    redo = "regenerate it with the leaderboard (`harness score`)"
    try:
        arrays = files.read_npz(path)
    except files.CorruptFileError as error:
        raise ValueError(f"{error}; {redo}") from None
    pools = {}
    for split in sorted({split for split, _ in rows}):
        prints = {row.pool for (where, _), row in rows.items() if where == split}
        try:
            stats = ModelStats(**{name: arrays[f"{split}.{name}"] for name in POOL_FIELDS})
            data = str(arrays[f"{split}.data"])
        except KeyError as missing:
            raise ValueError(f"{path} lacks {missing} (the {split} split's pool); {redo}") from None
        if prints != {stats_fingerprint(stats)}:
            raise ValueError(f"{path}: the {split} split's pool is not the one its gate rows "
                             f"were computed against; {redo}")
        pools[split] = GatePool(stats, data)
    return pools, {key: _with_summary(arrays, path, key, row, redo) for key, row in rows.items()}


def _with_summary(
    arrays: dict[str, np.ndarray], path: Path, key: tuple[str, str], row: GateRow, redo: str
) -> GateRow:
    """``row`` with the sample summary ``arrays`` keep for it, if any."""
    split, name = key
    prefix = f"{split}.sample.{name}"
    if not row.sample or f"{prefix}.mean" not in arrays:
        return row
    try:
        kept = str(arrays[f"{prefix}.fingerprint"])
        mean, sd = (np.asarray(arrays[f"{prefix}.{part}"], np.float64) for part in ("mean", "sd"))
        retain_acc, test_acc = (float(v) for v in arrays[f"{prefix}.accuracy"])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"{path}: the sample kept for {name} ({split}) is incomplete; "
                         f"{redo}") from None
    if kept != row.sample or mean.shape != sd.shape or mean.shape != row.points.shape:
        raise ValueError(f"{path}: the sample kept for {name} ({split}) is not its gate "
                         f"row's; {redo}")
    return replace(row, summary=SampleSummary(mean, sd, retain_acc, test_acc))


# -- the paired test -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Paired:
    """The paired comparison of one row: difference, its standard error, one-sided p."""

    delta: float
    se: float
    p: float  # P(a difference this low | no change), before the multiplicity correction

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        half = statistics.NormalDist().inv_cdf(0.5 + level / 2) * self.se
        return self.delta - half, self.delta + half


def paired(base: GateRow, now: GateRow) -> Paired:
    """The one-sided paired test of ``now`` against ``base`` (same pool and forget examples):
    normal with the runs' two bootstrap variances (the module docstring says why)."""
    if base.pool != now.pool or len(base.points) != len(now.points):
        raise ValueError("a paired comparison needs the same pool and forget examples")
    delta = now.final_score - base.final_score
    se = math.sqrt(base.runs_se**2 + now.runs_se**2)
    if se == 0:
        return Paired(delta, 0.0, 0.0 if delta < 0 else 1.0)
    return Paired(delta, se, statistics.NormalDist().cdf(delta / se))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order): reject where adjusted <= level."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def detectable_drop(runs_se: float, level: float = LEVEL, tested: int = 1,
                    power: float = 0.5) -> float:
    """The smallest drop the gate detects with probability ``power`` when ``tested`` rows are
    tested at once (Bonferroni's bound, which Holm's first step is) and the re-scored runs
    spread as the baseline's: ``(z_{1 - level/tested} + z_power) * sqrt(2) * runs_se``."""
    normal = statistics.NormalDist()
    return (normal.inv_cdf(1 - level / tested) + normal.inv_cdf(power)) * math.sqrt(2) * runs_se
