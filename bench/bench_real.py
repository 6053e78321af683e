"""The real stack (--real, not in the default run): SeaBIOS + Xen from Debian sources.

raisin realize from an empty store (sources already fetched, so both sides
compile only) against a plain shell script that runs the lock's own steps,
in dependency order, on copies of the same sources with MAKEFLAGS=-j2. Then
a no-op realize. Takes ~10 minutes on 2 cores.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

from common import RAISIN, timed

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "xen-debian"


def _script(lock: dict, store: Path, work: Path) -> str:
    """A bash script doing what the lock says, without raisin."""
    lines = ["set -eu", "export MAKEFLAGS=-j2 TZ=UTC LC_ALL=C.UTF-8"]
    outs = {}
    for name in ("seabios", "xen"):
        c = lock["components"][name]
        src = store / c["source"]["store"]
        out = work / f"out-{name}"
        outs[name] = out
        lines.append("(")
        lines.append(
            f"cp -a {shlex.quote(str(src))} {work}/src-{name} && chmod -R u+w {work}/src-{name} && cd {work}/src-{name}"
        )
        lines.append(f"export out={out} SOURCE_DATE_EPOCH={c['source']['date']}")
        for k, v in c.get("env", {}).items():
            lines.append(f"export {k}={shlex.quote(v)}")
        for d in c["deps"]:
            lines.append(f"export {d.replace('-', '_')}={outs[d]}")
        lines.extend(c["build"])
        lines.append(")")
    return "\n".join(lines) + "\n"


def run(workdir: Path, quick: bool = False) -> list[dict]:
    proj = workdir / "proj"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("store", "profiles"))
    timed([RAISIN, "lock"], cwd=proj, repeat=1)
    store = proj / "store"
    lock = tomllib.loads((proj / "raisin.lock").read_text())
    for c in lock["components"].values():  # fetch sources once, outside the timings
        assert (store / c["source"]["store"]).exists() or subprocess.run(
            [RAISIN, "lock", "--update"], cwd=proj
        ).returncode == 0
    script = workdir / "bare.sh"
    script.write_text(_script(lock, store, workdir))
    t0 = time.perf_counter()
    subprocess.run(
        ["bash", str(script)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHON": "python3"},
    )
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([RAISIN, "-q", "realize", "-j", "2"], cwd=proj, check=True, capture_output=True)
    ours = time.perf_counter() - t0
    noop = timed([RAISIN, "realize"], cwd=proj, repeat=5)
    return [
        {
            "name": "SeaBIOS + Xen realize, empty store (-j 2)",
            "raisin_s": ours,
            "reference_s": bare,
            "reference": "bash script of the same steps",
            "ratio": ours / bare,
            "goal": "≤ 1.10",
        },
        {
            "name": "no-op realize after it",
            "raisin_s": noop,
            "reference_s": 0.3,
            "reference": "goal",
            "ratio": noop / 0.3,
            "goal": "≤ 0.3 s",
        },
    ]
