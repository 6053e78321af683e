"""Inspecting: show, graph, diff and build logs, read-only views of a lock and its store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raisin_lock.app.project import Project, load_lock
from raisin_lock.display import display_path
from raisin_lock.errors import InputError, unknown_component
from raisin_lock.lock import lockfile
from raisin_lock.sources import FetchContext
from raisin_lock.sources import git as git_source


def _pin(kind: str, **fields: str | None) -> dict[str, str | None]:
    """A source as ``show --json`` prints it: its kind and the fields that kind has."""
    keep = {
        "git": ("url", "ref"),
        "url": ("url",),
        "path": ("path",),
        "debian": ("package", "debian_version"),
    }.get(kind, tuple(fields))
    out: dict[str, str | None] = {"kind": kind}
    for k in keep:
        out["version" if k == "debian_version" else k] = fields.get(k)
    return out


def _unlocked_view(project: Project, name: str | None) -> dict[str, Any]:
    """show() for a manifest that has no lock yet: what is declared, nothing pinned."""
    m = project.load_manifest()
    if name is not None and name not in m.components:
        raise unknown_component(name, m.components)
    result: dict[str, Any] = {}
    for n in [name] if name else sorted(m.components):
        spec = m.components[n]
        s = spec.source
        result[n] = {
            "version": spec.version or "(from the pin)",
            "source": s.kind,
            "url": s.git or s.path or s.url or s.debian or "",
            "ref": s.ref or (f"follows {spec.follows}" if spec.follows else None),
            "rev": None,
            "nar_hash": None,
            "out": None,
            "built": False,
            "sandboxed": None,
            "deps": sorted(spec.deps),
            "recipe": spec.recipe,
            "pin": _pin(
                s.kind,
                url=s.git or s.url,
                path=s.path,
                ref=s.ref,
                package=s.debian,
                debian_version=s.version,
            ),
        }
    return {"components": result, "locked": False}


def show(project: Project, name: str | None = None) -> dict[str, Any]:
    if not project.lock_path.exists() and project.manifest_path.exists():
        return _unlocked_view(project, name)
    lk = load_lock(project)
    if name is not None and name not in lk.components:
        raise unknown_component(name, lk.components)
    store = project.store(create=False)
    names = [name] if name else sorted(lk.components)
    valid = store.valid_subset([lk.components[n].out for n in names])
    unsandboxed = store.unsandboxed_subset(valid)
    result: dict[str, Any] = {}
    for n in names:
        c = lk.components[n]
        result[n] = {
            "version": c.version,
            "source": c.source.kind,
            "url": c.source.url or c.source.path or c.source.debian,
            "ref": c.source.ref,
            "rev": c.source.rev,
            "nar_hash": c.source.nar_hash.sri,
            "out": str(store.host_path(c.out)),
            "built": c.out in valid,
            # False: built with --sandbox none (not pushed, rebuilt by a sandboxed realize)
            "sandboxed": (c.out not in unsandboxed) if c.out in valid else None,
            "deps": list(c.deps),
            "pin": _pin(
                c.source.kind,
                url=c.source.url,
                path=c.source.path,
                ref=c.source.ref,
                package=c.source.debian,
                debian_version=c.source.debian_version,
            ),
        }
    return {"components": result, "locked": True}


def graph_data(project: Project) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, Any]]]:
    if not project.lock_path.exists() and project.manifest_path.exists():
        view = _unlocked_view(project, None)["components"]
        return {n: tuple(c["deps"]) for n, c in view.items()}, {
            n: {"version": c["version"], "out": None} for n, c in view.items()
        }
    lk = load_lock(project)
    edges = {n: c.deps for n, c in lk.components.items()}
    extra = {n: {"version": c.version, "out": c.out.base} for n, c in lk.components.items()}
    return edges, extra


@dataclass
class ComponentDiff:
    name: str
    changes: list[tuple[str, str, str]]
    log: list[str] | None = None
    log_missing: str | None = None  # why the upstream log between the two pins is not shown


def diff(
    project: Project, old_path: Path, new_path: Path | None, *, fetch: bool = False
) -> tuple[list[str], list[str], list[ComponentDiff]]:
    """Added, removed and changed components; ``fetch`` may fetch commits for the git log."""
    old = lockfile.read(old_path, shown=display_path(old_path))
    new_p = new_path or project.lock_path
    new = lockfile.read(new_p, shown=display_path(new_p))
    added = sorted(set(new.components) - set(old.components))
    removed = sorted(set(old.components) - set(new.components))
    changed: list[ComponentDiff] = []
    ctx = FetchContext(store=project.store(create=fetch), base_dir=project.dir)
    for n in sorted(set(old.components) & set(new.components)):
        a, b = old.components[n], new.components[n]
        ch: list[tuple[str, str, str]] = []
        sa, sb = a.source, b.source
        for label, x, y in (
            ("version", a.version, b.version),
            ("source", sa.url or sa.path or sa.debian or "", sb.url or sb.path or sb.debian or ""),
            ("ref", sa.ref or "", sb.ref or ""),
            ("rev", sa.rev or "", sb.rev or ""),
            ("nar_hash", sa.nar_hash.sri, sb.nar_hash.sri),
            ("build", "\n".join(a.steps), "\n".join(b.steps)),
            ("env", repr(dict(a.env)), repr(dict(b.env))),
            ("deps", ", ".join(a.deps), ", ".join(b.deps)),
            ("out", a.out.base, b.out.base),
        ):
            if x != y:
                ch.append((label, x, y))
        if ch:
            log, missing = None, None
            if (
                sa.kind == sb.kind == "git"
                and sa.url == sb.url
                and sa.rev
                and sb.rev
                and sa.rev != sb.rev
            ):
                assert sa.url is not None
                ctx.component, ctx.key = n, f"components.{n}.source"
                log, missing = git_source.log_between(ctx, sa.url, sa.rev, sb.rev, fetch=fetch)
            changed.append(ComponentDiff(n, ch, log, missing))
    return added, removed, changed


def build_log(project: Project, name: str) -> Path:
    lk = load_lock(project)
    if name not in lk.components:
        raise unknown_component(name, lk.components)
    store = project.store(create=False)
    path = store.log_path(lk.components[name].out)
    if not path.exists():
        raise InputError(f"no build log for {name} (it has not been built in {store.root})")
    return path
