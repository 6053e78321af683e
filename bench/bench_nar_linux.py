"""NAR hashing of the real Debian linux source: ``raisin store hash`` against ``nix-hash``.

The tree the untrusted-input issue measured (87k entries, 1.5 GB): bookworm's
``linux`` source package, fetched with ``apt-get source`` through a private
sources list in the work directory (bench_nar.debian_source; ~140 MB from
deb.debian.org) and unpacked with ``dpkg-source -x``. Both sides are whole
processes, best of 7 interleaved runs after a warm-up (bench_nar.compare_cli),
and their hashes must agree. Run by ``bench/run.py --real``, or alone:
``python bench/bench_nar_linux.py [DIR]`` (DIR keeps the download).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench_nar import compare_cli, debian_source, startup


def run(workdir: Path) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    tree = workdir / "linux-src"
    if not tree.exists():
        tree = debian_source(workdir, "linux")
    version = next((workdir / "apt" / "src" / "linux").glob("*.dsc")).stem.split("_", 1)[1]
    row = compare_cli(
        f"store hash Debian linux {version} source", tree, env, 7, startup(workdir, env)
    )
    return [row]


if __name__ == "__main__":
    import tempfile

    if len(sys.argv) > 1:
        Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
        print(run(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory(prefix="raisin-bench-nar-linux-") as d:
            print(run(Path(d)))
