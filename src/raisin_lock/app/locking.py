"""Locking: resolve the manifest into the lock, changing only what must change.

``raisin lock`` pins new and changed components (source, recipe expanded
into plain steps, build-dependency versions, output paths) and keeps every
other pin byte for byte; ``--update`` re-resolves named components (or all),
``--check`` writes nothing and says what is stale. Which components are
stale is :mod:`raisin_lock.lock.freshness`'s to say.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from raisin_lock.app import following
from raisin_lock.app.builddeps import detect
from raisin_lock.app.project import Project, Report, quiet, read_lock
from raisin_lock.app.staleness import reasons_to_relock, up_to_date
from raisin_lock.build import fetching
from raisin_lock.build.sandbox import select_sandbox
from raisin_lock.errors import unknown_component
from raisin_lock.hashing import Hash
from raisin_lock.lock import freshness, graph, lockfile, toolchain
from raisin_lock.lock.lockfile import Lock, LockedComponent
from raisin_lock.lock.pins import LockedSource
from raisin_lock.manifest import actions
from raisin_lock.manifest import recipe as recipes
from raisin_lock.sources import FetchContext, materialize, resolve
from raisin_lock.store import tree
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.manifest.model import ComponentSpec, Manifest


@dataclass
class LockResult:
    lock: Lock
    written: bool
    stale: dict[str, str] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)
    # url sources the manifest gives no hash for: name -> the archive hash pinned now
    unrequired_hashes: dict[str, str] = field(default_factory=dict)
    drift: dict[str, str] = field(default_factory=dict)  # name -> how its recipe moved on


def recipe_drift(lk: Lock) -> dict[str, str]:
    """Components locked from a built-in recipe whose text differs from this raisin's.

    Their steps in the lock still stand (the lock is self-contained), but
    ``lock --update NAME`` would expand the newer recipe and change their
    output paths; ``lock --check`` says so beforehand.
    """
    drift: dict[str, str] = {}
    for name, c in sorted(lk.components.items()):
        if c.recipe is None:
            continue
        try:
            current = "sha256-" + recipes.load(c.recipe).text_hash
        except recipes.RecipeError:
            drift[name] = f"recipe {c.recipe!r} is not in this raisin"
            continue
        if c.recipe_hash is None:
            drift[name] = f"locked from recipe {c.recipe!r} before raisin recorded recipe hashes"
        elif c.recipe_hash != current:
            drift[name] = f"locked from an older or newer text of recipe {c.recipe!r}"
    return drift


def _recipe_for(name: str, spec: ComponentSpec, m: Manifest) -> recipes.Recipe | None:
    """The component's recipe (options checked), or None for plain build steps."""
    if spec.recipe is None:
        return None
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
    r = _recipe_for(name, spec, m)
    env = dict(r.env) if r else {}
    env.update(spec.env)
    if spec.build is not None:
        steps = spec.build
    else:
        assert r is not None
        known = {"version": versions[name], **{d: versions[d] for d in spec.deps}}
        try:
            steps = recipes.expand(r, spec.options, known, source=spec.source.kind)
        except recipes.RecipeError as exc:
            raise m.error(f"components.{name}.recipe", str(exc)) from None
    steps = (*spec.pre_build, *steps, *spec.post_build)
    family = _distro_family()
    bdeps = tuple(dict.fromkeys((*(r.build_deps.get(family, ()) if r else ()), *spec.build_deps)))
    return steps, tuple(sorted(env.items())), bdeps


def _fetch_steps(
    name: str, spec: ComponentSpec, m: Manifest, versions: dict[str, str], source_kind: str
) -> tuple[str, ...]:
    """The component's fetch steps: its own ``fetch``, else its recipe's (for this source kind)."""
    if spec.fetch is not None:
        return spec.fetch
    r = _recipe_for(name, spec, m)
    if r is None or not r.fetch:
        return ()
    known = {"version": versions[name], **{d: versions[d] for d in spec.deps}}
    try:
        return recipes.expand(r, spec.options, known, source=source_kind, fetch=True)
    except recipes.RecipeError as exc:
        raise m.error(f"components.{name}.recipe", str(exc)) from None


