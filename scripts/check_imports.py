"""The import contract (LAYOUT.md, "The layer rules"), checked over the syntax tree of every module.

Run from the repository root as `.venv/bin/python scripts/check_imports.py [ROOT]`. Exit 0 when the tree keeps the
contract; exit 1 with one line per violation, `FILE:LINE: what imports what: the rule it breaks`.

Every import statement counts, wherever it stands: at module level, inside a function, under `TYPE_CHECKING`.
Imports are read from the syntax tree and resolved against the files (relative ones too; `from a import b` means the
module `a.b` when there is one, the name `b` of `a` otherwise). Imports by string (`importlib.import_module`) are
not seen. tests/, bench/, fuzz/, hil-tests/ and scripts/ are not checked.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# gateway/'s layer packages, top to bottom: a package imports only the tiers below its own. The packages of one tier
# are siblings and never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("service",),
    ("panel",),
    ("safety",),
    ("field", "uplink"),
    ("store", "config"),
    ("base",),
)
RANK = {package: rank for rank, tier in enumerate(LAYERS) for package in tier}
ORDER = " > ".join(" | ".join(tier) for tier in LAYERS)
FACE = "gateway"  # gateway/__init__.py: importable from every layer, imports nothing of gateway
MAIN = "gateway.__main__"  # an entry point, like cli/

TREES = ("gateway", "drivers", "simulators")  # one import namespace; no circles, rule 7 applies
FIRMWARE = "firmware"  # MicroPython: its own namespace (firmware/ is the node's root), imports nothing of TREES
SKIPPED_DIRS = {"__pycache__", "node_modules"}
# What a package's __init__.py may assign; the face also carries the version.
MAY_ASSIGN = {FACE: {"__all__", "__version__"}}
MAX_CIRCLES = 20  # per knot of modules; past that, one line names the knot


@dataclass(frozen=True)
class Violation:
    """One break of the contract, at the line that makes it."""

    path: str  # relative to the root, with forward slashes
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Module:
    """One source file, named as Python imports it."""

    name: str  # gateway.safety.alarms; firmware's as the node sees them (fieldnode.app)
    path: Path  # relative to the root
    tree: str  # gateway, drivers, simulators or firmware
    is_package: bool  # an __init__.py

    @property
    def where(self) -> str:
        return self.path.as_posix()

    @property
    def layer(self) -> str | None:
        """The layer package this module lives in, FACE for gateway/__init__.py, None when it is in none."""
        parts = self.path.parts
        if self.tree != "gateway":
            return None
        if len(parts) == 2:  # directly in gateway/
            return {"__init__.py": FACE, "__main__.py": "cli"}.get(parts[1])
        return parts[1] if parts[1] in RANK else None


@dataclass(frozen=True)
class Import:
    """One module named by an import statement: the module itself, or the one a name is taken from."""

    target: str
    line: int


def discover(root: Path) -> list[Module]:
    """Every .py file of gateway/, drivers/, simulators/ and firmware/ under root, in path order."""
    modules: list[Module] = []
    for tree in (*TREES, FIRMWARE):
        top = root / tree
        if not top.is_dir():
            continue
        base = top if tree == FIRMWARE else root
        for path in sorted(top.rglob("*.py")):
            inside = path.relative_to(top).parts[:-1]
            if any(part in SKIPPED_DIRS or part.startswith(".") for part in inside):
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            if parts:
                modules.append(Module(".".join(parts), path.relative_to(root), tree, is_package))
    return modules


def imports(module: Module, syntax: ast.Module, known: set[str]) -> tuple[list[Import], list[Violation]]:
    """What module imports, resolved against the known module names; relative imports that go above the top."""
    found: list[Import] = []
    bad: list[Violation] = []
    for node in ast.walk(syntax):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, node)
            if base is None:
                message = f"{module.name}: relative import (level {node.level}) goes above the top package"
                bad.append(Violation(module.where, node.lineno, message))
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(Import(submodule if submodule in known else base, node.lineno))
    return list(dict.fromkeys(found)), bad  # one import of a module per line


def _from_base(module: Module, node: ast.ImportFrom) -> str | None:
    """The module a `from ... import` statement reads from; None when its dots climb above the top package."""
    if not node.level:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    keep = len(package) - (node.level - 1)
    if keep < 1:
        return None
    return ".".join([*package[:keep], *([node.module] if node.module else [])])


def _layer_of(target: str, modules: dict[str, Module]) -> str | None:
    """The layer of an imported gateway module: from its file when it exists, else from its name."""
    if target in modules:
        return modules[target].layer
    parts = target.split(".")
    if len(parts) == 1:
        return FACE
    return parts[1] if parts[1] in RANK else None


def rule_break(module: Module, target: str, modules: dict[str, Module]) -> str | None:
    """Why module may not import target (rules 1 to 5 and the face), or None when it may."""
    top = target.split(".", maxsplit=1)[0]
    said = f"{module.name} imports {target}"
    if module.tree == FIRMWARE:
        return f"{said}: firmware/ imports nothing of gateway/, drivers/, simulators/" if top in TREES else None
    if module.tree == "drivers":
        return f"{said}: drivers/ never imports gateway/ or simulators/" if top in {"gateway", "simulators"} else None
    if module.tree == "simulators":
        return f"{said}: simulators/ never imports gateway/" if top == "gateway" else None
    if top == "simulators":
        return None if module.layer == "cli" else f"{said}: only gateway/cli/ imports simulators/"
    if top != "gateway":
        return None
    if module.layer == FACE:
        return f"{said}: gateway/__init__.py imports nothing of gateway"
    return _layer_break(said, module.layer, _layer_of(target, modules))


def _layer_break(said: str, source: str | None, target: str | None) -> str | None:
    """Rules 1 and 2 between two layer packages; modules in no layer are reported on their own."""
    if source is None or target is None or target in {FACE, source}:
        return None
    if RANK[target] < RANK[source]:
        return f"{said}: {source} may not import {target} (layers, top to bottom: {ORDER})"
    if RANK[target] == RANK[source]:
        return f"{said}: {source} may not import {target} (siblings never import each other)"
    return None


def not_in_a_layer(module: Module) -> Violation | None:
    """Every module of gateway/ lives in a layer package (or is the face, or __main__.py)."""
    if module.tree != "gateway" or module.layer is not None:
        return None
    layers = ", ".join(RANK)
    return Violation(module.where, 1, f"{module.name} is not in a layer package ({layers})")


def definitions(module: Module, syntax: ast.Module) -> Iterator[Violation]:
    """Rule 7: a package's __init__.py hands names on and defines nothing."""
    if not module.is_package or module.tree == FIRMWARE:
        return
    allowed = MAY_ASSIGN.get(module.name, {"__all__"})
    for line, name in _defined(syntax.body):
        if name not in allowed:
            message = f"{module.name} defines {name}: a package's __init__.py hands names on and defines nothing"
            yield Violation(module.where, line, message)


