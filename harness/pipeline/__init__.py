"""The stages put together: scoring every submission on a split or both (``scoring``),
the conformance check of one submission (``validate``), hyperparameter tuning (``tuning``) and
the regression gate (``regression``).

May import: every package above except the interfaces (``harness.cli``, ``harness.notebook``).
"""
