"""raisin lock against real git repositories, path and url sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import git, make_repo, nix_hash, raisin

GREET_C = '#include <stdio.h>\nint greet(char *b, int n, const char *w) { return snprintf(b, n, "Hello, %s!", w); }\n'


@pytest.fixture
def stack(tmp_path: Path) -> dict[str, object]:
    """Three git repos (annotated tag, lightweight tag, branch) + a manifest using them."""
    repos = tmp_path / "repos"
    greet_rev = make_repo(
        repos / "greet",
        {
            "greet.c": GREET_C,
            "greet.h": "int greet(char *, int, const char *);\n",
            "version.txt": "$Format:%H$\n",
            ".gitattributes": "version.txt export-subst\nignored.txt export-ignore\n* text=auto eol=crlf\n",
            "ignored.txt": "still here\n",
        },
        tag="v1.0",
        annotated=True,
        date=1700000000,
    )
    hello_rev = make_repo(
        repos / "hello",
        {"main.c": "int main(void) { return 0; }\n", "run.sh": "#!/bin/sh\necho hi\n"},
        tag="v1.2",
        date=1700000100,
    )
    os.chmod(repos / "hello" / "run.sh", 0o755)
    git(repos / "hello", "add", "run.sh")
    git(repos / "hello", "commit", "-q", "-m", "exec", date=1700000150)
    git(repos / "hello", "tag", "-f", "v1.2")
    hello_rev = git(repos / "hello", "rev-parse", "HEAD")
    os.symlink("main.c", repos / "hello" / "link.c")
    data_rev = make_repo(repos / "data", {"motd.txt": "hi\n"}, date=1700000200)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "raisin.toml").write_text(
        f"""
[components.greet]
source = {{ git = "file://{repos}/greet", ref = "v1.0" }}
build = ["install -Dm644 greet.h $out/usr/include/greet.h"]

[components.hello]
source = {{ git = "file://{repos}/hello", ref = "v1.2" }}
deps = ["greet", "data"]
build = ["cc main.c -o hello", "install -Dm755 hello $out/usr/bin/hello"]

[components.data]
source = {{ git = "file://{repos}/data", ref = "main" }}
build = ["install -Dm644 motd.txt $out/share/motd.txt"]
"""
    )
    return {
        "repos": repos,
        "proj": proj,
        "revs": {"greet": greet_rev, "hello": hello_rev, "data": data_rev},
    }


def _lock(proj: Path) -> dict:
    import tomllib

    return tomllib.loads((proj / "raisin.lock").read_text())


def _export(repo: Path, rev: str, dest: Path) -> Path:
    """Reference export: a plain clone + checkout with no attribute processing."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(dest)], check=True)
    subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "core.eol=lf", "checkout", "-q", rev],
        cwd=dest,
        check=True,
        env=dict(os.environ, GIT_CONFIG_NOSYSTEM="1"),
    )
    # Undo any eol conversion the checkout applied, from the blobs themselves.
    ls = subprocess.run(
        ["git", "ls-tree", "-r", "-z", rev], cwd=dest, capture_output=True, check=True
    ).stdout
    for rec in ls.split(b"\0"):
        if not rec:
            continue
        meta, _, name = rec.partition(b"\t")
        mode, _typ, oid = meta.decode().split()
        if mode in ("100644", "100755"):
            blob = subprocess.run(
                ["git", "cat-file", "blob", oid], cwd=dest, capture_output=True, check=True
            ).stdout
            (dest / os.fsdecode(name)).write_bytes(blob)
    shutil.rmtree(dest / ".git")
    return dest


