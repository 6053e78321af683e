"""Why: the first input that changed, for every component whose output path moves.

An output path is the hash of a derivation (:mod:`raisin_lock.lock.derivation`):
the source content and date, the expanded steps, the environment, the build
dependencies' versions, the system and toolchain record, and the dependencies'
output paths. Comparing two locks input by input names the *root cause* of
each rebuild: a component whose only changed input is a dependency is
explained by that dependency, down to a component whose own inputs changed.
``raisin why`` prints that; :func:`dependency_paths` serves ``raisin
why-depends A B`` (every path by which A needs B).

Pure functions over :class:`~raisin_lock.lock.lockfile.Lock` values: nothing
here reads files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raisin_lock.lock import graph
from raisin_lock.lock.lockfile import Lock, LockedComponent


@dataclass(frozen=True)
class Cause:
    """One changed input of a component: ``kind`` and a human-readable ``detail``."""

    kind: str  # "source", "step", "env", "build-dep", "version", "toolchain", "system", "dependency", "new"
    detail: str


@dataclass
class Explanation:
    """Why ``name``'s output path changes (``old_out`` None: new in the second lock)."""

    name: str
    old_out: str | None
    new_out: str
    causes: list[Cause] = field(default_factory=list)

    @property
    def root(self) -> bool:
        """Its own inputs changed (not only dependencies)."""
        return any(c.kind != "dependency" for c in self.causes)


def _short(text: str, width: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def _source_causes(a: LockedComponent, b: LockedComponent) -> list[Cause]:
    sa, sb = a.source, b.source
    if sa.nar_hash == sb.nar_hash and sa.date == sb.date:
        return []
    where = sb.url or sb.path or sb.debian or sb.kind
    if sa.rev != sb.rev and sa.rev and sb.rev:
        what = f"{where} rev {sa.rev[:12]} -> {sb.rev[:12]}"
    elif sa.debian_version != sb.debian_version:
        what = f"{where} version {sa.debian_version} -> {sb.debian_version}"
    elif sa.nar_hash != sb.nar_hash:
        what = f"{where} content {sa.nar_hash.sri[:19]}… -> {sb.nar_hash.sri[:19]}…"
    else:
        what = f"{where} date {sa.date} -> {sb.date}"
    return [Cause("source", what)]


def _step_causes(a: LockedComponent, b: LockedComponent) -> list[Cause]:
    if a.steps == b.steps:
        return []
    for i, (x, y) in enumerate(zip(a.steps, b.steps, strict=False)):
        if x != y:
            return [Cause("step", f"{i + 1}: {_short(x)!r} -> {_short(y)!r}")]
    if len(a.steps) < len(b.steps):
        return [Cause("step", f"{len(a.steps) + 1} added: {_short(b.steps[len(a.steps)])!r}")]
    return [Cause("step", f"{len(b.steps) + 1} removed: {_short(a.steps[len(b.steps)])!r}")]


def _mapping_causes(kind: str, a: dict[str, str], b: dict[str, str]) -> list[Cause]:
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x != y:
            shown_x = "(unset)" if x is None else repr(_short(x, 40))
            shown_y = "(unset)" if y is None else repr(_short(y, 40))
            out.append(Cause(kind, f"{key}: {shown_x} -> {shown_y}"))
    return out


def _own_causes(old: Lock, new: Lock, a: LockedComponent, b: LockedComponent) -> list[Cause]:
    causes = _source_causes(a, b) + _step_causes(a, b)
    causes += _mapping_causes("env", dict(a.env), dict(b.env))
    causes += _mapping_causes("build-dep", dict(a.build_deps), dict(b.build_deps))
    if a.version != b.version and not any(c.kind == "source" for c in causes):
        causes.append(Cause("version", f"{a.version} -> {b.version}"))  # else it follows the pin
    if old.system != new.system:
        causes.append(Cause("system", f"{old.system} -> {new.system}"))
    causes += _mapping_causes("toolchain", old.toolchain, new.toolchain)
    return causes


def explain(old: Lock, new: Lock) -> list[Explanation]:
    """For each component of ``new`` whose output differs from ``old``'s, its causes.

    Ordered dependencies first, so every ``dependency`` cause names a
    component explained above it.
    """
    result: list[Explanation] = []
    changed: set[str] = set()
    for name in new.closure(sorted(new.components)):
        b = new.components[name]
        a = old.components.get(name)
        if a is None:
            result.append(
                Explanation(name, None, b.out.base, [Cause("new", "not in the old lock")])
            )
            changed.add(name)
            continue
        if a.out == b.out:
            continue
        causes = _own_causes(old, new, a, b)
        for dep in b.deps:
            if dep in changed:
                causes.append(Cause("dependency", dep))
        if set(a.deps) != set(b.deps):
            added = sorted(set(b.deps) - set(a.deps))
            gone = sorted(set(a.deps) - set(b.deps))
            parts = [f"+{d}" for d in added] + [f"-{d}" for d in gone]
            causes.append(Cause("deps", "dependencies " + " ".join(parts)))
        result.append(Explanation(name, a.out.base, b.out.base, causes))
        changed.add(name)
    return result


def root_causes(explanations: list[Explanation], name: str) -> list[str]:
    """The components whose own inputs changed and that ``name``'s change comes from."""
    by_name = {e.name: e for e in explanations}
    roots: list[str] = []
    seen: set[str] = set()
    stack = [name]
    while stack:
        n = stack.pop()
        if n in seen or n not in by_name:
            continue
        seen.add(n)
        e = by_name[n]
        if e.root:
            roots.append(n)
        stack.extend(c.detail for c in e.causes if c.kind == "dependency")
    return sorted(roots)


def dependency_paths(lk: Lock, start: str, target: str) -> list[list[str]]:
    """Every dependency path from ``start`` to ``target`` (empty: ``start`` does not need it)."""
    return graph.why_paths({n: c.deps for n, c in lk.components.items()}, start, target)
