"""The developer's loop: edits in a path source are seen, --locked/--frozen, -K keeps failures."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import raisin


def _project(tmp_path: Path, build: str = "install -Dm644 v.txt $out/v.txt") -> Path:
    proj = tmp_path / "proj"
    (proj / "checkout").mkdir(parents=True)
    (proj / "checkout" / "v.txt").write_text("one\n")
    (proj / "raisin.toml").write_text(
        f"""
[components.x]
source = {{ path = "checkout" }}
build = ["{build}"]
"""
    )
    return proj


def _out(proj: Path) -> Path:
    r = raisin("show", "--json", cwd=proj)
    assert r.code == 0, r
    return Path(json.loads(r.out)["components"]["x"]["out"])


def test_an_edit_in_a_path_source_is_built_by_realize(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    assert raisin("realize", cwd=proj).code == 0
    first = _out(proj)
    (proj / "checkout" / "v.txt").write_text("two\n")  # the developer edits the checkout

    r = raisin("realize", "--frozen", cwd=proj)  # the lock as it is: nothing to do
    assert r.code == 0, r
    assert "nothing to build" in r.err
    assert _out(proj) == first

    before = (proj / "raisin.lock").read_bytes()
    r = raisin("realize", "--locked", cwd=proj)
    assert r.code == 1, r
    assert (
        "raisin.lock: not up to date with raisin.toml and the path sources: x (source directory changed)"
        in r.err
    )
    assert (proj / "raisin.lock").read_bytes() == before

    r = raisin("realize", cwd=proj)  # plain realize re-locks and builds the edit
    assert r.code == 0, r
    second = _out(proj)
    assert second != first
    assert (second / "v.txt").read_text() == "two\n"
    assert raisin("realize", "--locked", cwd=proj).code == 0


def test_frozen_without_a_lock_is_bad_input(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    r = raisin("realize", "--frozen", cwd=proj)
    assert r.code == 2, r
    assert "--frozen builds from the lock as it is" in r.err


def test_failed_build_leaves_nothing_unless_kept(tmp_path: Path) -> None:
    proj = _project(
        tmp_path, build="echo half > half.txt; mkdir -p $out; echo partial > $out/p; exit 3"
    )
    r = raisin("realize", cwd=proj)
    assert r.code == 1, r
    tmp = proj / "store" / ".raisin" / "tmp"
    assert list(tmp.iterdir()) == []
    assert not (proj / "store" / ".raisin" / "kept").exists()

    r = raisin("realize", "-K", cwd=proj)
    assert r.code == 1, r
    assert list(tmp.iterdir()) == []
    kept = proj / "store" / ".raisin" / "kept" / "build-x-1"
    assert f"build directory kept: {kept}" in r.err
    assert (
        kept / "src" / "half.txt"
    ).read_text() == "half\n"  # the working copy as the build left it
    assert (kept / "out" / "p").read_text() == "partial\n"  # and the partial output
    assert not _out(proj).exists()


def test_check_keeps_the_second_output_beside_the_first(tmp_path: Path) -> None:
    proj = _project(tmp_path, build="mkdir -p $out; head -c 16 /dev/urandom > $out/noise")
    assert raisin("realize", cwd=proj).code == 0
    r = raisin("realize", "--check", "-K", cwd=proj)
    assert r.code == 1, r
    kept = proj / "store" / ".raisin" / "kept" / "check-x-1"
    assert f"second build kept: {kept} (first: {_out(proj)})" in r.err
    assert (kept / "noise").read_bytes() != (_out(proj) / "noise").read_bytes()