def test_lock_pins_full_revs_and_nix_compatible_hashes(stack, tmp_path):
    proj, repos, revs = stack["proj"], stack["repos"], stack["revs"]
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    lk = _lock(proj)
    assert lk["version"] == 2
    assert (proj / "raisin.lock").read_text().startswith("# @generated")
    for name, tag in (("greet", "v1.0"), ("hello", "v1.2"), ("data", "main")):
        expected = git(repos / name, "rev-parse", f"{tag}^{{commit}}")
        src = lk["components"][name]["source"]
        assert src["rev"] == expected == revs[name]
        ref_tree = _export(repos / name, expected, tmp_path / f"export-{name}")
        assert src["nar_hash"] == nix_hash(ref_tree), name
        # the store copy of the source is the same tree
        store_copy = proj / "store" / src["store"]
        assert nix_hash(store_copy) == src["nar_hash"]
    greet_src = proj / "store" / lk["components"]["greet"]["source"]["store"]
    # verbatim: no export-subst expansion, export-ignore'd file kept, no CRLF
    assert (greet_src / "version.txt").read_text() == "$Format:%H$\n"
    assert (greet_src / "ignored.txt").exists()
    assert b"\r\n" not in (greet_src / "greet.c").read_bytes()
    hello_src = proj / "store" / lk["components"]["hello"]["source"]["store"]
    assert os.access(hello_src / "run.sh", os.X_OK)
    # versions come from tags, else the short rev; dates from the commit
    assert lk["components"]["greet"]["version"] == "1.0"
    assert lk["components"]["hello"]["version"] == "1.2"
    assert lk["components"]["data"]["version"] == revs["data"][:7]
    assert lk["components"]["data"]["source"]["date"] == 1700000200
    assert lk["components"]["hello"]["deps"] == ["data", "greet"]
    for c in lk["components"].values():
        assert len(c["out"].split("-", 1)[0]) == 32


def test_lock_is_deterministic_and_noop_keeps_file(stack, tmp_path):
    proj = stack["proj"]
    assert raisin("lock", cwd=proj).code == 0
    first = (proj / "raisin.lock").read_bytes()
    st = (proj / "raisin.lock").stat()
    r = raisin("lock", cwd=proj)
    assert r.code == 0 and "unchanged" in r.err
    st2 = (proj / "raisin.lock").stat()
    assert (st.st_mtime_ns, st.st_ino) == (st2.st_mtime_ns, st2.st_ino)
    assert (proj / "raisin.lock").read_bytes() == first
    # another directory, another store: byte-identical lock
    other = tmp_path / "elsewhere" / "proj2"
    other.mkdir(parents=True)
    shutil.copy(proj / "raisin.toml", other / "raisin.toml")
    r = raisin("--store", str(tmp_path / "store2"), "lock", cwd=other)
    assert r.code == 0, r
    assert (other / "raisin.lock").read_bytes() == first
    assert str(proj) not in first.decode() and "store" not in first.decode().replace(
        "\nstore = ", ""
    )


def test_changed_ref_moves_only_entry_and_dependents(stack):
    proj, repos = stack["proj"], stack["repos"]
    assert raisin("lock", cwd=proj).code == 0
    before = _lock(proj)["components"]
    assert raisin("lock", "--check", cwd=proj).code == 0
    # a new commit on data's branch does NOT move the pin of an unchanged component
    make_repo(repos / "data", {"motd.txt": "hello again\n"}, date=1700000300)
    assert raisin("lock", cwd=proj).code == 0
    assert _lock(proj)["components"] == before
    # change greet's ref in the manifest
    make_repo(repos / "greet", {"greet.h": "int greet(void);\n"}, tag="v1.1", date=1700000400)
    text = (proj / "raisin.toml").read_text().replace('ref = "v1.0"', 'ref = "v1.1"')
    (proj / "raisin.toml").write_text(text)
    lock_bytes = (proj / "raisin.lock").read_bytes()
    r = raisin("lock", "--check", cwd=proj)
    assert r.code == 1, r
    assert "greet" in r.out and "hello" not in r.out
    assert (proj / "raisin.lock").read_bytes() == lock_bytes  # --check writes nothing
    assert raisin("lock", cwd=proj).code == 0
    after = _lock(proj)["components"]
    assert after["greet"]["source"]["rev"] != before["greet"]["source"]["rev"]
    assert after["greet"]["out"] != before["greet"]["out"]
    assert after["hello"]["out"] != before["hello"]["out"]  # dependent moves
    assert after["hello"]["source"] == before["hello"]["source"]
    assert after["data"] == before["data"]  # unrelated: untouched
    assert raisin("lock", "--check", cwd=proj).code == 0
    # --update NAME re-resolves the moved branch
    r = raisin("lock", "--update", "data", cwd=proj)
    assert r.code == 0, r
    assert _lock(proj)["components"]["data"]["source"]["rev"] == git(
        repos / "data", "rev-parse", "main"
    )


