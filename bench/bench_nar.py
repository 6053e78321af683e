"""NAR hashing: ``raisin_lock.nar.hash_path`` against ``nix-hash --type sha256``.

Both sides are timed as whole processes (interpreter start and imports
included, since ``raisin store hash`` is one), best of N after a warm-up run
that fills the page cache, runs interleaved so that load from elsewhere hits
both alike. Every run's hash must equal Nix's.

Trees:

* synthetic: 50,000 small files (0-20 KB, 500 directories, some executables
  and symlinks) and three 100 MB files placed first, in the middle and last in
  NAR order; deterministic contents.
* linux-like: the shape of the Debian linux source (87k entries, 1.5 GB):
  87,000 files in ~5,400 directories up to 4 levels deep, sizes heavy-tailed
  (most under 16 KB, a few up to 2 MB) scaled so that they total 1.5 GB
  (``--quick``: 300 MB), some executables and symlinks. Timed through the CLI,
  ``raisin store hash`` against ``nix-hash --type sha256``.
* real: the Debian bookworm source of Xen (``apt-get source xen`` through a
  private sources list in the work directory, then ``dpkg-source -x``); if
  that cannot be fetched, a copy of this Python's standard library.

The raisin side runs with bytecode caching on (``PYTHONPYCACHEPREFIX`` in the
work directory), as an installed package would; a ``PYTHONDONTWRITEBYTECODE``
in the caller's environment would otherwise recompile ``nar.py`` every run.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_VENV_PY = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PY) if _VENV_PY.exists() else sys.executable
RAISIN_HASH = (
    "from raisin_lock.nar import hash_path; import sys; print(hash_path(sys.argv[1])[0].hex)"
)
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def synthetic_tree(root: Path, dirs: int = 500, files: int = 100, big_mb: int = 100) -> Path:
    """``dirs * files`` small files plus three ``big_mb`` MB files (first, middle, last)."""
    rnd = random.Random(20240501)
    sizes = [0, 40, 300, 900, 2000, 4000, 7000, 12000, 20000]
    root.mkdir(parents=True)
    for d in range(dirs):
        sub = root / f"d{d:03d}" / ("src" if d % 2 else "lib")
        sub.mkdir(parents=True)
        for f in range(files):
            p = sub / f"file{f:03d}.c"
            p.write_bytes(rnd.randbytes(rnd.choice(sizes)))
            if f % 11 == 0:
                p.chmod(0o755)
            if f % 23 == 0:
                os.symlink(p.name, sub / f"link{f:03d}")
    big = [root / "000-first.img", root / f"d{dirs // 2:03d}" / "middle.img", root / "zzz-last.img"]
    for p in big:
        with open(p, "wb") as out:
            out.writelines(rnd.randbytes(1 << 20) for _ in range(big_mb))
    return root


def linux_like_tree(root: Path, files: int = 87_000, total_mb: int = 1500) -> Path:
    """A tree shaped like the Linux kernel source: many small files, a heavy tail.

    ~16 files per directory, directories three levels under 20 top-level ones;
    file sizes drawn from a distribution like the kernel's (40% < 4 KB, 35%
    4-16 KB, 20% 16-64 KB, 4.5% 64-256 KB, 0.5% 256 KB-2 MB), then scaled so
    they total ``total_mb`` MB. Deterministic.
    """
    rnd = random.Random(20261204)
    bands = [(0.40, 0, 4 << 10), (0.35, 4 << 10, 16 << 10), (0.20, 16 << 10, 64 << 10),
             (0.045, 64 << 10, 256 << 10), (0.005, 256 << 10, 2 << 20)]  # fmt: skip
    raw = []
    for _ in range(files):
        x, acc = rnd.random(), 0.0
        for share, lo, hi in bands:
            acc += share
            if x < acc:
                break
        raw.append(rnd.randint(lo, hi))
    scale = (total_mb * 1_000_000) / sum(raw)
    sizes = [int(n * scale) for n in raw]
    pool = rnd.randbytes(4 << 20)  # contents: slices of one random pool, at varying offsets
    root.mkdir(parents=True)
    per_dir = 16
    for i, size in enumerate(sizes):
        d = i // per_dir
        sub = root / f"t{d % 20:02d}" / f"m{d // 20 % 17:02d}" / f"l{d:05d}"
        if i % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"f{i:06d}.c"
        off = rnd.randrange(len(pool) - min(size, len(pool)) + 1)
        with open(p, "wb") as out:
            left = size
            while left:
                piece = pool[off : off + left] or pool[: min(left, len(pool))]
                out.write(piece)
                left -= len(piece)
                off = 0
        if i % 41 == 0:
            p.chmod(0o755)
        if i % 97 == 0:
            os.symlink(p.name, sub / f"s{i:06d}")
    return root


def _apt(base: Path, *args: str, cwd: Path | None = None) -> None:
    opts = [
        f"-oDir::Etc::SourceList={base / 'sources.list'}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={base / 'lists'}",
        f"-oDir::Cache={base / 'cache'}",
        "-oDebug::NoLocking=1",
    ]
    if os.geteuid() == 0:
        opts.append("-oAPT::Sandbox::User=root")  # the _apt user cannot write here
    subprocess.run(
        ["apt-get", "-qq", *opts, *args], cwd=cwd, check=True, capture_output=True, timeout=600
    )


def debian_source(workdir: Path, package: str) -> Path:
    """Fetch and unpack a Debian bookworm source package without touching the system's apt."""
    base = workdir / "apt"
    if not (base / "lists").exists():
        (base / "lists" / "partial").mkdir(parents=True)
        (base / "cache" / "archives" / "partial").mkdir(parents=True)
        (base / "sources.list").write_text(
            f"deb-src [signed-by={KEYRING}] {MIRROR} bookworm main\n"
        )
        _apt(base, "update")
    dl = base / "src" / package
    dl.mkdir(parents=True)
    _apt(base, "source", "--download-only", package, cwd=dl)
    dsc = next(dl.glob("*.dsc"))
    out = workdir / f"{package}-src"
    subprocess.run(
        ["dpkg-source", "--no-check", "-x", dsc, out], check=True, capture_output=True, timeout=600
    )
    return out


