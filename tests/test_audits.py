"""The literature's audits (``harness.evaluation.audits``) against independent evidence: literal
scikit-learn pipelines on fixtures, synthetic Gaussians with a known AUC, hand-worked gaps, and an
end-to-end scoring in which doing nothing must be more exposed than the retrained ceiling."""

import math
import shutil
import statistics
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC

from harness.evaluation import audits
from harness.evaluation.example_outputs import (
    SETS,
    audit_retain_indices,
    example_losses,
    read_run_outputs,
    run_outputs_path,
)
from harness.evaluation.model_stats import ModelStats
from harness.execution.records import OK, Outcome, RunResult
from harness.execution.store import ResultsStore
from harness.outputs.leaderboard import CEILING_ROW, COLUMNS, POOL_ROW

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"


def losses_fixture(models=5, forget=40, test=60, retain=60, seed=0):
    """Per-example losses shaped like a memorising model's: small on retain, a little larger on
    forget (the model has seen them), larger and spread on test."""
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0.5, 1.5, (models, 1))
    return (
        rng.gamma(1.0, 0.3 * shift, (models, forget)).astype(np.float32),
        rng.gamma(1.5, 0.5 * shift, (models, test)).astype(np.float32),
        rng.gamma(1.0, 0.1 * shift, (models, retain)).astype(np.float32),
    )


# -- the starting kit's MIA --------------------------------------------------------------------
def literal_kit_mia(forget, test, seed, classifier):
    """The kit's ``simple_mia`` written out plainly, after the kit's balancing (here a seeded
    subsample of the larger set, drawn as ``audits.kit_mia`` documents it)."""
    keep = np.sort(np.random.default_rng(seed).choice(len(test), len(forget), replace=False))
    samples = np.concatenate([test[keep], forget]).reshape(-1, 1)
    labels = [0] * len(keep) + [1] * len(forget)
    cv = StratifiedShuffleSplit(n_splits=10, random_state=0)
    return cross_val_score(classifier, samples, labels, cv=cv, scoring="accuracy").mean()


def test_kit_mia_is_the_starting_kit_s_logistic_regression():
    forget, test, _ = losses_fixture()
    mine = audits.kit_mia(forget, test, seed=3)
    # scikit-learn solved to convergence: the same minimiser, the same predictions exactly
    exact = [literal_kit_mia(forget[m].astype(np.float64), test[m].astype(np.float64), 3,
                             LogisticRegression(tol=1e-12, max_iter=100_000))
             for m in range(len(forget))]
    np.testing.assert_allclose(mine, exact, rtol=0, atol=1e-12)
    # with its defaults (L-BFGS stopped at tolerance 1e-4) a point right at the boundary can go
    # the other way: at most one prediction in one split here
    default = [literal_kit_mia(forget[m], test[m], 3, LogisticRegression())
               for m in range(len(forget))]
    assert np.abs(np.array(default) - mine).max() <= 1 / (10 * 8) + 1e-12


def test_the_logistic_fit_is_the_minimum_scikit_learn_approaches():
    rng = np.random.default_rng(1)
    x = np.r_[rng.gamma(1.0, 0.3, 50), rng.gamma(2.0, 0.6, 50)]
    y = np.r_[np.ones(50), np.zeros(50)]
    w, b = audits.fit_logistic(x[None], y)
    fitted = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[:, None], y)
    assert w[0] == pytest.approx(fitted.coef_[0, 0], rel=1e-6)
    assert b[0] == pytest.approx(fitted.intercept_[0], rel=1e-6)

    def objective(w, b):  # C = 1: w^2 / 2 + sum of log-losses
        z = w * x + b
        return 0.5 * w**2 + np.sum(np.logaddexp(0, -np.where(y > 0, 1, -1) * z))

    default = LogisticRegression().fit(x[:, None], y)
    assert objective(w[0], b[0]) <= objective(default.coef_[0, 0], default.intercept_[0])


