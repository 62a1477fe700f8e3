"""unlearning-harness: a local, Kaggle-style benchmark for machine unlearning.

The public API: ``get_task`` and ``TASKS`` (what is scored), ``score`` (the whole pipeline on one
split) and ``score_splits`` (public and private, as ``harness score``), ``validate`` (the
conformance check of one submission), ``evaluate`` (a function from a notebook cell, scored in one
call; its result is an ``Evaluation``) and the metric's pure functions in
``harness.evaluation.metric``. Each name is imported when first used, so that ``import harness``
(and the CLI's start-up) does not pay for torch, pandas and scipy.
"""

from __future__ import annotations

import importlib

from harness.core.defaults import VERSION as __version__  # noqa: F401  (public)

_PUBLIC = {
    "Evaluation": "harness.notebook",
    "epsilons": "harness.evaluation.metric",
    "evaluate": "harness.notebook",
    "final_score": "harness.evaluation.metric",
    "forget_quality": "harness.evaluation.metric",
    "logit_scaled_confidence": "harness.evaluation.metric",
    "score": "harness.pipeline.scoring",
    "score_splits": "harness.pipeline.scoring",
    "TASKS": "harness.tasks",
    "get_task": "harness.tasks",
    "validate": "harness.pipeline.validate",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # the function, also where a submodule of that name was imported
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
