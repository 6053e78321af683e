"""The package's shape, read from its import graph with ``ast`` (CONVENTIONS.md, "Shape").

- Every module belongs to a layer; imports point only at the same layer or
  below (base < formats < io < engines < app < cli).
- No import cycle between modules (any import counts: top level, in a
  function, or for type checking only).
- No private name (``_x``) imported from another module.
- No module over 600 lines.
- Imports inside functions only of *heavy* modules: a third-party package
  that costs startup time, or a raisin module whose top-level imports pull
  one in (computed here). Everything else is imported at the top, so the
  public use cases are typed for real and the import graph is visible.
  One exception, for start-up time: a CLI command module (``cli/cmd_*``)
  imports its use cases inside ``run``. The CLI imports every command
  module to build its parser, and only the chosen command's use case (and
  what it needs) should load: a no-op ``raisin realize`` takes ~0.1 s.
  The same holds for the slow path of a use case, listed in ``SLOW_PATHS``
  with the reason: a no-op realize must not import what locking needs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pytest

PKG = "raisin_lock"
ROOT = Path(__file__).resolve().parent.parent / "src" / PKG

LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"errors", "hashing", "store_path", "atomic", "display"}),
    ("formats", {"nar", "manifest", "lock"}),
    ("io", {"sources", "store", "cache"}),
    ("engines", {"build", "profiles", "testing", "remote"}),
    ("app", {"app"}),
    ("cli", {"cli"}),
]
# Third-party packages whose import costs startup time, and the package(s) that wrap each.
HEAVY_HOMES = {
    "pydantic": {"manifest"},
    "tomlkit": {"manifest"},
    "networkx": {"lock"},
    "git": {"sources"},
    "httpx": {
        "cache",
        "sources",
    },  # binary caches, and the url source (CONVENTIONS: HTTP's two homes)
    "httpcore": {"cache", "sources"},
    "cryptography": {"cache"},
    "zstandard": {"cache"},
    "rich": {"cli"},
    "grpc": {"remote"},  # REAPI client (and its generated stubs under remote/proto)
    "google": {"remote"},  # protobuf, the generated REAPI messages
}
HEAVY_THIRD_PARTY = set(HEAVY_HOMES)
MAX_LINES = 600
# (module, what it may import inside a function): the slow path of a fast use case.
SLOW_PATHS = {
    # realize planning asks app.staleness first; only a stale lock needs the resolver
    # (recipes, fetch steps, the sandbox, build deps): ~20 ms of imports a no-op realize skips.
    ("raisin_lock.app.planning", "raisin_lock.app.locking"),
}


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    top: set[str] = field(default_factory=set)  # raisin modules imported at module level (runtime)
    typing_only: set[str] = field(default_factory=set)  # under `if TYPE_CHECKING:`
    local: dict[str, int] = field(default_factory=dict)  # module imported inside a function -> line
    third_top: set[str] = field(default_factory=set)
    private: list[tuple[int, str, str]] = field(default_factory=list)


def _name_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _scan(path: Path, known: set[str]) -> Module:
    text = path.read_text()
    mod = Module(_name_of(path), path, len(text.splitlines()))
    is_pkg = path.name == "__init__.py"
    base = mod.name.split(".") if is_pkg else mod.name.split(".")[:-1]

    def targets(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
        """(module imported, name imported from it or None)."""
        if isinstance(node, ast.Import):
            return [(a.name, None) for a in node.names]
        if node.level:
            src = ".".join(
                base[: len(base) - node.level + 1] + ([node.module] if node.module else [])
            )
        else:
            src = node.module or ""
        out: list[tuple[str, str | None]] = []
        for a in node.names:
            full = f"{src}.{a.name}"
            out.append((full, None) if full in known else (src, a.name))
        return out

    def visit(nodes: list[ast.stmt], where: str) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, name in targets(node):
                    top_pkg = target.split(".")[0]
                    if top_pkg == PKG:
                        if name is not None and name.startswith("_") and not name.startswith("__"):
                            mod.private.append((node.lineno, target, name))
                        if where == "top":
                            mod.top.add(target)
                        elif where == "typing":
                            mod.typing_only.add(target)
                        else:
                            mod.local.setdefault(target, node.lineno)
                    elif where == "top":
                        mod.third_top.add(top_pkg)
                    elif where == "function":
                        mod.local.setdefault(top_pkg, node.lineno)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.body, "typing")
                visit(node.orelse, where)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, "function")
            elif isinstance(node, ast.ClassDef):
                visit(node.body, where)
            else:
                for child_body in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(node, child_body, None)
                    if (
                        isinstance(sub, list)
                        and sub
                        and isinstance(sub[0], (ast.stmt, ast.ExceptHandler))
                    ):
                        visit(
                            [
                                s
                                for item in sub
                                for s in (
                                    item.body if isinstance(item, ast.ExceptHandler) else [item]
                                )
                            ],
                            where,
                        )

    visit(ast.parse(text).body, "top")
    return mod


def _modules() -> dict[str, Module]:
    paths = sorted(ROOT.rglob("*.py"))
    known = {_name_of(p) for p in paths}
    return {m.name: m for m in (_scan(p, known) for p in paths)}


def _resolve(target: str, mods: dict[str, Module]) -> str | None:
    """The raisin module an import names (``pkg.mod.Name`` -> ``pkg.mod``)."""
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def _layer(name: str) -> int:
    parts = name.split(".")
    first = parts[1] if len(parts) > 1 else ""
    for i, (_label, members) in enumerate(LAYERS):
        if first in members:
            return i
    if name == PKG:
        return 0
    raise AssertionError(
        f"{name} is in no layer: add its package to LAYERS in tests/test_layering.py"
    )


def _graph(mods: dict[str, Module]) -> nx.DiGraph:
    g = nx.DiGraph()
    for m in mods.values():
        g.add_node(m.name)
        for t in m.top | m.typing_only | set(m.local):
            r = _resolve(t, mods) if t.startswith(PKG) else None
            if r and r != m.name:
                g.add_edge(m.name, r)
    return g


def _heavy(mods: dict[str, Module]) -> set[str]:
    """Raisin modules whose runtime top-level imports reach a heavy third-party package."""
    g = nx.DiGraph()
    for m in mods.values():
        g.add_node(m.name)
        for t in m.top:
            r = _resolve(t, mods)
            if r and r != m.name:
                g.add_edge(m.name, r)
        # a submodule import runs its package's __init__ first
        parent = m.name.rpartition(".")[0]
        if parent in mods and parent != PKG:
            g.add_edge(m.name, parent)
    direct = {m.name for m in mods.values() if m.third_top & HEAVY_THIRD_PARTY}
    return {n for n in g if any(d == n or nx.has_path(g, n, d) for d in direct)}


MODS = _modules()


def test_every_module_is_in_a_layer() -> None:
    for name in MODS:
        _layer(name)


def test_no_import_cycles() -> None:
    g = _graph(MODS)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])


def test_imports_point_down_the_layer_map() -> None:
    bad = []
    for m in MODS.values():
        for t in m.top | m.typing_only | set(m.local):
            r = _resolve(t, MODS)
            if r and _layer(r) > _layer(m.name):
                bad.append(
                    f"{m.name} ({LAYERS[_layer(m.name)][0]}) imports {r} ({LAYERS[_layer(r)][0]})"
                )
    assert not bad, "imports pointing up the layer map:\n" + "\n".join(sorted(bad))


def test_no_private_name_imported_across_modules() -> None:
    bad = [
        f"{m.path.relative_to(ROOT.parent)}:{line}: {name} from {src}"
        for m in MODS.values()
        for line, src, name in m.private
    ]
    assert not bad, "private names imported from another module:\n" + "\n".join(bad)


def test_modules_are_small() -> None:
    big = [
        f"{m.path.relative_to(ROOT.parent)}: {m.lines} lines"
        for m in MODS.values()
        if m.lines > MAX_LINES
    ]
    assert not big, f"modules over {MAX_LINES} lines:\n" + "\n".join(big)


def test_function_level_imports_only_of_heavy_modules() -> None:
    heavy = _heavy(MODS)
    bad = []
    for m in MODS.values():
        for t, line in sorted(m.local.items()):
            if not t.startswith(PKG):
                if t not in HEAVY_THIRD_PARTY:
                    continue  # a stdlib module imported late is a startup choice, not a layering one
                continue
            r = _resolve(t, MODS)
            if m.name.startswith(f"{PKG}.cli.cmd_") or m.name == f"{PKG}.cli.main":
                continue  # the command modules' lazy use cases (see the module docstring)
            if (m.name, r) in SLOW_PATHS:
                continue
            if r is not None and r not in heavy:
                bad.append(
                    f"{m.path.relative_to(ROOT.parent)}:{line}: imports {r} in a function (it is cheap: import it at the top)"
                )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("heavy_dep", sorted(HEAVY_HOMES))
def test_each_heavy_dependency_has_its_home(heavy_dep: str) -> None:
    """A heavy dependency is imported only in the package that wraps it, not spread around."""
    users = sorted(
        m.name for m in MODS.values() if heavy_dep in m.third_top or heavy_dep in m.local
    )
    outside = [u for u in users if u.split(".")[1] not in HEAVY_HOMES[heavy_dep]]
    assert not outside, (
        f"{heavy_dep} is imported outside {sorted(HEAVY_HOMES[heavy_dep])}: {outside}"
    )
