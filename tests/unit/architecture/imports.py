"""The package's own import graph, read from the source with ``ast`` (nothing is imported).

Every import counts, also the ones inside functions and ``if TYPE_CHECKING:`` blocks: a lazy
import hides a dependency, it does not remove it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "nexus_dagster"
ROOT = Path(__file__).resolve().parents[3] / PACKAGE


@dataclass
class Module:
    """One module of the package: its imports of package modules and of private names."""

    name: str
    path: Path
    imports: set[str] = field(default_factory=set)
    #: (line, "module.name") for each ``from module import _name`` of another module
    private_imports: list[tuple[int, str]] = field(default_factory=list)
    #: (line, "module._name") for each ``module._name`` attribute use of an imported module
    private_uses: list[tuple[int, str]] = field(default_factory=list)
    #: top-level packages imported from outside the project (``dagster``, ``duckdb`` ...)
    external: dict[str, int] = field(default_factory=dict)
    #: private names this module defines (functions, classes, methods, attributes, variables)
    defines: set[str] = field(default_factory=set)
    #: (line, "_name") for each ``obj._name`` with ``obj`` not self/cls nor a module alias
    reaches: list[tuple[int, str]] = field(default_factory=list)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load_modules() -> dict[str, Module]:
    """Every module of the package with what it imports."""
    modules = {module_name(p): Module(module_name(p), p) for p in sorted(ROOT.rglob("*.py"))}
    for module in modules.values():
        _read(module, modules)
    return modules


def private_reaches(modules: dict[str, Module]) -> list[tuple[Module, int, str]]:
    """``obj._name`` uses of a private name that this module does not define and another
    package module does: reaching into another module's class (``connector._probe()``)."""
    found = []
    for module in modules.values():
        others = set().union(*(m.defines for m in modules.values() if m is not module))
        for line, name in module.reaches:
            if name not in module.defines and name in others:
                found.append((module, line, name))
    return found


def _target(name: str, modules: dict[str, Module]) -> str | None:
    """The package module ``name`` refers to (the module itself, or its package)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _read(module: Module, modules: dict[str, Module]) -> None:
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    aliases: dict[str, str] = {}  # local name -> package module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != PACKAGE:
                    module.external.setdefault(alias.name.split(".")[0], node.lineno)
                    continue
                target = _target(alias.name, modules)
                if target and target != module.name:
                    module.imports.add(target)
                    aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != PACKAGE:
                module.external.setdefault(node.module.split(".")[0], node.lineno)
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules:  # a submodule: ``from nexus_dagster import secrets``
                    target = full
                    aliases[alias.asname or alias.name] = full
                else:
                    target = _target(node.module, modules)
                    if alias.name.startswith("_") and target != module.name:
                        module.private_imports.append((node.lineno, full))
                if target and target != module.name:
                    module.imports.add(target)
    for node in ast.walk(tree):
        name = _defined_name(node)
        if name and name.startswith("_") and not name.startswith("__"):
            module.defines.add(name)
        if not (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in aliases:
            module.private_uses.append((node.lineno, f"{aliases[node.value.id]}.{node.attr}"))
        elif not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            module.reaches.append((node.lineno, node.attr))


def _defined_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
        return node.attr
    return None


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """The import cycles: each strongly connected group of more than one module (Tarjan),
    or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(name: str) -> None:
        index[name] = low[name] = counter[0]
        counter[0] += 1
        stack.append(name)
        on_stack.add(name)
        for other in sorted(modules[name].imports):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in on_stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == name:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return found
