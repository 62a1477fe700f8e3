"""Task registry: ``get_task(name, **overrides)`` builds a task; add one by adding a module."""

from __future__ import annotations

import dataclasses

from harness.registry import Registry
from harness.tasks.base import DataError, Task, TaskData
from harness.tasks.cifar10 import cifar10_task
from harness.tasks.digits import digits_task
from harness.tasks.surf import surf_task

TASKS: Registry = Registry("task")
TASKS.register("digits")(digits_task)
TASKS.register("cifar10")(cifar10_task)
TASKS.register("surf")(surf_task)


def get_task(name: str, **overrides) -> Task:
    """The task ``name`` with fields overridden (e.g. ``num_models=32``, ``root_seed=1``)."""
    factory = TASKS.get(name)
    options = {f.name for f in dataclasses.fields(factory())} if overrides else set()
    unknown = sorted(set(overrides) - options)
    if unknown:
        raise ValueError(f"task {name!r} has no option {', '.join(unknown)}")
    return factory(**overrides)


__all__ = ["TASKS", "DataError", "Task", "TaskData", "get_task"]
