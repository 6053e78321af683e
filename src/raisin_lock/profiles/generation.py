"""Generations: the store paths that profiles point at.

A *generation* is a store path ``<digest>-profile-NAME`` holding

- ``files/``: the merged view of the chosen components' outputs (real
  directories; every file a relative symlink to the component output that
  provides it, so its content never depends on where the store lives), and
- ``generation.json``: the components (version, output, activation actions)
  and the *build inputs* of their closure (source paths, dependency
  outputs), which ``gc`` keeps unless ``--runtime-only``.

Only the component outputs are recorded as its references, so
``--runtime-only`` can drop sources and build-only dependencies. Two
components providing the same file is an error naming both, unless their
``priority`` differs (lower wins).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.errors import InputError, RaisinError
from raisin_lock.hashing import Hash
from raisin_lock.manifest import actions as actions_mod
from raisin_lock.manifest.actions import ActivationSpec
from raisin_lock.nar import hash_path
from raisin_lock.store import tree
from raisin_lock.store_path import StorePath

if TYPE_CHECKING:
    from raisin_lock.lock.lockfile import Lock
    from raisin_lock.store.local import Store

GENERATION_FORMAT = 1


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
                n: ComponentEntry(
                    n, c["version"], StorePath.parse(c["out"]), actions_mod.parse(c.get("activate"))
                )
                for n, c in doc["components"].items()
            }
            return cls(
                doc["profile"],
                comps,
                tuple(StorePath.parse(b) for b in doc.get("build_inputs", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RaisinError(f"corrupt generation.json: {exc}", file=where) from None


def read_info_if_valid(store: Store, sp: StorePath) -> GenerationInfo | None:
    """The generation's info, or None when ``sp`` is not valid here or not a generation."""
    if not store.is_valid(sp):
        return None
    try:
        return read_info(store, sp)
    except RaisinError:
        return None


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
            raise InputError(
                f"{comp.name}: its output {comp.out.base} is not a directory; it cannot be merged into a profile"
            )
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            with os.scandir(top / rel_dir if rel_dir else top) as it:
                ents = sorted(it, key=lambda e: e.name)
            for e in ents:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                st = e.stat(follow_symlinks=False)
                kind = (
                    "dir"
                    if stat.S_ISDIR(st.st_mode)
                    else "symlink"
                    if stat.S_ISLNK(st.st_mode)
                    else "file"
                )
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
        if c.fetched is not None:
            result.add(c.fetched)
        if n not in names:
            result.add(c.out)
    return result


def generation_info(profile: str, lock: Lock, names: list[str]) -> GenerationInfo:
    comps = {
        n: ComponentEntry(
            n, lock.components[n].version, lock.components[n].out, lock.components[n].activate
        )
        for n in names
    }
    return GenerationInfo(
        profile, comps, tuple(sorted(build_inputs(lock, names) - {c.out for c in comps.values()}))
    )


def build_generation(store: Store, info: GenerationInfo) -> StorePath:
    """Make (or find) the generation store path for ``info``; outputs must be valid.

    Caller holds the gc guard until a profile link points at it.
    """

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
            store.register(
                sp,
                candidates=[c.out for c in info.components.values()],
                ca="generation",
                expected=nar_hash,
            )
    return sp
