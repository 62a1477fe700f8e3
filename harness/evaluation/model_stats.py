"""The per-model numbers of a set of models, what the metric and the audits read: the pool's
models, the ceiling pool's, or a submission's runs (one row per model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ModelStats:
    """Per-model numbers of a set of models (the pool, or a submission's runs)."""

    confidences: np.ndarray  # [models, forget examples], logit-scaled confidence
    retain_acc: np.ndarray  # [models]
    test_acc: np.ndarray
    forget_acc: np.ndarray
    seconds: np.ndarray  # training (or unlearning) seconds per model
    # per-example cross-entropy losses [models, examples] (``harness.evaluation.example_outputs``)
    # on the forget set, the test set and the audits' retain subsample; None where some model's
    # are not known
    forget_losses: np.ndarray | None = None
    test_losses: np.ndarray | None = None
    retain_losses: np.ndarray | None = None

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray], seconds: np.ndarray) -> ModelStats:
        """From ``example_outputs.model_outputs``'s arrays and each model's seconds."""
        return cls(seconds=np.asarray(seconds), **outputs)

    def __len__(self) -> int:
        return len(self.retain_acc)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def concatenate(cls, parts: list[ModelStats]) -> ModelStats:
        return cls(**{
            k: None if any(vars(p)[k] is None for p in parts)
            else np.concatenate([vars(p)[k] for p in parts])
            for k in vars(parts[0])
        })
