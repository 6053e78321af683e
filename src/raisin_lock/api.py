"""Use cases: lock, show, graph, diff (and, built on them, realize).

Functions here take a :class:`Project` and a store, do the work and return
values; they never print (progress goes through an optional ``report``
callback). The CLI is the only caller that talks to the user.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .display import display_path
from .errors import InputError, ManifestError
from .lockfile import LOCK_NAME, Lock, LockedComponent
from .manifest_quick import fingerprint, quick_components

MANIFEST_NAME = "raisin.toml"

if TYPE_CHECKING:
    from .manifest import ComponentSpec, Manifest
    from .sources import LockedSource
    from .store.local import Store
    from .store_path import StorePath

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Project:
    """Where things are: the manifest, its lock, the store."""

    dir: Path
    store_root: Path
    lock_path: Path

    @classmethod
    def at(cls, directory: Path, store: str | None = None, lock: str | None = None) -> Project:
        directory = directory.resolve()
        env_store = os.environ.get("RAISIN_STORE")
        root = Path(store or env_store or directory / "store")
        if not root.is_absolute():
            root = (Path.cwd() / root) if (store or env_store) else directory / root
        lock_path = Path(lock).resolve() if lock else directory / LOCK_NAME
        return cls(dir=directory, store_root=root.resolve() if root.exists() else root, lock_path=lock_path)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    def load_manifest(self) -> Manifest:
        from . import manifest

        return manifest.load(self.manifest_path)

    def store(self, *, create: bool = True) -> Store:
        from .store.local import Store

        return Store(self.store_root, create=create)

    @property
    def lock_display(self) -> str:
        return display_path(self.lock_path)


# ------------------------------------------------------------------ lock


@dataclass
class LockResult:
    lock: Lock
    written: bool
    stale: dict[str, str] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)


def _recipe_for(name: str, spec: ComponentSpec, m: Manifest):  # type: ignore[no-untyped-def]
    """The component's recipe (options checked), or None for plain build steps."""
    if spec.recipe is None:
        return None
    from . import recipe as recipes

    try:
        r = recipes.load(spec.recipe)
        recipes.check_options(r, spec.options)
    except recipes.RecipeError as exc:
        raise m.error(f"components.{name}.recipe", str(exc)) from None
    return r


