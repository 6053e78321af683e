"""Profiles and generations: named, numbered, reversible selections of components.

A *generation* is a store path ``<digest>-profile-NAME`` holding

- ``files/``: the merged view of the chosen components' outputs (real
  directories; every file a relative symlink to the component output that
  provides it, so its content never depends on where the store lives), and
- ``generation.json``: the components (version, output, activation actions)
  and the *build inputs* of their closure (source paths, dependency
  outputs), which ``gc`` keeps unless ``--runtime-only``.

Only the component outputs are recorded as its references, so
``--runtime-only`` can drop sources and build-only dependencies.

A *profile* is a directory of links, as in Nix::

    profiles/NAME          -> NAME-3-link          (swapped atomically)
    profiles/NAME-1-link   -> /abs/store/<digest>-profile-NAME
    profiles/NAME-3-link   -> ...
    profiles/.raisin/NAME/ state.json (remembered root, active generation),
                           journal (see journal.py), lock (flock)

A generation's date is its link's mtime. Two components providing the same
file is an error naming both, unless their ``priority`` differs (lower
wins).

``state.json`` format, version 1:
``{"version": 1, "root": "/abs" | null, "active": N | null, "journal_root": ...}``
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import actions as actions_mod
from .actions import ActivationSpec
from .errors import InputError, RaisinError
from .store_path import StorePath

if TYPE_CHECKING:
    from .lockfile import Lock
    from .store.local import Store

PROFILES_DIR = "profiles"
GENERATION_FORMAT = 1
STATE_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.\-]*$")
_LINK_RE = re.compile(r"^(?P<name>.+)-(?P<n>[0-9]+)-link$")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.endswith("-link"):
        raise InputError(f"invalid profile name {name!r} (letters, digits, - _ + .)")
    return name


# ---------------------------------------------------------------- generation content


@dataclass(frozen=True)
class ComponentEntry:
    name: str
    version: str
    out: StorePath
    activate: ActivationSpec


@dataclass(frozen=True)
class GenerationInfo:
    """What ``generation.json`` says."""

    profile: str
    components: dict[str, ComponentEntry]
    build_inputs: tuple[StorePath, ...]

    def to_json(self) -> str:
        doc = {
            "format": GENERATION_FORMAT,
            "profile": self.profile,
            "components": {
                n: {"version": c.version, "out": c.out.base, "activate": c.activate.to_dict()}
                for n, c in sorted(self.components.items())
            },
            "build_inputs": sorted(p.base for p in self.build_inputs),
        }
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> GenerationInfo:
        try:
            doc = json.loads(text)
            if doc.get("format", 0) > GENERATION_FORMAT:
                raise RaisinError("generation written by a newer raisin", file=where)
            comps = {
                n: ComponentEntry(n, c["version"], StorePath.parse(c["out"]), actions_mod.parse(c.get("activate")))
                for n, c in doc["components"].items()
            }
            return cls(doc["profile"], comps, tuple(StorePath.parse(b) for b in doc.get("build_inputs", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RaisinError(f"corrupt generation.json: {exc}", file=where) from None


def read_info(store: Store, sp: StorePath) -> GenerationInfo:
    path = store.host_path(sp) / "generation.json"
    try:
        return GenerationInfo.from_json(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise RaisinError("not a generation (no generation.json)", file=str(path)) from None


@dataclass(frozen=True)
class MergedEntry:
    """One entry of a merged view: ``rel`` is provided by ``component`` at ``source``."""

    rel: str
    kind: str  # "dir" | "file" | "symlink"
    component: str
    source: Path  # host path of the entry inside the component's output


def merge(store: Store, components: Iterable[ComponentEntry]) -> dict[str, MergedEntry]:
    """The merged view of ``components`` (which must be valid), rel path -> entry.

    Conflicts (the same file from two components of equal priority, or a
    file where another component has a directory) raise InputError naming
    both components and the file.
    """
    view: dict[str, MergedEntry] = {}
    prio: dict[str, int] = {}
    for comp in sorted(components, key=lambda c: c.name):
        top = store.host_path(comp.out)
        if not top.is_dir() or top.is_symlink():
            raise InputError(f"{comp.name}: its output {comp.out.base} is not a directory; it cannot be merged into a profile")
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            with os.scandir(top / rel_dir if rel_dir else top) as it:
                ents = sorted(it, key=lambda e: e.name)
            for e in ents:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                st = e.stat(follow_symlinks=False)
                kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
                old = view.get(rel)
                if old is not None:
                    if old.kind == kind == "dir":
                        stack.append(rel)
                        continue
                    if "dir" in (kind, old.kind):
                        raise InputError(
                            f"{old.component} and {comp.name} both provide {rel}, "
                            "one as a directory and one as a file"
                        )
                    p_old, p_new = prio[rel], comp.activate.priority
                    if p_old == p_new:
                        raise InputError(
                            f"{old.component} and {comp.name} both provide {rel} "
                            "(give one of them a lower [components.NAME.activate] priority to let it win)"
                        )
                    if p_new > p_old:
                        continue
                view[rel] = MergedEntry(rel, kind, comp.name, top / rel)
                prio[rel] = comp.activate.priority
                if kind == "dir":
                    stack.append(rel)
    return dict(sorted(view.items()))


def _write_tree(dest: Path, view: dict[str, MergedEntry], store: Store) -> None:
    files = dest / "files"
    files.mkdir(parents=True)
    for rel, e in view.items():
        target = files / rel
        if e.kind == "dir":
            target.mkdir()
            continue
        depth = rel.count("/") + 2  # up from files/<dirs of rel> to the store root
        out_base = e.source.relative_to(store.root).parts[0]
        os.symlink("../" * depth + out_base + "/" + rel, target)


def build_inputs(lock: Lock, names: list[str]) -> set[StorePath]:
    """Sources and dependency outputs needed to rebuild ``names``."""
    result: set[StorePath] = set()
    for n in lock.closure(names):
        c = lock.components[n]
        result.add(c.source.store_path)
        if n not in names:
            result.add(c.out)
    return result


def generation_info(profile: str, lock: Lock, names: list[str]) -> GenerationInfo:
    comps = {
        n: ComponentEntry(n, lock.components[n].version, lock.components[n].out, lock.components[n].activate)
        for n in names
    }
    return GenerationInfo(profile, comps, tuple(sorted(build_inputs(lock, names) - {c.out for c in comps.values()})))


def build_generation(store: Store, info: GenerationInfo) -> StorePath:
    """Make (or find) the generation store path for ``info``; outputs must be valid.

    Caller holds the gc guard until a profile link points at it.
    """
    from .hashing import Hash
    from .nar import hash_path
    from .store import tree

    view = merge(store, info.components.values())
    with store.tmpdir("generation") as tmp:
        dest = tmp / "gen"
        _write_tree(dest, view, store)
        (dest / "generation.json").write_text(info.to_json(), encoding="utf-8")
        tree.normalise(dest, fsync=False)
        nar_hash, _ = hash_path(dest)
        assert isinstance(nar_hash, Hash)
        sp = StorePath.make("generation", nar_hash, f"profile-{info.profile}")
        if store.is_valid(sp):
            return sp
        with store.lock(sp):
            if store.is_valid(sp):
                return sp
            host = store.prepare_build(sp)
            os.rename(dest, host)
            store.register(sp, candidates=[c.out for c in info.components.values()], ca="generation", expected=nar_hash)
    return sp


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
            m = _LINK_RE.match(fname)
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
        m = _LINK_RE.match(target)
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
        _atomic_symlink(str(store_root / sp.base), link)
        st = os.lstat(link)
        return Generation(n, link, sp.base, store_root, st.st_mtime), True

    def set_current(self, gen: Generation) -> None:
        _atomic_symlink(gen.link.name, self.link)

    def delete(self, gen: Generation) -> None:
        if gen.number == self.current_number():
            raise InputError(f"generation {gen.number} is the current generation of {self.name!r}; not deleting it")
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
        tmp = path.with_name(f"state.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": STATE_VERSION, "root": state.root, "active": state.active}, sort_keys=True) + "\n")
        os.replace(tmp, path)

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
    return sorted(n for n in names if not n.startswith(".") and not _LINK_RE.match(n) and os.path.islink(directory / n))


def _atomic_symlink(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)


def age_days(gen: Generation) -> float:
    return (time.time() - gen.date) / 86400
