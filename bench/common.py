"""Helpers shared by the bench suites: timing whole processes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RAISIN = str(Path(sys.executable).parent / "raisin")


def timed(
    cmd: list[str], cwd: Path | None = None, repeat: int = 5, env: dict[str, str] | None = None
) -> float:
    """Median wall time of ``cmd`` over ``repeat`` runs (each must succeed)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, env={**os.environ, **(env or {})})
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.decode()[-500:]}")
    return statistics.median(times)


def python_startup() -> float:
    return timed([sys.executable, "-c", "pass"], repeat=5)


def synthetic_stack(root: Path, n: int) -> None:
    """n path-source components in a layered DAG (each depends on up to 2 of the previous layer)."""
    root.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(n):
        d = root / "src" / f"c{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "file.txt").write_text(f"component {i}\n")
        deps = [f"c{j}" for j in (i - 7, i - 13) if j >= 0]
        parts.append(
            f'[components.c{i}]\nsource = {{ path = "src/c{i}" }}\nversion = "1"\n'
            f"deps = {deps!r}\n".replace("'", '"')
            + 'build = ["mkdir -p $out", "cp file.txt $out/"]\n'
        )
    (root / "raisin.toml").write_text("\n".join(parts))


DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def copy_demo(workdir: Path) -> Path:
    """A fresh copy of the demo stack (no store, no lock)."""
    import shutil

    dst = workdir / "demo"
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("store", "raisin.lock", "profiles"))
    return dst
