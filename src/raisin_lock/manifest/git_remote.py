"""Git remotes a source may name: which URLs and refs raisin hands to git.

git reads a positional that starts with ``-`` as an option
(``--upload-pack=touch /tmp/x`` runs a command on the host) and runs
arbitrary programs for ``ext::`` and other ``X::`` remote helpers. A URL or
ref from ``raisin.toml``, ``raisin.lock`` or a repository's ``.gitmodules``
is therefore checked here, before git sees it: only the https, http, ssh, git
and file transports (and plain local paths, and scp-like ``host:path``), never
a leading ``-``, never a control character. The git source passes ``--``
before positionals and restricts git's protocols too; this check is what
names the bad key to the user.
"""

from __future__ import annotations

import re

ALLOWED_SCHEMES = ("https", "http", "ssh", "git", "file")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_HELPER = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)::")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def url_problem(url: str) -> str | None:
    """Why git must not be given ``url``, or None when it may."""
    if url.startswith("-"):
        return f"{url!r} starts with '-' (git would read it as an option)"
    if _CONTROL.search(url):
        return f"{url!r} contains " + ("a NUL byte" if "\0" in url else "a control character")
    helper = _HELPER.match(url)
    if helper:
        return (
            f"remote helper {helper.group(1)}:: is not allowed (expected a "
            f"{', '.join(ALLOWED_SCHEMES)} URL or a local path)"
        )
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1).lower() not in ALLOWED_SCHEMES:
        return (
            f"transport {scheme.group(1)}:// is not allowed (expected one of "
            f"{', '.join(ALLOWED_SCHEMES)}, or a local path)"
        )
    return None


def ref_problem(ref: str) -> str | None:
    """Why git must not be given ``ref``, or None when it may."""
    if ref.startswith("-"):
        return f"{ref!r} starts with '-' (git would read it as an option)"
    if _CONTROL.search(ref):
        return f"{ref!r} contains " + ("a NUL byte" if "\0" in ref else "a control character")
    return None
