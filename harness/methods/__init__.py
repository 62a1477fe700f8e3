"""What a submission is: finding and checking submission files (``loading``), their
declared hyperparameters, the tuned settings ``harness tune`` records, and the helpers
submissions import (``toolkit``, public as ``harness.toolkit``).

May import: ``harness.core`` through ``harness.evaluation``.
"""