def _fetch_hash(
    ctx: FetchContext,
    name: str,
    spec: ComponentSpec,
    src: LockedSource,
    steps: tuple[str, ...],
    old: Lock | None,
    *,
    refresh: bool,
    offline: bool,
    report: Report,
) -> Hash | None:
    """The pinned NAR hash of what ``steps`` leave: given, kept from the old lock, or fetched now."""
    if not steps:
        return None
    if spec.fetch_hash is not None:
        return Hash.parse(spec.fetch_hash)
    prev = old.components.get(name) if old is not None else None
    if (
        not refresh
        and prev is not None
        and prev.fetch == steps
        and prev.source == src
        and prev.fetch_hash
    ):
        return prev.fetch_hash
    report(f"fetching {name} (its fetch steps run with network)")
    mode = select_sandbox("auto")
    source = materialize(src, replace(ctx, component=name, key=f"components.{name}.source"))
    _sp, got = fetching.fetch(
        ctx.store, name, steps, source, src.date, None, mode=mode, offline=offline
    )
    report(
        f"pinned {name}'s fetched tree: fetch-hash = {got.sri!r} (add it to raisin.toml to require it)"
    )
    return got


def _activation_for(name: str, spec: ComponentSpec, m: Manifest) -> actions.ActivationSpec:
    """The recipe's [activate] table overridden key by key by the component's (raisin_lock.actions)."""
    base = actions.NONE
    r = _recipe_for(name, spec, m)
    if r is not None and r.activate:
        try:
            base = actions.parse(r.activate)
        except actions.ActionError as exc:
            raise m.error(
                f"components.{name}.recipe", f"recipe {spec.recipe!r}: activate.{exc}"
            ) from None
    return actions.merge(base, spec.activation)


def _distro_family() -> str:
    """The host's distro family for recipes' build-deps (debian when unknown)."""
    distro, _ = detect()
    return distro.family if distro is not None else "debian"


def lock(
    project: Project,
    *,
    update: list[str] | None = None,
    check: bool = False,
    offline: bool = False,
    report: Report = quiet,
) -> LockResult:
    """Resolve new or changed components; keep every other pin as it is.

    ``update``: None = only what changed, [] = everything, [names] = those.
    ``check``: write nothing; return the stale components (and why).
    Either way ``drift`` names the components a newer recipe would change.
    """
    fresh_store = not project.store_root.exists()
    try:
        res = _lock(project, update=update, check=check, offline=offline, report=report)
    except BaseException:
        if fresh_store:  # a bad URL, ref or hash leaves nothing behind, not even an empty store
            tree.remove(project.store_root)
        raise
    res.drift = recipe_drift(res.lock)
    return res


