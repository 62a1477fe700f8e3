"""Task registry: ``get_task(name, **overrides)`` builds a task; add one by adding a module."""

from __future__ import annotations

from harness.registry import Registry
from harness.tasks.base import Task, TaskData
from harness.tasks.digits import digits_task

TASKS: Registry = Registry("task")
TASKS.register("digits")(digits_task)


def get_task(name: str, **overrides) -> Task:
    """The task ``name`` with fields overridden (e.g. ``num_models=32``, ``root_seed=1``)."""
    return TASKS.get(name)(**overrides)


__all__ = ["TASKS", "Task", "TaskData", "get_task"]
