"""Git sources: no host command through git, clear errors that write nothing, submodules."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import GIT_ENV, git, make_repo, nix_hash, raisin


def _lock(proj: Path) -> dict:
    return tomllib.loads((proj / "raisin.lock").read_text())


def _manifest(proj: Path, source: str, build: str = '"true"') -> None:
    proj.mkdir(parents=True, exist_ok=True)
    (proj / "raisin.toml").write_text(f"[components.x]\nsource = {source}\nbuild = [{build}]\n")


# ---------------------------------------------------------------- no host commands


@pytest.mark.parametrize(
    ("source", "key", "needle"),
    [
        ('{{ git = "--upload-pack=touch {m}", ref = "v1" }}', "components.x.source.git", "'-'"),
        ('{{ git = "--upload-pack=touch {m}" }}', "components.x.source.git", "'-'"),
        ('{{ git = "ext::sh -c touch% {m}" }}', "components.x.source.git", "ext::"),
        ('{{ git = "fd::3" }}', "components.x.source.git", "fd::"),
        ('{{ git = "foo://h/x" }}', "components.x.source.git", "foo://"),
        ('{{ git = "file:///srv/x", ref = "--upload-pack=touch {m}" }}', "source.ref", "'-'"),
    ],
)
def test_manifest_url_or_ref_cannot_run_a_host_command(tmp_path, source, key, needle):
    marker = tmp_path / "marker"
    proj = tmp_path / "proj"
    _manifest(proj, source.format(m=marker))
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert key in r.err and needle in r.err, r
    assert r.err.startswith("error: raisin.toml:2:")
    assert len(r.err.strip().splitlines()) <= 2
    assert not marker.exists()
    assert sorted(os.listdir(proj)) == ["raisin.toml"]  # no store, no lock


def test_lock_update_with_a_bad_url_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    proj = tmp_path / "proj"
    _manifest(proj, f'{{ git = "file://{tmp_path}/repo", ref = "main" }}')
    assert raisin("lock", cwd=proj).code == 0
    before = (proj / "raisin.lock").read_bytes()
    _manifest(proj, f'{{ git = "ext::sh -c touch% {marker}", ref = "main" }}')
    r = raisin("lock", "--update", "x", cwd=proj)
    assert r.code == 2 and "components.x.source.git" in r.err, r
    assert not marker.exists()
    assert (proj / "raisin.lock").read_bytes() == before


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("url", "--upload-pack=touch {m}"),
        ("url", "ext::sh -c touch% {m}"),
        ("ref", "--upload-pack=touch {m}"),
    ],
)
def test_lock_given_to_realize_cannot_run_a_host_command(tmp_path, key, value):
    marker = tmp_path / "marker"
    make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    proj = tmp_path / "proj"
    url = f"file://{tmp_path}/repo"
    _manifest(proj, f'{{ git = "{url}", ref = "main" }}')
    assert raisin("lock", cwd=proj).code == 0
    text = (proj / "raisin.lock").read_text()
    old = f'{key} = "{url if key == "url" else "main"}"'
    assert old in text
    evil = tmp_path / "evil.lock"
    evil.write_text(text.replace(old, f'{key} = "{value.format(m=marker)}"'))
    shutil.rmtree(proj / "store")
    r = raisin("realize", "--lock", str(evil), cwd=proj)
    assert r.code == 2, r
    assert f"components.x.source.{key}" in r.err and "evil.lock" in r.err, r
    assert not marker.exists()
    assert not (proj / "store").exists()


def test_gitmodules_url_cannot_run_a_host_command(tmp_path):
    marker = tmp_path / "marker"
    sub_rev = make_repo(tmp_path / "sub", {"s.txt": "s\n"})
    sup = tmp_path / "super"
    make_repo(sup, {"main.c": "int x;\n"})
    (sup / "lib").mkdir()  # a submodule not checked out
    git(sup, "update-index", "--add", "--cacheinfo", f"160000,{sub_rev},lib")
    (sup / ".gitmodules").write_text(
        f'[submodule "lib"]\n\tpath = lib\n\turl = ext::sh -c touch% {marker}\n'
    )
    make_repo(sup, {})
    proj = tmp_path / "proj"
    _manifest(proj, f'{{ git = "file://{sup}", ref = "main" }}')
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert "submodule lib" in r.err and "ext::" in r.err
    assert not marker.exists()
    assert not (proj / "raisin.lock").exists()


# ---------------------------------------------------------------- errors write nothing


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ('{{ git = "file://{t}/nosuch.git" }}', "cannot reach git remote file://{t}/nosuch.git: "),
        ('{{ git = "not a url at all" }}', "cannot reach git remote not a url at all: "),
        ('{{ git = "file://{t}/repo", ref = "v9" }}', "ref 'v9' not found in git remote"),
        ('{{ git = "file://{t}/repo", ref = "{z}" }}', "commit {z} not found in file://{t}/repo"),
    ],
)
def test_bad_url_or_ref_one_clear_sentence_and_no_store(tmp_path, source, needle):
    make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    proj = tmp_path / "proj"
    z = "0123456789" * 4
    _manifest(proj, source.format(t=tmp_path, z=z))
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert needle.format(t=tmp_path, z=z) in r.err, r
    assert "repository exists" not in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) <= 2
    assert sorted(os.listdir(proj)) == ["raisin.toml"]  # no store/, no store/.raisin/git


# ---------------------------------------------------------------- submodules


def _recursive_checkout(url: str, dest: Path) -> Path:
    """The oracle: a real recursive clone, .git dirs and files removed."""
    env = dict(os.environ, **GIT_ENV)
    subprocess.run(
        [
            "git",
            "-c",
            "protocol.file.allow=always",
            "clone",
            "-q",
            "--recurse-submodules",
            url,
            dest,
        ],
        check=True,
        env=env,
    )
    for root, dirs, files in os.walk(dest):
        if ".git" in dirs:
            shutil.rmtree(Path(root) / ".git")
            dirs.remove(".git")
        if ".git" in files:
            os.unlink(Path(root) / ".git")
    return dest


@pytest.fixture
def superproject(tmp_path: Path) -> dict[str, Path]:
    """super -> lib/sub (relative URL ../sub) -> deep (relative URL ../deep), all local repos."""
    repos = tmp_path / "repos"
    make_repo(repos / "deep", {"d.txt": "deep 1\n"})
    make_repo(repos / "sub", {"s.txt": "sub 1\n"})
    git(
        repos / "sub",
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        "../deep",
        "deep",
    )
    make_repo(repos / "sub", {})
    make_repo(repos / "super", {"main.c": "int main;\n"})
    git(
        repos / "super",
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        "../sub",
        "lib/sub",
    )
    git(
        repos / "super",
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "update",
        "--init",
        "--recursive",
    )
    make_repo(repos / "super", {}, date=1700000300)
    proj = tmp_path / "proj"
    _manifest(
        proj,
        f'{{ git = "file://{repos}/super", ref = "main" }}',
        '"install -Dm644 lib/sub/s.txt $out/s.txt", "install -Dm644 lib/sub/deep/d.txt $out/d.txt"',
    )
    return {"repos": repos, "proj": proj}


def test_submodules_pinned_by_the_recorded_commit(superproject, tmp_path):
    repos, proj = superproject["repos"], superproject["proj"]
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    src = _lock(proj)["components"]["x"]["source"]
    sub_rev = git(repos / "sub", "rev-parse", "HEAD")
    deep_rev = git(repos / "deep", "rev-parse", "HEAD")
    assert src["submodules"] == [
        {"path": "lib/sub", "url": f"file://{repos}/sub", "rev": sub_rev},
        {"path": "lib/sub/deep", "url": f"file://{repos}/deep", "rev": deep_rev},
    ]
    oracle = _recursive_checkout(f"file://{repos}/super", tmp_path / "oracle1")
    assert src["nar_hash"] == nix_hash(oracle)
    mirrors = sorted(os.listdir(proj / "store" / ".raisin" / "git"))
    assert len(mirrors) == 3 and all(m.endswith(".git") for m in mirrors)

    # the submodule moves upstream alone: the lock does not change
    before = (proj / "raisin.lock").read_bytes()
    make_repo(repos / "sub", {"s.txt": "sub 2\n"}, date=1700000400)
    r = raisin("lock", "--update", "x", cwd=proj)
    assert r.code == 0, r
    assert (proj / "raisin.lock").read_bytes() == before

    # the superproject records the new commit: lock --update moves the pin
    git(repos / "super" / "lib" / "sub", "pull", "-q", "origin", "main")
    make_repo(repos / "super", {}, date=1700000500)
    r = raisin("lock", "--update", "x", cwd=proj)
    assert r.code == 0, r
    src = _lock(proj)["components"]["x"]["source"]
    new_sub = git(repos / "sub", "rev-parse", "HEAD")
    assert new_sub != sub_rev
    assert src["submodules"][0]["rev"] == new_sub
    oracle = _recursive_checkout(f"file://{repos}/super", tmp_path / "oracle2")
    assert src["nar_hash"] == nix_hash(oracle)

    # the lock alone rebuilds it: a fresh store fetches the superproject and its submodules
    shutil.rmtree(proj / "store")
    r = raisin("realize", "--sandbox", "none", cwd=proj)
    assert r.code == 0, r
    out = proj / "store" / _lock(proj)["components"]["x"]["out"]
    assert (out / "s.txt").read_text() == "sub 2\n"
    assert (out / "d.txt").read_text() == "deep 1\n"


def test_submodules_false_leaves_gitlinks_empty(superproject, tmp_path):
    repos, proj = superproject["repos"], superproject["proj"]
    _manifest(proj, f'{{ git = "file://{repos}/super", ref = "main", submodules = false }}')
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    src = _lock(proj)["components"]["x"]["source"]
    assert "submodules" not in src
    tree = proj / "store" / src["store"]
    assert (tree / "lib" / "sub").is_dir() and not os.listdir(tree / "lib" / "sub")
    assert len(os.listdir(proj / "store" / ".raisin" / "git")) == 1


# ---------------------------------------------------------------- raisin diff


def test_diff_says_when_the_log_is_not_fetched_and_fetch_gets_it(tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"}, date=1700000000)
    proj = tmp_path / "proj"
    _manifest(proj, f'{{ git = "file://{repo}", ref = "main" }}')
    assert raisin("lock", cwd=proj).code == 0
    shutil.copy(proj / "raisin.lock", tmp_path / "old.lock")
    make_repo(repo, {"a.txt": "b\n"}, date=1700000600)
    _manifest(proj, f'{{ git = "file://{repo}", ref = "main" }}', '"true", "echo new step"')
    assert raisin("lock", "--update", cwd=proj).code == 0
    shutil.rmtree(proj / "store")  # a lock from elsewhere: no mirror here
    r = raisin("diff", str(tmp_path / "old.lock"), cwd=proj)
    assert r.code == 0, r
    assert "log unavailable: not fetched (run with --fetch)" in r.out
    assert "commit at 1700000600" not in r.out
    assert "build changed:" in r.out and "+echo new step" in r.out
    assert not (proj / "store").exists()
    r = raisin("diff", "--fetch", str(tmp_path / "old.lock"), cwd=proj)
    assert r.code == 0, r
    assert "commit at 1700000600" in r.out and "log unavailable" not in r.out