def _expand(
    name: str, spec: ComponentSpec, m: Manifest, versions: dict[str, str]
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(steps, env, build-dependency packages) of a component, recipe expanded."""
    from . import recipe as recipes

    r = _recipe_for(name, spec, m)
    env = dict(r.env) if r else {}
    env.update(spec.env)
    if spec.build is not None:
        steps = spec.build
    else:
        assert r is not None
        known = {"version": versions[name], **{d: versions[d] for d in spec.deps}}
        try:
            steps = recipes.expand(r, spec.options, known)
        except recipes.RecipeError as exc:
            raise m.error(f"components.{name}.recipe", str(exc)) from None
    steps = (*spec.pre_build, *steps, *spec.post_build)
    family = _distro_family()
    bdeps = tuple(dict.fromkeys((*(r.build_deps.get(family, ()) if r else ()), *spec.build_deps)))
    return steps, tuple(sorted(env.items())), bdeps


def _activation_for(name: str, spec: ComponentSpec, m: Manifest):  # type: ignore[no-untyped-def]
    """The recipe's [activate] table overridden key by key by the component's (raisin_lock.actions)."""
    from . import actions

    base = actions.NONE
    r = _recipe_for(name, spec, m)
    if r is not None and r.activate:
        try:
            base = actions.parse(r.activate)
        except actions.ActionError as exc:
            raise m.error(f"components.{name}.recipe", f"recipe {spec.recipe!r}: activate.{exc}") from None
    return actions.merge(base, spec.activation)


def _distro_family() -> str:
    """The host's distro family for recipes' build-deps (debian when unknown)."""
    from .builddeps import detect

    distro, _ = detect()
    return distro.family if distro is not None else "debian"


def _read_old(project: Project) -> Lock | None:
    from . import lockfile

    if not project.lock_path.exists():
        return None
    return lockfile.read(project.lock_path, shown=project.lock_display)


def lock(
    project: Project,
    *,
    update: list[str] | None = None,
    check: bool = False,
    offline: bool = False,
    report: Report = _quiet,
) -> LockResult:
    """Resolve new or changed components; keep every other pin as it is.

    ``update``: None = only what changed, [] = everything, [names] = those.
    ``check``: write nothing; return the stale components (and why).
    """
    from . import lockfile, toolchain
    from .sources import FetchContext, resolve

    old = _read_old(project)
    if old is not None and update is None:
        raw = quick_components(project.manifest_path)
        if raw is not None:
            decls = {n: fingerprint(t) for n, t in raw.items()}
            paths = {n: t["source"]["path"] for n, t in raw.items() if isinstance(t.get("source"), dict) and "path" in t["source"]}
            follows = {n: t["follows"] for n, t in raw.items() if isinstance(t.get("follows"), str)}
            if not _stale(project, old, decls, paths, (), check, offline, follows):
                return LockResult(lock=old, written=False)

    m = project.load_manifest()
    update_all = update is not None and len(update) == 0
    wanted = set(update or ())
    for n in sorted(wanted):
        if n not in m.components:
            raise InputError(
                f"unknown component {n!r} (known: {', '.join(sorted(m.components))})", key="--update"
            )
    decls = {name: m.fingerprint(name) for name in m.components}
    if old is None or any(n not in old.components or old.components[n].decl != d for n, d in decls.items()):
        from . import graph

        graph.build(m)  # dependency cycles are errors
    if old is not None and not update_all and old.system == toolchain.system():
        system, tools = old.system, dict(old.toolchain)
    else:
        system, tools = toolchain.system(), (toolchain.probe() if not check else dict(old.toolchain) if old else {})
    paths = {n: s.source.path for n, s in m.components.items() if s.source.path is not None}
    forced = list(m.components) if update_all else sorted(wanted)
    follows = {n: s.follows for n, s in m.components.items() if s.follows}
    reasons = _stale(project, old, decls, paths, forced, check, offline, follows) if old is not None else {
        n: "not in the lock" for n in m.components
    }
    store = project.store(create=not check)
    ctx = FetchContext(store=store, base_dir=project.dir, offline=offline, file=m.display)
    if check:
        stale = reasons or ({} if old is not None else {"(lock)": "no raisin.lock"})
        return LockResult(lock=old or Lock(system, tools), written=False, stale=stale)
    reasons = {n: r for n, r in reasons.items() if n in m.components}
    removed = [n for n in (old.components if old else {}) if n not in m.components]
    if not reasons and not removed and old is not None:
        return LockResult(lock=old, written=False)

    for name in sorted(reasons):
        _recipe_for(name, m.components[name], m)  # fail on a bad recipe before fetching anything
    resolved: dict[str, tuple[LockedSource, str]] = {}
    for name in _follow_order(m, reasons):
        spec = m.components[name]
        ctx.component, ctx.key = name, f"components.{name}.source"
        source = spec.source
        if spec.follows and source.git is not None and source.ref is None:
            leader = resolved[spec.follows][0] if spec.follows in resolved else old.components[spec.follows].source  # type: ignore[union-attr]
            source = source.model_copy(update={"ref": _followed_ref(name, spec, leader, ctx, m)})
        if source is spec.source:
            report(f"resolving {name} ({_describe_source(spec)})")
        else:
            report(f"resolving {name} (git {source.git} {source.ref}, as {spec.follows}'s Config.mk names)")
        src = resolve(source, ctx)
        resolved[name] = (src, spec.version or src.version_hint or "local")
    versions = {n: (resolved[n][1] if n in resolved else old.components[n].version) for n in m.components}  # type: ignore[union-attr]
    pending: dict[str, tuple[LockedSource, str, tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]] = {}
    for name, (src, version) in resolved.items():
        steps, env, bdeps = _expand(name, m.components[name], m, versions)
        pending[name] = (src, version, steps, env, bdeps)
    all_bdeps = sorted({p for *_, bdeps in pending.values() for p in bdeps})
    versions_installed = toolchain.package_versions(all_bdeps) if all_bdeps else {}

    comps: dict[str, LockedComponent] = {}
    from .hashing import Hash

    placeholder = Hash(b"\0" * 32)
    for name, spec in m.components.items():
        if name in pending:
            src, version, steps, env, bdeps = pending[name]
            comps[name] = LockedComponent(
                name=name,
                version=version,
                source=src,
                steps=steps,
                env=env,
                deps=tuple(sorted(spec.deps)),
                build_deps=tuple(sorted((p, versions_installed.get(p, "not installed")) for p in bdeps)),
                decl=decls[name],
                out=_placeholder_out(),
                drv=placeholder,
                recipe=spec.recipe,
                activate=_activation_for(name, spec, m),
            )
        else:
            assert old is not None
            comps[name] = old.components[name]
    new = Lock(system=system, toolchain=tools, components=comps)
    for name, drv in new.derivations().items():
        c = comps[name]
        comps[name] = LockedComponent(**{**c.__dict__, "out": drv.out, "drv": drv.hash()})
    written = lockfile.write(project.lock_path, new)
    return LockResult(lock=new, written=written, resolved=sorted(pending), stale=reasons)


# Companion revisions Xen's Config.mk names, by the recipe (or component) name.
CONFIG_MK_VARS = {
    "qemu-xen": "QEMU_UPSTREAM_REVISION",
    "seabios": "SEABIOS_UPSTREAM_REVISION",
    "ovmf": "OVMF_UPSTREAM_REVISION",
    "qemu-traditional": "QEMU_TRADITIONAL_REVISION",
    "mini-os": "MINIOS_UPSTREAM_REVISION",
}
# The names Xen before 4.6 used for two of them. Since 4.6 Config.mk maps them
# in a "Handle legacy options" block that comes *before* the real values
# (`SEABIOS_UPSTREAM_REVISION ?= $(SEABIOS_UPSTREAM_TAG)`), so values that
# reference other variables are skipped.
CONFIG_MK_LEGACY_VARS = {"SEABIOS_UPSTREAM_REVISION": "SEABIOS_UPSTREAM_TAG", "QEMU_TRADITIONAL_REVISION": "QEMU_TAG"}


def _follow_order(m: Manifest, names: dict[str, str]) -> list[str]:
    """Resolve followed components before their followers."""
    order: list[str] = []
    for n in sorted(names):
        chain = []
        cur: str | None = n
        while cur is not None and cur in names and cur not in order and cur not in chain:
            chain.append(cur)
            cur = m.components[cur].follows
        order.extend(reversed(chain))
    return order


def _followed_ref(name: str, spec: ComponentSpec, leader: LockedSource, ctx: Any, m: Manifest) -> str:
    """The revision of ``name`` that the followed Xen's Config.mk names."""
    import re

    var = CONFIG_MK_VARS.get(spec.recipe or "") or CONFIG_MK_VARS.get(name)
    key = f"components.{name}.follows"
    if var is None:
        raise m.error(key, f"cannot follow {spec.follows!r}: no Config.mk revision is known for {name!r} "
                      f"(known: {', '.join(sorted(CONFIG_MK_VARS))}); pin 'ref' instead")
    config = ctx.store.host_path(leader.store_path) / "Config.mk"
    try:
        text = config.read_text(errors="replace")
    except OSError:
        raise m.error(key, f"{spec.follows!r} has no Config.mk to follow; pin 'ref' instead") from None
    for v in (var, CONFIG_MK_LEGACY_VARS.get(var)):
        for found in re.finditer(rf"^[ \t]*{v}[ \t]*[:?]?=[ \t]*([^\s#]+)", text, re.MULTILINE) if v else ():
            if "$" not in found.group(1):
                return found.group(1)
    raise m.error(key, f"{spec.follows!r}'s Config.mk does not set {var}; pin 'ref' instead")


def _stale(
    project: Project,
    old: Lock,
    decls: dict[str, str],
    paths: dict[str, str],
    forced: list[str] | tuple[str, ...],
    check: bool,
    offline: bool,
    follows: dict[str, str] | None = None,
) -> dict[str, str]:
    """Why each component needs resolving again (empty: the lock stands)."""
    from .sources import FetchContext
    from .sources import path as path_source

    reasons: dict[str, str] = {}
    bad = old.inconsistent()
    ctx: FetchContext | None = None
    for name in sorted(decls):
        prev = old.components.get(name)
        if prev is None:
            reasons[name] = "not in the lock"
        elif name in forced:
            reasons[name] = "update requested"
        elif prev.decl != decls[name]:
            reasons[name] = f"changed in {MANIFEST_NAME}"
        elif name in bad:
            reasons[name] = f"inconsistent: {bad[name]}"
        elif name in paths:
            if ctx is None:
                ctx = FetchContext(store=project.store(create=not check), base_dir=project.dir, offline=offline)
            ctx.key = f"components.{name}.source.path"
            if path_source.current_hash(paths[name], ctx) != prev.source.nar_hash:
                reasons[name] = "source directory changed"
    for name in old.components:
        if name not in decls:
            reasons[name] = f"no longer in {MANIFEST_NAME}"
    if follows:
        changed = True
        while changed:
            changed = False
            for name, leader in follows.items():
                if leader in reasons and name not in reasons and name in decls:
                    reasons[name] = f"follows {leader}, which changed"
                    changed = True
    return reasons


def _placeholder_out() -> StorePath:
    from .store_path import StorePath

    return StorePath("0" * 32, "placeholder")


def _describe_source(spec: ComponentSpec) -> str:
    s = spec.source
    if s.kind == "git":
        return f"git {s.git} {s.ref or 'HEAD'}"
    if s.kind == "path":
        return f"path {s.path}"
    if s.kind == "url":
        return f"url {s.url}"
    return f"debian {s.debian} {s.version}"


def load_lock(project: Project, *, require_manifest_match: bool = False) -> Lock:
    """Read and check the lock (an inconsistent lock is an input error)."""
    from . import lockfile

    lk = lockfile.read(project.lock_path, shown=project.lock_display)
    lockfile.check_consistent(lk, project.lock_display)
    return lk


# ------------------------------------------------------------------ show / graph / diff


def _unlocked_view(project: Project, name: str | None) -> dict[str, Any]:
    """show() for a manifest that has no lock yet: what is declared, nothing pinned."""
    m = project.load_manifest()
    if name is not None and name not in m.components:
        raise InputError(f"unknown component {name!r} (known: {', '.join(sorted(m.components))})")
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
            "deps": sorted(spec.deps),
            "recipe": spec.recipe,
        }
    return {"components": result, "locked": False}


