"""Kept build directories: what ``realize -K`` leaves for a post-mortem (Nix's ``--keep-failed``).

A failed build's directory (``src/``, the working copy as the build left
it, ``tmp/``, and the partial ``$out`` as ``out/``) or, under ``--check``,
the second output of a build that is not bit-identical, is moved out of the
store's temporary area (which is always emptied) to
``<store>/.raisin/kept/<what>-<name>-<n>``, and its path is printed. Nothing
removes it but the user (or ``raisin gc``, which empties ``kept/``).
"""

from __future__ import annotations

import os
from pathlib import Path

KEPT = Path(".raisin") / "kept"


def keep(store_root: Path, path: Path, what: str, name: str) -> Path:
    """Move ``path`` to a fresh ``kept/<what>-<name>-<n>`` of the store; return where it went."""
    base = store_root / KEPT
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        dest = base / f"{what}-{name}-{n}"
        try:
            os.rename(path, dest)  # same file system: .raisin/tmp is beside it
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            if exc.errno in (39, 17):  # ENOTEMPTY / EEXIST from rename onto a directory
                n += 1
                continue
            raise
        return dest
