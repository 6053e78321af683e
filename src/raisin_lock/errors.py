"""Every error raisin raises on purpose, and the exit code it maps to.

The CLI turns a :class:`RaisinError` into one or two lines on stderr and an
exit code; anything else is a bug and shows a traceback only under ``-v``.
Errors carry their context as attributes (file, line, key path, component)
so the message always says *where* and *what was expected*.

    RaisinError                      exit 1   the work failed
    ├── BuildError                   exit 1   a build step failed
    ├── CheckFailed                  exit 1   --check found a difference / stale lock
    ├── DamageFound                  exit 1   store verify found damage
    ├── SandboxUnavailable           exit 1   bubblewrap missing or unusable
    ├── MissingBuildDeps             exit 1   host packages a build needs are absent (app.builddeps)
    ├── Cancelled                    exit 1   the user declined a profile switch (app.profiles)
    ├── SubstituteFailed             exit 1   no cache could provide a path (cache.substitute)
    ├── CacheError                   exit 1   a cache cannot be read or written (cache.transport)
    │   ├── CacheUnreachable                  the cache's host does not answer
    │   └── CacheDenied              exit 2   the cache refused our credentials (S3)
    └── InputError                   exit 2   bad input
        ├── ManifestError                     raisin.toml invalid
        ├── LockError                         raisin.lock invalid or inconsistent
        ├── GraphError                        unknown dependency, cycle
        ├── SourceError                       ref not found, remote unreachable
        ├── HashMismatch                      content hash differs from the pin
        ├── UnsafeArchive                     an archive/NAR escapes its directory
        ├── Untrusted                         a narinfo signed by no trusted key (cache.substitute)
        ├── BadNarInfo                        a .narinfo that does not parse (cache.narinfo)
        ├── BadBundle                         an export file that is not one (cache.bundle)
        └── BadKey                            a signing key not in Nix's NAME:BASE64 form (cache.keys)

    Outside the tree, two ValueErrors that never reach the CLI: ``RecipeError``
    and ``ActionError`` are raised by the recipe and action parsers and turned
    into ``ManifestError``/``LockError`` with the key where they are called.
"""

from __future__ import annotations

from collections.abc import Iterable


class RaisinError(Exception):
    """Root of raisin's errors; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        if self.key:
            where += f"{self.key}: "
        text = where + self.message
        if self.hint:
            text += "\n  " + self.hint
        return text


class BuildError(RaisinError):
    """A build failed (one or more components)."""


class CheckFailed(RaisinError):
    """A ``--check`` found a difference: stale lock, non-reproducible build."""


class DamageFound(RaisinError):
    """``store verify`` found a path whose content differs from its record."""


class SandboxUnavailable(RaisinError):
    """bubblewrap is missing or cannot create namespaces here."""


class InputError(RaisinError):
    """Bad input: the user must change a file or a flag."""

    exit_code = 2


class ManifestError(InputError):
    """``raisin.toml`` is unreadable or invalid."""


class LockError(InputError):
    """``raisin.lock`` is unreadable, invalid, too new or inconsistent."""


class GraphError(InputError):
    """An unknown dependency or a dependency cycle."""


class SourceError(InputError):
    """A source could not be resolved: ref not found, remote unreachable."""


class HashMismatch(InputError):
    """Fetched or stored content does not have the expected hash."""


class UnsafeArchive(InputError):
    """An archive or NAR would write outside its own directory."""


def unknown_component(
    name: str, known: Iterable[str], *, file: str | None = None, key: str | None = None
) -> InputError:
    """The one wording of "no such component", naming the ones there are."""
    return InputError(
        f"unknown component {name!r} (known: {', '.join(sorted(known)) or 'none'})",
        file=file,
        key=key,
    )
