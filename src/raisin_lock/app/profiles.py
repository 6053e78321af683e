"""Use cases for profiles, activation and garbage collection.

The profile half of :mod:`raisin_lock.api` (kept apart to keep both small):
switch, rollback, deactivate, generations, diff, delete-generations, gc and
store optimise. Like ``api``, these functions return values and never
print; progress goes to ``report``, and a switch asks ``confirm`` (given the
plan) before it changes the root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raisin_lock.app.gc import guard, register_profiles_root
from raisin_lock.app.locking import lock
from raisin_lock.app.realizing import realize
from raisin_lock.display import display_path
from raisin_lock.errors import BuildError, InputError, RaisinError
from raisin_lock.lock import freshness, lockfile
from raisin_lock.profiles import activation
from raisin_lock.profiles.activation import Plan, Target
from raisin_lock.profiles.generation import (
    GenerationInfo,
    build_generation,
    generation_info,
    merge,
    read_info_if_valid,
)
from raisin_lock.profiles.journal import Journal
from raisin_lock.profiles.profile import Profile, ProfileState
from raisin_lock.profiles.root_view import RootView
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.app.project import Project
    from raisin_lock.lock.lockfile import Lock
    from raisin_lock.store.local import Store

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _yes(_: Transition) -> bool:
    return True


def open_profile(project: Project, name: str) -> Profile:
    return Profile(project.profiles_dir, name)


@dataclass
class Transition:
    """What a switch/rollback/deactivate is about to do (shown before confirming)."""

    profile: str
    root: Path | None
    old_generation: int | None  # active in the root before
    old_root: Path | None
    new_generation: int | None  # None: deactivate
    new_is_new: bool = False
    components: list[tuple[str, str | None, str | None]] = field(
        default_factory=list
    )  # name, old, new version
    plan: Plan | None = None
    unbuilt: list[str] = field(default_factory=list)
    nothing_to_do: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading


def _versions(info: GenerationInfo | None) -> dict[str, tuple[str, str]]:
    return {n: (c.version, c.out.base) for n, c in info.components.items()} if info else {}


def component_changes(
    old: GenerationInfo | None, new: GenerationInfo | None
) -> list[tuple[str, str | None, str | None]]:
    """(name, old version, new version) for every added, removed or changed component."""
    a, b = _versions(old), _versions(new)
    out = []
    for n in sorted(set(a) | set(b)):
        if a.get(n) == b.get(n):
            continue
        va = a[n][0] if n in a else None
        vb = b[n][0] if n in b else None
        if va is not None and va == vb:
            vb = f"{vb} (rebuilt: {b[n][1][:8]})"
            va = f"{va} ({a[n][1][:8]})"
        out.append((n, va, vb))
    return out


def _declared(project: Project, name: str) -> list[str] | None:
    """The profile's components as raisin.toml declares them; None: every component.

    Read with tomllib (the manifest was validated by ``lock``); an unknown
    profile is an input error naming the declared ones.
    """
    import tomllib

    try:
        doc = tomllib.loads(project.manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        m = project.load_manifest()  # reports the problem properly
        doc = {
            "profiles": {n: {"components": list(p.components)} for n, p in m.model.profiles.items()}
        }
    profiles = doc.get("profiles") or {}
    if not profiles:
        if name != "default":
            raise InputError(
                f"unknown profile {name!r}: raisin.toml declares no [profiles], so only 'default' "
                "(every component) exists",
                file=project.manifest_path.name,
                key="profiles",
            )
        return None
    if name not in profiles:
        raise InputError(
            f"unknown profile {name!r} (declared: {', '.join(sorted(profiles))})",
            file=project.manifest_path.name,
            key="profiles",
        )
    return list(profiles[name].get("components", []))


def _profile_components(project: Project, name: str, lk: Lock, lock_file: Path | None) -> list[str]:
    if lock_file is None and project.manifest_path.exists():
        names = _declared(project, name) or sorted(lk.components)
    elif name == "default":
        names = sorted(lk.components)
    else:
        raise InputError(
            f"unknown profile {name!r}: without a raisin.toml only 'default' (every component of the lock) exists"
        )
    missing = [n for n in names if n not in lk.components]
    if missing:
        raise InputError(
            f"profile {name!r} names {missing[0]!r}, which is not in the lock",
            hint="run `raisin lock`",
        )
    return names


# ---------------------------------------------------------------- switch / rollback / deactivate


def _store_for(project: Project, *, dry_run: bool) -> Store:
    if dry_run:
        return project.read_only_store()
    return project.store()


def _journal(profile: Profile) -> Journal | None:
    return Journal.read(profile.journal_path)


def _old_info(store: Store, old: Journal | None) -> GenerationInfo | None:
    if old is None:
        return None
    try:
        return read_info_if_valid(store, StorePath.parse(old.store_path))
    except ValueError:
        return None


def switch(
    project: Project,
    name: str,
    *,
    root: Path | None = None,
    dry_run: bool = False,
    lock_file: Path | None = None,
    jobs: int | None = None,
    offline: bool = False,
    sandbox: str = "auto",
    events: Any = None,
    confirm: Callable[[Transition], bool] = _yes,
    report: Report = _quiet,
) -> Transition:
    """Realize the profile's components, make generation N+1, activate it in the root."""

    profile = open_profile(project, name)
    lpath = lock_file or project.lock_path
    if dry_run:
        lk = lockfile.read(lpath, shown=display_path(lpath))
        if lock_file is None and project.manifest_path.exists():
            stale = freshness.changed_declarations(project.manifest_path, lk) or []
            if stale:
                report(
                    f"{project.lock_display} is out of date ({', '.join(stale)}); the plan uses it as it is"
                )
        names = _profile_components(project, name, lk, lock_file)
        store = _store_for(project, dry_run=True)
        info = generation_info(name, lk, names)
        state = profile.read_state()
        old = _journal(profile)
        new_root = (root or Path(state.root or "/")).absolute()
        t = Transition(
            name, new_root, old.generation if old else None, old.root if old else None, None
        )
        closure = lk.closure(names)
        valid = store.valid_subset([lk.components[n].out for n in closure])
        t.unbuilt = [n for n in closure if lk.components[n].out not in valid]
        cur = profile.current()
        cur_info = read_info_if_valid(store, cur.path) if cur else None
        same = cur is not None and _versions(cur_info) == _versions(info)
        gens = profile.generations()
        t.new_generation = cur.number if same and cur else (gens[-1].number + 1 if gens else 1)
        t.new_is_new = not same
        t.components = component_changes(_old_info(store, old) if old else cur_info, info)
        if (
            same
            and old is not None
            and old.complete
            and old.generation == t.new_generation
            and old.root == new_root
        ):
            t.nothing_to_do = True
            return t
        target = None
        if not t.unbuilt:
            target = activation.target_from_view(
                name, t.new_generation, info, merge(store, info.components.values())
            )
        t.plan = activation.plan(store.root, new_root, old, target, old.shipped() if old else {})
        return t

    if lock_file is None and project.manifest_path.exists():
        lock(project, offline=offline, report=report)  # pins follow raisin.toml and path sources
    res = realize(
        project,
        names=None if lock_file else _names_for_realize(project, name),
        lock_file=lock_file,
        jobs=jobs,
        offline=offline,
        sandbox=sandbox,
        events=events,
        report=report,
    )
    if not res.ok:
        raise BuildError(f"cannot switch profile {name!r}: building its components failed")
    lk = lockfile.read(lpath, shown=display_path(lpath))
    names = _profile_components(project, name, lk, lock_file)
    store = project.store()
    info = generation_info(name, lk, names)
    missing = [n for n in lk.closure(names) if not store.is_valid(lk.components[n].out)]
    if missing:
        raise BuildError(f"cannot switch profile {name!r}: {', '.join(missing)} not built")
    with profile.locked():
        with guard(store):
            sp = _existing_generation(store, profile, info) or build_generation(store, info)
            register_profiles_root(store, profile.dir)
            gen, created = profile.add_generation(store.root, sp)
        try:
            return _transition(
                project, store, profile, gen.number, sp, root, confirm, report, new_is_new=created
            )
        except BaseException:
            if created:
                gen.link.unlink(missing_ok=True)
            raise


