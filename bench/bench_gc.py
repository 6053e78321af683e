"""raisin gc and profile switch timings: gc of a 1000-path store, switching a 10-component profile."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from common import RAISIN, timed


def _fill_store(store_root: Path, n: int, scratch: Path) -> None:
    """n unrooted source paths, registered the way fetchers do (fsync off: setup only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from raisin_lock.store.local import Store

    with Store(store_root, fsync=False) as store:
        for i in range(n):
            d = scratch / f"t{i}"
            (d / "sub").mkdir(parents=True)
            (d / "a.txt").write_text(f"path {i}\n" * 20)
            (d / "sub" / "b.txt").write_text(f"more {i}\n")
            store.add_tree(d, f"bench{i}")


def _ten_components(root: Path) -> None:
    """10 components of ~20 files each in usr/bin, usr/share and etc (copied on activation)."""
    parts = []
    for i in range(10):
        d = root / "src" / f"c{i}"
        d.mkdir(parents=True)
        for j in range(18):
            (d / f"f{j}.txt").write_text(f"component {i} file {j}\n")
        (d / "tool").write_text(f"#!/bin/sh\necho c{i}\n")
        (d / "conf").write_text(f"setting = {i}\n")
        parts.append(
            f'[components.c{i}]\nsource = {{ path = "src/c{i}" }}\nversion = "1"\n'
            f'build = ["mkdir -p $out/usr/share/c{i} $out/usr/bin $out/etc/c{i}", "cp f*.txt $out/usr/share/c{i}/",'
            f' "install -m755 tool $out/usr/bin/c{i}", "cp conf $out/etc/c{i}/c{i}.conf"]\n'
        )
    names = ", ".join(f'"c{i}"' for i in range(10))
    (root / "raisin.toml").write_text(
        "\n".join(parts) + f"\n[profiles.default]\ncomponents = [{names}]\n"
    )


def run(workdir: Path, quick: bool = False) -> list[dict]:
    import subprocess

    rows = []
    n = 200 if quick else 1000
    proj = workdir / "gcproj"
    proj.mkdir()
    (proj / "raisin.toml").write_text("")
    times = []
    for rep in range(3):
        store = workdir / f"store{rep}"
        _fill_store(store, n, workdir / f"scratch{rep}")
        t0 = time.perf_counter()
        p = subprocess.run(
            [RAISIN, "--store", str(store), "gc"],
            cwd=proj,
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - t0)
        if p.returncode != 0 or len(p.stdout.splitlines()) != n:
            raise RuntimeError(f"gc failed: {p.stderr[-500:]}")
    t = statistics.median(times)
    rows.append(
        {
            "name": f"gc of a {n}-path store (all unrooted)",
            "raisin_s": t,
            "reference_s": 2.0,
            "reference": "goal",
            "ratio": t / 2.0,
            "goal": "≤ 2 s",
        }
    )

    stack = workdir / "stack"
    _ten_components(stack)
    root = workdir / "root"
    timed(
        [RAISIN, "-q", "profile", "switch", "default", "--root", str(root), "-y"],
        cwd=stack,
        repeat=1,
    )
    (stack / "src" / "c9" / "file.txt").write_text("changed\n")
    timed([RAISIN, "-q", "profile", "switch", "default", "-y"], cwd=stack, repeat=1)
    back, fwd = [], []
    for _ in range(3):
        back.append(
            timed(
                [RAISIN, "-q", "profile", "rollback", "default", "--to", "1", "-y"],
                cwd=stack,
                repeat=1,
            )
        )
        fwd.append(timed([RAISIN, "-q", "profile", "switch", "default", "-y"], cwd=stack, repeat=1))
    t = statistics.median(fwd)
    rows.append(
        {
            "name": "profile switch, 10 built components (gen 1 -> 2)",
            "raisin_s": t,
            "reference_s": 1.0,
            "reference": "goal",
            "ratio": t / 1.0,
            "goal": "≤ 1 s",
        }
    )
    t = statistics.median(back)
    rows.append(
        {
            "name": "profile rollback, 10 components (gen 2 -> 1)",
            "raisin_s": t,
            "reference_s": 1.0,
            "reference": "goal",
            "ratio": t / 1.0,
            "goal": "≤ 1 s",
        }
    )
    return rows
