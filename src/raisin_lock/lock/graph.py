"""The component graph (networkx): unknown dependencies, cycles, order, output.

Only built when something must be resolved or drawn: networkx costs ~0.3 s to
import, which a no-op ``raisin lock`` must not pay.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from raisin_lock.errors import GraphError

if TYPE_CHECKING:
    import networkx as nx

    from raisin_lock.manifest.model import Manifest


def build(manifest: Manifest) -> nx.DiGraph:
    import networkx as nx

    g = nx.DiGraph()
    comps = manifest.components
    for name in comps:
        g.add_node(name)
    for name, spec in comps.items():
        for dep in spec.deps:
            if dep not in comps:
                raise GraphError(
                    f"unknown dependency {dep!r} (known: {', '.join(sorted(comps))})",
                    file=manifest.display,
                    line=_line(manifest, f"components.{name}.deps"),
                    key=f"components.{name}.deps",
                )
            g.add_edge(dep, name)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return g
    nodes = [edge[0] for edge in cycle]
    # Show the cycle starting from its smallest name, in dependency order: a -> b means a needs b.
    nodes.reverse()
    start = nodes.index(min(nodes))
    nodes = nodes[start:] + nodes[:start]
    raise GraphError(
        "dependency cycle: " + " -> ".join(nodes + [nodes[0]]),
        file=manifest.display,
        key=f"components.{nodes[0]}.deps",
    )


def _line(manifest: Manifest, key: str) -> int | None:
    from raisin_lock.manifest.model import locate

    return locate(manifest.text, key)


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

    g = nx.DiGraph()
    for n in sorted(edges):
        g.add_node(n, **extra.get(n, {}))
    for n in sorted(edges):
        for d in sorted(edges[n]):
            g.add_edge(n, d)
    data = nx.node_link_data(g, edges="edges")
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
