"""Declaration fingerprints straight from the TOML, without validation.

A component whose raw table hashes to the fingerprint recorded in the lock was
validated when it was locked, so no-op ``lock`` and ``realize`` can compare
fingerprints with stdlib ``tomllib`` and skip tomlkit and pydantic (~0.2 s of
imports). Anything unusual — a parse error, an unknown top-level table — makes
the caller fall back to the full :mod:`raisin_lock.manifest` load, which
reports the problem properly.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from raisin_lock.manifest.nesting import too_deep

TOP_LEVEL = {"components", "profiles", "cache", "tests"}


def fingerprint(table: Any) -> str:
    """Canonical hash of one component's raw table."""
    blob = json.dumps(table, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256-" + hashlib.sha256(blob.encode()).hexdigest()


# The keys of a component's table that decide its source pin; the others
# (build, env, deps, recipe, ...) only decide how the pinned source is built.
SOURCE_KEYS = ("source", "follows", "version")


def source_fingerprint(table: Any) -> str:
    """Canonical hash of the part of a component's raw table that decides its pin."""
    part = {k: table[k] for k in SOURCE_KEYS if k in table} if isinstance(table, dict) else table
    return fingerprint(part)


def quick_components(path: Path) -> dict[str, dict[str, Any]] | None:
    """Raw component tables, or None when a full, validating load is needed."""
    try:
        text = path.read_text(encoding="utf-8")
        if too_deep(text) is not None:
            return None
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not set(doc) <= TOP_LEVEL:
        return None
    comps = doc.get("components", {})
    if not isinstance(comps, dict) or not all(isinstance(c, dict) for c in comps.values()):
        return None
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict):
        return None
    for prof in profiles.values():
        if not isinstance(prof, dict) or not all(c in comps for c in prof.get("components", ())):
            return None
    return comps


def top_table(path: Path, name: str) -> dict[str, Any] | None:
    """The raw ``[name]`` table of the manifest at ``path``: ``{}`` when the file or the
    table is absent, None when the file cannot be read as TOML or the table is not one
    (the caller then loads the manifest fully, which reports that with its line)."""
    try:
        text = path.read_text(encoding="utf-8")
        if too_deep(text) is not None:
            return None
        table = tomllib.loads(text).get(name, {})
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return table if isinstance(table, dict) else None
