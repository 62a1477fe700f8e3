"""Task registry: ``get_task(name, **overrides)`` builds a task; add one by adding a module.

A task is data, a network and a training recipe put together, so this package may import
``harness.core``, ``harness.data`` and ``harness.training``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

from harness.core.registry import Registry

if TYPE_CHECKING:
    from harness.tasks.base import Task

# imported when first used: naming the tasks (``harness tasks``, ``--help``) imports none of them
TASKS: Registry = Registry("task")
TASKS.register_lazy("digits", "harness.tasks.digits:digits_task")
TASKS.register_lazy("cifar10", "harness.tasks.cifar10:cifar10_task")
TASKS.register_lazy("surf", "harness.tasks.surf:surf_task")


def get_task(name: str, **overrides) -> Task:
    """The task ``name`` with fields overridden (e.g. ``num_models=32``, ``root_seed=1``)."""
    factory = TASKS.get(name)
    options = {f.name for f in dataclasses.fields(factory())} if overrides else set()
    unknown = sorted(set(overrides) - options)
    if unknown:
        raise ValueError(f"task {name!r} has no option {', '.join(unknown)}")
    return factory(**overrides)


__all__ = ["TASKS", "DataError", "Task", "TaskData", "get_task"]


def __getattr__(name: str) -> object:
    """``DataError``, ``Task`` and ``TaskData`` from ``harness.tasks.base``, imported (with
    torch) when first used."""
    if name in ("DataError", "Task", "TaskData"):
        return getattr(importlib.import_module("harness.tasks.base"), name)
    raise AttributeError(f"module 'harness.tasks' has no attribute {name!r}")
