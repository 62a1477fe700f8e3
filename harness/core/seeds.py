"""Seed derivation: every random stream in the harness comes from the task's root seed.

Seeds are derived with ``numpy.random.SeedSequence`` from (root, namespace, name, index), so adding
a submission changes no other submission's seeds, and the same root always gives the same numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _name_key(name: str) -> int:
    """A stable integer for a string (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def derive_seed(root: int, namespace: str, name: str = "", index: int = 0) -> int:
    """A 63-bit seed for (root, namespace, name, index), usable by torch and numpy."""
    if root < 0 or index < 0:
        raise ValueError(f"seeds and indices must be non-negative, got root={root}, index={index}")
    sequence = np.random.SeedSequence([root, _name_key(namespace), _name_key(name), index])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def run_seed(root: int, submission: str, run_index: int) -> int:
    """Seed of run ``run_index`` of ``submission``."""
    return derive_seed(root, "submission-run", submission, run_index)


def pool_seed(root: int, model_index: int) -> int:
    """Seed of reference (retain-only) model ``model_index``."""
    return derive_seed(root, "reference-pool", "", model_index)
