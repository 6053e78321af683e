"""Listing profiles and their generations, comparing and deleting generations.

The read-mostly half of the profile use cases (:mod:`raisin_lock.app.profiles`
switches, rolls back and deactivates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raisin_lock.errors import InputError, RaisinError
from raisin_lock.profiles.profile import Profile
from raisin_lock.profiles.profile import list_profiles as names_in

if TYPE_CHECKING:
    from raisin_lock.app.project import Project

Report = Callable[[str], None]


from raisin_lock.app.profiles import component_changes, open_profile
from raisin_lock.profiles.generation import read_info_if_valid
from raisin_lock.profiles.journal import Journal


@dataclass
class GenerationRow:
    number: int
    date: float
    current: bool
    active_in: str | None
    components: dict[str, str]  # name -> version
    missing: bool = False


def generations(project: Project, name: str) -> list[GenerationRow]:
    profile = open_profile(project, name)
    gens = profile.generations()
    if not gens and not profile.link.is_symlink():
        raise InputError(
            f"no profile {name!r} (in {profile.dir})", hint=f"run `raisin profile switch {name}`"
        )
    store = project.read_only_store()
    cur = profile.current_number()
    j = Journal.read(profile.journal_path)
    rows = []
    for g in gens:
        info = read_info_if_valid(store, g.path) if g.store_dir == store.root else None
        rows.append(
            GenerationRow(
                g.number,
                g.date,
                g.number == cur,
                str(j.root) if j is not None and j.generation == g.number else None,
                {n: c.version for n, c in sorted(info.components.items())} if info else {},
                missing=info is None,
            )
        )
    return rows


@dataclass
class ProfileRow:
    name: str
    current: int | None
    count: int
    root: str | None
    active: int | None
    declared: bool


def list_profiles(project: Project) -> list[ProfileRow]:

    d = project.profiles_dir
    names = set(names_in(d))
    declared: set[str] = set()
    if project.manifest_path.exists():
        try:
            declared = set(project.load_manifest().profiles)
        except RaisinError:
            declared = set()
    rows = []
    for n in sorted(names | declared):
        p = Profile(d, n)
        st = p.read_state()
        j = Journal.read(p.journal_path)
        rows.append(
            ProfileRow(
                n,
                p.current_number(),
                len(p.generations()),
                st.root,
                j.generation if j else None,
                n in declared,
            )
        )
    return rows


def diff(
    project: Project, name: str, a: int | None = None, b: int | None = None
) -> tuple[int, int, list[tuple[str, str | None, str | None]]]:
    profile = open_profile(project, name)
    gens = profile.generations()
    if a is None:
        cur = profile.current_number()
        if cur is None:
            raise InputError(f"profile {name!r} has no current generation")
        before = [g.number for g in gens if g.number < cur]
        if not before:
            raise InputError(f"profile {name!r} has no generation before {cur} to compare with")
        a, b = before[-1], cur
    elif b is None:
        raise InputError("give two generations, or none (previous and current)")
    store = project.read_only_store()
    ga, gb = profile.get(a), profile.get(b)
    return (
        a,
        b,
        component_changes(read_info_if_valid(store, ga.path), read_info_if_valid(store, gb.path)),
    )


def delete_generations(
    project: Project,
    name: str,
    *,
    numbers: list[int] = (),  # type: ignore[assignment]
    older_than_days: float | None = None,
    keep: int | None = None,
    dry_run: bool = False,
) -> list[int]:
    """Delete generation links (never the current or the active one); return their numbers."""
    profile = open_profile(project, name)
    gens = profile.generations()
    if not gens:
        raise InputError(f"profile {name!r} has no generations")
    cur = profile.current_number()
    active = profile.read_state().active
    j = Journal.read(profile.journal_path)
    protected = {cur, active, j.generation if j else None}
    chosen: set[int] = set()
    known = {g.number for g in gens}
    for n in numbers:
        if n not in known:
            profile.get(n)  # raises naming the known ones
        if n in protected:
            raise InputError(f"generation {n} of {name!r} is current or active; not deleting it")
        chosen.add(n)
    now = time.time()
    if older_than_days is not None:
        chosen |= {g.number for g in gens if (now - g.date) > older_than_days * 86400}
    if keep is not None:
        if keep < 1:
            raise InputError("--keep must be at least 1", key="--keep")
        chosen |= {g.number for g in gens[:-keep]}
    chosen -= protected
    if dry_run:
        return sorted(chosen)
    with profile.locked():
        for g in gens:
            if g.number in chosen:
                profile.delete(g)
    return sorted(chosen)