def _existing_generation(store: Store, profile: Profile, info: GenerationInfo) -> StorePath | None:
    """A generation of this profile with exactly ``info`` (its content follows from it)."""
    want = info.to_json()
    for g in reversed(profile.generations()):
        if g.store_dir != store.root or not store.is_valid(g.path):
            continue
        try:
            if (store.host_path(g.path) / "generation.json").read_text(encoding="utf-8") == want:
                return g.path
        except OSError:
            continue
    return None


def _names_for_realize(project: Project, name: str) -> list[str] | None:
    """The profile's components from the manifest, if it declares them (else everything)."""
    if not project.manifest_path.exists():
        return None
    return _declared(project, name)


def _transition(
    project: Project,
    store: Store,
    profile: Profile,
    number: int | None,
    sp: StorePath | None,
    root: Path | None,
    confirm: Callable[[Transition], bool],
    report: Report,
    *,
    new_is_new: bool = False,
    activate: bool = True,
) -> Transition:
    """Undo what is active, activate generation ``number`` (None: nothing); caller holds the profile lock."""
    state = profile.read_state()
    old = _journal(profile)
    new_root = (root or Path(state.root or "/")).absolute()
    t = Transition(
        profile.name,
        new_root,
        old.generation if old else None,
        old.root if old else None,
        number,
        new_is_new,
    )
    new_info = read_info_if_valid(store, sp) if sp else None
    t.components = component_changes(_old_info(store, old), new_info)
    if old is not None and not old.complete:
        t.notes.append(
            f"the activation of generation {old.generation} in {old.root} was interrupted; undoing what it did"
        )
    target: Target | None = None
    if number is not None and sp is not None and activate:
        target = activation.target_from_store(store, profile.name, number, sp)
    if (
        old is not None
        and old.complete
        and target is not None
        and old.generation == number
        and old.root == new_root
        and sp is not None
        and old.store_path == sp.base
    ):
        t.nothing_to_do = True
        if number is not None and profile.current_number() != number:
            profile.set_current(profile.get(number))
        return t
    t.plan = activation.plan(store.root, new_root, old, target, old.shipped() if old else {})
    if not confirm(t):
        raise Cancelled("cancelled")
    _execute(store, profile, state, old, target, new_root, t)
    if number is not None:
        profile.set_current(profile.get(number))
    return t