def show(project: Project, name: str | None = None) -> dict[str, Any]:
    if not project.lock_path.exists() and project.manifest_path.exists():
        return _unlocked_view(project, name)
    lk = load_lock(project)
    if name is not None and name not in lk.components:
        raise InputError(f"unknown component {name!r} (known: {', '.join(sorted(lk.components))})")
    store = project.store(create=False)
    names = [name] if name else sorted(lk.components)
    valid = store.valid_subset([lk.components[n].out for n in names])
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
            "deps": list(c.deps),
        }
    return {"components": result, "locked": True}


def graph_data(project: Project) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, Any]]]:
    if not project.lock_path.exists() and project.manifest_path.exists():
        view = _unlocked_view(project, None)["components"]
        return {n: tuple(c["deps"]) for n, c in view.items()}, {n: {"version": c["version"], "out": None} for n, c in view.items()}
    lk = load_lock(project)
    edges = {n: c.deps for n, c in lk.components.items()}
    extra = {n: {"version": c.version, "out": c.out.base} for n, c in lk.components.items()}
    return edges, extra


@dataclass
class ComponentDiff:
    name: str
    changes: list[tuple[str, str, str]]
    log: list[str] | None = None


def diff(project: Project, old_path: Path, new_path: Path | None) -> tuple[list[str], list[str], list[ComponentDiff]]:
    from . import lockfile
    from .sources import FetchContext
    from .sources import git as git_source

    old = lockfile.read(old_path, shown=display_path(old_path))
    new_p = new_path or project.lock_path
    new = lockfile.read(new_p, shown=display_path(new_p))
    added = sorted(set(new.components) - set(old.components))
    removed = sorted(set(old.components) - set(new.components))
    changed: list[ComponentDiff] = []
    ctx = FetchContext(store=project.store(create=False), base_dir=project.dir)
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
            log = None
            if sa.kind == sb.kind == "git" and sa.url == sb.url and sa.rev and sb.rev and sa.rev != sb.rev:
                assert sa.url is not None
                log = git_source.log_between(ctx, sa.url, sa.rev, sb.rev)
            changed.append(ComponentDiff(n, ch, log))
    return added, removed, changed