def test_fit_logistic_reaches_the_minimum_on_huge_losses_without_warnings():
    """Losses of 1e17 and more (a diverged model on the surf test's tiny data gave these): the
    probabilities saturate, the Hessian's determinant lost the penalty's share to rounding and
    came out 0, and the fit stopped where it was. It must end at a stationary point, quietly."""
    x = np.array([2.5245128, 2.4815207, 1.2549512, 1.2784142, 2.2433126, 2.5563767, 2.2420602,
                  0.971877, 2.6255426, 0.0]) * 1e17
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w, b = audits.fit_logistic(x[None], y)
    z = w[0] * x + b[0]
    with np.errstate(over="ignore"):
        r = 1.0 / (1.0 + np.exp(-z)) - y
    assert abs(r.sum()) < 1e-8  # d/db
    assert abs((w[0] + (r * x).sum()) / x.max()) < 1e-8  # d/dw, in the data's scale


# -- MIA-Efficacy ------------------------------------------------------------------------------
def test_mia_efficacy_is_salun_s_svc_on_true_class_confidences():
    forget, test, retain = losses_fixture(models=4, retain=60)
    mine = audits.mia_efficacy(retain, test, forget, seed=0)
    for m in range(len(forget)):
        confidence = {k: np.exp(-v[m].astype(np.float64))
                      for k, v in (("forget", forget), ("test", test), ("retain", retain))}
        shadow = np.concatenate([confidence["retain"], confidence["test"]]).reshape(-1, 1)
        members = np.r_[np.ones(60), np.zeros(60)]
        classifier = SVC(C=3, gamma="auto", kernel="rbf").fit(shadow, members)
        predicted = classifier.predict(confidence["forget"].reshape(-1, 1))
        assert mine[m] == pytest.approx(1 - predicted.mean(), abs=1e-12)
    assert 0 < mine.mean() < 1  # the fixture is neither trivial way


def test_mia_efficacy_fits_once_per_distinct_model(monkeypatch):
    """Runs that hand back the same weights (doing nothing) have the same inputs: one fit serves
    them all, and the values are those of fitting each."""
    forget, test, retain = losses_fixture(models=3, retain=60)
    order = [0, 1, 0, 2, 1, 0]  # six models, three distinct
    each = audits.mia_efficacy(retain, test, forget, seed=0)
    fits = []
    fit = audits.svc_members
    monkeypatch.setattr(audits, "svc_members", lambda *a: fits.append(1) or fit(*a))
    repeated = audits.mia_efficacy(retain[order], test[order], forget[order], seed=0)
    assert len(fits) == 3
    np.testing.assert_array_equal(repeated, each[order])


def test_true_class_confidence_is_the_softmax_probability_of_the_label():
    logits = torch.randn(7, 5, dtype=torch.float64) * 4
    targets = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    losses = example_losses(logits.float().numpy(), targets.numpy())
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none").numpy()
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    probability = torch.softmax(logits, 1)[torch.arange(7), targets].numpy()
    np.testing.assert_allclose(np.exp(-losses.astype(np.float64)), probability, rtol=1e-5)


# -- the likelihood-ratio attack ---------------------------------------------------------------
@pytest.mark.parametrize("distance", [0.0, 0.5, 1.0, 2.0])
def test_lira_on_two_equal_variance_normals_has_the_known_auc(distance):
    """IN ~ N(d, 1), OUT ~ N(0, 1): the likelihood ratio is increasing in x, so its AUC is
    P(X_in > X_out) = Phi(d / sqrt 2)."""
    rng = np.random.default_rng(7)
    unlearned = rng.normal(distance, 1.0, (2000, 300))
    retrained = rng.normal(0.0, 1.0, (2000, 300))
    aucs = audits.lira_aucs(unlearned, retrained)
    known = statistics.NormalDist().cdf(distance / math.sqrt(2))
    assert aucs.mean() == pytest.approx(known, abs=0.003)
    mean, exposed = audits.lira_summary(aucs)
    assert mean == aucs.mean() and exposed == np.mean(aucs >= 0.9)
    if known < 0.85:
        assert exposed < 0.01
    if known > 0.91:
        assert exposed > 0.7