def _defined(body: Sequence[ast.stmt]) -> Iterator[tuple[int, str]]:
    """(line, name) of every def, class and assignment in body, also inside if, try, with and loops."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield stmt.lineno, stmt.name
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                yield from ((stmt.lineno, name) for name in _names(target))
        else:
            for field in ("body", "orelse", "finalbody"):
                yield from _defined(getattr(stmt, field, []))
            for handler in getattr(stmt, "handlers", []):
                yield from _defined(handler.body)


def _names(target: ast.expr) -> Iterator[str]:
    """The names an assignment target binds; an attribute or item as written."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _names(element)
    elif isinstance(target, ast.Starred):
        yield from _names(target.value)
    else:
        yield ast.unparse(target)


def circles(graph: dict[str, dict[str, int]], modules: dict[str, Module]) -> Iterator[Violation]:
    """Rule 6: each import circle once, from its first module in name order, at the import that starts it."""
    for knot in _knots(graph):
        for found, circle in enumerate(_circles_in(graph, knot), start=1):
            if found > MAX_CIRCLES:
                message = f"more than {MAX_CIRCLES} import circles among {', '.join(sorted(knot))}"
                yield Violation(modules[min(knot)].where, 1, message)
                break
            where = modules[circle[0]].where
            yield Violation(where, graph[circle[0]][circle[1]], f"import circle: {' -> '.join(circle)}")


def _knots(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The strongly connected parts of graph (Tarjan) that hold a circle: two modules or more, or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    knots: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            knot: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                knot.add(member)
                if member == node:
                    break
            if len(knot) > 1 or node in graph[node]:
                knots.append(knot)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return knots


def _circles_in(graph: dict[str, dict[str, int]], knot: set[str]) -> Iterator[list[str]]:
    """Every elementary circle of one knot, each found once: from its least module, through greater ones only."""
    members = sorted(knot)
    for rank, start in enumerate(members):
        yield from _paths_back(graph, [start], set(members[rank:]))


def _paths_back(graph: dict[str, dict[str, int]], path: list[str], allowed: set[str]) -> Iterator[list[str]]:
    """Every way from the end of path back to its start through allowed modules not yet on the path."""
    for successor in sorted(graph[path[-1]]):
        if successor == path[0]:
            yield [*path, successor]
        elif successor in allowed and successor not in path:
            yield from _paths_back(graph, [*path, successor], allowed)


def check(root: Path) -> list[Violation]:
    """Every break of the import contract in the tree at root, in file and line order."""
    found = discover(root)
    modules = {module.name: module for module in found if module.tree != FIRMWARE}
    firmware = {module.name: module for module in found if module.tree == FIRMWARE}
    violations: list[Violation] = []
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for namespace in (modules, firmware):
        for module in namespace.values():
            violations.extend(_check_module(root, module, namespace, graph))
    violations.extend(circles(graph, modules))
    return sorted(violations, key=lambda v: (v.path, v.line, v.message))


def _check_module(
    root: Path, module: Module, namespace: dict[str, Module], graph: dict[str, dict[str, int]]
) -> Iterator[Violation]:
    """The violations of one module; its imports of modules of its namespace go into graph (gateway's namespace)."""
    try:
        syntax = ast.parse((root / module.path).read_text(encoding="utf-8"), filename=module.where)
    except SyntaxError as error:
        yield Violation(module.where, error.lineno or 1, f"cannot be parsed: {error.msg}")
        return
    except UnicodeDecodeError as error:
        yield Violation(module.where, 1, f"cannot be read as UTF-8: {error.reason}")
        return
    if (where := not_in_a_layer(module)) is not None:
        yield where
    yield from definitions(module, syntax)
    found, bad = imports(module, syntax, set(namespace))
    yield from bad
    for imported in found:
        if (why := rule_break(module, imported.target, namespace)) is not None:
            yield Violation(module.where, imported.line, why)
        if module.tree != FIRMWARE and imported.target in namespace:
            edges = graph[module.name]
            edges[imported.target] = min(edges.get(imported.target, imported.line), imported.line)


def main(argv: Sequence[str] | None = None) -> int:
    """Print every violation under the root (default: this repository); 1 when there is one, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent)
    root: Path = parser.parse_args(argv).root
    if not root.is_dir():
        parser.error(f"{root}: no such directory")
    violations = check(root)
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} breaks of the import contract (LAYOUT.md, 'The layer rules')", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
