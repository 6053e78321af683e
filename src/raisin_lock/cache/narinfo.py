"""The ``.narinfo`` text format and the fingerprint its signatures cover.

One narinfo per store path, ``<digest>.narinfo`` at the cache root, as Nix
writes it (``src/libstore/nar-info.cc``)::

    StorePath: /raisin/store/<digest>-<name>
    URL: nar/<filehash-nix32>.nar.zst
    Compression: zstd
    FileHash: sha256:<nix32 of the compressed file>
    FileSize: <bytes>
    NarHash: sha256:<nix32 of the NAR>
    NarSize: <bytes>
    References: <base> <base> ...       (base names, space separated; may be empty)
    Deriver: <digest>-<name>.drv        (optional)
    Sig: <keyname>:<base64>             (repeatable)
    CA: <content address>               (optional)

Unknown keys are ignored (as Nix does), a missing ``Compression`` means
bzip2 (as Nix does). Paths are printed under :data:`VIRTUAL_STORE`, the store
directory every raisin build sees, and ``nix-cache-info`` says so
(``StoreDir``), so a cache is valid for every raisin store wherever it lives.

The signed fingerprint is Nix's ``1;<path>;<narHash>;<narSize>;<refs>`` with
the NAR hash as ``sha256:<nix32>`` and the references as full paths joined
by commas, sorted.

History: version 1 (this one) is Nix's format unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from raisin_lock.errors import InputError
from raisin_lock.hashing import Hash
from raisin_lock.store_path import VIRTUAL_STORE, StorePath

MAX_NARINFO = 1 << 20  # bytes; a real one is a few hundred
COMPRESSIONS = {"zstd": ".zst", "xz": ".xz", "bzip2": ".bz2", "none": ""}


class BadNarInfo(InputError):
    """A narinfo (or nix-cache-info) that cannot be parsed or does not fit."""


@dataclass(frozen=True)
class NarInfo:
    path: StorePath
    url: str
    compression: str
    file_hash: Hash | None
    file_size: int | None
    nar_hash: Hash
    nar_size: int
    references: frozenset[StorePath]
    deriver: str | None = None
    sigs: tuple[str, ...] = ()
    ca: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def fingerprint(self) -> bytes:
        return fingerprint(self.path, self.nar_hash, self.nar_size, self.references)

    def signed(self, sig: str) -> NarInfo:
        keyname = sig.partition(":")[0]
        kept = tuple(s for s in self.sigs if s.partition(":")[0] != keyname)
        return replace(self, sigs=(*kept, sig))

    def render(self) -> str:
        lines = [
            f"StorePath: {self.path.virtual}",
            f"URL: {self.url}",
            f"Compression: {self.compression}",
        ]
        if self.file_hash is not None:
            lines.append(f"FileHash: sha256:{self.file_hash.nix32}")
        if self.file_size is not None:
            lines.append(f"FileSize: {self.file_size}")
        lines += [
            f"NarHash: sha256:{self.nar_hash.nix32}",
            f"NarSize: {self.nar_size}",
            "References: " + " ".join(sorted(r.base for r in self.references)),
        ]
        if self.deriver:
            lines.append(f"Deriver: {self.deriver}")
        lines += [f"Sig: {s}" for s in self.sigs]
        if self.ca:
            lines.append(f"CA: {self.ca}")
        return "\n".join(lines) + "\n"


def fingerprint(
    path: StorePath, nar_hash: Hash, nar_size: int, refs: frozenset[StorePath]
) -> bytes:
    joined = ",".join(sorted(r.virtual for r in refs))
    return f"1;{path.virtual};sha256:{nar_hash.nix32};{nar_size};{joined}".encode()


def _store_path(value: str, where: str) -> StorePath:
    prefix = VIRTUAL_STORE + "/"
    base = value.removeprefix(prefix)
    if "/" in base:
        raise BadNarInfo(f"{where}: {value[:120]!r} is not a path in {VIRTUAL_STORE}")
    try:
        return StorePath.parse(base)
    except ValueError as exc:
        raise BadNarInfo(f"{where}: {exc}") from None


def _int(value: str, where: str) -> int:
    if not value.isdigit() or len(value) > 19:
        raise BadNarInfo(f"{where}: expected a byte count, got {value[:40]!r}")
    return int(value)


def _hash(value: str, where: str) -> Hash:
    try:
        return Hash.parse(value)
    except ValueError as exc:
        raise BadNarInfo(f"{where}: {exc}") from None


def parse(text: str, *, source: str = "narinfo") -> NarInfo:
    """Parse a narinfo; BadNarInfo naming ``source`` and the field on any problem."""
    if len(text) > MAX_NARINFO:
        raise BadNarInfo(f"{source}: larger than {MAX_NARINFO} bytes")
    fields: dict[str, str] = {}
    sigs: list[str] = []
    extra: list[tuple[str, str]] = []
    known = {
        "StorePath",
        "URL",
        "Compression",
        "FileHash",
        "FileSize",
        "NarHash",
        "NarSize",
        "References",
        "Deriver",
        "System",
        "CA",
    }
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep:
                raise BadNarInfo(f"{source}: line {n}: expected 'Key: value'")
        value = value.strip()
        if key == "Sig":
            sigs.append(value)
        elif key in known:
            if key in fields:
                raise BadNarInfo(f"{source}: {key} given twice")
            fields[key] = value
        else:
            extra.append((key, value))
    for req in ("StorePath", "URL", "NarHash", "NarSize"):
        if req not in fields:
            raise BadNarInfo(f"{source}: missing {req}")
    path = _store_path(fields["StorePath"], f"{source}: StorePath")
    url = fields["URL"]
    if not url or url.startswith("/") or ".." in url.split("/") or "\\" in url or "://" in url:
        raise BadNarInfo(f"{source}: URL: {url[:80]!r} is not a file inside the cache")
    compression = fields.get("Compression") or "bzip2"
    if compression not in COMPRESSIONS:
        raise BadNarInfo(
            f"{source}: Compression: unsupported {compression!r} (known: {', '.join(COMPRESSIONS)})"
        )
    refs = frozenset(
        _store_path(r, f"{source}: References") for r in fields.get("References", "").split()
    )
    return NarInfo(
        path=path,
        url=url,
        compression=compression,
        file_hash=_hash(fields["FileHash"], f"{source}: FileHash")
        if "FileHash" in fields
        else None,
        file_size=_int(fields["FileSize"], f"{source}: FileSize") if "FileSize" in fields else None,
        nar_hash=_hash(fields["NarHash"], f"{source}: NarHash"),
        nar_size=_int(fields["NarSize"], f"{source}: NarSize"),
        references=refs,
        deriver=fields.get("Deriver") or None,
        sigs=tuple(sigs),
        ca=fields.get("CA") or None,
        extra=tuple(extra) + ((("System", fields["System"]),) if "System" in fields else ()),
    )


def deriver_name(drv_hash_sri: str, name: str) -> str:
    """A Nix-parsable ``Deriver`` for raisin's derivation hash: ``<digest>-<name>.drv``."""
    return StorePath.make("drv", Hash.parse(drv_hash_sri), f"{name}.drv").base


# ---------------------------------------------------------------- nix-cache-info

CACHE_INFO = "nix-cache-info"


def render_cache_info(priority: int = 40) -> str:
    return f"StoreDir: {VIRTUAL_STORE}\nWantMassQuery: 1\nPriority: {priority}\n"


def parse_cache_info(text: str, *, source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text[:65536].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    store_dir = out.get("StoreDir")
    if store_dir is not None and store_dir.rstrip("/") != VIRTUAL_STORE:
        raise BadNarInfo(f"{source}: the cache is for store {store_dir}, not {VIRTUAL_STORE}")
    return out
