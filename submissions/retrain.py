"""Retrain from scratch on the retain set with the task's model factory and recipe (the ceiling).

This is exactly how the reference pool is made, so its unlearned models are distributed like the
retrained ones and its forgetting quality is what two independent pools of the same size score: the
best reachable value, well below 1. It takes the full training time, far over the competition's
budget of 20% of retraining, so it is a reference point that is scored but never ranked.
"""

from harness.toolkit import retrain_from_scratch

NAME = "Retrain from scratch"
REFERENCE = "exact unlearning; the reference pool's own procedure"
BUDGET_EXEMPT = True


def unlearning(net, retain, forget, val):
    return retrain_from_scratch(net, retain)
