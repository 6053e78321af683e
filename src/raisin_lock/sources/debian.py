"""Debian source packages (``source = { debian = NAME, version = V }``).

Fetching with apt (``apt-get source --download-only``, ``.dsc`` checksums,
``dpkg-source -x``) is the Xen-stack issue's work; until it lands a debian
source is accepted by the manifest and refused at lock time with a clear
message rather than half-supported.
"""

from __future__ import annotations

from ..errors import SourceError
from . import FetchContext, LockedSource


def resolve(spec, ctx: FetchContext) -> LockedSource:  # type: ignore[no-untyped-def]
    raise SourceError(
        f"debian source packages ({spec.debian} {spec.version}) cannot be fetched by this raisin yet",
        file=ctx.file,
        key=ctx.key,
        hint="use a git, path or url source for now",
    )


def materialize(src: LockedSource, ctx: FetchContext) -> None:
    raise SourceError(f"debian source {src.debian} {src.debian_version} cannot be fetched by this raisin yet")
