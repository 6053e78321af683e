"""raisin gc and raisin store optimise, against the real database and real concurrent processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import RAISIN, raisin

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _db(proj: Path) -> tuple[set[str], dict[str, set[str]]]:
    """(valid paths, references) straight from the store database."""
    con = sqlite3.connect(f"file:{proj / 'store/.raisin/db.sqlite'}?mode=ro", uri=True)
    try:
        ids = dict(con.execute("SELECT id, path FROM valid_paths"))
        refs: dict[str, set[str]] = {p: set() for p in ids.values()}
        for a, b in con.execute("SELECT referrer, reference FROM refs"):
            refs[ids[a]].add(ids[b])
    finally:
        con.close()
    return set(ids.values()), refs


def _unreachable(proj: Path, *, runtime_only: bool = False) -> set[str]:
    """The test's own answer: valid paths no root reaches through recorded references."""
    valid, refs = _db(proj)
    roots: set[str] = set()
    profiles = proj / "profiles"
    for name in os.listdir(profiles) if profiles.is_dir() else []:
        if name.endswith("-link"):
            gen = Path(os.readlink(profiles / name))
            roots.add(gen.name)
            if not runtime_only:
                roots |= set(json.loads((gen / "generation.json").read_text())["build_inputs"])
    lock = proj / "raisin.lock"
    if lock.exists():
        import tomllib

        for c in tomllib.loads(lock.read_text())["components"].values():
            roots.add(c["out"])
            if not runtime_only:
                roots.add(c["source"]["store"])
    live: set[str] = set()
    stack = [r for r in roots if r in valid]
    while stack:
        p = stack.pop()
        if p not in live:
            live.add(p)
            stack.extend(refs[p])
    return valid - live


def _gc(proj: Path, *args: str) -> set[str]:
    r = raisin("gc", *args, cwd=proj)
    assert r.code == 0, r
    return {Path(line).name for line in r.out.splitlines()}


def _outs(proj: Path) -> dict[str, tuple[str, str]]:
    import tomllib

    comps = tomllib.loads((proj / "raisin.lock").read_text())["components"]
    return {n: (c["out"], c["source"]["store"]) for n, c in comps.items()}


