"""Per-example outputs of every scored model, kept so that an audit added later
(``harness.evaluation.audits``) never re-runs a submission or retrains a pool.

For each model (a submission's run, a pool or ceiling model) three float32 arrays of per-example
cross-entropy losses ``-log softmax(logits)[y]``: on the forget set, the test set and a fixed
seeded subsample of the retain set (``audit_retain_indices``: as many retain examples as test
examples, at most 1,000, the shadow set SalUn's and l1-sparse's MIA-Efficacy trains on). The
true-class confidence the MIA-Efficacy attack uses is ``exp(-loss)`` (``true_class_confidence``):
the cross-entropy is by definition minus the log of that softmax probability, so it is derived, not
stored twice. The forget-set logit-scaled confidences (the official metric's statistic) stay where
they were (``RunResult.confidences``, ``ModelStats.confidences``).

Where they live: a pool's in its chunk files (``ModelStats``); a run's in
``<results>/runs/<submission>.outputs/<provenance>/<run index>.npz`` beside the run's JSON line,
keyed like it by submission, provenance digest and run index (``run_outputs_path``), written
before the line is appended.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from harness.core import files
from harness.evaluation.metric import logit_scaled_confidence

SETS = ("forget", "test", "retain")  # the keys of a run's outputs, and their order
# Seed of the retain subsample: fixed, so every model of every task with the same retain and test
# sizes is evaluated on the same retain examples (sizes alone decide them).
AUDIT_RETAIN_SEED = 20231
# At most this many: an RBF SVC's cost grows with the square of its examples (a cifar10 test set
# of 10,000 would make one fit per model take minutes); digits' 270 test examples are all kept.
AUDIT_RETAIN_CAP = 1000
OUTPUTS_SUFFIX = ".outputs"


def audit_retain_indices(num_retain: int, num_test: int) -> np.ndarray:
    """Positions in the retain set of the retain examples the audits use: ``min(num_test,
    num_retain, AUDIT_RETAIN_CAP)`` drawn without replacement from ``AUDIT_RETAIN_SEED``, sorted.
    As many as the test set (up to the cap), as SalUn's MIA-Efficacy balances its shadow members
    (a retain subset the size of the test set) against the test set."""
    rng = np.random.default_rng(AUDIT_RETAIN_SEED)
    size = min(num_test, num_retain, AUDIT_RETAIN_CAP)
    return np.sort(rng.choice(num_retain, size=size, replace=False)).astype(np.int64)


def example_losses(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-row cross-entropy ``logsumexp(z) - z_y`` (computed in float64, stored float32), the
    loss the starting kit's MIA reads (its ``compute_losses``: ``CrossEntropyLoss(reduction=
    "none")``). ``logits`` [n, C] or [models, n, C], ``targets`` [n]."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets).astype(np.intp)
    shift = z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z - shift).sum(axis=-1)) + shift[..., 0]
    true = np.take_along_axis(z, np.broadcast_to(t, z.shape[:-1])[..., None], axis=-1)[..., 0]
    return (log_norm - true).astype(np.float32)


def model_outputs(
    logits: dict[str, np.ndarray], targets: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """What the metric and the audits read from models, computed from their logits: the one
    evaluation of every model the harness scores (a run's, a pool model trained alone, the
    members of a pool ensemble). ``logits``: per split of ``SETS``, [models, n, C]; ``targets``:
    per split, [n]. Per model: ``{split}_acc`` [models] (nan on an empty split), the forget set's
    logit-scaled confidences ``confidences`` [models, n_forget] and ``{split}_losses`` [models,
    n] (the retain set's on ``audit_retain_indices``). Raises ValueError on non-finite logits
    (``logit_scaled_confidence``)."""
    audited = audit_retain_indices(len(targets["retain"]), len(targets["test"]))
    outputs = {}
    for split in SETS:
        z, y = logits[split], targets[split]
        members, n = z.shape[:2]
        outputs[f"{split}_acc"] = (
            (np.argmax(z, axis=2) == y).mean(axis=1) if n else np.full(members, np.nan))
        kept = audited if split == "retain" else slice(None)
        outputs[f"{split}_losses"] = example_losses(z[:, kept], y[kept])
    forget = logits["forget"]
    members, n, num_classes = forget.shape
    outputs["confidences"] = logit_scaled_confidence(  # row-wise: all models in one call
        forget.reshape(members * n, num_classes), np.tile(targets["forget"], members)
    ).reshape(members, n)
    return outputs


def true_class_confidence(losses: np.ndarray) -> np.ndarray:
    """The softmax probability of the true class, ``exp(-cross-entropy)`` (float64)."""
    return np.exp(-np.asarray(losses, dtype=np.float64))


def run_outputs_path(runs_directory: Path, submission: str, provenance: str, run: int) -> Path:
    return Path(runs_directory) / f"{submission}{OUTPUTS_SUFFIX}" / provenance / f"{run:05d}.npz"


def write_run_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    """One run's arrays, written to a temporary file and renamed (readers never see a torn file;
    not fsynced: a file lost to a power cut leaves that row's loss-based audits empty, not
    wrong)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **{k: np.asarray(outputs[k], dtype=np.float32) for k in SETS})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_run_outputs(path: Path) -> dict[str, np.ndarray] | None:
    """One run's arrays, or None when the file is missing, damaged or lacks a set."""
    arrays = files.read_npz_or_none(path)
    if arrays is None or any(k not in arrays or arrays[k].ndim != 1 for k in SETS):
        return None
    return {k: arrays[k] for k in SETS}
