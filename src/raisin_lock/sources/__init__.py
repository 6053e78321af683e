"""Sources: resolve a component's declared source to an exact, hashed pin.

Every fetcher ends the same way: the content as a content-addressed store
path (``<digest>-<label>-source``, named by its NAR hash and shared by all
components using it) plus a :class:`LockedSource` recording how to get it
again and what its hash must be. ``resolve`` runs at lock time (may use the
network); ``materialize`` runs at realize time from the lock alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hashing import Hash
from ..store_path import StorePath, sanitize_name

if TYPE_CHECKING:
    from ..manifest import SourceSpec
    from ..store.local import Store

# SOURCE_DATE_EPOCH for sources with no intrinsic date (local paths):
# 1980-01-01, the earliest time zip archives can represent.
DEFAULT_DATE = 315532800


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
        d["nar_hash"] = self.nar_hash.sri
        d["date"] = self.date
        d["store"] = self.store_path.base
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LockedSource:
        """Inverse of to_dict; raises KeyError/ValueError/TypeError on bad data."""
        kind = d["type"]
        if kind not in ("git", "path", "url", "debian"):
            raise ValueError(f"unknown source type {kind!r}")
        fh = d.get("hash")
        date = d["date"]
        if not isinstance(date, int):
            raise TypeError("date must be an integer")
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
            return spec.url == self.url and (spec.hash is None or Hash.parse(spec.hash) == self.file_hash)
        return spec.debian == self.debian and spec.version == self.debian_version


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


@dataclass
class FetchContext:
    """What a fetcher needs: the store, where relative paths start, the network policy."""

    store: Store
    base_dir: Path
    offline: bool = False
    component: str = ""
    key: str = ""
    file: str = "raisin.toml"


def resolve(spec: SourceSpec, ctx: FetchContext, previous: LockedSource | None = None) -> LockedSource:
    """Pin ``spec``: exact revision, content in the store, NAR hash."""
    kind = spec.kind
    if kind == "git":
        from . import git

        return git.resolve(spec, ctx)
    if kind == "path":
        from . import path

        return path.resolve(spec, ctx)
    if kind == "url":
        from . import url

        return url.resolve(spec, ctx)
    from . import debian

    return debian.resolve(spec, ctx)


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    """Write the pinned source's tree at ``dest`` (new) and check its NAR hash (HashMismatch)."""
    from ..errors import HashMismatch
    from ..nar import hash_path

    if src.kind == "git":
        from . import git as mod
    elif src.kind == "path":
        from . import path as mod  # type: ignore[no-redef]
    elif src.kind == "url":
        from . import url as mod  # type: ignore[no-redef]
    else:
        from . import debian as mod  # type: ignore[no-redef]
    mod.fetch_tree(src, ctx, dest)
    actual = hash_path(dest)[0]
    if actual != src.nar_hash:
        hint = f"run `raisin lock` to pin the new content of {ctx.component}" if src.kind == "path" else None
        raise HashMismatch(
            f"{_describe(src)}: expected {src.nar_hash.sri}, found {actual.sri}", file=ctx.file, key=ctx.key, hint=hint
        )


def _describe(src: LockedSource) -> str:
    if src.kind == "git":
        return f"commit {src.rev} of {src.url}"
    if src.kind == "path":
        return f"directory {src.path}"
    if src.kind == "url":
        return f"{src.url}"
    return f"Debian source {src.debian} {src.debian_version}"


def materialize(src: LockedSource, ctx: FetchContext) -> StorePath:
    """Make the pinned source a valid store path, refetching if needed; check its hash."""
    sp = src.store_path
    if ctx.store.is_valid(sp):
        return sp
    with ctx.store.tmpdir("source") as tmp:
        tree = tmp / "tree"
        fetch_tree(src, ctx, tree)
        ctx.store.add_tree(tree, sp.name, expected=src.nar_hash)
    return sp
