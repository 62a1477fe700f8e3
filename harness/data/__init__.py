"""The data every task is made of: the example format loaders yield in both competition
styles (``examples``) and the network architectures (``networks``).

May import: ``harness.core``.
"""