class Cancelled(RaisinError):
    """The user declined the plan shown before a switch (exit 1, nothing changed)."""


def _execute(
    store: Store,
    profile: Profile,
    state: ProfileState,
    old: Journal | None,
    target: Target | None,
    root: Path,
    t: Transition,
) -> None:
    prev_shipped = old.shipped() if old else {}
    restore: tuple[Target, Path] | None = None
    if old is not None and old.complete:
        try:
            sp = StorePath.parse(old.store_path)
            if store.is_valid(sp):
                restore = (
                    activation.target_from_store(store, profile.name, old.generation, sp),
                    old.root,
                )
        except (ValueError, RaisinError):
            restore = None
    if old is not None:
        warnings: list[str] = []
        activation.undo(old, RootView(old.root, dry=False), None, warnings)
        t.warnings += warnings
        old.discard()
        profile.write_state(ProfileState(root=str(root) if target else state.root, active=None))
    if target is None:
        return
    try:
        _journal_new, w = activation.apply(
            store.root, profile.journal_path, target, root, prev_shipped
        )
        t.warnings += w
    except BaseException as exc:
        if restore is None or isinstance(exc, KeyboardInterrupt):
            raise
        try:
            activation.apply(store.root, profile.journal_path, restore[0], restore[1], prev_shipped)
        except BaseException as again:
            raise RaisinError(
                f"activating generation {target.generation} failed ({exc}); restoring generation "
                f"{restore[0].generation} failed too ({again})",
                hint=f"run `raisin profile rollback {profile.name} --to {restore[0].generation}` to retry",
            ) from again
        profile.write_state(ProfileState(root=str(restore[1]), active=restore[0].generation))
        msg = exc.message if isinstance(exc, RaisinError) else str(exc)
        raise RaisinError(
            f"activating generation {target.generation} of {profile.name!r} failed: {msg}; "
            f"{restore[1]} is back at generation {restore[0].generation}"
        ) from exc
    profile.write_state(ProfileState(root=str(root), active=target.generation))


