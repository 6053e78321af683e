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

TOP_LEVEL = {"components", "profiles", "cache", "tests"}


def fingerprint(table: Any) -> str:
    """Canonical hash of one component's raw table."""
    blob = json.dumps(table, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256-" + hashlib.sha256(blob.encode()).hexdigest()


def quick_components(path: Path) -> dict[str, dict[str, Any]] | None:
    """Raw component tables, or None when a full, validating load is needed."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
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
