"""The lock's schema, per format version: every key, its type and its shape.

:func:`check` walks a parsed ``raisin.lock`` and raises one
:class:`~raisin_lock.errors.LockError` naming the first bad key
(``components.xen.source.nar_hash``), what was expected and (cut short) what
was found, so that a corrupted or hand-edited lock never reaches the code
that trusts it. The schema is declarative (a table of checkers per version)
rather than pydantic models: every no-op ``raisin realize`` reads the lock,
and importing pydantic would cost it ~0.1 s.

Unknown keys are ignored, so a lock with a field added later in the same
format version (a pin's ``submodules``, say) still reads; known keys must
have their type. No string may hold a NUL byte (it could not reach a
build's command line or environment), no URL, ref or revision may start with
``-`` (git would take it for an option).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from raisin_lock.errors import LockError
from raisin_lock.hashing import Hash
from raisin_lock.store_path import StorePath

SHOWN_MAX = 80
SOURCE_KINDS = ("git", "path", "url", "debian")

Checker = Callable[[Any], str | None]  # None when fine, else what was expected


def shown(value: Any) -> str:
    """A value as the user would recognise it, cut to :data:`SHOWN_MAX` characters."""
    kinds = {str: "string", bool: "boolean", int: "integer", float: "float", list: "array"}
    kind = "table" if isinstance(value, dict) else kinds.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str, ensure_ascii=True)
    if len(text) > SHOWN_MAX:
        text = text[: SHOWN_MAX - 3] + "..."
    return f"{kind} {text}"


def _plain(v: Any) -> str | None:
    if not isinstance(v, str):
        return "a string"
    if "\0" in v:
        return "a string without NUL bytes"
    return None


def _optionless(v: Any) -> str | None:
    bad = _plain(v)
    if bad is None and (not v or v.startswith("-")):
        return "a non-empty string not starting with '-'"
    return bad


def _integer(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "an integer >= 0"


def _hash(v: Any) -> str | None:
    if _plain(v) is None:
        try:
            Hash.parse(v)
            return None
        except ValueError:
            pass
    return "an SRI hash such as 'sha256-<base64>'"


def _store(v: Any) -> str | None:
    if _plain(v) is None:
        try:
            StorePath.parse(v)
            return None
        except ValueError:
            pass
    return "a store path name '<32 base32 chars>-<name>'"


def _fingerprint(v: Any) -> str | None:
    ok = isinstance(v, str) and re.fullmatch(r"sha256-[0-9a-f]{64}", v)
    return None if ok else "a fingerprint 'sha256-<64 hex digits>'"


def _strings(v: Any) -> str | None:
    if not isinstance(v, list) or any(_plain(x) for x in v):
        return "an array of strings (without NUL bytes)"
    return None


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.\-]*")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _name(v: Any) -> str | None:
    return (
        None if isinstance(v, str) and _NAME.fullmatch(v) else "a name (letters, digits, - _ + .)"
    )


def _names(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) and _NAME.fullmatch(x) for x in v):
        return "an array of component names"
    return None


def _env(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(
        _ENV.fullmatch(k) and _plain(x) is None for k, x in v.items()
    ):
        return "a table of NAME = string (no NUL bytes)"
    return None


def _packages(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(
        _plain(k) is None and _plain(x) is None for k, x in v.items()
    ):
        return "a table of package = version strings"
    return None


def _table(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a table"


# key -> (checker, required), per lock format version
COMPONENT_V1: dict[str, tuple[Checker, bool]] = {
    "version": (_plain, True),
    "out": (_store, True),
    "drv": (_hash, True),
    "decl": (_fingerprint, True),
    "recipe": (_name, False),
    "deps": (_names, True),
    "build": (_strings, True),
    "env": (_env, True),
    "build-deps": (_packages, False),
    "source": (_table, True),
    "activate": (_table, False),
}
COMPONENT_V2 = {
    **COMPONENT_V1,
    "decl-source": (_fingerprint, False),
    "recipe-hash": (_fingerprint, False),
    "fetch": (_strings, False),
    "fetch-hash": (_hash, False),
}
SOURCE: dict[str, tuple[Checker, bool]] = {
    "type": (lambda v: None if v in SOURCE_KINDS else "one of " + ", ".join(SOURCE_KINDS), True),
    "url": (_optionless, False),
    "ref": (_optionless, False),
    "rev": (_optionless, False),
    "path": (_plain, False),
    "hash": (_hash, False),
    "debian": (_optionless, False),
    "version": (_optionless, False),
    "nar_hash": (_hash, True),
    "date": (_integer, True),
    "store": (_store, True),
}
# What each kind of pin cannot do without.
SOURCE_NEEDS = {
    "git": ("url", "rev"),
    "path": ("path",),
    "url": ("url",),
    "debian": ("debian", "version"),
}
COMPONENT = {1: COMPONENT_V1, 2: COMPONENT_V2}


def check(doc: Mapping[str, Any], version: int, fail: Callable[[str, str], LockError]) -> None:
    """Raise ``fail(key, message)`` for the first key of ``doc`` that breaks the schema."""

    def fields(table: Mapping[str, Any], where: str, spec: dict[str, tuple[Checker, bool]]) -> None:
        for key, (checker, required) in spec.items():
            if key not in table:
                if required:
                    raise fail(f"{where}.{key}", "missing")
                continue
            expected = checker(table[key])
            if expected is not None:
                raise fail(f"{where}.{key}", f"expected {expected}, found {shown(table[key])}")

    system = doc.get("system")
    if system is None:
        raise fail("system", "missing")
    if _optionless(system) is not None:
        raise fail("system", f"expected a platform such as 'x86_64-linux', found {shown(system)}")
    toolchain = doc.get("toolchain", {})
    if not isinstance(toolchain, dict) or any(_plain(v) for v in toolchain.values()):
        raise fail("toolchain", f"expected a table of strings, found {shown(toolchain)}")
    comps = doc.get("components", {})
    if not isinstance(comps, dict):
        raise fail("components", f"expected a table, found {shown(comps)}")
    for name, c in comps.items():
        where = f"components.{name}"
        if not _NAME.fullmatch(name):
            raise fail(where, "expected a component name (letters, digits, - _ + .)")
        if not isinstance(c, dict):
            raise fail(where, f"expected a table, found {shown(c)}")
        fields(c, where, COMPONENT[version])
        src = c["source"]
        fields(src, f"{where}.source", SOURCE)
        for key in SOURCE_NEEDS[src["type"]]:
            if key not in src:
                raise fail(f"{where}.source.{key}", f"missing (a {src['type']} pin needs it)")
