"""The retrained models a submission is compared with: the original model, the
reference pool and the ceiling pool, their cached store and builders (``pool``), and the grouped
training that builds many small models at once (``ensemble``).

May import: ``harness.core`` through ``harness.methods``.
"""
