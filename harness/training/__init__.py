"""Training and evaluating one model: a task's recipe and the loop that follows it
(``loop``), used for the original model, the reference pool and the ceiling pool.

May import: ``harness.core``, ``harness.data``.
"""