def _lock(
    project: Project,
    *,
    update: list[str] | None = None,
    check: bool = False,
    offline: bool = False,
    report: Report = quiet,
) -> LockResult:
    """:func:`lock` without the drift notes."""
    old = read_lock(project)
    if (
        old is not None
        and update is None
        and up_to_date(project, old, check=check, offline=offline)
    ):
        return LockResult(lock=old, written=False)

    m = project.load_manifest()
    update_all = update is not None and len(update) == 0
    wanted = set(update or ())
    for n in sorted(wanted):
        if n not in m.components:
            raise unknown_component(n, m.components, key="--update")
    decls = {name: m.fingerprint(name) for name in m.components}
    source_decls = {name: m.source_fingerprint(name) for name in m.components}
    if old is None or any(
        n not in old.components or old.components[n].decl != d for n, d in decls.items()
    ):
        graph.build(m)  # dependency cycles are errors
        following.check_follows(m)
    if old is not None and not update_all and old.system == toolchain.system():
        system, tools = old.system, dict(old.toolchain)
    else:
        system, tools = (
            toolchain.system(),
            (toolchain.probe() if not check else dict(old.toolchain) if old else {}),
        )
    paths = {n: s.source.path for n, s in m.components.items() if s.source.path is not None}
    forced = list(m.components) if update_all else sorted(wanted)
    follows = {n: s.follows for n, s in m.components.items() if s.follows}
    reasons = (
        reasons_to_relock(
            project,
            old,
            decls,
            paths,
            forced,
            check=check,
            offline=offline,
            follows=follows,
            source_decls=source_decls,
        )
        if old is not None
        else {n: "not in the lock" for n in m.components}
    )
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
    rederive = {n for n, r in reasons.items() if r == freshness.BUILD_CHANGED}
    for name in sorted(rederive):
        kept = _kept(old, name)
        report(f"deriving {name} again from its pin (only its build changed)")
        resolved[name] = (kept.source, kept.version)
    fresh = {n: r for n, r in reasons.items() if n not in rederive}
    for name in following.follow_order(m, fresh):
        spec = m.components[name]
        ctx.component, ctx.key = name, f"components.{name}.source"
        source = spec.source
        if spec.follows and source.git is not None and source.ref is None:
            leader = (
                resolved[spec.follows][0]
                if spec.follows in resolved
                else _kept(old, spec.follows).source
            )
            source = source.model_copy(
                update={"ref": following.followed_ref(name, spec, leader, store, m)}
            )
        if source is spec.source:
            report(f"resolving {name} ({_describe_source(spec)})")
        else:
            report(
                f"resolving {name} (git {source.git} {source.ref}, as {spec.follows}'s Config.mk names)"
            )
        src = resolve(source, ctx)
        resolved[name] = (src, spec.version or src.version_hint or "local")
    versions = {
        n: (resolved[n][1] if n in resolved else _kept(old, n).version) for n in m.components
    }
    pending: dict[
        str, tuple[LockedSource, str, tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]
    ] = {}
    fetches: dict[str, tuple[tuple[str, ...], Hash | None]] = {}
    for name, (src, version) in resolved.items():
        spec = m.components[name]
        steps, env, bdeps = _expand(name, spec, m, versions)
        pending[name] = (src, version, steps, env, bdeps)
        fetch = _fetch_steps(name, spec, m, versions, src.kind)
        fetch_hash = _fetch_hash(
            ctx,
            name,
            spec,
            src,
            fetch,
            old,
            refresh=update_all or name in wanted,
            offline=offline,
            report=report,
        )
        fetches[name] = (fetch, fetch_hash)
    all_bdeps = sorted({p for *_, bdeps in pending.values() for p in bdeps})
    versions_installed = toolchain.package_versions(all_bdeps) if all_bdeps else {}

    comps: dict[str, LockedComponent] = {}
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
                build_deps=tuple(
                    sorted((p, versions_installed.get(p, "not installed")) for p in bdeps)
                ),
                decl=decls[name],
                out=_placeholder_out(),
                drv=placeholder,
                fetch=fetches[name][0],
                fetch_hash=fetches[name][1],
                recipe=spec.recipe,
                activate=_activation_for(name, spec, m),
                decl_source=source_decls[name],
                recipe_hash=_recipe_hash(name, spec, m),
            )
        else:
            assert old is not None
            prev = old.components[name]
            # A version-1 entry kept as it is learns its source fingerprint (same declaration).
            comps[name] = LockedComponent(**{**prev.__dict__, "decl_source": source_decls[name]})
    new = Lock(system=system, toolchain=tools, components=comps)
    for name, drv in new.derivations().items():
        c = comps[name]
        comps[name] = LockedComponent(**{**c.__dict__, "out": drv.out, "drv": drv.hash()})
    written = lockfile.write(project.lock_path, new)
    unrequired = {
        n: src.file_hash.sri
        for n, (src, *_rest) in pending.items()
        if src.kind == "url" and src.file_hash is not None and m.components[n].source.hash is None
    }
    return LockResult(
        lock=new,
        written=written,
        resolved=sorted(pending),
        stale=reasons,
        unrequired_hashes=unrequired,
    )


def _recipe_hash(name: str, spec: ComponentSpec, m: Manifest) -> str | None:
    """``sha256-<hex>`` of the recipe text the steps were expanded from (None: inline steps)."""
    r = _recipe_for(name, spec, m)
    return None if r is None else "sha256-" + r.text_hash


def _kept(old: Lock | None, name: str) -> LockedComponent:
    """A component not resolved again: the old lock has it (staleness said so)."""
    assert old is not None, name
    return old.components[name]


def _placeholder_out() -> StorePath:
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
