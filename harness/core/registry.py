"""A small name -> object registry, so that adding a task is one new file."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects found by name; a miss says what exists."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T | str] = {}  # an object, or where to import it from

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def register_lazy(self, name: str, location: str) -> None:
        """Register the object at ``location`` (``"package.module:attribute"``), imported when
        first asked for: listing names does not import what they name."""
        self.register(name)(location)

    def get(self, name: str) -> T:
        try:
            item = self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None
        if isinstance(item, str):
            module, attribute = item.split(":")
            item = self._items[name] = getattr(importlib.import_module(module), attribute)
        return item

    def summary(self, name: str) -> str:
        """The first line of the docstring of the module that defines what ``name`` registers,
        read without importing it."""
        item = self._items[name]
        module = item.split(":")[0] if isinstance(item, str) else item.__module__
        spec = importlib.util.find_spec(module)
        source = Path(spec.origin).read_text() if spec and spec.origin else ""
        return (ast.get_docstring(ast.parse(source)) or "").strip().split("\n")[0]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
