"""The name registry behind ``get_task`` and ``harness tasks``."""

import sys

import pytest

from harness.core.registry import Registry
from harness.tasks import TASKS


def test_register_get_and_a_miss_that_names_what_exists():
    registry: Registry = Registry("widget")
    registry.register("b")(len)
    registry.register_lazy("a", "json:dumps")
    assert registry.names() == ["a", "b"] == list(registry)
    assert registry.get("b") is len
    with pytest.raises(KeyError, match="unknown widget 'c'; known: a, b"):
        registry.get("c")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(len)


def test_a_lazy_entry_is_imported_when_first_asked_for(tmp_path, monkeypatch):
    (tmp_path / "lazy_widget_module.py").write_text('"""Widgets, lazily.\n\nMore."""\nVALUE = 42\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry = Registry("widget")
    registry.register_lazy("w", "lazy_widget_module:VALUE")
    assert registry.summary("w") == "Widgets, lazily."
    assert "lazy_widget_module" not in sys.modules  # naming and describing imported nothing
    assert registry.get("w") == 42
    assert "lazy_widget_module" in sys.modules


def test_the_task_registry_lists_every_task_with_its_summary():
    assert TASKS.names() == ["cifar10", "digits", "surf"]
    assert all(TASKS.summary(name) for name in TASKS)
