"""Training models: a task's recipe and the one loop that follows it (``loop.optimise``), for
one model (the original model, a pool model trained alone) and for an ensemble of pool models
(``harness.reference.ensemble``).

May import: ``harness.core``, ``harness.data``.
"""
