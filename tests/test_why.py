"""raisin why / why-depends: the root cause of each rebuild between two locks."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from conftest import make_repo, raisin

from raisin_lock.lock import lockfile


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """leaf (git, branch main) <- middle <- top; a path component `other` beside them."""
    repos = tmp_path / "repos"
    make_repo(repos / "leaf", {"leaf.txt": "one\n"}, date=1700000000)
    proj = tmp_path / "proj"
    (proj / "src" / "other").mkdir(parents=True)
    (proj / "src" / "other" / "o.txt").write_text("o\n")
    (proj / "raisin.toml").write_text(
        f"""
[components.leaf]
source = {{ git = "file://{repos}/leaf", ref = "main" }}
build = ["install -Dm644 leaf.txt $out/leaf.txt"]

[components.middle]
source = {{ path = "src/other" }}
deps = ["leaf"]
build = ["mkdir -p $out", "cat $leaf/leaf.txt > $out/middle.txt"]

[components.top]
source = {{ path = "src/other" }}
deps = ["middle"]
build = ["mkdir -p $out", "cat $middle/middle.txt > $out/top.txt"]

[components.other]
source = {{ path = "src/other" }}
build = ["install -Dm644 o.txt $out/o.txt"]
"""
    )
    return repos, proj


def _with_toolchain(lk: lockfile.Lock, **tools: str) -> lockfile.Lock:
    """The same lock made with another toolchain record (out paths recomputed)."""
    new = lockfile.Lock(
        system=lk.system, toolchain={**lk.toolchain, **tools}, components=dict(lk.components)
    )
    for name, drv in new.derivations().items():
        new.components[name] = replace(new.components[name], out=drv.out, drv=drv.hash())
    return new


def test_why_names_each_root_cause(tmp_path: Path) -> None:
    repos, proj = _project(tmp_path)
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    old = proj / "old.lock"
    shutil.copy(proj / "raisin.lock", old)

    # a new commit on the leaf's branch, and a changed build step in the middle
    new_rev = make_repo(repos / "leaf", {"leaf.txt": "two\n"}, date=1700000100)
    text = (proj / "raisin.toml").read_text()
    (proj / "raisin.toml").write_text(text.replace("> $out/middle.txt", ">> $out/middle.txt"))
    r = raisin("lock", "--update", "leaf", cwd=proj)
    assert r.code == 0, r
    lk = lockfile.read(proj / "raisin.lock")
    assert lk.components["leaf"].source.rev == new_rev
    # and the toolchain: a newer compiler changes every output
    lockfile.write(proj / "new.lock", _with_toolchain(lk, cc="gcc (raisin test) 99.1"))
    old_lk = lockfile.read(old)
    old_rev = old_lk.components["leaf"].source.rev
    old_cc = old_lk.toolchain.get("cc", "")

    r = raisin("why", "old.lock", "new.lock", cwd=proj)
    assert r.code == 0, r
    new_lk = lockfile.read(proj / "new.lock")
    out = {n: c.out.base for n, c in new_lk.components.items()}
    before = {n: c.out.base for n, c in old_lk.components.items()}
    toolchain_line = f"  because toolchain cc: {old_cc!r} -> 'gcc (raisin test) 99.1'"
    assert r.out.splitlines() == [
        f"leaf: {before['leaf']} -> {out['leaf']}",
        f"  because source file://{repos}/leaf rev {old_rev[:12]} -> {new_rev[:12]}",
        toolchain_line,
        f"other: {before['other']} -> {out['other']}",
        toolchain_line,
        f"middle: {before['middle']} -> {out['middle']}",
        "  because step 2: 'cat $leaf/leaf.txt > $out/middle.txt' -> 'cat $leaf/leaf.txt >> $out/middle.txt'",
        toolchain_line,
        "  because dependency leaf changed",
        f"top: {before['top']} -> {out['top']}",
        toolchain_line,
        "  because dependency middle changed",
    ]

    # without the toolchain change, top is explained only by its dependency, down to the roots
    r = raisin("why", "old.lock", cwd=proj)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[lines.index(f"top: {before['top']} -> {lk.components['top'].out.base}") + 1 :] == [
        "  because dependency middle changed",
        "  root cause: leaf, middle",
    ]
    assert not any(line.startswith("other:") for line in lines)

    r = raisin("why", "old.lock", "--json", cwd=proj)
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["components"]["top"]["root_causes"] == ["leaf", "middle"]
    assert doc["components"]["leaf"]["causes"][0]["kind"] == "source"


def test_why_depends_lists_paths(tmp_path: Path) -> None:
    _repos, proj = _project(tmp_path)
    assert raisin("lock", cwd=proj).code == 0
    r = raisin("why-depends", "top", "leaf", cwd=proj)
    assert r.code == 0, r
    assert r.out.splitlines() == ["top -> middle -> leaf"]
    r = raisin("why-depends", "other", "leaf", cwd=proj)
    assert (r.code, r.out) == (0, "")
    assert "other does not depend on leaf" in r.err
    r = raisin("why-depends", "top", "nope", cwd=proj)
    assert r.code == 2
    assert "unknown component 'nope'" in r.err


def test_why_on_identical_locks_says_so(tmp_path: Path) -> None:
    _repos, proj = _project(tmp_path)
    assert raisin("lock", cwd=proj).code == 0
    shutil.copy(proj / "raisin.lock", proj / "same.lock")
    r = raisin("why", "same.lock", cwd=proj)
    assert (r.code, r.out) == (0, "")
    assert "no output path changes" in r.err
