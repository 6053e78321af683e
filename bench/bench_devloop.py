"""The developer's loop: a one-line change in a path source, rebuilt by raisin vs bare make.

A generated C project shaped like a hypervisor directory (400 files, each a
few hundred lines, one `make` that compiles and links them) is a `path`
source. After a warm first build, one file gets a one-line change. Raisin's
row: `raisin realize` of it (re-lock by hash, copy of the source into the
sandbox, the build with the compiler cache: one miss, the rest hits).
The reference: the same `make` in a scratch copy that already holds the
previous objects (a developer's incremental build), after the same change.
The output must equal a clean build without the cache (`raisin store hash`).

The same row on Xen itself (examples/xen-debian's source as a path source)
is `bench_devloop_xen.py`, run with `--real`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import RAISIN

FILES = 400


def _project(root: Path) -> Path:
    src = root / "checkout"
    src.mkdir(parents=True)
    body = "\n".join(
        f"static int g{j}(int x) {{ return (x * {j + 3}) ^ (x >> {j % 7 + 1}); }}"
        for j in range(60)
    )
    for i in range(FILES):
        (src / f"f{i}.c").write_text(
            f"{body}\nint f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += g{i % 60}(k); return s; }}\n"
        )
    objs = " ".join(f"f{i}.o" for i in range(FILES))
    (src / "main.c").write_text("int f0(int);\nint main(void) { return f0(3) & 1; }\n")
    (src / "Makefile").write_text(
        f"OBJS = main.o {objs}\nprog: $(OBJS)\n\tcc -o prog $(OBJS)\n%.o: %.c\n\tcc -O2 -g -c $< -o $@\n"
    )
    (root / "raisin.toml").write_text(
        '[components.prog]\nsource = { path = "checkout" }\n'
        'build = ["make", "install -Dm755 prog $out/bin/prog"]\n'
    )
    return src


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, env={**os.environ, **(env or {})})
    if p.returncode:
        raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.decode()[-400:]}")
    return time.perf_counter() - t0


def _out(proj: Path, store: Path | None = None) -> str:
    args = [RAISIN, *(["--store", str(store)] if store else []), "show", "--json"]
    p = subprocess.run(args, cwd=proj, capture_output=True, text=True, check=True)
    return str(json.loads(p.stdout)["components"]["prog"]["out"])


def run(workdir: Path, quick: bool = False) -> list[dict]:
    proj = workdir / "proj"
    src = _project(proj)
    jobs = str(os.cpu_count() or 1)
    _run([RAISIN, "realize", "-j", jobs], proj)  # warm: the cache holds every object
    scratch = workdir / "scratch"
    shutil.copytree(src, scratch)
    _run(["make", f"-j{jobs}"], scratch)  # the developer's own tree, built once

    rounds = 1 if quick else 3
    raisin_t, make_t = [], []
    for n in range(rounds):
        line = f"int f1(int x) {{ return x + {n + 1}; }}\n"
        for tree in (src, scratch):
            text = (tree / "f1.c").read_text().rsplit("int f1(", 1)[0]
            (tree / "f1.c").write_text(text + line)
        raisin_t.append(_run([RAISIN, "realize", "-j", jobs], proj))
        make_t.append(_run(["make", f"-j{jobs}"], scratch))
    cached = subprocess.run(
        [RAISIN, "store", "hash", _out(proj)], cwd=proj, capture_output=True, text=True, check=True
    ).stdout
    clean_store = workdir / "clean"
    _run(
        [RAISIN, "--store", str(clean_store), "realize", "--incremental", "off", "-j", jobs],
        proj,
    )
    clean = subprocess.run(
        [RAISIN, "store", "hash", _out(proj, clean_store)],
        cwd=proj,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    r, m = min(raisin_t), min(make_t)
    return [
        {
            "name": f"one-line change, {FILES}-file C path source",
            "raisin_s": r,
            "reference_s": m,
            "reference": "bare incremental make in a scratch copy",
            "ratio": r / m,
            "goal": "≤ 2 (and bit-identical: " + ("yes" if cached == clean else "NO") + ")",
        }
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for row in run(Path(d)):
            print(row)
