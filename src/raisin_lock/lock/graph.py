"""The component graph: unknown dependencies, cycles, order, closures, priorities.

Edges are given as ``{name: (deps...)}``; in every path this module returns,
``a -> b`` means *a needs b*. The analyses (cycles named in full,
``topological_generations``, dependents, the critical path, ``why`` paths)
run on one ``networkx.DiGraph``. networkx costs ~0.3 s to import, which a
no-op ``raisin lock`` or ``realize`` must not pay, so it is imported inside
the functions that need it, and the two walks every ``realize`` does
(:func:`topo_order` and :func:`closure`, over a lock already known to be
acyclic) and the scheduler's :func:`critical_path_priority` use the standard
library's :mod:`graphlib` instead.
"""

from __future__ import annotations

import graphlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from raisin_lock.errors import GraphError, LockError

if TYPE_CHECKING:
    import networkx as nx

    from raisin_lock.manifest.model import Manifest

Edges = Mapping[str, Iterable[str]]


def digraph(edges: Edges) -> nx.DiGraph:
    """One node per component, an edge ``a -> b`` for each ``b`` that ``a`` needs."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(sorted(edges))
    for name in sorted(edges):
        for dep in sorted(edges[name]):
            g.add_edge(name, dep)
    return g


def find_cycle(edges: Edges) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` starting at its smallest name, or None."""
    import networkx as nx

    try:
        cycle = nx.find_cycle(digraph(edges))
    except nx.NetworkXNoCycle:
        return None
    nodes = [edge[0] for edge in cycle]
    start = nodes.index(min(nodes))
    nodes = nodes[start:] + nodes[:start]
    return [*nodes, nodes[0]]


def build(manifest: Manifest) -> nx.DiGraph:
    """The manifest's graph; unknown dependencies and cycles are errors naming the line."""
    comps = manifest.components
    for name, spec in comps.items():
        for dep in spec.deps:
            if dep not in comps:
                key = f"components.{name}.deps"
                raise GraphError(
                    f"unknown dependency {dep!r} (known: {', '.join(sorted(comps))})",
                    file=manifest.display,
                    line=_line(manifest, key),
                    key=key,
                )
    edges = {n: spec.deps for n, spec in comps.items()}
    cycle = find_cycle(edges)
    if cycle is not None:
        key = f"components.{cycle[0]}.deps"
        raise GraphError(
            "dependency cycle: " + " -> ".join(cycle),
            file=manifest.display,
            line=_line(manifest, key),
            key=key,
        )
    return digraph(edges)


def _line(manifest: Manifest, key: str) -> int | None:
    from raisin_lock.manifest.model import locate

    return locate(manifest.text, key)


def _check_known(edges: Edges) -> None:
    for node in sorted(edges):
        for dep in sorted(edges[node]):
            if dep not in edges:
                raise LockError(f"{node!r} depends on {dep!r}, which is not in the lock")


def topo_order(edges: Edges) -> list[str]:
    """Dependencies before dependents, ties by name; a cycle is a LockError naming it."""
    _check_known(edges)
    ts: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node in edges:
        ts.add(node, *edges[node])
    try:
        ts.prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = list(reversed(exc.args[1]))
        start = cycle.index(min(cycle[:-1]))
        ring = cycle[start:-1] + cycle[:start]
        raise LockError("dependency cycle: " + " -> ".join([*ring, ring[0]])) from None
    order: list[str] = []
    while ts.is_active():
        ready = sorted(ts.get_ready())
        order.extend(ready)
        ts.done(*ready)
    return order


def closure(edges: Edges, names: Iterable[str]) -> list[str]:
    """``names`` and everything they need, dependencies first (ties by name)."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(edges[n])
    return topo_order({n: tuple(edges[n]) for n in seen})


def generations(edges: Edges) -> list[list[str]]:
    """Layers that can be built together: the first needs nothing, each needs only earlier ones."""
    import networkx as nx

    needed_by = digraph(edges).reverse(copy=False)  # b -> a: b is needed by a
    return [sorted(layer) for layer in nx.topological_generations(needed_by)]


def dependents(edges: Edges, names: Iterable[str]) -> set[str]:
    """Every component that needs one of ``names``, directly or not (``names`` excluded)."""
    import networkx as nx

    g = digraph(edges)
    found: set[str] = set()
    for n in names:
        found |= nx.ancestors(g, n)
    return found - set(names)


def critical_path_priority(edges: Edges, cost: Callable[[str], float]) -> dict[str, float]:
    """Each component's critical-path length: its cost plus the costliest chain of dependents.

    A scheduler that starts the ready component with the highest priority
    first keeps the longest remaining chain of builds moving (the classic
    list-scheduling heuristic); a sink (nothing needs it) has its own cost.
    Every realize with work to do runs this, so it walks :func:`topo_order`
    rather than importing networkx (most of a substitution-only realize's
    start-up otherwise).
    """
    needed_by: dict[str, list[str]] = {n: [] for n in edges}
    for n, deps in edges.items():
        for d in deps:
            needed_by.setdefault(d, []).append(n)
    prio: dict[str, float] = {}
    # Dependents come after their dependencies in topological order: walk it backwards.
    for n in reversed(topo_order(edges)):
        waiting = [prio[m] for m in needed_by[n]]
        prio[n] = float(cost(n)) + (max(waiting) if waiting else 0.0)
    return prio


def why_paths(edges: Edges, a: str, b: str) -> list[list[str]]:
    """Every chain by which ``a`` needs ``b`` (``[a, ..., b]``), shortest first, then by name."""
    import networkx as nx

    g = digraph(edges)
    for n in (a, b):
        if n not in g:
            raise LockError(f"unknown component {n!r}")
    if a == b:
        return [[a]]
    paths = [list(p) for p in nx.all_simple_paths(g, a, b)]
    return sorted(paths, key=lambda p: (len(p), p))


def to_dot(edges: dict[str, tuple[str, ...]], labels: dict[str, str]) -> str:
    lines = ["digraph raisin {", "  rankdir=LR;", "  node [shape=box];"]
    for n in sorted(edges):
        lines.append(f"  {json.dumps(n)} [label={json.dumps(labels.get(n, n))}];")
    for n in sorted(edges):
        for d in sorted(edges[n]):
            lines.append(f"  {json.dumps(n)} -> {json.dumps(d)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(edges: dict[str, tuple[str, ...]], extra: dict[str, dict[str, Any]]) -> str:
    import networkx as nx

    g = digraph(edges)
    for n in sorted(edges):
        g.nodes[n].update(extra.get(n, {}))
    data = nx.node_link_data(g, edges="edges")
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