def rollback(
    project: Project,
    name: str,
    *,
    to: int | None = None,
    dry_run: bool = False,
    confirm: Callable[[Transition], bool] = _yes,
    report: Report = _quiet,
) -> Transition:
    """Make an earlier generation current and re-activate it where the profile is active."""
    profile = open_profile(project, name)
    if not profile.generations():
        raise InputError(
            f"profile {name!r} has no generations", hint=f"run `raisin profile switch {name}`"
        )
    cur = profile.current_number()
    if to is None:
        earlier = [g for g in profile.generations() if cur is None or g.number < cur]
        if not earlier:
            raise InputError(f"profile {name!r} has no generation before {cur}")
        gen = earlier[-1]
    else:
        gen = profile.get(to)
    store = _store_for(project, dry_run=dry_run)
    if not store.is_valid(gen.path):
        raise RaisinError(
            f"generation {gen.number} of {name!r} is not in the store any more ({gen.store_base})"
        )
    state = profile.read_state()
    activate = state.active is not None or _journal(profile) is not None
    if dry_run:
        old = _journal(profile)
        new_root = Path(state.root or "/")
        t = Transition(
            name, new_root, old.generation if old else None, old.root if old else None, gen.number
        )
        current = profile.current()
        before = (
            _old_info(store, old)
            if old
            else read_info_if_valid(store, current.path)
            if current
            else None
        )
        t.components = component_changes(before, read_info_if_valid(store, gen.path))
        if activate:
            target = activation.target_from_store(store, name, gen.number, gen.path)
            t.plan = activation.plan(
                store.root, new_root, old, target, old.shipped() if old else {}
            )
        else:
            t.notes.append(
                "the profile is not active in any root: only its current generation changes"
            )
        return t
    with profile.locked():
        if not activate:
            profile.set_current(gen)
            t = Transition(name, None, None, None, gen.number)
            t.notes.append(
                "the profile is not active in any root: only its current generation changed"
            )
            return t
        return _transition(project, store, profile, gen.number, gen.path, None, confirm, report)


def deactivate(
    project: Project,
    name: str,
    *,
    dry_run: bool = False,
    confirm: Callable[[Transition], bool] = _yes,
    report: Report = _quiet,
) -> Transition:
    """Undo the profile's activation in its root; its generations stay."""
    profile = open_profile(project, name)
    old = _journal(profile)
    if old is None:
        t = Transition(name, None, None, None, None, nothing_to_do=True)
        t.notes.append(f"profile {name!r} is not active in any root")
        return t
    store = _store_for(project, dry_run=dry_run)
    if dry_run:
        t = Transition(name, old.root, old.generation, old.root, None)
        t.plan = activation.plan(store.root, old.root, old, None, {})
        return t
    with profile.locked():
        return _transition(project, store, profile, None, None, old.root, confirm, report)
