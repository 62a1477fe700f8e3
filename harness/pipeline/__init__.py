"""The stages put together: scoring every submission on a split or both (``scoring``),
the conformance check of one submission (``validate``), hyperparameter tuning (``tuning``), the
regression gate (``regression``) and what a scored board was made from (``recorded``).

May import: every package above except the interfaces (``harness.cli``, ``harness.notebook``).
"""
