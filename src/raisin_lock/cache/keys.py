"""Signing keys: Ed25519 in Nix's ``name:base64`` format.

A secret key file holds ``NAME:base64(seed32 + public32)`` (what
``nix-store --generate-binary-cache-key`` writes), a public key
``NAME:base64(public32)``; a signature on a narinfo is
``NAME:base64(sig64)`` over the path's fingerprint (see
:func:`raisin_lock.cache.narinfo.fingerprint`). Keys are told apart by
``NAME``, so a narinfo may carry several signatures and a verifier checks the
one whose name it trusts.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock import atomic
from raisin_lock.errors import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_NAME_RE = re.compile(r"^[A-Za-z0-9._+\-]+$")


class BadKey(InputError):
    """A key or signature that cannot be parsed."""


def _split(text: str, what: str, size: int) -> tuple[str, bytes]:
    name, sep, b64 = text.strip().partition(":")
    if not sep or not _NAME_RE.match(name):
        raise BadKey(f"invalid {what} {_short(text)!r} (expected NAME:BASE64)")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"invalid {what} {name}: not base64") from None
    if len(raw) != size:
        raise BadKey(f"invalid {what} {name}: {len(raw)} bytes, expected {size}")
    return name, raw


def _short(text: str) -> str:
    return text if len(text) < 40 else text[:37] + "..."


@dataclass(frozen=True)
class PublicKey:
    name: str
    key: bytes  # 32 bytes

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        name, raw = _split(text, "public key", 32)
        return cls(name, raw)

    def __str__(self) -> str:
        return f"{self.name}:{base64.b64encode(self.key).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SecretKey:
    name: str
    seed: bytes  # 32 bytes; the file also carries the public half

    @classmethod
    def parse(cls, text: str) -> SecretKey:
        name, raw = _split(text, "secret key", 64)
        sk = cls(name, raw[:32])
        if sk.public().key != raw[32:]:
            raise BadKey(f"invalid secret key {name}: its public half does not match")
        return sk

    @classmethod
    def load(cls, path: Path) -> SecretKey:
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(
                f"cannot read the secret key: {exc.strerror}", file=str(path)
            ) from None
        try:
            return cls.parse(text)
        except BadKey as exc:
            raise InputError(exc.message, file=str(path)) from None

    @classmethod
    def generate(cls, name: str) -> SecretKey:
        if not _NAME_RE.match(name):
            raise InputError(f"invalid key name {name!r} (letters, digits, . _ + -)", key="NAME")
        return cls(name, os.urandom(32))

    def _private(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def public(self) -> PublicKey:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self._private().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey(self.name, raw)

    def __str__(self) -> str:
        return f"{self.name}:{base64.b64encode(self.seed + self.public().key).decode()}"

    def sign(self, message: bytes) -> str:
        sig = self._private().sign(message)
        return f"{self.name}:{base64.b64encode(sig).decode()}"


def write_pair(sk: SecretKey, out_dir: Path) -> tuple[Path, Path]:
    """``DIR/NAME.secret`` (0600, created exclusively) and ``DIR/NAME.public``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    secret, public = out_dir / f"{sk.name}.secret", out_dir / f"{sk.name}.public"
    for p in (secret, public):
        if p.exists():
            raise InputError("already exists; not overwriting a key", file=str(p))
    atomic.write_text(public, str(sk.public()))
    atomic.write_text(secret, str(sk), mode=0o600)
    return secret, public


class TrustedKeys:
    """The public keys a substituter or import accepts signatures from."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self.by_name: dict[str, list[PublicKey]] = {}
        for k in keys:
            self.by_name.setdefault(k.name, []).append(k)

    @classmethod
    def parse(
        cls, texts: Iterable[str], *, key: str = "--trusted-key", file: str | None = None
    ) -> TrustedKeys:
        out = []
        for t in texts:
            try:
                out.append(PublicKey.parse(t))
            except BadKey as exc:
                raise InputError(exc.message, key=key, file=file) from None
        return cls(out)

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def names(self) -> list[str]:
        return sorted(self.by_name)

    def check(self, message: bytes, sigs: Iterable[str]) -> str | None:
        """The name of a trusted key with a valid signature among ``sigs``, else None."""
        for s in sigs:
            name, sep, b64 = s.partition(":")
            if not sep or name not in self.by_name:
                continue
            try:
                raw = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) == 64 and any(k.verify(message, raw) for k in self.by_name[name]):
                return name
        return None
