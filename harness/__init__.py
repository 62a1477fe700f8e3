"""unlearning-harness: a local, Kaggle-style benchmark for machine unlearning.

The public API: ``get_task`` and ``TASKS`` (what is scored), ``score`` (the whole pipeline on one
split) and ``score_splits`` (public and private, as ``harness score``), ``validate`` (the
conformance check of one submission) and the metric's pure functions in ``harness.metric``.
"""

__version__ = "0.1.0"

from harness.metric import epsilons, final_score, forget_quality, logit_scaled_confidence  # noqa: E402
from harness.scoring import score, score_splits  # noqa: E402
from harness.tasks import TASKS, get_task  # noqa: E402
from harness.validate import validate  # noqa: E402

__all__ = [
    "TASKS", "epsilons", "final_score", "forget_quality", "get_task", "logit_scaled_confidence",
    "score", "score_splits", "validate",
]