def real_tree(workdir: Path) -> tuple[Path, str]:
    try:
        tree = debian_source(workdir, "xen")
        version = next((workdir / "apt" / "src" / "xen").glob("*.dsc")).stem.split("_", 1)[1]
        return tree, f"Xen {version} Debian source"
    except (OSError, subprocess.SubprocessError, StopIteration) as exc:
        print(f"# apt-get source xen failed ({exc}); using the Python stdlib", file=sys.stderr)
    stdlib = Path(os.__file__).parent
    tree = workdir / "stdlib"
    shutil.copytree(stdlib, tree, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return tree, f"Python {sys.version.split()[0]} stdlib copy"


def _count(tree: Path) -> tuple[int, int]:
    n = size = 0
    for dirpath, _dirs, files in os.walk(tree):
        for f in files:
            n += 1
            size += os.lstat(os.path.join(dirpath, f)).st_size
    return n, size


def _best(cmds: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, float]:
    """Best wall time of each command over ``rounds`` interleaved runs, after a warm-up."""
    best = {k: float("inf") for k in cmds}
    for i in range(rounds + 1):  # round 0 warms the page cache and the bytecode cache
        for side, cmd in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=True)
            if i:
                best[side] = min(best[side], time.perf_counter() - t0)
    return best


def startup(workdir: Path, env: dict[str, str]) -> dict[str, float]:
    """The fixed cost of each side: interpreter and imports vs. nix-hash on an empty file."""
    empty = workdir / "empty"
    empty.write_bytes(b"")
    imports = "import raisin_lock.nar, raisin_lock.hashing"
    return _best(
        {"raisin": [PYTHON, "-c", imports], "nix": ["nix-hash", "--type", "sha256", str(empty)]},
        env,
        rounds=7,
    )