QEMU_TRADITIONAL_BLOCK = """
# Xen before 4.19 can still build the legacy device model; enable it with
# `options = { qemu_traditional = true }` on xen and `"qemu-traditional"` in its deps.
[components.qemu-traditional]
source = { git = "https://xenbits.xen.org/git-http/qemu-xen-traditional.git" }
follows = "xen"
recipe = "qemu-traditional"
"""
DEFAULT_XEN_REF = "RELEASE-4.21.0"


def render_template(text: str, xen_ref: str | None) -> str:
    """Fill a template's @XEN_REF@ (any Xen >= 4.5) and its version-dependent parts."""
    import re

    from .recipe import version_key

    ref = xen_ref or DEFAULT_XEN_REF
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", ref)
    if m and version_key(m.group(1)) < version_key("4.5"):
        raise InputError(f"Xen {m.group(1)} is older than 4.5, the oldest raisin builds", key="--xen")
    old_xen = bool(m) and version_key(m.group(1)) < version_key("4.19")  # type: ignore[union-attr]
    return text.replace("@XEN_REF@", ref).replace("@QEMU_TRADITIONAL@", QEMU_TRADITIONAL_BLOCK if old_xen else "")


def init_manifest(project: Project, template: str, xen_ref: str | None = None) -> Path:
    from importlib import resources

    path = project.manifest_path
    if path.exists():
        raise ManifestError("already exists; not overwriting", file=display_path(path))
    res = resources.files("raisin_lock.templates").joinpath(f"{template}.toml")
    if not res.is_file():
        names = sorted(p.name[:-5] for p in resources.files("raisin_lock.templates").iterdir() if p.name.endswith(".toml"))
        raise InputError(f"unknown template {template!r} (available: {', '.join(names)})", key="--template")
    project.dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(render_template(res.read_text(), xen_ref))
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ realize


