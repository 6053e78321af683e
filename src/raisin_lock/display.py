"""How paths appear in messages: relative to the working directory when inside it."""

from __future__ import annotations

from pathlib import Path


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
