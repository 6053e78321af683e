"""Digests in the forms Nix uses: Nix base32, SRI, truncated store digests.

Nix prints hashes in its own base32 alphabet (no e, o, t, u) with the bytes
taken from the end; store path digests are a SHA-256 XOR-folded to 160 bits,
i.e. 32 base32 characters. Hashes shown to users are SRI (``sha256-<b64>``).
"""

from __future__ import annotations

import binascii
import hashlib

NIX_BASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_B32_INDEX = {c: i for i, c in enumerate(NIX_BASE32_ALPHABET)}


def nix_base32_encode(data: bytes) -> str:
    """Encode bytes in Nix's base32 (as ``nix-hash --to-base32`` does).

    Character ``n`` (counted from the end) holds bits ``5n .. 5n+4`` of the
    bytes read as one little-endian integer.
    """
    length = (len(data) * 8 + 4) // 5
    value = int.from_bytes(data, "little")
    alphabet = NIX_BASE32_ALPHABET
    return "".join(alphabet[(value >> (5 * n)) & 0x1F] for n in range(length - 1, -1, -1))


def nix_base32_decode(text: str) -> bytes:
    """Inverse of :func:`nix_base32_encode`; raises ValueError on bad input."""
    size = len(text) * 5 // 8
    out = bytearray(size)
    for n, ch in enumerate(reversed(text)):
        try:
            digit = _B32_INDEX[ch]
        except KeyError:
            raise ValueError(f"invalid Nix base32 character {ch!r}") from None
        b = n * 5
        i, j = divmod(b, 8)
        if i < size:
            out[i] |= (digit << j) & 0xFF
        if i + 1 < size:
            out[i + 1] |= digit >> (8 - j)
        elif digit >> (8 - j):
            raise ValueError("invalid Nix base32 string (excess bits)")
    return bytes(out)


def compress_hash(digest: bytes, size: int = 20) -> bytes:
    """XOR-fold a digest to ``size`` bytes (Nix's ``compressHash``)."""
    out = bytearray(size)
    for i, byte in enumerate(digest):
        out[i % size] ^= byte
    return bytes(out)


class Hash:
    """A SHA-256 digest. Built from raw bytes; printed as SRI.

    Immutable and hashable. Written by hand rather than as a dataclass so
    that ``raisin store hash`` starts without importing ``dataclasses`` and
    ``base64`` (~35 ms, most of its fixed cost next to ``nix-hash``).
    """

    __slots__ = ("algo", "digest")
    digest: bytes
    algo: str

    def __init__(self, digest: bytes, algo: str = "sha256") -> None:
        if algo != "sha256" or len(digest) != 32:
            raise ValueError(f"expected a 32-byte sha256 digest, got {algo}/{len(digest)}")
        object.__setattr__(self, "digest", bytes(digest))
        object.__setattr__(self, "algo", algo)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Hash is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hash):
            return NotImplemented
        return self.digest == other.digest and self.algo == other.algo

    def __hash__(self) -> int:
        return hash((self.digest, self.algo))

    def __repr__(self) -> str:
        return f"Hash({self.sri!r})"

    def __reduce__(self) -> tuple[type[Hash], tuple[bytes, str]]:
        return (Hash, (self.digest, self.algo))

    @classmethod
    def of_bytes(cls, data: bytes) -> Hash:
        return cls(hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str) -> Hash:
        """Parse SRI (``sha256-b64``), ``sha256:<nix32|hex>`` or bare hex/nix32."""
        text = text.strip()
        body = text
        if text.startswith("sha256-"):
            try:
                raw = binascii.a2b_base64(text[7:], strict_mode=True)
            except binascii.Error as exc:
                raise ValueError(f"invalid SRI hash {text!r}") from exc
            if len(raw) != 32:
                raise ValueError(f"invalid SRI hash {text!r}: wrong length")
            return cls(raw)
        if text.startswith("sha256:"):
            body = text[7:]
        if len(body) == 64:
            try:
                return cls(bytes.fromhex(body))
            except ValueError:
                pass
        if len(body) == 52:
            return cls(nix_base32_decode(body))
        raise ValueError(f"not a sha256 hash: {text!r} (expected sha256-<base64>)")

    @property
    def sri(self) -> str:
        return "sha256-" + binascii.b2a_base64(self.digest, newline=False).decode()

    @property
    def hex(self) -> str:
        return self.digest.hex()

    @property
    def nix32(self) -> str:
        return nix_base32_encode(self.digest)

    def __str__(self) -> str:
        return self.sri