def test_offline_uses_mirrors_and_names_what_needs_network(stack):
    proj, repos = stack["proj"], stack["repos"]
    assert raisin("lock", cwd=proj).code == 0
    (proj / "raisin.lock").unlink()
    r = raisin("lock", "--offline", cwd=proj)
    assert r.code == 0, r
    make_repo(repos / "greet", {"x": "1"}, tag="v2.0", date=1700000500)
    (proj / "raisin.toml").write_text(
        (proj / "raisin.toml").read_text().replace('"v1.0"', '"v2.0"')
    )
    r = raisin("lock", "--offline", cwd=proj)
    assert r.code == 2
    assert "components.greet.source" in r.err and "network" in r.err and "Traceback" not in r.err


def test_full_commit_ref_and_annotated_tag_peeled(stack):
    proj, revs = stack["proj"], stack["revs"]
    text = (proj / "raisin.toml").read_text().replace('ref = "main"', f'ref = "{revs["data"]}"')
    (proj / "raisin.toml").write_text(text)
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    assert _lock(proj)["components"]["data"]["source"]["rev"] == revs["data"]


@pytest.mark.parametrize(
    "text,needle,line",
    [
        ('[components.a]\nsource = { path = "." \nbuild = ["x"]\n', "invalid TOML", ":3"),
        (
            '[components.a]\nsource = { path = ".", reff = "x" }\nbuild = ["x"]\n',
            "components.a.source: unknown key 'reff' (expected one of: git, ref, path, url, hash, debian, version, submodules)",
            ":2",
        ),
        (
            '[components.a]\nsource = { path = "." }\nbuild = "make"\n',
            "components.a.build: expected an array",
            ":3",
        ),
        (
            '[components.a]\nsource = { path = "." }\nbuild = ["x"]\ndeps = ["nope"]\n',
            "components.a.deps: unknown dependency 'nope'",
            ":4",
        ),
        (
            '[components.a]\nsource = { path = "." }\nbuild = ["x"]\ndeps = ["b"]\n[components.b]\nsource = { path = "." }\nbuild = ["x"]\ndeps = ["a"]\n',
            "dependency cycle: a -> b -> a",
            "",
        ),
        (
            '[components.a]\nsource = { path = "." }\n',
            "expected 'build' (shell steps) or 'recipe'",
            "",
        ),
        (
            '[components.a]\nsource = { path = "." }\nrecipe = "nosuch"\n',
            "unknown recipe 'nosuch'",
            "",
        ),
    ],
)
def test_bad_manifest_exit_2_with_key_path(tmp_path, text, needle, line):
    (tmp_path / "raisin.toml").write_text(text)
    r = raisin("lock", cwd=tmp_path)
    assert r.code == 2, r
    assert "Traceback" not in r.err
    assert needle in r.err
    assert r.err.startswith(f"error: raisin.toml{line}")
    assert len(r.err.strip().splitlines()) <= 2
    assert not (tmp_path / "raisin.lock").exists()


