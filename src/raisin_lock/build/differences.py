"""How two builds of one path differ, for ``realize --check``: the files, and diffoscope's view."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def tree_differences(a: Path, b: Path) -> list[str]:
    """Relative paths whose type, executable bit, content or target differ."""

    def walk(root: Path) -> dict[str, tuple[str, bytes]]:
        entries: dict[str, tuple[str, bytes]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, root)
                if os.path.islink(p):
                    entries[rel] = ("link", os.fsencode(os.readlink(p)))
                elif os.path.isdir(p):
                    entries[rel] = ("dir", b"")
                else:
                    import hashlib

                    with open(p, "rb") as f:
                        digest = hashlib.file_digest(f, "sha256").digest()
                    kind = "exec" if os.access(p, os.X_OK) else "file"
                    entries[rel] = (kind, digest)
        return entries

    x, y = walk(a), walk(b)
    return sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))


def diffoscope(a: Path, b: Path) -> str | None:
    exe = shutil.which("diffoscope")
    if not exe:
        return None
    try:
        p = subprocess.run(
            [exe, "--no-progress", "--text", "-", str(a), str(b)],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = p.stdout.splitlines()
    return "\n".join(lines[:60])
