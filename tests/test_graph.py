"""The component graph: named cycles, order, closures, critical path, why-paths; follows loops."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import raisin

from raisin_lock.errors import LockError
from raisin_lock.lock import graph

# xen needs seabios and qemu; qemu needs seabios; tools needs xen; docs needs nothing.
EDGES = {
    "seabios": (),
    "qemu": ("seabios",),
    "xen": ("qemu", "seabios"),
    "tools": ("xen",),
    "docs": (),
}


def test_order_generations_closure_dependents() -> None:
    assert graph.topo_order(EDGES) == ["docs", "seabios", "qemu", "xen", "tools"]
    assert graph.generations(EDGES) == [["docs", "seabios"], ["qemu"], ["xen"], ["tools"]]
    assert graph.closure(EDGES, ["xen"]) == ["seabios", "qemu", "xen"]
    assert graph.dependents(EDGES, ["qemu"]) == {"xen", "tools"}


def test_critical_path_priority_is_longest_chain_of_dependents() -> None:
    cost = {"seabios": 1.0, "qemu": 10.0, "xen": 5.0, "tools": 2.0, "docs": 3.0}
    prio = graph.critical_path_priority(EDGES, cost.__getitem__)
    assert prio == {"tools": 2.0, "xen": 7.0, "qemu": 17.0, "seabios": 18.0, "docs": 3.0}


def test_why_paths_lists_every_chain() -> None:
    assert graph.why_paths(EDGES, "tools", "seabios") == [
        ["tools", "xen", "seabios"],
        ["tools", "xen", "qemu", "seabios"],
    ]
    assert graph.why_paths(EDGES, "docs", "seabios") == []
    with pytest.raises(LockError, match="unknown component 'nope'"):
        graph.why_paths(EDGES, "nope", "xen")


def test_cycle_in_a_lock_is_named() -> None:
    with pytest.raises(LockError, match=r"dependency cycle: a -> b -> c -> a"):
        graph.topo_order({"a": ("b",), "b": ("c",), "c": ("a",), "d": ()})
    assert graph.find_cycle({"b": ("a",), "a": ("b",)}) == ["a", "b", "a"]


def _comp(name: str, extra: str = "") -> str:
    return f'[components.{name}]\nsource = {{ git = "file:///nonexistent/{name}" }}\nbuild = ["true"]\n{extra}'


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            _comp("a", 'deps = ["b"]\n')
            + _comp("b", 'deps = ["c"]\n')
            + _comp("c", 'deps = ["a"]\n'),
            4,
            "components.a.deps: dependency cycle: a -> b -> c -> a",
        ),
        (_comp("a", 'follows = "a"\n'), 4, "components.a.follows: follows loop: a -> a"),
        (
            _comp("x") + _comp("a", 'follows = "b"\n') + _comp("b", 'follows = "a"\n'),
            7,
            "components.a.follows: follows loop: a -> b -> a",
        ),
        (_comp("a", 'follows = "xen"\n'), 4, "components.a.follows: unknown component 'xen'"),
    ],
    ids=["dep-cycle", "follows-self", "follows-2-cycle", "follows-unknown"],
)
def test_cycles_and_follows_loops_exit_2_naming_the_line(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    (tmp_path / "raisin.toml").write_text(text)
    r = raisin("lock", cwd=tmp_path)
    assert r.code == 2, r
    assert r.err.startswith(f"error: raisin.toml:{line}: {needle}"), r
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) <= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raisin.toml"]
