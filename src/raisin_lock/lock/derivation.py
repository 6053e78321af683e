"""Derivations: one fully resolved build, whose hash names its output path.

An :class:`UnresolvedDerivation` names its dependencies; resolving it against
the dependencies' output paths gives a :class:`Derivation`, the only kind that
has an output path. The hash covers everything that can change the bytes of
the output — source content and date, expanded steps, environment,
dependencies' output paths, system and toolchain record, and (when there
are fetch steps) those steps and the NAR hash of the tree they left — serialised as
canonical JSON. Where a source came from (URL, ref) does not count: the
same content from a mirror gives the same output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raisin_lock.hashing import Hash
from raisin_lock.lock.pins import LockedSource
from raisin_lock.store_path import StorePath, sanitize_name

DERIVATION_FORMAT = 1


def dep_var(name: str) -> str:
    """The variable a dependency's output path is passed in (``qemu-xen`` → ``qemu_xen``)."""
    return name.replace("-", "_").replace(".", "_").replace("+", "_")


@dataclass(frozen=True)
class UnresolvedDerivation:
    name: str
    version: str
    system: str
    source: LockedSource
    steps: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    deps: tuple[str, ...]
    build_deps: tuple[tuple[str, str], ...]
    toolchain: tuple[tuple[str, str], ...]
    fetch: tuple[str, ...] = ()
    fetch_hash: Hash | None = None

    def resolve(self, outs: Mapping[str, StorePath]) -> Derivation:
        return Derivation(self, tuple((d, outs[d]) for d in sorted(self.deps)))


@dataclass(frozen=True)
class Derivation:
    base: UnresolvedDerivation
    deps: tuple[tuple[str, StorePath], ...]

    @property
    def name(self) -> str:
        return self.base.name

    def canonical(self) -> bytes:
        b = self.base
        doc: dict[str, Any] = {
            "format": DERIVATION_FORMAT,
            "name": b.name,
            "version": b.version,
            "system": b.system,
            "source": {
                "nar_hash": b.source.nar_hash.sri,
                "date": b.source.date,
                "store": b.source.store_path.base,
            },
            "steps": list(b.steps),
            "env": dict(b.env),
            "deps": {name: sp.base for name, sp in self.deps},
            "build_deps": dict(b.build_deps),
            "toolchain": dict(b.toolchain),
        }
        if b.fetch:  # absent otherwise, so derivations without fetch steps keep their hashes
            doc["fetch"] = {
                "steps": list(b.fetch),
                "nar_hash": b.fetch_hash.sri if b.fetch_hash else None,
            }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def hash(self) -> Hash:
        return Hash(hashlib.sha256(self.canonical()).digest())

    @property
    def out(self) -> StorePath:
        b = self.base
        return StorePath.make(
            "output", self.hash(), f"{sanitize_name(b.name)}-{sanitize_name(b.version)}"
        )