def _decls_changed(project: Project, lk: Lock | None) -> bool:
    if lk is None:
        return True
    raw = quick_components(project.manifest_path)
    if raw is None:
        return True
    if set(raw) != set(lk.components):
        return True
    return any(lk.components[n].decl != fingerprint(t) for n, t in raw.items())


def select_sandbox(mode: str) -> str:
    """'auto'/'bwrap' -> 'bwrap' if it works here (else SandboxUnavailable); 'none' -> 'none'."""
    if mode == "none":
        return "none"
    from .build.sandbox import check_sandbox

    check_sandbox()
    return "bwrap"


def realize(
    project: Project,
    names: list[str] | None = None,
    *,
    jobs: int | None = None,
    keep_going: bool = False,
    check: bool = False,
    sandbox: str = "auto",
    offline: bool = False,
    lock_file: Path | None = None,
    events: Any = None,
    report: Report = _quiet,
    substituters: list[str] | None = None,
    trusted_keys: list[str] | None = None,
    fallback: bool = True,
) -> Any:
    """Build what the lock says into the store; return a scheduler RealizeResult.

    ``substituters``/``trusted_keys`` add to the manifest's ``[cache]`` table;
    ``jobs=0`` builds nothing locally (substitute only)."""
    from . import lockfile

    if lock_file is not None:
        shown = display_path(lock_file)
        lk = lockfile.read(lock_file, shown=shown)
        lockfile.check_consistent(lk, shown)
        base_dir = lock_file.resolve().parent
    else:
        current = _read_old(project) if project.lock_path.exists() else None
        if current is None or (project.manifest_path.exists() and _decls_changed(project, current)):
            if not project.manifest_path.exists():
                raise ManifestError("no such file (and no lock to build from)", file=display_path(project.manifest_path))
            report(f"{project.lock_display} is missing or out of date; locking first")
            lk = lock(project, offline=offline, report=report).lock
        else:
            lk = current
        lockfile.check_consistent(lk, project.lock_display)
        base_dir = project.dir
    selected = list(names) if names else sorted(lk.components)
    for n in selected:
        if n not in lk.components:
            raise InputError(f"unknown component {n!r} (known: {', '.join(sorted(lk.components))})")
    store = project.store()
    # The no-op path: everything valid already; no scheduler, threads or sandbox probe.
    order = lk.closure(selected)
    drvs = lk.derivations()
    valid_paths = store.valid_subset([drvs[n].out for n in order])
    if not check and len(valid_paths) == len(order):
        from .build.result import RealizeResult

        return RealizeResult(already_valid=order)
    from .build.events import Events
    from .build.scheduler import Scheduler
    from .sources import FetchContext

    ctx = FetchContext(store=store, base_dir=base_dir, offline=offline, file=display_path(lock_file or project.lock_path))
    events = events or Events()
    from .api_cache import make_substituters

    subs = make_substituters(
        project if lock_file is None else None, substituters or [], trusted_keys or [], warn=events.warn, offline=offline
    )
    njobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if njobs == 0 and not subs:
        raise InputError("-j 0 builds nothing locally: give a --substituter (or [cache] substituters)", key="-j")
    sched = Scheduler(
        store=store,
        lock=lk,
        fetch=ctx,
        jobs=njobs,
        sandbox="none",
        keep_going=keep_going,
        events=events,
        substituters=subs or None,
        fallback=fallback,
    )
    from .gc import guard, register_lock_root

    with guard(store):  # gc cannot start between rooting the lock and seeing what is valid
        register_lock_root(store, (lock_file or project.lock_path).absolute())
        _order, valid = sched.plan(selected)
    from .builddeps import require_installed

    missing = [n for n in _order if n not in valid]
    offered = sched.query_substitutes(missing) if subs and not check else set()
    to_build = [n for n in missing if n not in offered]
    if njobs == 0 or not fallback:
        to_build = []  # nothing is built locally (what no cache offers fails)
    require_installed(  # stops with the missing packages and the command that installs them
        lk,
        [*to_build, *(n for n in selected if check and n not in to_build)],
        warn=sched.events.warn,
        project_dir=None if lock_file else project.dir,
    )
    if to_build or check:
        sched.sandbox = select_sandbox(sandbox)  # type: ignore[assignment]
    else:
        sched.sandbox_request = sandbox  # chosen only if a substitution falls back to a build
    if sched.sandbox == "none" and sched.sandbox_request is None:
        sched.events.warn("building without a sandbox (--sandbox none): outputs are marked unsandboxed")
    store.cleanup()
    from . import toolchain

    for line in toolchain.differences(lk.toolchain, toolchain.probe()) if to_build or check else ():
        sched.events.warn(f"toolchain differs from the lock's record: {line}")
    try:
        return sched.check(selected) if check else sched.realize(selected)
    finally:
        sched.events.close()
        if subs:
            subs.close()


