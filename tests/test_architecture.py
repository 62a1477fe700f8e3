"""The package layout's one rule: imports point down the pipeline, and no module imports itself
back through others. Every import counts: at module level, inside functions, and the ones only
type checkers read (``if TYPE_CHECKING``)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "harness"

# the packages in pipeline order: each may import those before it and itself, never one after it
LAYERS = ["core", "data", "training", "tasks", "evaluation", "methods", "reference", "execution",
          "outputs", "pipeline"]
INTERFACES = {"harness", "harness.cli", "harness.notebook", "harness.__main__"}
PUBLIC_ALIASES = {"harness.toolkit": "methods"}  # the name submissions import, a re-export


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    """A module's rank: its package's place in ``LAYERS``; the interfaces come last."""
    if module in INTERFACES:
        return len(LAYERS)
    if module in PUBLIC_ALIASES:
        return LAYERS.index(PUBLIC_ALIASES[module])
    return LAYERS.index(module.split(".")[1])


def resolve(name: str) -> str | None:
    """The harness module an imported name is in (``None`` outside the package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(path: Path) -> set[str]:
    """The harness modules a file imports anywhere in it: ``from a import b`` imports the
    submodule ``a.b`` where there is one, else module ``a``."""
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert not node.level, f"{path}: relative import"
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else resolve(node.module))
    found.discard(None)
    found.discard(module_name(path))
    return {m for m in found if m is not None}


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    for name in MODULES:
        if name not in INTERFACES and name not in PUBLIC_ALIASES:
            assert name.split(".")[1] in LAYERS, f"{name} is in no package of the pipeline"


def test_imports_point_down_the_pipeline():
    upward = [
        f"{importer} -> {imported}"
        for importer, targets in GRAPH.items() for imported in targets
        if layer(imported) > layer(importer)
        and not (importer in INTERFACES and imported == "harness")
    ]
    assert not upward, "imports that point up the pipeline:\n" + "\n".join(sorted(upward))


def test_nothing_below_the_interfaces_imports_the_package_root():
    """``harness/__init__`` exposes the public API lazily; importing it from inside would tie a
    stage to everything above it."""
    assert not [m for m, targets in GRAPH.items() if "harness" in targets
                and m not in INTERFACES and m not in ("harness.tasks",)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    graph = {m: {t for t in targets if t != "harness"} for m, targets in GRAPH.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_package_says_what_it_owns_and_may_import():
    for name in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
        assert "import" in doc, f"harness.{name}'s __init__ does not say what it may import"


LIGHT_IMPORTS = {  # what importing each loads of the harness and of the heavy stack
    "harness": ["harness.core", "harness.core.defaults"],
    # the metric follows the published code's float32 thresholds, made by torch.linspace
    "harness.evaluation.metric": ["harness.core", "harness.core.defaults", "harness.evaluation",
                                  "harness.evaluation.metric", "torch"],
    "harness.cli": ["harness.cli", "harness.core", "harness.core.defaults", "harness.execution",
                    "harness.execution.sandbox"],
}


@pytest.mark.parametrize("module", sorted(LIGHT_IMPORTS))
def test_importing_a_light_module_does_not_load_the_rest(module):
    """``import harness`` and the CLI's start-up load no heavy library and little of the
    harness; the metric loads the metric (and torch), not pandas, scipy or the other stages."""
    code = (f"import sys, {module}; print(sorted(m for m in sys.modules if m in "
            "('pandas', 'scipy', 'torch', 'sklearn') or m.startswith('harness.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == str(LIGHT_IMPORTS[module])
