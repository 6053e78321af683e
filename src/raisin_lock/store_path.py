"""Store path names: ``<digest>-<name>`` with a 32-character Nix base32 digest.

A digest never depends on where a store lives on disk: every fingerprint is
computed against :data:`VIRTUAL_STORE`, the one fixed path at which builds see
the store inside the sandbox. A :class:`StorePath` is only a *name*; the store
that holds it maps it to a host directory.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from raisin_lock.hashing import Hash, compress_hash, nix_base32_encode

VIRTUAL_STORE = "/raisin/store"
DIGEST_LEN = 32
_NAME_RE = re.compile(r"^[A-Za-z0-9+\-._?=]+$")
_DIGEST_RE = re.compile(r"^[0123456789abcdfghijklmnpqrsvwxyz]{32}$")
# Matches a store path digest followed by '-' anywhere in a byte string.
DIGEST_BYTES_RE = re.compile(rb"[0123456789abcdfghijklmnpqrsvwxyz]{32}-")


def valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and not name.startswith(".") and len(name) <= 211


@dataclass(frozen=True, slots=True, order=True)
class StorePath:
    """The base name of a store path: ``<digest>-<name>``."""

    digest: str
    name: str

    def __post_init__(self) -> None:
        if not _DIGEST_RE.match(self.digest):
            raise ValueError(f"invalid store path digest {self.digest!r}")
        if not valid_name(self.name):
            raise ValueError(f"invalid store path name {self.name!r}")

    @classmethod
    def parse(cls, base: str) -> StorePath:
        base = base.rstrip("/").rsplit("/", 1)[-1]
        if len(base) < DIGEST_LEN + 2 or base[DIGEST_LEN] != "-":
            raise ValueError(f"not a store path name: {base!r}")
        return cls(base[:DIGEST_LEN], base[DIGEST_LEN + 1 :])

    @classmethod
    def make(cls, kind: str, inner: Hash | str, name: str) -> StorePath:
        """Nix-style fingerprint ``kind:sha256:<hex>:<store>:<name>`` folded to 160 bits."""
        hexpart = inner.hex if isinstance(inner, Hash) else inner
        fingerprint = f"{kind}:sha256:{hexpart}:{VIRTUAL_STORE}:{name}"
        digest = compress_hash(hashlib.sha256(fingerprint.encode()).digest(), 20)
        return cls(nix_base32_encode(digest), name)

    @property
    def base(self) -> str:
        return f"{self.digest}-{self.name}"

    @property
    def virtual(self) -> str:
        """The path as builds see it."""
        return f"{VIRTUAL_STORE}/{self.base}"

    def __str__(self) -> str:
        return self.base


def sanitize_name(text: str) -> str:
    """Make ``text`` usable inside a store path name (versions from tags, etc.)."""
    cleaned = re.sub(r"[^A-Za-z0-9+\-._?=]", "_", text).lstrip(".")
    return cleaned or "unnamed"
