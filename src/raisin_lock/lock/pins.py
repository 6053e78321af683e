"""Pins: what a declared source resolved to, exactly enough to fetch it again.

A :class:`LockedSource` is a value of the lock format (``[components.NAME.source]``):
its kind, where it came from (URL and ref, directory, Debian package and
version), the exact revision, the NAR hash its tree must have and the date
builds use as ``SOURCE_DATE_EPOCH``. It names the content-addressed store path
``<digest>-<label>-source`` that every component using it shares. Fetching
lives in :mod:`raisin_lock.sources`; this module only describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from raisin_lock.hashing import Hash
from raisin_lock.manifest.git_remote import ref_problem, url_problem
from raisin_lock.store_path import StorePath, sanitize_name

if TYPE_CHECKING:
    from raisin_lock.manifest.model import SourceSpec

SOURCE_KINDS = ("git", "path", "url", "debian")

# SOURCE_DATE_EPOCH for sources with no intrinsic date (local paths):
# 1980-01-01, the earliest time zip archives can represent.
DEFAULT_DATE = 315532800
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class PinError(ValueError):
    """A bad value in a lock's source table, with the key (below ``source``) that holds it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Submodule:
    """A git submodule of a git pin: where it sits in the tree, where it comes from, which commit.

    ``path`` is relative to the top of the pinned tree (nested submodules carry
    their full path), ``url`` is absolute (relative ``.gitmodules`` URLs are
    resolved against the superproject's), ``rev`` is the commit the
    superproject records for it.
    """

    path: str
    url: str
    rev: str

    def __post_init__(self) -> None:
        problem = url_problem(self.url)
        if problem:
            raise PinError("submodules.url", problem)
        if not _HEX40.match(self.rev):
            raise PinError(
                "submodules.rev", f"expected a 40-character commit id, found {self.rev!r}"
            )
        parts = self.path.split("/")
        if self.path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
            raise PinError(
                "submodules.path", f"expected a relative path inside the tree, found {self.path!r}"
            )

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "url": self.url, "rev": self.rev}

    @classmethod
    def from_dict(cls, d: object) -> Submodule:
        if not isinstance(d, dict) or not all(
            isinstance(d.get(k), str) for k in ("path", "url", "rev")
        ):
            raise PinError("submodules", "expected tables with string path, url and rev")
        return cls(path=d["path"], url=d["url"], rev=d["rev"])


@dataclass(frozen=True)
class LockedSource:
    """A pinned source: enough to fetch it again and check it."""

    kind: str
    nar_hash: Hash
    date: int
    label: str
    url: str | None = None
    ref: str | None = None
    rev: str | None = None
    path: str | None = None
    file_hash: Hash | None = None
    debian: str | None = None
    debian_version: str | None = None
    submodules: tuple[Submodule, ...] = ()
    version_hint: str | None = field(default=None, compare=False)
    recorded_store: str | None = field(default=None, compare=False)

    @cached_property
    def store_path(self) -> StorePath:
        return source_store_path(self.nar_hash, self.label)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        for key, value in (
            ("url", self.url),
            ("ref", self.ref),
            ("rev", self.rev),
            ("path", self.path),
            ("hash", self.file_hash.sri if self.file_hash else None),
            ("debian", self.debian),
            ("version", self.debian_version),
        ):
            if value is not None:
                d[key] = value
        if self.submodules:
            d["submodules"] = [m.to_dict() for m in self.submodules]
        d["nar_hash"] = self.nar_hash.sri
        d["date"] = self.date
        d["store"] = self.store_path.base
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LockedSource:
        """Inverse of to_dict; raises KeyError/ValueError/TypeError on bad data."""
        kind = d["type"]
        if kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source type {kind!r}")
        fh = d.get("hash")
        date = d["date"]
        if not isinstance(date, int):
            raise TypeError("date must be an integer")
        if kind == "git":
            _check_git(d)
        subs = d.get("submodules", [])
        if not isinstance(subs, list):
            raise PinError("submodules", "expected an array of tables")
        src = cls(
            kind=kind,
            nar_hash=Hash.parse(d["nar_hash"]),
            date=date,
            label=label_from_store(d["store"]),
            url=d.get("url"),
            ref=d.get("ref"),
            rev=d.get("rev"),
            path=d.get("path"),
            file_hash=Hash.parse(fh) if fh else None,
            debian=d.get("debian"),
            debian_version=d.get("version"),
            submodules=tuple(Submodule.from_dict(m) for m in subs),
            recorded_store=d["store"],
        )
        return src

    def matches(self, spec: SourceSpec) -> bool:
        """Does this pin still answer the declaration (ignoring moved branches)?"""
        if spec.kind != self.kind:
            return False
        if self.kind == "git":
            return spec.git == self.url and (spec.ref or "HEAD") == self.ref
        if self.kind == "path":
            return spec.path == self.path
        if self.kind == "url":
            return spec.url == self.url and (
                spec.hash is None or Hash.parse(spec.hash) == self.file_hash
            )
        return spec.debian == self.debian and spec.version == self.debian_version


def fetched_store_path(nar_hash: Hash, name: str) -> StorePath:
    """Where the tree a component's fetch steps left lives: named by its NAR hash."""
    return StorePath.make("source", nar_hash, f"{sanitize_name(name)}-fetched")


def _check_git(d: dict[str, Any]) -> None:
    """A git pin's url, ref and rev are handed to git: refuse what git would misread."""
    for key, check in (("url", url_problem), ("ref", ref_problem)):
        value = d.get(key)
        if not isinstance(value, str):
            raise PinError(key, "expected a string")
        problem = check(value)
        if problem:
            raise PinError(key, problem)
    rev = d.get("rev")
    if not isinstance(rev, str) or not _HEX40.match(rev):
        raise PinError("rev", f"expected a 40-character commit id, found {rev!r}")


def source_store_path(nar_hash: Hash, label: str) -> StorePath:
    return StorePath.make("source", nar_hash, f"{label}-source")


def label_from_store(base: str) -> str:
    name = StorePath.parse(base).name
    if not name.endswith("-source"):
        raise ValueError(f"not a source store path: {base!r}")
    return name[: -len("-source")]


def make_label(text: str) -> str:
    base = text.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".git", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tgz", ".tar"):
        base = base.removesuffix(suffix)
    return sanitize_name(base or "source")
