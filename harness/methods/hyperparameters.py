"""Declared hyperparameters: the keyword arguments of a submission's ``unlearning`` that
``harness tune`` may change, and the settings the scorer passes to it.

A submission declares them in two places, both read without running its code:

* ``unlearning(net, retain, forget, val, lr=1e-4, epochs=5)``: each hyperparameter is a
  parameter after the four positional ones, with the published constant as its default (a literal,
  or the name of a module constant bound to a literal), so a call with four arguments runs the
  published method;
* ``SEARCH_SPACE``, a plain-literal module constant mapping each tunable parameter to its range:
  ``{"lr": {"low": 1e-5, "high": 1.0, "log": True}, "epochs": {"low": 1, "high": 10},
  "loss": {"choices": ["ce", "kl"]}}``. Integers when ``low`` and ``high`` are both integers,
  floats otherwise; ``log`` samples on a log scale, ``step`` on a grid.

A file without ``SEARCH_SPACE`` is an untunable submission and keeps working as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

SPACE_CONSTANT = "SEARCH_SPACE"
PUBLISHED = "published"  # the settings label of a run with the published constants
RANGE_KEYS = {"low", "high", "log", "step"}

Value = int | float | str | bool | None


class SpaceError(ValueError):
    """A search space or a setting that does not fit the submission's declaration."""


@dataclass(frozen=True)
class Hyperparameter:
    """One tunable keyword argument: a numeric range or a list of choices, and its default (the
    published constant)."""

    name: str
    default: Value
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Value, ...] | None = None

    @property
    def is_integer(self) -> bool:
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)
        )

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not a valid setting of this hyperparameter (None when it is)."""
        if self.choices is not None:
            if value not in self.choices:
                return f"{self.name}={value!r} is not one of {list(self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{self.name}={value!r} is not a number"
        if self.is_integer and not isinstance(value, int):
            return f"{self.name}={value!r} is not an integer"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return f"{self.name}={value!r} is outside [{self.low}, {self.high}]"
        return None


def _parse_one(name: str, spec: object, default: Value) -> Hyperparameter:
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{SPACE_CONSTANT}[{name!r}] must be a dict, got {type(spec).__name__}")
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise SpaceError(f"{SPACE_CONSTANT}[{name!r}]: 'choices' stands alone")
        choices = spec["choices"]
        if not isinstance(choices, list | tuple) or not choices:
            raise SpaceError(f"{SPACE_CONSTANT}[{name!r}]['choices'] must be a non-empty list")
        parameter = Hyperparameter(name, default, choices=tuple(choices))
    else:
        unknown = set(spec) - RANGE_KEYS
        if unknown or not {"low", "high"} <= set(spec):
            raise SpaceError(
                f"{SPACE_CONSTANT}[{name!r}] needs 'low' and 'high' (and optionally 'log', "
                f"'step') or 'choices' alone; got {sorted(spec)}"
            )
        low, high = spec["low"], spec["high"]
        for bound in (low, high):
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise SpaceError(f"{SPACE_CONSTANT}[{name!r}]: bounds must be numbers")
        if not low < high:
            raise SpaceError(f"{SPACE_CONSTANT}[{name!r}]: low must be below high")
        log = spec.get("log", False)
        if log not in (True, False) or (log and low <= 0):
            raise SpaceError(f"{SPACE_CONSTANT}[{name!r}]: 'log' needs True and a positive low")
        step = spec.get("step")
        if step is not None and (log or not isinstance(step, int | float) or step <= 0):
            raise SpaceError(f"{SPACE_CONSTANT}[{name!r}]: 'step' is a positive number, no 'log'")
        parameter = Hyperparameter(name, default, low=low, high=high, log=log, step=step)
    problem = parameter.problem(default)
    if problem is not None:
        raise SpaceError(f"the default lies outside the declared space: {problem}")
    return parameter


def parse_space(space: object, defaults: Mapping[str, Value]) -> dict[str, Hyperparameter]:
    """The declared space, checked against ``defaults`` (the keyword arguments of ``unlearning``
    with their default values): every tunable name must be such an argument, and its default must
    lie in its range."""
    if not isinstance(space, Mapping) or not space:
        raise SpaceError(f"{SPACE_CONSTANT} must be a non-empty dict of name -> range")
    parsed = {}
    for name, spec in space.items():
        if name not in defaults:
            raise SpaceError(
                f"{SPACE_CONSTANT} names {name!r}, which is not a keyword argument of "
                f"`unlearning` with a default (found: {', '.join(defaults) or 'none'})"
            )
        parsed[name] = _parse_one(name, spec, defaults[name])
    return parsed


def check_settings(space: Mapping[str, Hyperparameter], settings: Mapping[str, object]) -> None:
    """Raise ``SpaceError`` unless every setting names a declared hyperparameter and fits it."""
    for name, value in settings.items():
        if name not in space:
            known = ", ".join(space) or "none"
            raise SpaceError(f"{name!r} is not a declared hyperparameter (declared: {known})")
        problem = space[name].problem(value)
        if problem is not None:
            raise SpaceError(problem)


def encode(settings: Mapping[str, object]) -> str:
    """Settings as the leaderboard records them, exactly: ``published`` or sorted JSON."""
    return json.dumps(dict(sorted(settings.items()))) if settings else PUBLISHED


def describe(settings: Mapping[str, object]) -> str:
    """Settings for people to read: ``published`` or ``epochs=7, lr=0.0123``."""
    if not settings:
        return PUBLISHED
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value!r}"
        if isinstance(value, str) else f"{name}={value}"
        for name, value in sorted(settings.items())
    )
