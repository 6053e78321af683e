"""A compile-heavy build under raisin vs the same build bare: SeaBIOS from its Debian source."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from common import RAISIN, timed

MANIFEST = """
[components.seabios]
source = { debian = "seabios", version = "1.16.2-1" }
build = [
  "make defconfig",
  "make PYTHON=python3 EXTRAVERSION=-raisin",
  "install -Dm644 out/bios.bin $out/usr/share/seabios/bios.bin",
]
"""


def run(workdir: Path, quick: bool = False) -> list[dict]:
    proj = workdir / "proj"
    proj.mkdir()
    (proj / "raisin.toml").write_text(MANIFEST)
    timed([RAISIN, "lock"], cwd=proj, repeat=1)  # downloads; not timed
    src = next((proj / "store").glob("*-seabios-debian-source"))
    bare_times, raisin_times = [], []
    for i in range(1 if quick else 2):
        tree = workdir / f"bare{i}"
        shutil.copytree(src, tree, symlinks=True)
        subprocess.run(["chmod", "-R", "u+w", str(tree)], check=True)
        t0 = time.perf_counter()
        subprocess.run(
            "make defconfig && make -j2 PYTHON=python3 EXTRAVERSION=-raisin",
            shell=True,
            cwd=tree,
            check=True,
            capture_output=True,
        )
        bare_times.append(time.perf_counter() - t0)
        store = workdir / f"store{i}"
        shutil.copytree(
            proj / "store", store, symlinks=True, ignore=shutil.ignore_patterns("*-seabios-1.16.2")
        )
        t0 = time.perf_counter()
        subprocess.run(
            [RAISIN, "-q", "--store", str(store), "realize", "-j", "2"],
            cwd=proj,
            check=True,
            capture_output=True,
        )
        raisin_times.append(time.perf_counter() - t0)
    r, b = min(raisin_times), min(bare_times)
    return [
        {
            "name": "SeaBIOS 1.16.2 build (Debian source), -j 2",
            "raisin_s": r,
            "reference_s": b,
            "reference": "bare make defconfig; make -j2",
            "ratio": r / b,
            "goal": "≤ 1.10",
        }
    ]
