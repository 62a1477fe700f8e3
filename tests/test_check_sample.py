"""``harness check`` re-runs a sample of a row whose code is unchanged since its baseline, and
every run of a row whose code changed, whose sample differs by more than another machine's
rounding or whose scoring code changed (a real scoring at N = 128 of five quick submissions whose
runs differ seed by seed; every check starts from an empty run cache, as on a fresh clone)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.evaluation.gate import SAMPLE_MIN_MODELS, SAMPLE_RUNS, gate_path, gate_pool_path
from harness.pipeline import regression, scoring
from harness.tasks import get_task

# each with a noise of its own size: runs that differ seed by seed
SCALES = {"jitter": 0.05, "shrink": 0.02, "steady": 0.03, "calm": 0.01, "still": 0.015}
JITTER = '''
import torch


def unlearning(net, retain, forget, val, scale=SCALE):
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
'''
SAMPLED = f"ok (same code, first {SAMPLE_RUNS} runs the same)"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sampled")
    (root / "submissions").mkdir()
    for name, scale in SCALES.items():
        (root / "submissions" / f"{name}.py").write_text(JITTER.replace("SCALE", str(scale)))
    scoring.score(get_task("digits", num_models=SAMPLE_MIN_MODELS), root / "submissions",
                  reference_root=root / "ref", output_dir=root / "results",
                  leaderboard_path=root / "leaderboard.csv", jobs=2, ceiling=False,
                  budget_seconds=float("inf"), timeout=600, measures=False)
    return root / "leaderboard.csv"


def checked(baseline: Path, tmp_path: Path, monkeypatch) -> tuple:
    """The check of ``baseline`` from an empty run cache, and the runs it did per submission."""
    done: Counter = Counter()
    real = scoring.run_submissions

    def counted(*args, **kwargs):
        results = real(*args, **kwargs)
        done.update(r.submission for r in results)
        return results

    monkeypatch.setattr(scoring, "run_submissions", counted)
    report = regression.check(
        baseline, submissions_dir=baseline.parent / "submissions",
        reference_root=baseline.parent / "ref", output_dir=tmp_path / "results", jobs=2,
        budget_seconds=float("inf"), timeout=600)
    verdicts = dict(zip(report.rows["submission"], report.rows["verdict"], strict=True))
    return report, verdicts, done


def edit_gate(baseline: Path, name: str, column: str, value: str) -> None:
    table = pd.read_csv(gate_path(baseline), dtype=str, keep_default_na=False)
    table.loc[table["submission"] == name, column] = value
    table.to_csv(gate_path(baseline), index=False)


def edit_sample(baseline: Path, name: str, sds: float, fingerprint: str) -> None:
    """Move the mean of ``name``'s kept sample by ``sds`` of its spread on every example and
    give it, in both files, another ``fingerprint``: what another machine would have kept."""
    path = gate_pool_path(baseline)
    arrays = dict(np.load(path))
    key = f"public.sample.{name}"
    arrays[f"{key}.mean"] = arrays[f"{key}.mean"] + sds * arrays[f"{key}.sd"]
    arrays[f"{key}.fingerprint"] = np.array(fingerprint)
    edit_gate(baseline, name, "sample", fingerprint)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def test_every_row_of_a_large_n_records_what_its_sample_needs(baseline):
    gate = pd.read_csv(gate_path(baseline), dtype=str, keep_default_na=False)
    assert sorted(gate["submission"]) == sorted(SCALES)
    assert (gate[["provenance", "scorer", "sample"]] != "").all().all()
    assert gate["sample"].nunique() == len(SCALES)
    kept = np.load(gate_pool_path(baseline))  # and the summary another machine is compared with
    assert all(f"public.sample.{name}.mean" in kept.files for name in SCALES)


def test_only_unchanged_rows_whose_sample_comes_out_the_same_skip_their_other_runs(
    baseline, tmp_path, monkeypatch
):
    """In one check: the row left as it was re-runs its sample only and passes on it; code that
    changed, a sample that lies further from the one kept than another machine's rounding
    moves it, and scoring code that changed since the baseline each send their row to the full
    paired test (its sampled runs count towards it); a sample kept by a machine whose numbers
    differed by rounding (another fingerprint, a mean a thousandth of a spread away) passes on
    it too, saying how far it lay."""
    path = baseline.parent / "submissions" / "shrink.py"
    saved = path.read_text()
    gate, kept = gate_path(baseline).read_bytes(), gate_pool_path(baseline).read_bytes()
    try:
        path.write_text(saved.replace("scale=0.02", "scale=0.025"))
        edit_sample(baseline, "jitter", 0.5, "0" * 16)
        edit_sample(baseline, "still", 0.001, "1" * 16)
        edit_gate(baseline, "steady", "scorer", "0" * 16)
        report, verdicts, done = checked(baseline, tmp_path, monkeypatch)
    finally:
        path.write_text(saved)
        gate_path(baseline).write_bytes(gate)
        gate_pool_path(baseline).write_bytes(kept)
    assert done == {"jitter": SAMPLE_MIN_MODELS, "shrink": SAMPLE_MIN_MODELS,
                    "steady": SAMPLE_MIN_MODELS, "calm": SAMPLE_RUNS, "still": SAMPLE_RUNS}
    assert report.exit_status == 0 or report.problems[0].startswith("shrink"), report.problems
    assert verdicts["calm"] == SAMPLED
    assert verdicts["still"].startswith(f"ok (same code, first {SAMPLE_RUNS} runs within "
                                        "rounding: 0.001")
    assert verdicts["jitter"] == verdicts["steady"] == "ok (same runs)"
    tested = report.rows.set_index("submission").loc["shrink"]
    assert verdicts["shrink"] in ("ok", "DROP") and tested["p"] >= 0  # paired, on all its runs
