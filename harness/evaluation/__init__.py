"""The numbers: the official per-example epsilon metric (``metric``, pure functions on
arrays), its intervals (``uncertainty``), rank intervals (``ranks``) and the per-model numbers
they read (``model_stats``).

May import: ``harness.core``, ``harness.data``, ``harness.training``, ``harness.tasks``.
"""