def test_ref_not_found_and_unreachable_remote(stack, tmp_path):
    proj, repos = stack["proj"], stack["repos"]
    (proj / "raisin.toml").write_text(
        (proj / "raisin.toml").read_text().replace('"v1.0"', '"v9.9"')
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert (
        "'v9.9'" in r.err
        and f"file://{repos}/greet" in r.err
        and "components.greet.source" in r.err
    )
    assert "Traceback" not in r.err
    (proj / "raisin.toml").write_text(
        '[components.x]\nsource = { git = "http://127.0.0.1:9/none.git", ref = "v1" }\nbuild = ["true"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert "http://127.0.0.1:9/none.git" in r.err and "Traceback" not in r.err


def test_hand_edited_lock_is_caught(stack):
    proj = stack["proj"]
    assert raisin("lock", cwd=proj).code == 0
    text = (proj / "raisin.lock").read_text()
    lk = _lock(proj)
    old = lk["components"]["data"]["source"]["nar_hash"]
    # flip the hash to another valid one
    new = nix_hash(proj / "raisin.toml")
    store_old = lk["components"]["data"]["source"]["store"]
    (proj / "raisin.lock").write_text(text.replace(old, new))
    r = raisin("show", cwd=proj)
    assert r.code == 2, r
    assert "raisin.lock" in r.err and "components.data" in r.err and "Traceback" not in r.err
    r = raisin("lock", "--check", cwd=proj)
    assert r.code == 1 and "data" in r.out
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    assert _lock(proj)["components"]["data"]["source"]["nar_hash"] == old
    assert _lock(proj)["components"]["data"]["source"]["store"] == store_old
    # a newer format is refused
    (proj / "raisin.lock").write_text(text.replace("version = 2\n", "version = 7\n", 1))
    r = raisin("show", cwd=proj)
    assert r.code == 2 and "newer" in r.err


def test_show_graph_diff(stack, tmp_path):
    proj, repos = stack["proj"], stack["repos"]
    assert raisin("lock", cwd=proj).code == 0
    r = raisin("show", "--json", cwd=proj)
    assert r.code == 0, r
    data = json.loads(r.out)["components"]
    assert set(data) == {"greet", "hello", "data"}
    for c in data.values():
        assert set(c) >= {"rev", "nar_hash", "out", "built", "deps"}
        assert c["built"] is False and os.path.isabs(c["out"])
        assert c["out"].startswith(str(proj / "store"))
    assert data["hello"]["deps"] == ["data", "greet"]
    r = raisin("graph", "--format", "dot", cwd=proj)
    assert r.code == 0 and '"hello" -> "greet"' in r.out
    r = raisin("graph", "--format", "json", cwd=proj)
    g = json.loads(r.out)
    assert {(e["source"], e["target"]) for e in g["edges"]} == {
        ("hello", "greet"),
        ("hello", "data"),
    }
    shutil.copy(proj / "raisin.lock", tmp_path / "old.lock")
    old_rev = stack["revs"]["data"]
    new_rev = make_repo(repos / "data", {"motd.txt": "new\n"}, date=1700000600)
    assert raisin("lock", "--update", "data", cwd=proj).code == 0
    r = raisin("diff", str(tmp_path / "old.lock"), cwd=proj)
    assert r.code == 0, r
    assert "~ data" in r.out and f"rev: {old_rev} -> {new_rev}" in r.out
    assert "commit at 1700000600" in r.out  # the one-line log between them
    assert "~ hello" in r.out and "out:" in r.out
    assert "greet" not in r.out


def test_path_source_leaves_out_dot_git_and_tracks_edits(tmp_path):
    src = tmp_path / "proj" / "src"
    src.mkdir(parents=True)
    (src / "a.c").write_text("int a;\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("junk\n")
    proj = tmp_path / "proj"
    (proj / "raisin.toml").write_text(
        '[components.a]\nsource = { path = "src" }\nbuild = ["true"]\n'
    )
    assert raisin("lock", cwd=proj).code == 0
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.c").write_text("int a;\n")
    assert _lock(proj)["components"]["a"]["source"]["nar_hash"] == nix_hash(clean)
    assert _lock(proj)["components"]["a"]["version"] == "local"
    assert raisin("lock", "--check", cwd=proj).code == 0
    (src / "a.c").write_text("int a = 1;\n")
    r = raisin("lock", "--check", cwd=proj)
    assert r.code == 1 and "source directory changed" in r.out
    assert raisin("lock", cwd=proj).code == 0
    (clean / "a.c").write_text("int a = 1;\n")
    assert _lock(proj)["components"]["a"]["source"]["nar_hash"] == nix_hash(clean)


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _tarball(path: Path, files: dict[str, bytes], prefix: str = "pkg-1.4/", extra=None) -> None:
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            info.mtime = 1600000000
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)


def test_url_source_hash_checked_and_unpacked_safely(http_dir, tmp_path):
    www, base = http_dir
    _tarball(www / "pkg-1.4.tar.gz", {"a.txt": b"a\n", "sub/b.txt": b"b\n"})
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "raisin.toml").write_text(
        f'[components.pkg]\nsource = {{ url = "{base}/pkg-1.4.tar.gz" }}\nbuild = ["true"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    src = _lock(proj)["components"]["pkg"]
    assert src["version"] == "1.4"
    assert src["source"]["date"] == 1600000000
    ref = tmp_path / "ref"
    (ref / "sub").mkdir(parents=True)
    (ref / "a.txt").write_text("a\n")
    (ref / "sub" / "b.txt").write_text("b\n")
    assert src["source"]["nar_hash"] == nix_hash(ref)
    # a wrong pinned hash: exit 2, expected and actual named
    wrong = nix_hash(ref)
    (proj / "raisin.toml").write_text(
        f'[components.pkg]\nsource = {{ url = "{base}/pkg-1.4.tar.gz", hash = "{wrong}" }}\nbuild = ["true"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 2 and wrong in r.err and "downloaded sha256-" in r.err, r

    def evil(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 0
        import io

        tar.addfile(info, io.BytesIO(b""))

    _tarball(www / "evil-1.0.tar.gz", {"ok": b"x"}, extra=evil)
    (proj / "raisin.toml").write_text(
        f'[components.e]\nsource = {{ url = "{base}/evil-1.0.tar.gz" }}\nbuild = ["true"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 2 and "escape" in r.err, r
    assert not (tmp_path / "escape.txt").exists()

    def link_out(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("pkg-1.4/l")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)

    _tarball(www / "link-1.0.tar.gz", {"ok": b"x"}, extra=link_out)
    (proj / "raisin.toml").write_text(
        f'[components.e]\nsource = {{ url = "{base}/link-1.0.tar.gz" }}\nbuild = ["true"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r


def test_init_writes_a_manifest_that_locks(tmp_path):
    r = raisin("init", cwd=tmp_path)
    assert r.code == 0, r
    assert (tmp_path / "raisin.toml").read_text().startswith("# raisin.toml")
    r = raisin("init", cwd=tmp_path)
    assert r.code == 2 and "already exists" in r.err
    r = raisin("lock", cwd=tmp_path)
    assert r.code == 0, r


# ------------------------------------------------- corrupted locks, NUL bytes, nesting


@pytest.fixture
def path_proj(tmp_path: Path) -> Path:
    """A locked one-component project with a path source (no network, no build)."""
    proj = tmp_path / "p"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "f.txt").write_text("x\n")
    (proj / "raisin.toml").write_text(
        '[components.a]\nsource = { path = "src" }\nbuild = ["install -D f.txt $out/f.txt"]\nenv = { K = "v" }\n'
    )
    assert raisin("lock", cwd=proj).code == 0
    return proj


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        (
            'nar_hash = "',
            'nar_hash = ["x"]\nxx = "',
            "raisin.lock: components.a.source.nar_hash: expected an SRI hash such as 'sha256-<base64>', found array [\"x\"]",
        ),
        (
            "date = ",
            'date = "soon"\nxx = ',
            'components.a.source.date: expected an integer >= 0, found string "soon"',
        ),
        ('path = "src"\n', "", "components.a.source.path: missing (a path pin needs it)"),
        (
            'version = "local"',
            "version = 3",
            "components.a.version: expected a string, found integer 3",
        ),
        (
            'env = { K = "v" }',
            'env = { K = "v\\u0000x" }',
            "components.a.env: expected a table of NAME = string (no NUL bytes)",
        ),
        (
            "deps = []",
            "deps = [1]",
            "components.a.deps: expected an array of component names, found array [1]",
        ),
        (
            'type = "path"',
            'type = "path"\nrev = "--upload-pack=touch /tmp/pwned"',
            "components.a.source.rev: expected a non-empty string not starting with '-'",
        ),
        (
            "deps = []",
            "deps = " + "[" * 5000 + "]" * 5000,
            "raisin.lock:17: invalid TOML: nested deeper than 32 levels",
        ),
        ("build = [\n", 'build = [\n  "' + "y" * 500 + '\\u0000",\n', "yyy...\n"),
    ],
    ids=[
        "nar_hash-array",
        "date-string",
        "missing-path",
        "version-int",
        "nul-env",
        "deps-int",
        "dash-rev",
        "deep",
        "long-nul-step",
    ],
)
def test_corrupted_lock_exit_2_naming_the_key(
    path_proj: Path, old: str, new: str, needle: str
) -> None:
    lock = path_proj / "raisin.lock"
    text = lock.read_text()
    assert old in text
    lock.write_text(text.replace(old, new, 1))
    before = sorted(p.name for p in path_proj.iterdir())
    for cmd in (["show"], ["realize"]):
        r = raisin(*cmd, cwd=path_proj)
        assert r.code == 2, r
        assert "Traceback" not in r.err and needle in r.err, r
        assert r.err.startswith("error: raisin.lock"), r
        assert len(r.err.strip().splitlines()) <= 2 and len(r.err) < 400, r
    assert sorted(p.name for p in path_proj.iterdir()) == before


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('env = { K = "v" }', 'env = { K = "v\\u0000" }', "components.a.env"),
        ('build = ["', 'build = ["\\u0000', "components.a.build"),
        (
            'source = { path = "src" }',
            'source = { git = "file:///x", ref = "ma\\u0000in" }',
            "components.a.source",
        ),
    ],
)
def test_nul_in_manifest_is_refused_before_anything_is_written(
    path_proj: Path, old: str, new: str, key: str
) -> None:
    m = path_proj / "raisin.toml"
    m.write_text(m.read_text().replace(old, new, 1))
    lock_before = (path_proj / "raisin.lock").read_bytes()
    r = raisin("lock", cwd=path_proj)
    assert r.code == 2, r
    assert (
        "raisin.toml:" in r.err and key in r.err and "NUL" in r.err and "Traceback" not in r.err
    ), r
    assert (path_proj / "raisin.lock").read_bytes() == lock_before


def test_deep_manifest_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "raisin.toml").write_text("[components.a]\nx = " + "[" * 3000 + "]" * 3000 + "\n")
    for cmd in (["lock"], ["realize"]):
        r = raisin(*cmd, cwd=tmp_path)
        assert r.code == 2, r
        assert "error: raisin.toml:2: invalid TOML: nested deeper than 32 levels\n" in r.err, r
        assert "Traceback" not in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raisin.toml"]