def test_example_aucs_are_roc_aucs():
    rng = np.random.default_rng(2)
    positive = rng.normal(0.3, 1, (30, 6)).round(1)  # rounded: ties count one half
    negative = rng.normal(0.0, 1, (25, 6)).round(1)
    expected = [roc_auc_score(np.r_[np.ones(30), np.zeros(25)],
                              np.r_[positive[:, j], negative[:, j]]) for j in range(6)]
    np.testing.assert_allclose(audits.example_aucs(positive, negative), expected, atol=1e-12)


def test_example_aucs_count_every_pair_with_ties_as_halves():
    """Against the literal double loop over (positive, negative) pairs, on columns with long
    runs of equal scores (saturated confidences give them), one value only, and a nan."""
    rng = np.random.default_rng(5)
    positive = rng.integers(0, 4, (13, 5)).astype(float)
    negative = rng.integers(1, 5, (9, 5)).astype(float)
    positive[:, 3] = negative[:, 3] = 2.0
    positive[4, 4] = np.nan
    literal = [np.mean([(p > n) + 0.5 * (p == n) for p in positive[:, j] for n in negative[:, j]])
               for j in range(4)]
    found = audits.example_aucs(positive, negative)
    np.testing.assert_array_equal(found[:4], literal)
    assert found[3] == 0.5 and np.isnan(found[4])


def test_lira_tells_apart_models_that_always_give_one_value():
    """Doing nothing gives the same model every run: its Gaussian has no spread, and every
    held-out unlearned model is at its mean, where the retrained ones are not."""
    unlearned = np.tile(np.array([[5.0, -2.0, 0.5]]), (8, 1))
    retrained = np.random.default_rng(0).normal(0, 1, (8, 3))
    np.testing.assert_array_equal(audits.lira_aucs(unlearned, retrained), [1.0, 1.0, 1.0])


# -- gaps and intervals ------------------------------------------------------------------------
def test_gaps_and_avg_gap_worked_by_hand():
    own = {"ua": np.array([0.1, 0.3]), "ra": np.array([0.9, 0.9]), "ta": np.array([0.8, 0.7]),
           "mia": np.array([0.6, 0.6]), "mia_efficacy": np.array([0.2, 0.4])}
    pool = {"ua": np.array([0.0, 0.2]), "ra": np.array([1.0, 1.0]), "ta": np.array([0.8, 0.8]),
            "mia": np.array([0.5, 0.5]), "mia_efficacy": np.array([0.5, 0.5])}
    confidences = np.random.default_rng(0).normal(0, 1, (4, 3))
    columns = audits.audit_columns(own, pool, confidences, confidences, seed=0)
    # |0.2 - 0.1|, |0.9 - 1.0|, |0.75 - 0.8|, |0.6 - 0.5|, |0.3 - 0.5|
    for name, gap in (("ua", 0.1), ("ra", 0.1), ("ta", 0.05), ("mia", 0.1),
                      ("mia_efficacy", 0.2)):
        assert columns[f"{name}_gap"] == pytest.approx(gap)
        assert columns[f"{name}_gap_lo"] <= columns[f"{name}_gap_hi"]
    assert columns["avg_gap"] == pytest.approx((0.1 + 0.1 + 0.05 + 0.2) / 4)  # not the MIA
    assert columns["ua"] == pytest.approx(0.2) and columns["mia_efficacy"] == pytest.approx(0.3)
    assert set(columns) == set(audits.AUDIT_COLUMNS)
    alone = audits.audit_columns(pool, pool, None, confidences, seed=0)  # the pool's own row
    assert alone["ua"] == pytest.approx(0.1) and "ua_gap" not in alone and "lira_auc" not in alone