def build_log(project: Project, name: str) -> Path:
    lk = load_lock(project)
    if name not in lk.components:
        raise InputError(f"unknown component {name!r} (known: {', '.join(sorted(lk.components))})")
    store = project.store(create=False)
    path = store.log_path(lk.components[name].out)
    if not path.exists():
        raise InputError(f"no build log for {name} (it has not been built in {store.root})")
    return path


def verify_store(project: Project, *, repair: bool = False, report: Report = _quiet) -> tuple[list[Any], list[Any]]:
    """Rehash every valid path; with ``repair``, rebuild or refetch the damaged ones."""
    store = project.store(create=False)
    damaged = store.verify()
    repaired: list[Any] = []
    if damaged and repair:
        repaired = _repair(project, store, damaged, report)
    return damaged, repaired


def damaged_paths(damaged: list[Any]) -> set[Any]:
    return {d.path for d in damaged}


def _repair(project: Project, store: Store, damaged: list[Any], report: Report) -> list[Any]:
    """Refetch damaged sources and rebuild damaged outputs of the project's lock."""
    from .build.scheduler import Scheduler
    from .sources import FetchContext, fetch_tree

    if not project.lock_path.exists():
        report("no raisin.lock here: cannot tell how to rebuild the damaged paths")
        return []
    lk = load_lock(project)
    by_out = {c.out: n for n, c in lk.components.items()}
    by_src = {c.source.store_path: (n, c.source) for n, c in lk.components.items()}
    ctx = FetchContext(store=store, base_dir=project.dir, file=project.lock_display)
    fixed = []
    damaged = list({d.path: d for d in damaged}.values())
    for d in damaged:
        if d.path in by_src:
            name, src = by_src[d.path]
            ctx.component, ctx.key = name, f"components.{name}.source"
            report(f"refetching {d.path.base}")
            with store.tmpdir("repair-src") as tmp:
                fetch_tree(src, ctx, tmp / "tree")
                store.repair(d.path, tmp / "tree")
            fixed.append(d)
    outs = [by_out[d.path] for d in damaged if d.path in by_out]
    if outs:
        report(f"rebuilding {', '.join(outs)}")
        sched = Scheduler(store=store, lock=lk, fetch=ctx, jobs=os.cpu_count() or 1, sandbox=select_sandbox("auto"))  # type: ignore[arg-type]
        done = set(sched.repair(outs))
        fixed += [d for d in damaged if by_out.get(d.path) in done]
    for d in damaged:
        if d.path not in by_out and d.path not in by_src:
            report(f"cannot repair {d.path.base}: it is not in {project.lock_display}")
    return fixed
