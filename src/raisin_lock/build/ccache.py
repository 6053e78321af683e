"""The compiler cache: incremental rebuilds that stay bit-identical to clean ones.

A developer who changes one file of a ``path`` source wants seconds, not a
full rebuild. raisin runs such builds with ccache (Debian's package) inside
the sandbox: the masquerading ``/usr/lib/ccache`` directory first on
``PATH``, the cache directory of the store (``store/.raisin/ccache``)
mounted read-write at ``/ccache``. A hit cannot differ from a compile:
ccache's key covers the compiler by content (``compiler_check=content``),
the preprocessed input and the command line, and every build sees the same
fixed paths (``/build/src``, ``/raisin/store/...``), so the toolchain record
and the paths are part of every key already.

Used for ``path`` sources by default (``--incremental on`` for every
build, ``off`` for none), never by ``realize --check``, which builds clean
and compares: that is how a user proves the incremental output. Each build's
hits and misses come from its own stats log (``/build/ccache-stats.log``);
``raisin gc`` drops entries not used for 30 days.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

MOUNT = "/ccache"
MASQUERADE = "/usr/lib/ccache"
STATS = "ccache-stats.log"
CACHE_DIR = Path(".raisin") / "ccache"
_HITS = {"direct_cache_hit", "preprocessed_cache_hit"}
_MISSES = {"cache_miss"}


def available() -> bool:
    """Is ccache installed with its masquerading directory (Debian: apt-get install ccache)?"""
    return shutil.which("ccache") is not None and os.path.isdir(MASQUERADE)


def add_env(env: dict[str, str], cache_dir: str, build_dir: str) -> None:
    """Add what a build with the cache needs (``cache_dir``/``build_dir`` as the build sees them)."""
    env["PATH"] = f"{MASQUERADE}:{env['PATH']}"
    env |= {
        "CCACHE_DIR": cache_dir,
        "CCACHE_BASEDIR": build_dir,
        "CCACHE_COMPILERCHECK": "content",
        "CCACHE_STATSLOG": os.path.join(build_dir, STATS),
        "CCACHE_UMASK": "022",
    }


def stats(build_dir_host: str) -> tuple[int, int]:
    """(hits, misses) of one build, from its stats log (0, 0 without one)."""
    hits = misses = 0
    try:
        with open(os.path.join(build_dir_host, STATS), encoding="utf-8", errors="replace") as f:
            for line in f:
                word = line.strip()
                hits += word in _HITS
                misses += word in _MISSES
    except OSError:
        pass
    return hits, misses


def trim(cache_dir: Path, *, days: int = 30) -> int:
    """Delete cache entries not used for ``days`` days; return the bytes freed."""
    cutoff = time.time() - days * 86400
    freed = 0
    for root, _dirs, files in os.walk(cache_dir):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if max(st.st_atime, st.st_mtime) < cutoff:
                    os.unlink(path)
                    freed += st.st_size
            except OSError:
                continue
    return freed