def test_mean_interval_is_student_s_t_worked_by_hand():
    # mean 2.5, sd sqrt(5/3) = 1.29099, t(0.975, 3) = 3.18245: half width 2.05426
    mean, low, high = audits.mean_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5
    assert low == pytest.approx(2.5 - 2.05426, abs=1e-5)
    assert high == pytest.approx(2.5 + 2.05426, abs=1e-5)
    assert math.isnan(audits.mean_interval(np.array([1.0]))[1])


def test_a_gap_interval_covers_zero_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(4)
    same = {k: rng.normal(0.5, 0.05, 200) for k in audits.MEASURES}
    other = {k: rng.normal(0.5, 0.05, 200) for k in audits.MEASURES}
    far = {k: v + 0.1 for k, v in same.items()}
    confidences = rng.normal(0, 1, (200, 5))
    near = audits.audit_columns(same, other, confidences, confidences, seed=1)
    away = audits.audit_columns(far, other, confidences, confidences, seed=1)
    assert near["ua_gap_lo"] < 0.02 and away["ua_gap_lo"] > 0.08


# -- the stored outputs ------------------------------------------------------------------------
def test_the_retain_subsample_is_fixed_and_as_large_as_the_test_set():
    first = audit_retain_indices(1132, 270)
    assert len(first) == 270 == len(np.unique(first)) and np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(first, audit_retain_indices(1132, 270))
    assert len(audit_retain_indices(50, 270)) == 50


def test_model_outputs_are_each_model_s_own_worked_with_torch():
    """The one evaluation of every model: per model, its accuracies, its losses (torch's
    cross-entropy; the retain set's on the audits' subsample) and its forget confidences, each
    model's the same whether evaluated alone or with others (bit for bit)."""
    from harness.evaluation.example_outputs import model_outputs
    from harness.evaluation.metric import logit_scaled_confidence

    rng = np.random.default_rng(4)
    sizes = {"forget": 7, "retain": 30, "test": 12}
    targets = {k: rng.integers(0, 5, n) for k, n in sizes.items()}
    logits = {k: rng.normal(0, 3, (3, n, 5)).astype(np.float32) for k, n in sizes.items()}
    together = model_outputs(logits, targets)
    kept = audit_retain_indices(30, 12)
    for m in range(3):
        alone = model_outputs({k: v[m : m + 1] for k, v in logits.items()}, targets)
        for key, value in together.items():
            np.testing.assert_array_equal(value[m], alone[key][0])
        for split in sizes:
            z, y = logits[split][m], targets[split]
            assert together[f"{split}_acc"][m] == np.mean(z.argmax(axis=1) == y)
            if split == "retain":
                z, y = z[kept], y[kept]
            expected = torch.nn.functional.cross_entropy(
                torch.from_numpy(z).double(), torch.from_numpy(y), reduction="none")
            np.testing.assert_allclose(together[f"{split}_losses"][m], expected, rtol=1e-6)
        np.testing.assert_array_equal(
            together["confidences"][m],
            logit_scaled_confidence(logits["forget"][m], targets["forget"]))
    assert together["retain_losses"].shape == (3, len(kept))
    empty = model_outputs({**logits, "test": np.zeros((3, 0, 5), np.float32)},
                          {**targets, "test": np.zeros(0, np.int64)})
    assert np.isnan(empty["test_acc"]).all()