# ------------------------------------------------- branch pins, recipe drift


def test_build_edit_keeps_a_moved_branch_pin(stack) -> None:
    proj, repos, revs = stack["proj"], stack["repos"], stack["revs"]
    assert raisin("lock", cwd=proj).code == 0
    before = _lock(proj)["components"]
    moved = make_repo(repos / "data", {"motd.txt": "moved upstream\n"}, date=1700000900)
    manifest = proj / "raisin.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace("$out/share/motd.txt", "$out/share/motd/motd.txt"))
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    after = _lock(proj)["components"]
    assert after["data"]["source"]["rev"] == revs["data"]  # the pin stayed
    assert after["data"]["source"] == before["data"]["source"]
    assert after["data"]["build"] == ["install -Dm644 motd.txt $out/share/motd/motd.txt"]
    assert after["data"]["out"] != before["data"]["out"]
    assert after["hello"]["out"] != before["hello"]["out"]  # a dependent follows the new out
    assert after["greet"] == before["greet"]
    # an env edit too
    manifest.write_text(
        manifest.read_text().replace('ref = "main" }', 'ref = "main" }\nenv = { X = "1" }')
    )
    assert raisin("lock", cwd=proj).code == 0
    assert _lock(proj)["components"]["data"]["source"]["rev"] == revs["data"]
    # editing the source table (or asking) does move it
    assert raisin("lock", "--update", "data", cwd=proj).code == 0
    assert _lock(proj)["components"]["data"]["source"]["rev"] == moved


