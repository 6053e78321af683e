"""The developer's loop on Xen itself (--real, not in the default run).

Issue 18's acceptance row: `examples/xen-debian`'s Xen source, unpacked into a
local checkout, is a `path` source (SeaBIOS stays the Debian source). After a
warm first build, one line of a hypervisor C file changes
(`xen/common/kernel.c`, the "Built-in command line" message). Raisin's row:
`raisin realize` (it sees the edit, re-locks, restores the checkpointed build
tree, applies the changed file and runs the recipe's steps, through ccache).
The reference: the same steps (`./configure …`, `make dist-xen dist-tools`,
the copy into `$out`) run by bash in a scratch copy that already holds the
previous build — a developer's own incremental build, warm the same way.
Then a clean build of the same checkout with `--incremental off` into another
store: its `raisin store hash` must equal the incremental output's.

Takes ~40 minutes on 2 cores (three full Xen builds). Standalone, it keeps
its work directory for reruns: `python bench/bench_devloop_xen.py DIR`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from common import RAISIN

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "xen-debian"
EDIT = Path("xen/common/kernel.c")
MARK = 'printk("Built-in command line'


def _raisin(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([RAISIN, *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"raisin {' '.join(args)}: exit {p.returncode}: {p.stderr[-800:]}")
    return time.perf_counter() - t0


def _show(proj: Path, store: Path) -> dict:
    p = subprocess.run(
        [RAISIN, "--store", str(store), "show", "--json"],
        cwd=proj,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(p.stdout)["components"])


def _setup(workdir: Path) -> tuple[Path, Path, Path]:
    """The Debian example (sources fetched) and a project with Xen as a path source."""
    base, dev, store = workdir / "debian", workdir / "dev", workdir / "store"
    if not base.exists():
        shutil.copytree(EXAMPLE, base, ignore=shutil.ignore_patterns("store", "profiles"))
    lock = tomllib.loads((base / "raisin.lock").read_text())
    for comp in lock["components"].values():  # fetch the Debian sources, outside the timings
        if not (store / comp["source"]["store"]).exists():
            _raisin(["--store", str(store), "lock", "--update"], base)
    if not dev.exists():
        dev.mkdir()
        src = store / lock["components"]["xen"]["source"]["store"]
        shutil.copytree(src, dev / "xen", symlinks=True)
        subprocess.run(["chmod", "-R", "u+w", str(dev / "xen")], check=True)
        seabios = lock["components"]["seabios"]["source"]
        (dev / "raisin.toml").write_text(
            "[components.seabios]\n"
            f'source = {{ debian = "seabios", version = "{seabios["version"]}" }}\n'
            'recipe = "seabios"\n\n'
            "[components.xen]\n"
            'source = { path = "xen" }\n'
            'recipe = "xen"\n'
            'deps = ["seabios"]\n'
        )
    return dev, store, base


def _bare_script(dev: Path, store: Path, scratch: Path, jobs: int) -> Path:
    """What the lock says for xen, as a bash script run in ``scratch/xen`` without raisin."""
    lock = tomllib.loads((dev / "raisin.lock").read_text())
    comp = lock["components"]["xen"]
    shown = _show(dev, store)
    out = scratch / "out"
    lines = [
        "set -eu",
        f"export MAKEFLAGS=-j{jobs} TZ=UTC LC_ALL=C.UTF-8 PYTHON=python3",
        f"rm -rf {out}",
        f"cd {scratch / 'xen'}",
        f"export out={out} SOURCE_DATE_EPOCH={comp['source']['date']}",
        *(f"export {k}={shlex.quote(v)}" for k, v in comp.get("env", {}).items()),
        *(f"export {d.replace('-', '_')}={store / shown[d]['out']}" for d in comp["deps"]),
        *comp["build"],
    ]
    script = scratch / "steps.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def _bash(script: Path) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{script}: exit {p.returncode}: {p.stderr[-800:]}")
    return time.perf_counter() - t0


def _edit(tree: Path, n: int) -> None:
    path = tree / EDIT
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if MARK in line)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at] = f'{indent}printk("Built-in command line (edit {n}): %s\\n", opt_builtin_cmdline);\n'
    path.write_text("".join(lines))


def _hash(dev: Path, store: Path) -> str:
    out = store / _show(dev, store)["xen"]["out"]
    p = subprocess.run(
        [RAISIN, "store", "hash", str(out)], cwd=dev, capture_output=True, text=True, check=True
    )
    return p.stdout.strip()


def run(workdir: Path, quick: bool = False) -> list[dict]:
    jobs = os.cpu_count() or 1
    dev, store, _ = _setup(workdir)
    log: dict[str, float] = {}
    log["warm raisin build"] = _raisin(["--store", str(store), "realize", "-j", str(jobs)], dev)
    scratch = workdir / "scratch"
    if not (scratch / "xen").exists():
        shutil.copytree(dev / "xen", scratch / "xen", symlinks=True)
    log["warm bare build"] = _bash(_bare_script(dev, store, scratch, jobs))

    rounds = 1 if quick else 3
    raisin_t, make_t = [], []
    for n in range(rounds):
        for tree in (dev / "xen", scratch / "xen"):
            _edit(tree, int(time.time()) % 100000 + n)
        raisin_t.append(_raisin(["--store", str(store), "realize", "-j", str(jobs)], dev))
        make_t.append(_bash(_bare_script(dev, store, scratch, jobs)))
    incremental = _hash(dev, store)
    clean_store = workdir / "clean-store"
    shutil.rmtree(clean_store, ignore_errors=True)
    t0 = time.perf_counter()
    _raisin(["--store", str(clean_store), "realize", "--incremental", "off", "-j", str(jobs)], dev)
    log["clean raisin build"] = time.perf_counter() - t0
    clean = _hash(dev, clean_store)
    print(json.dumps({"setup": log, "raisin": raisin_t, "bare": make_t}), file=sys.stderr)
    r, m = min(raisin_t), min(make_t)
    same = "yes" if incremental == clean else f"NO: {incremental} vs {clean}"
    return [
        {
            "name": "Xen path source: one-line hypervisor change",
            "raisin_s": r,
            "reference_s": m,
            "reference": "bare incremental make (same steps) in a scratch copy",
            "ratio": r / m,
            "goal": f"≤ 2 (bit-identical to a clean build: {same})",
        }
    ]


if __name__ == "__main__":
    import tempfile

    if len(sys.argv) > 1:
        Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
        for row in run(Path(sys.argv[1])):
            print(row)
    else:
        with tempfile.TemporaryDirectory() as d:
            for row in run(Path(d)):
                print(row)