def test_a_run_s_losses_are_stored_as_arrays_and_a_record_without_them_still_loads(tmp_path):
    store = ResultsStore(tmp_path)
    store.ensure_writable()
    losses = {k: np.arange(3, dtype=np.float32) + i for i, k in enumerate(SETS)}
    run = RunResult("sub", "h", "p", 0, 1, OK, 1.0, 1.0, 1.0, 1.0, [0.0, 1.0], losses=losses)
    store.append(run)
    store.append(RunResult("sub", "h", "p", 1, 2, OK, 1.0, 1.0, 1.0, 1.0, [0.0, 1.0]))
    line = (store.runs_directory / "sub.jsonl").read_text().splitlines()[0]
    assert "losses" not in line  # the arrays are not JSON lists
    path = run_outputs_path(store.runs_directory, "sub", "p", 0)
    assert path.is_file() and set(np.load(path).files) == set(SETS)
    runs = store.load_runs("sub", "p")
    for k in SETS:
        np.testing.assert_array_equal(runs[0].losses[k], losses[k])
    assert runs[1].losses is None  # no array file: loaded, its losses unknown
    stats = Outcome("sub", None, runs=runs).stats(2)
    assert stats is not None and stats.forget_losses is None  # not half known
    values = audits.per_model(stats.forget_acc, stats.retain_acc, stats.test_acc,
                              stats.forget_losses, stats.test_losses, stats.retain_losses, 0)
    assert np.isnan(values["mia"]).all() and values["ua"].tolist() == [0.0, 0.0]
    assert read_run_outputs(tmp_path / "missing.npz") is None


def test_a_pool_chunk_keeps_its_losses_and_an_old_chunk_reads_without_them():
    parts = [ModelStats(np.zeros((2, 3)), np.ones(2), np.ones(2), np.ones(2), np.ones(2),
                        forget_losses=np.ones((2, 3)), test_losses=np.ones((2, 4)),
                        retain_losses=np.ones((2, 4))) for _ in range(2)]
    joined = ModelStats.concatenate(parts)
    assert joined.forget_losses.shape == (4, 3)
    old = ModelStats(**{k: v for k, v in parts[0].to_arrays().items() if "losses" not in k})
    assert old.test_losses is None and "test_losses" not in old.to_arrays()
    assert ModelStats.concatenate([parts[0], old]).test_losses is None


# -- end to end --------------------------------------------------------------------------------
@pytest.mark.slow
def test_doing_nothing_is_more_exposed_than_the_retrained_ceiling(tmp_path):
    """A real scoring of ``do_nothing`` at N = 16 (the original model back, every run): by the
    likelihood-ratio attack, MIA-Efficacy's gap and Avg. Gap it is further from retrained models
    than the independent retrained pool (the ceiling) is; the stored arrays give the board's
    MIA-Efficacy again through a literal scikit-learn pipeline."""
    from harness.pipeline.scoring import score
    from harness.tasks import get_task

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copy(EXAMPLES / "do_nothing.py", submissions)
    task = get_task("digits", num_models=16)
    board = score(task, submissions, reference_root=tmp_path / "ref",
                  output_dir=tmp_path / "results", leaderboard_path=tmp_path / "board.csv",
                  jobs=2, budget_seconds=float("inf"), timeout=600)
    rows = board.set_index("submission")
    nothing, ceiling, pool = rows.loc["do_nothing"], rows.loc[CEILING_ROW], rows.loc[POOL_ROW]
    assert nothing["lira_auc"] > 0.95 and nothing["lira_exposed"] > 0.8
    assert abs(ceiling["lira_auc"] - 0.5) < 0.1 and ceiling["lira_exposed"] < 0.1
    assert nothing["lira_auc_lo"] > ceiling["lira_auc_hi"]
    assert nothing["mia_efficacy_gap"] > ceiling["mia_efficacy_gap"]
    assert nothing["avg_gap"] > ceiling["avg_gap"]
    assert pd.isna(pool["final_score"]) and pd.isna(pool["avg_gap"]) and pool["ra"] > 0.9
    written = pd.read_csv(tmp_path / "board.csv")
    assert list(written.columns) == COLUMNS and written["lira_auc"].notna().sum() == 2

    runs_directory = next((tmp_path / "results").glob("*/runs"))
    efficacy = []
    for run in range(16):
        found = read_run_outputs(run_outputs_path(
            runs_directory, "do_nothing", nothing["provenance"], run))
        confidence = {k: np.exp(-v.astype(np.float64)) for k, v in found.items()}
        size = len(confidence["test"])
        classifier = SVC(C=3, gamma="auto").fit(
            np.r_[confidence["retain"], confidence["test"]].reshape(-1, 1),
            np.r_[np.ones(size), np.zeros(size)])
        efficacy.append(1 - classifier.predict(confidence["forget"].reshape(-1, 1)).mean())
    assert nothing["mia_efficacy"] == pytest.approx(np.mean(efficacy), abs=1e-12)


