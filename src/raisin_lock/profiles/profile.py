"""Profiles: named, numbered, reversible selections of components.

A *profile* is a directory of links to generations
(:mod:`raisin_lock.profiles.generation`), as in Nix::

    profiles/NAME          -> NAME-3-link          (swapped atomically)
    profiles/NAME-1-link   -> /abs/store/<digest>-profile-NAME
    profiles/NAME-3-link   -> ...
    profiles/.raisin/NAME/ state.json (remembered root, active generation),
                           journal (see journal.py), lock (flock)

A generation's date is its link's mtime.

``state.json`` format, version 1:
``{"version": 1, "root": "/abs" | null, "active": N | null, "journal_root": ...}``
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raisin_lock import atomic
from raisin_lock.errors import InputError, RaisinError
from raisin_lock.store_path import StorePath

STATE_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.\-]*$")
LINK_RE = re.compile(r"^(?P<name>.+)-(?P<n>[0-9]+)-link$")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.endswith("-link"):
        raise InputError(f"invalid profile name {name!r} (letters, digits, - _ + .)")
    return name


# ---------------------------------------------------------------- the profile directory


@dataclass(frozen=True)
class Generation:
    number: int
    link: Path
    store_base: str  # base name of the store path it points to
    store_dir: Path  # the store directory it points into
    date: float

    @property
    def path(self) -> StorePath:
        return StorePath.parse(self.store_base)


@dataclass
class ProfileState:
    root: str | None = None
    active: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Profile:
    """``profiles/NAME`` and its generation links; see the module docstring."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.name = check_name(name)
        self.state_dir = directory / ".raisin" / name

    @property
    def link(self) -> Path:
        return self.dir / self.name

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal"

    def generation_link(self, n: int) -> Path:
        return self.dir / f"{self.name}-{n}-link"

    def generations(self) -> list[Generation]:
        gens: list[Generation] = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return gens
        for fname in names:
            m = LINK_RE.match(fname)
            if not m or m.group("name") != self.name:
                continue
            link = self.dir / fname
            try:
                target = os.readlink(link)
                st = os.lstat(link)
            except OSError:
                continue
            t = Path(target)
            try:
                StorePath.parse(t.name)
            except ValueError:
                continue
            gens.append(Generation(int(m.group("n")), link, t.name, t.parent, st.st_mtime))
        return sorted(gens, key=lambda g: g.number)

    def current_number(self) -> int | None:
        try:
            target = os.readlink(self.link)
        except OSError:
            return None
        m = LINK_RE.match(target)
        return int(m.group("n")) if m and m.group("name") == self.name else None

    def current(self) -> Generation | None:
        n = self.current_number()
        return next((g for g in self.generations() if g.number == n), None)

    def get(self, n: int) -> Generation:
        for g in self.generations():
            if g.number == n:
                return g
        known = ", ".join(str(g.number) for g in self.generations()) or "none"
        raise InputError(f"profile {self.name!r} has no generation {n} (generations: {known})")

    def add_generation(self, store_root: Path, sp: StorePath) -> tuple[Generation, bool]:
        """Link ``sp`` as generation N+1 (or reuse the newest if it is the same path)."""
        gens = self.generations()
        if gens and gens[-1].store_base == sp.base and gens[-1].store_dir == store_root:
            return gens[-1], False
        n = (gens[-1].number + 1) if gens else 1
        self.dir.mkdir(parents=True, exist_ok=True)
        link = self.generation_link(n)
        atomic.replace_symlink(str(store_root / sp.base), link)
        st = os.lstat(link)
        return Generation(n, link, sp.base, store_root, st.st_mtime), True

    def set_current(self, gen: Generation) -> None:
        atomic.replace_symlink(gen.link.name, self.link)

    def delete(self, gen: Generation) -> None:
        if gen.number == self.current_number():
            raise InputError(
                f"generation {gen.number} is the current generation of {self.name!r}; not deleting it"
            )
        state = self.read_state()
        if state.active == gen.number:
            raise InputError(f"generation {gen.number} is active in {state.root}; not deleting it")
        os.unlink(gen.link)

    # ---- state ----------------------------------------------------------

    def read_state(self) -> ProfileState:
        path = self.state_dir / "state.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ProfileState()
        except (OSError, json.JSONDecodeError) as exc:
            raise RaisinError(f"cannot read profile state: {exc}", file=str(path)) from None
        if doc.get("version", 0) > STATE_VERSION:
            raise RaisinError("profile state written by a newer raisin", file=str(path))
        return ProfileState(doc.get("root"), doc.get("active"))

    def write_state(self, state: ProfileState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "state.json"
        doc = {"version": STATE_VERSION, "root": state.root, "active": state.active}
        atomic.write_text(path, json.dumps(doc, sort_keys=True) + "\n")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock on the profile (switch, rollback, delete, deactivate)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def list_profiles(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        n
        for n in names
        if not n.startswith(".") and not LINK_RE.match(n) and os.path.islink(directory / n)
    )
