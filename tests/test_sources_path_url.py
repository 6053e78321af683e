"""Path sources around the project's own state, a full disk, and url sources without a hash."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

from conftest import RAISIN, nix_hash, raisin
from servers import loopback_unproxied


def _lock(proj: Path) -> dict:
    return tomllib.loads((proj / "raisin.lock").read_text())


def _manifest(proj: Path, source: str) -> None:
    proj.mkdir(parents=True, exist_ok=True)
    (proj / "raisin.toml").write_text(
        f'[components.x]\nsource = {source}\nbuild = ["install -Dm644 a.c $out/a.c"]\n'
    )


def test_path_dot_leaves_out_the_projects_own_state_and_settles(tmp_path):
    proj = tmp_path / "proj"
    _manifest(proj, '{ path = "." }')
    (proj / "a.c").write_text("int a;\n")
    (proj / ".git").mkdir()
    (proj / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (proj / "profiles").mkdir()
    (proj / "profiles" / "junk").write_text("x\n")
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(proj / "a.c", clean)
    shutil.copy(proj / "raisin.toml", clean)
    assert _lock(proj)["components"]["x"]["source"]["nar_hash"] == nix_hash(clean)
    before = (proj / "raisin.lock").stat()
    r = raisin("lock", cwd=proj)
    assert r.code == 0 and "unchanged" in r.err, r
    after = (proj / "raisin.lock").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert raisin("lock", "--check", cwd=proj).code == 0
    r = raisin("realize", "--sandbox", "none", cwd=proj)
    assert r.code == 0, r
    assert raisin("lock", "--check", cwd=proj).code == 0  # the store now exists: still settled
    out = proj / "store" / _lock(proj)["components"]["x"]["out"]
    assert (out / "a.c").read_text() == "int a;\n"


def test_path_source_containing_the_store_is_refused(tmp_path):
    proj = tmp_path / "proj"
    _manifest(proj, '{ path = ".." }')
    (proj / "store").mkdir()  # the default store, below ".."
    (proj / "a.c").write_text("int a;\n")
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert "components.x.source.path" in r.err and "contains the store" in r.err, r
    assert len(r.err[r.err.index("error:") :].strip().splitlines()) <= 2
    assert not (proj / "raisin.lock").exists()
    assert os.listdir(proj / "store") == []
    # a store given with --store inside a sub-directory the source points at
    (proj / "src").mkdir()
    _manifest(proj, '{ path = "src" }')
    r = raisin("--store", str(proj / "src" / "st"), "lock", cwd=proj)
    assert r.code == 2 and "contains the store" in r.err, r
    assert not (proj / "src" / "st").exists()


def test_path_source_containing_profiles_is_refused(tmp_path):
    top = tmp_path / "top"
    proj = top / "proj"
    _manifest(proj, '{ path = ".." }')
    (proj / "profiles").mkdir()
    r = raisin("--store", str(tmp_path / "elsewhere"), "lock", cwd=proj)
    assert r.code == 2, r
    assert "components.x.source.path" in r.err and "contains profiles/" in r.err, r


def test_path_source_onto_a_full_disk_is_a_clear_error(tmp_path):
    proj = tmp_path / "proj"
    _manifest(proj, '{ path = "src" }')
    (proj / "src").mkdir()
    (proj / "src" / "a.c").write_text("int a;\n")
    (proj / "src" / "big.bin").write_bytes(os.urandom(4 << 20))
    assert raisin("lock", cwd=proj).code == 0
    shutil.rmtree(proj / "store", ignore_errors=True)
    (proj / "store").mkdir()
    env = dict(os.environ)
    env.pop("RAISIN_STORE", None)
    loopback_unproxied(env)
    # the store on a 1 MiB tmpfs: the 4 MiB file cannot be copied into it
    p = subprocess.run(
        [
            "bwrap",
            "--dev-bind",
            "/",
            "/",
            "--size",
            str(1 << 20),
            "--tmpfs",
            str(proj / "store"),
            RAISIN,
            "realize",
            "--sandbox",
            "none",
        ],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "no space left on device while copying" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr[p.stderr.index("error:") :].strip().splitlines()) <= 2, p.stderr


def test_url_source_without_hash_says_what_it_pinned(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/a.c")
        data = b"int a;\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (www / "pkg-1.0.tar.gz").write_bytes(buf.getvalue())
    import base64
    import hashlib

    sri = "sha256-" + base64.b64encode(hashlib.sha256(buf.getvalue()).digest()).decode()
    proj = tmp_path / "proj"
    _manifest(proj, f'{{ url = "file://{www}/pkg-1.0.tar.gz" }}')
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    assert (
        f"pinned components.x.source.hash = {sri}; add it to raisin.toml to make it required"
        in r.err
    )
    _manifest(proj, f'{{ url = "file://{www}/pkg-1.0.tar.gz", hash = "{sri}" }}')
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    assert "pinned components.x.source.hash" not in r.err