# -- the report's section ----------------------------------------------------------------------
def test_the_disagreement_section_ranks_by_each_measure_and_correlates_with_the_official(
        tmp_path):
    from harness.outputs.disagreement import (
        correlations,
        disagreement_section,
        measure_ranks,
        plot_disagreement,
    )

    board = pd.DataFrame({
        "submission": ["a", "b", "c", "d", CEILING_ROW],
        "status": [OK, OK, OK, OK, "reference"],
        "final_score": [0.4, 0.3, 0.2, 0.1, 0.5],
        "avg_gap": [0.01, 0.02, 0.03, 0.04, 0.0],  # the official order
        "lira_auc": [0.9, 0.8, 0.7, 0.6, 0.5],  # the reverse
        "mia_gap": [0.1, 0.3, 0.2, 0.4, 0.0],
    })
    ranks = measure_ranks(board)
    assert list(ranks.index) == ["a", "b", "c", "d"]  # the ranked rows only
    assert ranks["lira_auc"].tolist() == [4, 3, 2, 1]
    found = correlations(ranks)
    # Spearman by hand: ranks (1,2,3,4) against (1,3,2,4): 1 - 6 * (0+1+1+0) / (4 * 15) = 0.8
    assert found == pytest.approx({"avg_gap": 1.0, "lira_auc": -1.0, "mia_gap": 0.8})
    assert plot_disagreement(board, tmp_path / "plot.png") and (tmp_path / "plot.png").is_file()
    page = disagreement_section(board, True)
    assert "Where the measures disagree" in page and "LiRA mean AUC -1.00" in page
    assert disagreement_section(board[["submission", "status", "final_score"]], False) == ""


def test_sets_too_small_for_the_attacks_give_nan_not_an_error():
    forget, test, retain = losses_fixture(models=2, forget=3, test=4, retain=4)
    assert np.isnan(audits.kit_mia(forget, test, 0)).all()  # no stratified 10% split of 6
    assert np.isnan(audits.mia_efficacy(retain[:, :0], test[:, :0], forget, 0)).all()


def test_a_pool_s_losses_are_the_same_trained_as_an_ensemble_or_one_by_one():
    import dataclasses

    from harness.reference.ensemble import train_chunk_ensemble
    from harness.reference.pool import train_chunk_sequential
    from harness.tasks import get_task

    task = get_task("digits", num_models=4)
    task = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=1))
    data = task.load_data()
    fast = train_chunk_ensemble(task, data, [1, 2])
    slow = train_chunk_sequential(task, data, [1, 2])
    sizes = {"forget": len(data.forget_idx), "test": len(data.test), "retain": len(data.test)}
    for name in SETS:
        found = getattr(fast, f"{name}_losses")
        assert found.shape == (2, sizes[name]) and found.dtype == np.float32
        np.testing.assert_allclose(found, getattr(slow, f"{name}_losses"), atol=1e-3, rtol=1e-3)


def test_large_sets_take_the_same_attacks_in_bounded_pieces(monkeypatch):
    forget, test, retain = losses_fixture(models=6, forget=40, test=60, retain=60)
    whole = audits.kit_mia(forget, test, seed=3)
    efficacy = audits.mia_efficacy(retain, test, forget, seed=0)
    monkeypatch.setattr(audits, "MODEL_CHUNK_VALUES", 100)  # one model at a time
    monkeypatch.setattr(audits, "PRECOMPUTED_KERNEL_MAX", 10)  # libsvm's own kernel
    np.testing.assert_array_equal(audits.kit_mia(forget, test, seed=3), whole)
    np.testing.assert_array_equal(audits.mia_efficacy(retain, test, forget, seed=0), efficacy)
    assert len(audit_retain_indices(50_000, 10_000)) == 1000  # cifar10's sizes: capped