def compare(
    name: str, tree: Path, env: dict[str, str], rounds: int, fixed: dict[str, float]
) -> dict[str, object]:
    """Best-of-``rounds`` wall time of raisin and nix-hash on ``tree``, interleaved."""
    cmds = {
        "raisin": [PYTHON, "-c", RAISIN_HASH, str(tree)],
        "nix": ["nix-hash", "--type", "sha256", str(tree)],
    }
    hashes = {
        subprocess.run(cmd, capture_output=True, env=env, check=True).stdout.decode().strip()
        for cmd in cmds.values()
    }
    if len(hashes) != 1:
        raise RuntimeError(f"{name}: raisin and nix-hash disagree: {sorted(hashes)}")
    best = _best(cmds, env, rounds)
    files, size = _count(tree)
    return {
        "name": name,
        "raisin_s": best["raisin"],
        "reference_s": best["nix"],
        "reference": "nix-hash --type sha256",
        "ratio": best["raisin"] / best["nix"],
        "goal": 1.0 if "synthetic" in name else 1.3,
        "files": files,
        "bytes": size,
        "hash": hashes.pop(),
        "raisin_startup_s": fixed["raisin"],
        "reference_startup_s": fixed["nix"],
    }


def compare_cli(
    name: str, tree: Path, env: dict[str, str], rounds: int, fixed: dict[str, float]
) -> dict[str, object]:
    """``raisin store hash`` (the whole CLI) against ``nix-hash``, best of ``rounds``."""
    import base64

    raisin = str(Path(sys.executable).parent / "raisin")
    if not os.path.exists(raisin):
        raisin = str(_VENV_PY.parent / "raisin")
    cmds = {
        "raisin": [raisin, "store", "hash", str(tree)],
        "nix": ["nix-hash", "--type", "sha256", str(tree)],
    }
    out = {
        k: subprocess.run(c, capture_output=True, env=env, check=True).stdout.decode().strip()
        for k, c in cmds.items()
    }
    nix_sri = "sha256-" + base64.b64encode(bytes.fromhex(out["nix"])).decode()
    if out["raisin"] != nix_sri:
        raise RuntimeError(f"{name}: raisin and nix-hash disagree: {out['raisin']} {nix_sri}")
    best = _best(cmds, env, rounds)
    files, size = _count(tree)
    return {
        "name": name,
        "raisin_s": best["raisin"],
        "reference_s": best["nix"],
        "reference": "nix-hash --type sha256 (raisin: `raisin store hash`)",
        "ratio": best["raisin"] / best["nix"],
        "goal": 1.0,
        "files": files,
        "bytes": size,
        "hash": out["raisin"],
        "raisin_startup_s": fixed["raisin"],
        "reference_startup_s": fixed["nix"],
    }


def run(workdir: Path, quick: bool = False) -> list[dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src
    fixed = startup(workdir, env)
    rows = []
    if quick:
        syn = synthetic_tree(workdir / "synthetic", dirs=50, big_mb=10)
        rows.append(compare("nar-hash synthetic 5k+3x10MB", syn, env, 3, fixed))
    else:
        syn = synthetic_tree(workdir / "synthetic")
        rows.append(compare("nar-hash synthetic 50k+3x100MB", syn, env, 5, fixed))
    shutil.rmtree(syn)
    mb = 300 if quick else 1500
    lin = linux_like_tree(workdir / "linux-like", total_mb=mb)
    rows.append(compare_cli(f"store hash linux-like 87k files/{mb} MB", lin, env, 3, fixed))
    shutil.rmtree(lin)
    tree, label = real_tree(workdir)
    rows.append(compare(f"nar-hash {label}", tree, env, 3 if quick else 9, fixed))
    return rows


if __name__ == "__main__":
    import tempfile

    if "--linux-like" in sys.argv:  # only the linux-shaped row (python bench_nar.py --linux-like)
        with tempfile.TemporaryDirectory(prefix="raisin-bench-nar-") as d:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(Path(d) / "pycache")
            mb = 300 if "--quick" in sys.argv else 1500
            lin = linux_like_tree(Path(d) / "linux-like", total_mb=mb)
            print(
                compare_cli(
                    f"store hash linux-like 87k/{mb} MB", lin, env, 3, startup(Path(d), env)
                )
            )
        sys.exit(0)
    with tempfile.TemporaryDirectory(prefix="raisin-bench-nar-") as d:
        for row in run(Path(d), quick="--quick" in sys.argv):
            print(row)