def test_version_1_lock_still_reads_and_build_edit_re_resolves(stack) -> None:
    proj, repos = stack["proj"], stack["repos"]
    assert raisin("lock", cwd=proj).code == 0
    lock = proj / "raisin.lock"
    v1 = "\n".join(
        line for line in lock.read_text().splitlines() if not line.startswith("decl-source")
    ).replace("version = 2\n", "version = 1\n", 1)
    lock.write_text(v1 + "\n")
    assert raisin("show", cwd=proj).code == 0
    assert raisin("lock", "--check", cwd=proj).code == 0
    moved = make_repo(repos / "data", {"motd.txt": "moved\n"}, date=1700000900)
    manifest = proj / "raisin.toml"
    manifest.write_text(manifest.read_text().replace("$out/share/motd.txt", "$out/motd.txt"))
    assert raisin("lock", cwd=proj).code == 0
    lk = _lock(proj)
    assert lk["version"] == 2 and lk["components"]["data"]["source"]["rev"] == moved
    assert all("decl-source" in c for c in lk["components"].values())


def test_lock_check_notes_recipe_drift(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    (proj / "bios").mkdir(parents=True)
    (proj / "bios" / "Makefile").write_text("all:\n")
    (proj / "raisin.toml").write_text(
        '[components.seabios]\nsource = { path = "bios" }\nversion = "1.16.2"\nrecipe = "seabios"\n'
    )
    assert raisin("lock", cwd=proj).code == 0
    lock = proj / "raisin.lock"
    lk = _lock(proj)["components"]["seabios"]
    assert lk["recipe-hash"].startswith("sha256-") and len(lk["recipe-hash"]) == 71
    r = raisin("lock", "--check", cwd=proj)
    assert r.code == 0 and "note" not in r.err, r
    # as if locked by a raisin whose seabios recipe was another text
    text = lock.read_text()
    lock.write_text(text.replace(lk["recipe-hash"], "sha256-" + "0" * 64))
    r = raisin("lock", "--check", cwd=proj)
    assert r.code == 0, r
    assert "note: seabios: locked from an older or newer text of recipe 'seabios'" in r.err, r
    assert "raisin lock --update seabios" in r.err
    assert lock.read_text() != text  # --check wrote nothing


def test_build_edit_with_changed_directory_repins_the_path_source(path_proj: Path) -> None:
    before = _lock(path_proj)["components"]["a"]["source"]["nar_hash"]
    (path_proj / "src" / "f.txt").write_text("changed\n")
    m = path_proj / "raisin.toml"
    m.write_text(m.read_text().replace('K = "v"', 'K = "w"'))
    assert raisin("lock", cwd=path_proj).code == 0
    after = _lock(path_proj)["components"]["a"]
    assert after["env"] == {"K": "w"}
    assert after["source"]["nar_hash"] == nix_hash(path_proj / "src") != before


def test_a_bad_url_hash_writes_nothing(tmp_path: Path) -> None:
    import io

    proj = tmp_path / "proj"
    proj.mkdir()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/f.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "a.tgz").write_bytes(data.getvalue())
    wrong = "sha256-" + "A" * 43 + "="
    (proj / "raisin.toml").write_text(
        f'[components.a]\nsource = {{ url = "file://{tmp_path}/a.tgz", hash = "{wrong}" }}\n'
        'build = ["mkdir $out"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 2, r
    assert f"raisin.toml:2: components.a.source: file://{tmp_path}/a.tgz: expected {wrong}" in r.err
    assert sorted(p.name for p in proj.iterdir()) == ["raisin.toml"]
