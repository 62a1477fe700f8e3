"""Helpers for submissions: what several unlearning methods need, written once.

Submissions import from here (``from harness.toolkit import ...``). During a run the harness tells
the toolkit which task is being scored, so reference methods such as retraining can use the task's
own model factory and recipe.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from harness.tasks.base import Task
from harness.training import train_model

_current_task: Task | None = None


def set_current_task(task: Task | None) -> None:
    """Called by the harness's worker before runs; not for submissions."""
    global _current_task
    _current_task = task


def current_task() -> Task:
    """The task being scored (raises outside a harness run)."""
    if _current_task is None:
        raise RuntimeError("current_task() is only available while the harness runs a submission")
    return _current_task


def device_of(net: nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a model without parameters)."""
    return next(net.parameters(), torch.empty(0)).device


def fresh_seed() -> int:
    """A seed drawn from torch's global RNG, which the harness seeds for every run."""
    return int(torch.randint(0, 2**62, ()).item())


def retrain_from_scratch(net: nn.Module, retain: DataLoader) -> nn.Module:
    """Re-initialise ``net`` as the task's model factory does and train it on ``retain.dataset``
    with the task's recipe: the procedure of the reference pool."""
    task = current_task()
    net.load_state_dict(task.make_model().state_dict())
    return train_model(
        net, retain.dataset, task.recipe, fresh_seed(), task.num_classes, device_of(net)
    )
