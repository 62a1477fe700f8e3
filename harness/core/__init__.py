"""Foundations every stage shares: the defaults (cache root, interval level), atomic file I/O
(``files``), which code produced a number (``sources``), the name registry, seed derivation and
the progress callbacks.

May import: nothing else in ``harness``.
"""