def test_gc_deletes_exactly_the_unreachable(demo: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert raisin("profile", "switch", "default", "--root", str(root), "-y", cwd=demo).code == 0
    gen1 = Path(os.readlink(demo / "profiles/default-1-link")).name
    old = _outs(demo)
    (demo / "src/motd/motd.txt").write_text("A newer message.\n")
    assert raisin("profile", "switch", "default", "-y", cwd=demo).code == 0
    new = _outs(demo)
    assert _gc(demo) == set()  # both generations and the lock need everything
    r = raisin("profile", "delete-generations", "default", "--keep", "1", cwd=demo)
    assert r.code == 0, r

    expected = _unreachable(demo)
    assert expected == {gen1, old["hello"][0], old["motd"][0], old["motd"][1]}
    before = _db(demo)[0]
    assert _gc(demo, "--dry-run") == expected
    assert _db(demo)[0] == before
    r = raisin("gc", cwd=demo)
    assert r.code == 0 and "deleted 4 store paths" in r.err, r
    assert {Path(line).name for line in r.out.splitlines()} == expected
    assert all(not (demo / "store" / p).exists() for p in expected)
    assert _db(demo)[0] == before - expected
    assert raisin("store", "verify", cwd=demo).code == 0
    r = raisin("realize", cwd=demo)
    assert r.code == 0 and "nothing to build" in r.err, r
    assert subprocess.run(
        [str(root / "usr/bin/hello")], capture_output=True, text=True
    ).stdout.endswith("A newer message.\n")

    # Without the lock, the generation still keeps its build inputs, unless --runtime-only.
    (demo / "raisin.lock").unlink()
    r = raisin("gc", cwd=demo)
    assert r.code == 0 and r.out == "" and "removed stale gc root lock-" in r.err, r
    assert not any(n.startswith("lock-") for n in os.listdir(demo / "store/.raisin/gcroots"))
    expected = _unreachable(demo, runtime_only=True)
    assert expected == {new["greet"][0], new["motd"][0], *(src for _, src in new.values())}
    assert _gc(demo, "--runtime-only") == expected
    assert raisin("store", "verify", cwd=demo).code == 0
    gen2 = Path(os.readlink(demo / "profiles/default-2-link")).name
    assert _db(demo)[0] == {gen2, new["hello"][0]}


HOLDER = r"""
import sys
from pathlib import Path
from raisin_lock.store.local import Store
from raisin_lock.store_path import StorePath

store = Store(sys.argv[1])
info = store.add_tree(Path(sys.argv[2]), "busy")            # valid, no root
building = StorePath.make("output", "0" * 64, "being-built")  # a build in progress
with store.lock(info.path), store.lock(building):
    host = store.prepare_build(building)
    host.mkdir()
    (host / "partial").write_text("half a build\n")
    print(info.path.base, building.base, flush=True)
    sys.stdin.readline()
"""


def test_gc_never_touches_paths_another_process_holds(demo: Path, tmp_path: Path) -> None:
    assert raisin("realize", cwd=demo).code == 0
    content = tmp_path / "content"
    content.mkdir()
    (content / "f").write_text("unrooted\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(demo / "store"), str(content)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        busy, building = holder.stdout.readline().split()
        r = raisin("gc", cwd=demo)
        assert r.code == 0, r
        assert (
            busy not in r.out
            and f"in use by another process, kept: {demo / 'store' / busy}" in r.err
        )
        assert (demo / "store" / busy / "f").exists() and (
            demo / "store" / building / "partial"
        ).exists()
        assert busy in _db(demo)[0]
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
    r = raisin("gc", cwd=demo)
    assert r.code == 0 and busy in r.out and "leftover" in r.err, r
    assert not (demo / "store" / busy).exists() and not (demo / "store" / building).exists()
    assert raisin("store", "verify", cwd=demo).code == 0


def test_gc_concurrent_with_realize_loses_nothing(demo: Path) -> None:
    assert raisin("realize", cwd=demo).code == 0
    for i in range(3):
        (demo / "src/motd/motd.txt").write_text(f"round {i}\n")
        (demo / "src/greet/greet.h").write_text(
            (DEMO / "src/greet/greet.h").read_text() + f"/* round {i} */\n"
        )
        assert raisin("lock", cwd=demo).code == 0
        env = dict(os.environ)
        env.pop("RAISIN_STORE", None)
        build = subprocess.Popen(
            [RAISIN, "realize"],
            cwd=demo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs = 0
        while build.poll() is None or runs == 0:
            r = raisin("gc", cwd=demo)
            assert r.code == 0, r
            runs += 1
        out, err = build.communicate()
        assert build.returncode == 0, err
        assert raisin("store", "verify", cwd=demo).code == 0
        r = raisin("show", "--json", cwd=demo)
        assert all(c["built"] for c in json.loads(r.out)["components"].values()), r
    assert _gc(demo) == _unreachable(demo) == set()
    r = raisin("realize", cwd=demo)
    assert r.code == 0 and "nothing to build" in r.err, r
    out = subprocess.run(
        [
            str(
                Path(
                    json.loads(raisin("show", "--json", cwd=demo).out)["components"]["hello"]["out"]
                )
                / "usr/bin/hello"
            )
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert out.endswith("round 2\n")


def test_optimise_links_identical_files_and_verify_passes(demo: Path) -> None:
    text = (demo / "raisin.toml").read_text()
    twin = '\n[components.motd2]\nsource = { path = "src/motd" }\nversion = "2.0"\nbuild = ["install -Dm644 motd.txt $out/usr/share/motd/motd.txt"]\n'
    (demo / "raisin.toml").write_text(text + twin)
    assert raisin("realize", cwd=demo).code == 0
    info = {
        n: Path(c["out"])
        for n, c in json.loads(raisin("show", "--json", cwd=demo).out)["components"].items()
    }
    a, b = info["motd"] / "usr/share/motd/motd.txt", info["motd2"] / "usr/share/motd/motd.txt"
    assert a.stat().st_ino != b.stat().st_ino
    r = raisin("store", "optimise", cwd=demo)
    assert r.code == 0, r
    saved = int(r.out.split()[0])
    assert saved >= a.stat().st_size and "bytes saved" in r.out
    assert a.stat().st_ino == b.stat().st_ino
    assert (
        a.stat().st_mode & 0o777 == 0o444
        and a.stat().st_mtime == 1
        and a.parent.stat().st_mtime == 1
    )
    assert raisin("store", "verify", cwd=demo).code == 0
    r = raisin("store", "optimise", cwd=demo)
    assert r.code == 0 and r.out.startswith("0 bytes saved"), r

    (demo / "raisin.toml").write_text(text)  # motd2 is no longer wanted
    assert raisin("lock", cwd=demo).code == 0
    r = raisin("gc", cwd=demo)
    assert r.code == 0 and info["motd2"].name in r.out, r
    assert raisin("store", "verify", cwd=demo).code == 0
    assert a.read_text() == (DEMO / "src/motd/motd.txt").read_text()
    links = demo / "store/.raisin/links"
    assert all(os.lstat(links / n).st_nlink > 1 for n in os.listdir(links))
