"""The packages of ``hookstream`` depend on each other in one direction only: a declared order of
layers, each importing only its own layer and those below, and no cycle between packages."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import hookstream

ROOT = Path(hookstream.__file__).parent

#: Lowest first. Within a layer packages may import each other, as long as no cycle forms.
LAYERS: list[set[str]] = [
    {"core", "logs", "metrics"},
    {"settings"},
    {"records"},
    {"kafka", "net", "views", "localkafka", "ops"},
    {"matcher", "sender", "admin", "history", "client"},
    {"cli"},
]

#: Imports that go against the layers today, by module: the rules in ``core`` over the records
#: (they belong above ``records``; ``eventtypes`` is a record and belongs in it). Listed so that
#: no new one appears; remove an entry when its module moves.
KNOWN_UPWARD = {
    ("core.eventtypes", "records"),
    ("core.formatting", "records"),
    ("core.payloads", "records"),
    ("core.registry", "records"),
    ("core.signing", "records"),
}


def _package(module: str) -> str:
    """The top-level part of a module of hookstream ("kafka" for "kafka.follower")."""
    return module.split(".")[0]


def _imports() -> dict[str, set[str]]:
    """Every module of hookstream (dotted, without the prefix) and the hookstream modules it
    imports, at any depth of the file (imports inside functions count too)."""
    found: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts:
            continue
        module = ".".join(parts)
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("hookstream."):
                    targets.add(name.removeprefix("hookstream."))
        found[module] = targets
    return found


def _layer_of() -> dict[str, int]:
    return {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def test_every_package_has_a_layer() -> None:
    packages = {_package(module) for module in _imports()}
    assert packages - {"__main__"} <= set(_layer_of()), "declare the new package in LAYERS"


def test_no_package_imports_a_higher_layer() -> None:
    rank = _layer_of()
    upward = {
        (module, _package(target))
        for module, targets in _imports().items()
        for target in targets
        if rank.get(_package(target), 0) > rank.get(_package(module), 0)
    }
    assert upward - KNOWN_UPWARD == set(), "an import against the layers (see LAYERS)"
    assert KNOWN_UPWARD - upward == set(), "an exception that is gone: remove it from the list"


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for following in sorted(edges.get(node, ())):
            if state.get(following) == 1:
                return [*path[path.index(following) :], following]
            if following not in state and (found := visit(following, [*path, following])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_packages_import_each_other_without_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in _imports().items():
        for target in targets:
            if (module, _package(target)) in KNOWN_UPWARD:
                continue
            if _package(target) != _package(module):
                edges[_package(module)].add(_package(target))
    assert _cycle(edges) is None, f"packages import each other: {' -> '.join(_cycle(edges) or [])}"


def test_a_cycle_is_found() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
