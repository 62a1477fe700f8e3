"""The numbers: the official per-example epsilon metric (``metric``, pure functions on
arrays), its intervals (``uncertainty``), rank intervals (``ranks``), the literature's audits
(``audits``), the paired CI gate's test and baseline rows (``gate``), and what they read: the
per-model numbers (``model_stats``) and per-example outputs (``example_outputs``).

May import: ``harness.core``, ``harness.data``, ``harness.training``, ``harness.tasks``.
"""
