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


def test_develop_runs_in_the_build_environment_on_the_checkout_itself(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "lib").mkdir(parents=True)
    (proj / "lib" / "l.h").write_text("#define L 7\n")
    (proj / "app").mkdir()
    (proj / "app" / "Makefile").write_text("app: main.c\n\tcc -I$$lib/usr/include main.c -o app\n")
    (proj / "app" / "main.c").write_text('#include "l.h"\nint main(void) { return L; }\n')
    (proj / "raisin.toml").write_text(
        """
[components.lib]
source = { path = "lib" }
build = ["install -Dm644 l.h $out/usr/include/l.h"]

[components.app]
source = { path = "app" }
deps = ["lib"]
env = { FLAVOUR = "dev" }
build = ["make", "install -Dm755 app $out/bin/app"]
"""
    )
    probe = (
        "make && ./app; echo built=$?; echo flavour=$FLAVOUR; echo home=$HOME; "
        "test -e /root && echo host-root-visible; "
        "(exec 3<>/dev/tcp/127.0.0.1/1) 2>/dev/null; "
        "getent hosts example.org >/dev/null 2>&1 && echo network || echo no-network; "
        "echo pwd=$(pwd); touch from-develop; mkdir -p $out && echo hi > $out/x"
    )
    r = raisin("develop", "app", "-c", f"bash -c '{probe}'", cwd=proj)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert "built=7" in lines  # make found $lib's header: the dependency was realized and mounted
    assert "flavour=dev" in lines and "home=/homeless-shelter" in lines
    assert "host-root-visible" not in lines and "no-network" in lines
    assert "pwd=/build/src" in lines
    # the checkout itself was the working directory: make's output and the new file are there
    assert (proj / "app" / "app").exists() and (proj / "app" / "from-develop").exists()
    assert (proj / "store" / ".raisin" / "develop" / "app" / "out" / "x").read_text() == "hi\n"
    # nothing registered: app is not built
    assert json.loads(raisin("show", "--json", cwd=proj).out)["components"]["app"]["built"] is False

    r = raisin("develop", "app", "-c", "exit 5", cwd=proj)
    assert r.code == 5, r


def test_compiler_cache_rebuilds_only_the_change_and_equals_a_clean_build(tmp_path: Path) -> None:
    import shutil

    import pytest

    if shutil.which("ccache") is None:
        pytest.fail("ccache is not installed (.ci/run installs it: apt-get install ccache)")
    proj = tmp_path / "proj"
    src = proj / "checkout"
    src.mkdir(parents=True)
    for i in range(4):
        (src / f"f{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n")
    (src / "main.c").write_text("int f0(void);\nint main(void) { return f0(); }\n")
    (src / "Makefile").write_text(
        "OBJS = main.o f0.o f1.o f2.o f3.o\nprog: $(OBJS)\n\tcc -o prog $(OBJS)\n"
        "%.o: %.c\n\tcc -O2 -g -c $< -o $@\n"
    )
    (proj / "raisin.toml").write_text(
        """
[components.prog]
source = { path = "checkout" }
build = ["make", "install -Dm755 prog $out/bin/prog"]
"""
    )
    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    assert "compiler cache, prog: 0 hits, 5 misses" in r.err

    (src / "f2.c").write_text("int f2(void) { return 22; }\n")  # the one-line change
    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    # the previous build tree, with only f2.c new: one compile, the rest is make's own tracking
    assert "incremental, prog: started from its previous build tree" in r.err
    assert "compiler cache, prog: 0 hits, 1 misses" in r.err
    cached = raisin("store", "hash", str(_out_of(proj, "prog")), cwd=proj).out

    # the same lock built clean, without the cache, in another store: the same bytes
    r = raisin("--store", str(tmp_path / "clean"), "realize", "--incremental", "off", cwd=proj)
    assert r.code == 0, r
    assert "compiler cache" not in r.err
    clean = raisin("store", "hash", str(tmp_path / "clean" / _out_of(proj, "prog").name), cwd=proj)
    assert clean.out == cached
    r = raisin("realize", "--check", cwd=proj)  # and --check (a clean rebuild) agrees
    assert r.code == 0, r


def _out_of(proj: Path, name: str) -> Path:
    r = raisin("show", "--json", cwd=proj)
    return Path(json.loads(r.out)["components"][name]["out"])
