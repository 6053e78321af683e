"""Binary caches: keys, push, substitution over a real nginx (WebDAV PUT), export/import.

Oracles: Nix itself (`nix path-info` / `nix store verify` read raisin's cache
and check its signatures; `nix-store --restore` unpacks its NARs) and the
bytes of the paths built in another store.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from conftest import raisin
from servers import Nginx

NIX_ENV = {"NIX_CONFIG": "experimental-features = nix-command"}


# ---------------------------------------------------------------- helpers


@pytest.fixture
def nginx_server():
    """The one way tests get an nginx: a factory of started servers, all stopped afterwards."""
    if shutil.which("nginx") is None:
        pytest.skip(
            "nginx is not installed (apt-get install nginx-light libnginx-mod-http-dav-ext)"
        )
    started = []

    def start(base, **kwargs):
        n = Nginx(base, **kwargs)
        n.start()
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


@pytest.fixture
def nginx(nginx_server, tmp_path):
    return nginx_server(tmp_path / "nginx")


@pytest.fixture(scope="module")
def built_demo(tmp_path_factory):
    """The demo, realized once in store A, and a key pair; shared by the module (read-only)."""
    from conftest import DEMO

    base = tmp_path_factory.mktemp("built")
    proj = base / "demo"
    shutil.copytree(DEMO, proj, ignore=shutil.ignore_patterns("store", "raisin.lock", "profiles"))
    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    r = raisin("key", "generate", "test-cache-1", "--out", str(base / "keys"))
    assert r.code == 0, r
    return proj, base / "keys" / "test-cache-1.secret", r.out.strip()


def _show(proj: Path, *extra: str) -> dict:
    r = raisin(*extra, "show", "--json", cwd=proj)
    assert r.code == 0, r
    return json.loads(r.out)["components"]


def _fresh(proj: Path, dest: Path) -> Path:
    """A copy of the project with its lock and no store."""
    shutil.copytree(proj, dest, ignore=shutil.ignore_patterns("store", "profiles"))
    return dest


def _dump(path: Path) -> bytes:
    return subprocess.run(
        ["nix-store", "--dump", str(path)], capture_output=True, check=True
    ).stdout


def _valid(store: Path) -> list[str]:
    db = store / ".raisin" / "db.sqlite"
    if not db.exists():
        return []
    import sqlite3

    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT path FROM valid_paths")]


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under root except the store's own scratch/lock/db files."""
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if "/.raisin" in f"/{rel}":
            dirnames[:] = []
            continue
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.join(rel, n)] = (oct(st.st_mode), st.st_size if not os.path.isdir(p) else 0)
    return out


def _tmp_left(store: Path) -> list[str]:
    t = store / ".raisin" / "tmp"
    return sorted(os.listdir(t)) if t.exists() else []


# ---------------------------------------------------------------- keys


def test_key_generate_nix_format(tmp_path):
    r = raisin("key", "generate", "cache.example.org-1", "--out", str(tmp_path / "k"))
    assert r.code == 0, r
    secret, public = (
        tmp_path / "k" / "cache.example.org-1.secret",
        tmp_path / "k" / "cache.example.org-1.public",
    )
    assert secret.stat().st_mode & 0o777 == 0o600
    name, _, b64 = secret.read_text().partition(":")
    assert name == "cache.example.org-1" and len(base64.b64decode(b64)) == 64
    pname, _, pb64 = public.read_text().partition(":")
    assert pname == name and base64.b64decode(pb64) == base64.b64decode(b64)[32:]
    assert r.out.strip() == public.read_text()
    # never overwrites
    again = raisin("key", "generate", "cache.example.org-1", "--out", str(tmp_path / "k"))
    assert again.code == 2 and "not overwriting" in again.err
    bad = raisin("key", "generate", "bad name", "--out", str(tmp_path / "k"))
    assert bad.code == 2 and "invalid key name" in bad.err


# ---------------------------------------------------------------- push + substitute over nginx


def test_push_and_substitute_over_nginx(built_demo, nginx, tmp_path):
    proj, secret, public = built_demo
    r = raisin("push", nginx.url, "--key", str(secret), cwd=proj)
    assert r.code == 0, r
    assert "pushed 3 paths" in r.err
    www = nginx.root / "cache"
    assert (www / "nix-cache-info").read_text().startswith("StoreDir: /raisin/store\n")
    assert len(list(www.glob("*.narinfo"))) == 3 and len(list((www / "nar").glob("*.nar.zst"))) == 3
    again = raisin("push", nginx.url, "--key", str(secret), cwd=proj)
    assert again.code == 0 and "pushed 0 paths" in again.err and "3 already in" in again.err

    b = _fresh(proj, tmp_path / "b")
    log = nginx.base / "access.log"
    seen = len(log.read_text().splitlines())
    r = raisin("realize", "-j", "0", "--substituter", nginx.url, "--trusted-key", public, cwd=b)
    assert r.code == 0, r
    assert "substituted 3, built 0" in r.err
    assert not list((b / "store" / ".raisin" / "logs").glob("*.log"))  # nothing was built
    # the three parallel lookups asked for nix-cache-info once between them
    asked = log.read_text().splitlines()[seen:]
    assert sum("/nix-cache-info " in line for line in asked) == 1, asked
    assert sum(".narinfo " in line for line in asked) == 3, asked
    a_info, b_info = _show(proj), _show(b)
    for name, c in b_info.items():
        assert c["built"]
        assert Path(c["out"]).name == Path(a_info[name]["out"]).name
        assert _dump(Path(c["out"])) == _dump(Path(a_info[name]["out"]))
    out = subprocess.run(
        [f"{b_info['hello']['out']}/usr/bin/hello"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("Hello, Xen!")
    assert raisin("store", "verify", cwd=b).code == 0
    assert raisin("realize", cwd=b).err.strip().endswith("nothing to build")

    # nginx stopped: a normal realize builds locally and says why
    nginx.stop()
    c = _fresh(proj, tmp_path / "c")
    r = raisin(
        "realize",
        "--substituter",
        nginx.url,
        "--trusted-key",
        public,
        cwd=c,
        env={"RAISIN_HTTP_RETRIES": "0"},
    )
    assert r.code == 0, r
    assert "unreachable" in r.err and "built 3" in r.err
    # and with -j 0 that is a failure, with nothing registered
    d = _fresh(proj, tmp_path / "d")
    r = raisin(
        "realize",
        "-j",
        "0",
        "--substituter",
        nginx.url,
        "--trusted-key",
        public,
        cwd=d,
        env={"RAISIN_HTTP_RETRIES": "0"},
    )
    assert r.code == 1 and "unreachable" in r.err, r
    assert _valid(d / "store") == []


def test_nix_reads_raisin_cache(built_demo, tmp_path):
    """Nix parses every narinfo field, checks the signatures, and restores the NARs."""
    proj, secret, public = built_demo
    cache = tmp_path / "cache"
    assert raisin("push", f"file://{cache}", "--key", str(secret), cwd=proj).code == 0
    info = _show(proj)
    store_url = f"file://{cache}?store=/raisin/store"
    for name, c in info.items():
        path = "/raisin/store/" + Path(c["out"]).name
        narinfo = (cache / f"{Path(c['out']).name[:32]}.narinfo").read_text()
        fields = {line.split(":", 1)[0] for line in narinfo.splitlines()}
        assert fields >= {
            "StorePath",
            "URL",
            "Compression",
            "FileHash",
            "FileSize",
            "NarHash",
            "NarSize",
            "References",
            "Deriver",
            "Sig",
        }
        p = subprocess.run(
            ["nix", "path-info", "--json", "--store", store_url, path],
            capture_output=True,
            text=True,
            env={**os.environ, **NIX_ENV},
        )
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)[0]
        raw = _dump(Path(c["out"]))
        assert got["narHash"] == "sha256-" + base64.b64encode(hashlib.sha256(raw).digest()).decode()
        assert got["narSize"] == len(raw)
        assert got["signatures"][0].startswith("test-cache-1:")
        assert got["deriver"].endswith(f"-{Path(c['out']).name[33:]}.drv")
        url = cache / got["url"]
        assert got["downloadSize"] == url.stat().st_size
        # nix verifies the signature (and the content) with the public key, and refuses another key
        ok = subprocess.run(
            ["nix", "store", "verify", "--store", store_url, "--trusted-public-keys", public, path],
            capture_output=True,
            text=True,
            env={**os.environ, **NIX_ENV},
        )
        assert ok.returncode == 0 and "untrusted" not in ok.stderr, ok.stderr
        other = "other-1:" + public.split(":", 1)[1]
        bad = subprocess.run(
            ["nix", "store", "verify", "--store", store_url, "--trusted-public-keys", other, path],
            capture_output=True,
            text=True,
            env={**os.environ, **NIX_ENV},
        )
        assert bad.returncode != 0 or "untrusted" in bad.stderr
        # nix-store --restore unpacks the decompressed NAR into the same tree
        with open(url, "rb") as f:
            nar = zstandard.ZstdDecompressor().stream_reader(f).read()
        assert nar == raw
        dest = tmp_path / f"restored-{name}"
        subprocess.run(["nix-store", "--restore", str(dest)], input=nar, check=True)
        assert _dump(dest) == raw


def test_nix_generated_key_is_accepted(built_demo, tmp_path):
    proj, _, _ = built_demo
    keys = tmp_path / "k"
    keys.mkdir()
    subprocess.run(
        ["nix-store", "--generate-binary-cache-key", "nixkey-1", str(keys / "s"), str(keys / "p")],
        check=True,
        capture_output=True,
    )
    cache = tmp_path / "cache"
    r = raisin("push", f"file://{cache}", "hello", "--key", str(keys / "s"), cwd=proj)
    assert r.code == 0, r
    b = _fresh(proj, tmp_path / "b")
    r = raisin(
        "realize",
        "hello",
        "-j",
        "0",
        "--substituter",
        f"file://{cache}",
        "--trusted-key",
        (keys / "p").read_text(),
        cwd=b,
    )
    assert r.code == 1, r  # hello's deps (greet, motd) were not pushed: -j 0 cannot build them
    assert "no cache offers it" in r.err or "not in the cache" in r.err
    r = raisin("push", f"file://{cache}", "--key", str(keys / "s"), cwd=proj)
    assert r.code == 0 and "pushed 2 paths" in r.err, r
    r = raisin(
        "realize",
        "-j",
        "0",
        "--substituter",
        f"file://{cache}",
        "--trusted-key",
        (keys / "p").read_text(),
        cwd=b,
    )
    assert r.code == 0 and "substituted 3" in r.err, r


def _closure_project(base: Path) -> Path:
    """lib, and app whose output refers to lib's path at run time."""
    (base / "src" / "lib").mkdir(parents=True)
    (base / "src" / "lib" / "data.txt").write_text("lib data\n")
    (base / "src" / "app").mkdir(parents=True)
    (base / "src" / "app" / "app.sh").write_text("#!/bin/sh\ncat @LIB@/share/data.txt\n")
    (base / "raisin.toml").write_text(
        """
[components.lib]
source = { path = "src/lib" }
version = "1"
build = ["install -Dm644 data.txt $out/share/data.txt"]

[components.app]
source = { path = "src/app" }
version = "1"
deps = ["lib"]
build = ["sed s,@LIB@,$lib, app.sh > app", "install -Dm755 app $out/bin/app"]
"""
    )
    return base


def test_substitution_fetches_the_runtime_closure(tmp_path, built_demo):
    _, secret, public = built_demo
    a = _closure_project(tmp_path / "a")
    assert raisin("realize", cwd=a).code == 0
    cache = tmp_path / "cache"
    r = raisin("push", f"file://{cache}", "app", "--key", str(secret), cwd=a)
    assert r.code == 0 and "pushed 2 paths" in r.err, r  # app's closure includes lib
    app_out = Path(_show(a)["app"]["out"])
    narinfo = (cache / f"{app_out.name[:32]}.narinfo").read_text()
    lib_base = Path(_show(a)["lib"]["out"]).name
    assert f"References: {lib_base}" in narinfo
    # the app path alone, into a store that has nothing: lib comes along as a reference
    b = _fresh(a, tmp_path / "b")
    r = raisin(
        "realize", "-j", "0", "--substituter", f"file://{cache}", "--trusted-key", public, cwd=b
    )
    assert r.code == 0, r
    assert sorted(_valid(b / "store")) == sorted([app_out.name, lib_base])
    import sqlite3

    with sqlite3.connect(b / "store" / ".raisin" / "db.sqlite") as c:
        refs = c.execute(
            "SELECT a.path, b.path FROM refs r JOIN valid_paths a ON a.id = r.referrer "
            "JOIN valid_paths b ON b.id = r.reference"
        ).fetchall()
    assert (app_out.name, lib_base) in refs


# ---------------------------------------------------------------- rejections


def _sub(proj: Path, cache: str, key: str, *extra: str, env: dict[str, str] | None = None):
    return raisin(
        "realize",
        "-j",
        "0",
        "--substituter",
        cache,
        "--trusted-key",
        key,
        *extra,
        cwd=proj,
        env=env,
    )


def _pushed(built_demo, tmp_path) -> tuple[Path, Path, str]:
    proj, secret, public = built_demo
    cache = tmp_path / "cache"
    assert raisin("push", f"file://{cache}", "--key", str(secret), cwd=proj).code == 0
    return proj, cache, public


def _nar_of(cache: Path, proj: Path, name: str) -> Path:
    out = Path(_show(proj)[name]["out"]).name
    text = (cache / f"{out[:32]}.narinfo").read_text()
    url = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("URL: "))
    return cache / url


def _assert_same_paths(a: Path, b: Path) -> None:
    """Every component of project ``a`` is in ``b``'s store, bit-identical (Nix's NAR of both)."""
    for name, comp in _show(a).items():
        out = Path(comp["out"]).name
        assert _dump(b / "store" / out) == _dump(a / "store" / out), name


def _assert_untouched(b: Path, before: dict) -> None:
    assert _valid(b / "store") == []
    assert _tmp_left(b / "store") == []
    layout = {"./store", "store/.raisin"}  # the (empty) store itself may now exist
    assert {k: v for k, v in _snapshot(b).items() if k not in layout} == before


def test_untrusted_key_is_refused(built_demo, tmp_path):
    proj, cache, public = _pushed(built_demo, tmp_path)
    b = _fresh(proj, tmp_path / "b")
    before = _snapshot(b)
    wrong = "test-cache-1:" + base64.b64encode(os.urandom(32)).decode()  # same name, other key
    r = _sub(b, f"file://{cache}", wrong)
    assert r.code == 2, r
    assert "no valid signature by a trusted key" in r.err
    _assert_untouched(b, before)
    r = _sub(b, f"file://{cache}", "someone-else:" + public.split(":", 1)[1])
    assert r.code == 2 and "signed by test-cache-1; trusted: someone-else" in r.err, r
    _assert_untouched(b, before)
    # with fallback it builds instead, saying why
    r = raisin("realize", "--substituter", f"file://{cache}", "--trusted-key", wrong, cwd=b)
    assert r.code == 0 and "not substituted" in r.err and "built 3" in r.err, r
    # no key at all is an input error
    r = raisin("realize", "--substituter", f"file://{cache}", cwd=_fresh(proj, tmp_path / "c"))
    assert r.code == 2 and "no key is trusted" in r.err


def test_flipped_byte_and_truncated_download_are_refused(built_demo, tmp_path):
    proj, cache, public = _pushed(built_demo, tmp_path)
    nar = _nar_of(cache, proj, "hello")
    good = nar.read_bytes()
    b = _fresh(proj, tmp_path / "b")
    before = _snapshot(b)
    for damaged in (
        good[:100] + bytes([good[100] ^ 0x01]) + good[101:],  # one flipped byte
        good[: len(good) // 2],  # truncated
        good + b"\0",  # trailing garbage
    ):
        nar.write_bytes(damaged)
        r = _sub(b, f"file://{cache}", public, "hello")
        assert r.code == 2, r  # a hash mismatch is bad input (CONTRACT: exit codes)
        assert "hello" in r.err
        assert _valid(b / "store") == [] or all("hello" not in p for p in _valid(b / "store"))
        assert _tmp_left(b / "store") == []
    nar.write_bytes(good)
    r = _sub(b, f"file://{cache}", public, "hello")
    assert r.code == 0, r
    assert before.keys() <= _snapshot(b).keys()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``server.root``; behaviours switched by ``server.mode``."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.seen.append((self.command, self.path, self.headers.get("Authorization")))  # type: ignore[attr-defined]
        if srv.need_auth and self.headers.get("Authorization") != srv.need_auth:  # type: ignore[attr-defined]
            self.send_response(401)
            self.end_headers()
            return
        if srv.fail_first.get(self.path, 0) > 0:  # type: ignore[attr-defined]
            srv.fail_first[self.path] -= 1  # type: ignore[attr-defined]
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        f = srv.root / self.path.lstrip("/")  # type: ignore[attr-defined]
        if not f.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = f.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if (srv.stall or srv.short) and self.path.startswith("/nar/"):  # type: ignore[attr-defined]
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if srv.stall:  # type: ignore[attr-defined]
                srv.release.wait(30)  # type: ignore[attr-defined]
            self.close_connection = (
                True  # short: half the promised bytes, then the connection closes
            )
            return
        self.wfile.write(data)

    do_HEAD = do_GET


@pytest.fixture
def fixture_server():
    servers = []

    def start(root: Path, **kw):  # type: ignore[no-untyped-def]
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.daemon_threads = True
        srv.root, srv.seen, srv.release = root, [], threading.Event()  # type: ignore[attr-defined]
        srv.stall = kw.get("stall", False)  # type: ignore[attr-defined]
        srv.short = kw.get("short", False)  # type: ignore[attr-defined]
        srv.need_auth = kw.get("need_auth")  # type: ignore[attr-defined]
        srv.fail_first = dict(kw.get("fail_first", {}))  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.release.set()
        s.shutdown()
        s.server_close()


def test_stalling_server_times_out(built_demo, tmp_path, fixture_server):
    proj, cache, public = _pushed(built_demo, tmp_path)
    _, url = fixture_server(cache, stall=True)
    b = _fresh(proj, tmp_path / "b")
    before = _snapshot(b)
    r = _sub(b, url, public, "motd", env={"RAISIN_HTTP_TIMEOUT": "1", "RAISIN_HTTP_RETRIES": "0"})
    assert r.code == 1, r
    assert "ReadTimeout" in r.err or "timed out" in r.err  # the 1 s timeout, not the stall
    _assert_untouched(b, before)
    # a normal realize falls back to building
    r = raisin(
        "realize",
        "motd",
        "--substituter",
        url,
        "--trusted-key",
        public,
        cwd=b,
        env={"RAISIN_HTTP_TIMEOUT": "1", "RAISIN_HTTP_RETRIES": "0"},
    )
    assert r.code == 0 and "building instead" in r.err and "built 1" in r.err, r


@pytest.fixture(scope="module")
def built_big(tmp_path_factory, built_demo):
    """Two components of 6 MiB of incompressible data (NARs past the big-body
    read path's 4 MiB threshold), realized and pushed to a file:// cache."""
    _, secret, public = built_demo
    base = tmp_path_factory.mktemp("big")
    a = base / "a"
    (a / "src").mkdir(parents=True)
    (a / "src" / "f").write_text("f\n")
    (a / "raisin.toml").write_text(
        "".join(
            f"""
[components.big{i}]
source = {{ path = "src" }}
version = "1"
build = ["mkdir -p $out/share", "head -c 6M /dev/urandom > $out/share/blob", "echo {i} > $out/share/id"]
"""
            for i in range(2)
        )
    )
    assert raisin("realize", cwd=a).code == 0
    cache = base / "cache"
    assert raisin("push", f"file://{cache}", "--key", str(secret), cwd=a).code == 0
    assert all(f.stat().st_size > 6 << 20 for f in (cache / "nar").iterdir())
    return a, cache, public, secret


def test_big_nars_over_nginx_are_bit_identical(built_big, tmp_path, nginx_server):
    """Big bodies are read straight off the connection (not through h11): the
    paths come out bit-identical, and later requests still work."""
    a, cache, public, _ = built_big
    n = nginx_server(tmp_path / "nginx")
    try:
        shutil.copytree(cache, n.root / "cache")
        b = _fresh(a, tmp_path / "b")
        r = _sub(b, n.url, public)
        assert r.code == 0, r
        assert "substituted 2, built 0" in r.err
        _assert_same_paths(a, b)
        assert raisin("store", "verify", cwd=b).code == 0
        # nginx saw every request answered in full: nothing was cut off by the direct reads
        log = (n.base / "access.log").read_text().splitlines()
        assert sum(" 200 " in line and ".nar.zst" in line for line in log) == 2
    finally:
        n.stop()


def test_https_cache_push_and_big_substitution(built_big, tmp_path, nginx_server):
    """https:// end to end: push (PUT over TLS) and substitute big NARs (the
    direct body reads over TLS), trusting the server's CA via $SSL_CERT_FILE;
    without it the certificate is refused and nothing is registered."""
    a, _, public, secret = built_big
    n = nginx_server(tmp_path / "nginx", tls=True)
    try:
        env = {"SSL_CERT_FILE": str(n.cert)}
        b = _fresh(a, tmp_path / "b")
        r = _sub(b, n.url, public)  # no CA: the certificate does not verify
        assert r.code == 1 and "CERTIFICATE_VERIFY_FAILED" in r.err, r
        assert _valid(b / "store") == []
        r = raisin("push", n.url, "--key", str(secret), cwd=a, env=env)
        assert r.code == 0, r
        r = _sub(b, n.url, public, env=env)
        assert r.code == 0 and "substituted 2, built 0" in r.err, r
        _assert_same_paths(a, b)
        c = _fresh(a, tmp_path / "c")
        r = _sub(c, n.url, public, env={"SSL_CERT_FILE": str(tmp_path / "missing.pem")})
        assert r.code == 2 and "SSL_CERT_FILE" in r.err, r
    finally:
        n.stop()


@pytest.mark.parametrize("mode", ["stall", "short"])
def test_big_nar_cut_off_mid_body_is_refused(mode, built_big, tmp_path, fixture_server):
    """A big body that stalls past the timeout, or whose connection closes
    before Content-Length bytes arrived: nothing registered or left, and a
    normal realize builds instead."""
    a, cache, public, _ = built_big
    _, url = fixture_server(cache, **{mode: True})
    b = _fresh(a, tmp_path / "b")
    before = _snapshot(b)
    env = {"RAISIN_HTTP_TIMEOUT": "1", "RAISIN_HTTP_RETRIES": "0"}
    r = _sub(b, url, public, "big0", env=env)
    assert r.code == 1, r
    if mode == "stall":
        assert "ReadTimeout" in r.err or "timed out" in r.err, r
    else:
        assert "connection closed after" in r.err, r  # the direct read counted the bytes
    _assert_untouched(b, before)
    r = raisin("realize", "big0", "--substituter", url, "--trusted-key", public, cwd=b, env=env)
    assert r.code == 0 and "building instead" in r.err and "built 1" in r.err, r


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward HTTP proxy (absolute-URI requests), recording what it relays."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        import http.client
        from urllib.parse import urlsplit

        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        u = urlsplit(self.path)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request(self.command, u.path, headers={"Host": u.netloc})
        resp = c.getresponse()
        body = resp.read()
        self.send_response(resp.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        c.close()

    do_HEAD = do_GET


def test_http_proxy_from_the_environment(built_big, tmp_path, nginx_server):
    """$http_proxy is honoured (big NARs come through it intact); $no_proxy exempts a host."""
    a, cache, public, _ = built_big
    n = nginx_server(tmp_path / "nginx")
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    proxy.daemon_threads = True
    proxy.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        shutil.copytree(cache, n.root / "cache")
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        via = {"http_proxy": url, "HTTP_PROXY": url, "no_proxy": "", "NO_PROXY": ""}
        b = _fresh(a, tmp_path / "b")
        r = _sub(b, n.url, public, env=via)
        assert r.code == 0 and "substituted 2, built 0" in r.err, r
        _assert_same_paths(a, b)
        relayed = proxy.seen  # type: ignore[attr-defined]
        assert sum(p.endswith(".nar.zst") for p in relayed) == 2 and any(
            p.endswith(".narinfo") for p in relayed
        )
        assert all(p.startswith(n.url) for p in relayed)
        relayed.clear()
        c = _fresh(a, tmp_path / "c")
        r = _sub(c, n.url, public, env={**via, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"})
        assert r.code == 0 and "substituted 2, built 0" in r.err, r
        assert relayed == []
    finally:
        proxy.shutdown()
        proxy.server_close()
        n.stop()


def test_http_retries_5xx_and_sends_credentials(built_demo, tmp_path, fixture_server):
    proj, cache, public = _pushed(built_demo, tmp_path)
    motd = Path(_show(proj)["motd"]["out"]).name
    srv, url = fixture_server(
        cache, need_auth="Bearer s3cret", fail_first={f"/{motd[:32]}.narinfo": 2}
    )
    b = _fresh(proj, tmp_path / "b")
    r = _sub(b, url, public, "motd", env={"RAISIN_CACHE_TOKEN": "s3cret"})
    assert r.code == 0, r
    gets = [p for m, p, _ in srv.seen if p == f"/{motd[:32]}.narinfo"]
    assert len(gets) == 3  # two 503s, then the answer
    # .netrc credentials (Basic auth) when no token is set
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password wonder\n")
    _, url2 = fixture_server(cache, need_auth="Basic " + base64.b64encode(b"alice:wonder").decode())
    c = _fresh(proj, tmp_path / "c")
    r = _sub(c, url2, public, "motd", env={"NETRC": str(netrc)})
    assert r.code == 0, r
    # without credentials: 401 is not "absent", and nothing is registered
    d = _fresh(proj, tmp_path / "d")
    r = _sub(d, url2, public, "motd", env={"NETRC": str(tmp_path / "none")})
    assert r.code == 1 and "401" in r.err, r


# ---------------------------------------------------------------- malicious NARs


def _s(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b + b"\0" * (-len(b) % 8)


def _file(data: bytes = b"x") -> bytes:
    return b"".join(_s(t) for t in (b"(", b"type", b"regular", b"contents")) + _s(data) + _s(b")")


def _link(target: bytes) -> bytes:
    return b"".join(_s(t) for t in (b"(", b"type", b"symlink", b"target", target, b")"))


def _dir(*entries: tuple[bytes, bytes]) -> bytes:
    out = [_s(b"("), _s(b"type"), _s(b"directory")]
    for name, node in entries:
        out += [_s(b"entry"), _s(b"("), _s(b"name"), _s(name), _s(b"node"), node, _s(b")")]
    out.append(_s(b")"))
    return b"".join(out)


def _nar(root: bytes) -> bytes:
    return _s(b"nix-archive-1") + root


MALICIOUS = {
    "slash in name": _nar(_dir((b"a/b", _file()))),
    "dot-dot name": _nar(_dir((b"..", _file()))),
    "unsorted entries": _nar(_dir((b"b", _file()), (b"a", _file()))),
    "duplicate entries": _nar(_dir((b"a", _file()), (b"a", _file()))),
    "absurd name length": _s(b"nix-archive-1")
    + _s(b"(")
    + _s(b"type")
    + _s(b"directory")
    + _s(b"entry")
    + _s(b"(")
    + _s(b"name")
    + struct.pack("<Q", 1 << 62),
    "absurd file length": _s(b"nix-archive-1")
    + b"".join(_s(t) for t in (b"(", b"type", b"regular", b"contents"))
    + struct.pack("<Q", 1 << 50)
    + b"x" * 64,
}


def test_an_output_linking_outside_round_trips_through_caches_and_bundles(built_demo, tmp_path):
    """bin/env -> /usr/bin/env builds, pushes, substitutes (no fallback rebuild) and imports,
    bit-identical everywhere: one symlink rule for build, push and restore."""
    _, secret, public = built_demo
    a = tmp_path / "a"
    (a / "src" / "tools").mkdir(parents=True)
    (a / "src" / "tools" / "README").write_text("tools\n")
    (a / "raisin.toml").write_text(
        """
[components.tools]
source = { path = "src/tools" }
version = "1"
build = [
  "mkdir -p $out/bin $out/share",
  "ln -s /usr/bin/env $out/bin/env",
  "ln -s ../../../../etc/hostname $out/share/up",
  "cp README $out/share/README",
]
"""
    )
    assert raisin("realize", cwd=a).code == 0
    out = Path(_show(a)["tools"]["out"])
    assert os.readlink(out / "bin" / "env") == "/usr/bin/env"
    want = raisin("store", "hash", str(out), cwd=a).out
    cache = tmp_path / "cache"
    assert raisin("push", f"file://{cache}", "--key", str(secret), cwd=a).code == 0
    b = _fresh(a, tmp_path / "b")
    r = _sub(b, f"file://{cache}", public)
    assert r.code == 0 and "substituted 1" in r.err and "[2/1]" not in r.err, r
    assert raisin("store", "hash", str(b / "store" / out.name), cwd=b).out == want
    assert _dump(b / "store" / out.name) == _dump(out)
    bundle = tmp_path / "tools.raisin"
    assert raisin("export", str(bundle), "--key", str(secret), cwd=a).code == 0
    c = tmp_path / "c"
    c.mkdir()
    r = raisin("import", str(bundle), "--trusted-key", public, cwd=c)
    assert r.code == 0 and "imported 1 store paths" in r.err, r
    assert raisin("store", "hash", str(c / "store" / out.name), cwd=c).out == want
    assert raisin("store", "verify", cwd=c).code == 0


def _signed_cache(cache: Path, secret: Path, sp_base: str, data: bytes, declared: int) -> None:
    """A file:// cache holding ``data`` as the NAR of ``sp_base``, signed with ``secret``."""
    from raisin_lock.cache import narinfo as ni
    from raisin_lock.cache.keys import SecretKey
    from raisin_lock.hashing import Hash
    from raisin_lock.store_path import StorePath

    (cache / "nar").mkdir(parents=True)
    (cache / "nix-cache-info").write_text(ni.render_cache_info())
    comp = zstandard.ZstdCompressor().compress(data)
    fh = Hash.of_bytes(comp)
    sp = StorePath.parse(sp_base)
    info = ni.NarInfo(
        path=sp,
        url=f"nar/{fh.nix32}.nar.zst",
        compression="zstd",
        file_hash=fh,
        file_size=len(comp),
        nar_hash=Hash.of_bytes(data),
        nar_size=declared,
        references=frozenset(),
    )
    info = info.signed(SecretKey.load(secret).sign(info.fingerprint()))
    (cache / info.url).write_bytes(comp)
    (cache / f"{sp.digest}.narinfo").write_text(info.render())


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_nar_is_refused(case, built_demo, tmp_path):
    """A NAR signed by a trusted key but unsafe: nothing lands anywhere."""
    proj, secret, public = built_demo
    cache = tmp_path / "cache"
    data = MALICIOUS[case]
    declared = 1 << 51 if case.startswith("absurd") else len(data)
    _signed_cache(cache, secret, Path(_show(proj)["motd"]["out"]).name, data, declared)
    b = _fresh(proj, tmp_path / "b")
    before = _snapshot(b)
    outside_before = sorted(os.listdir(tmp_path))
    r = _sub(b, f"file://{cache}", public, "motd")
    assert r.code == 2, r
    assert "Traceback" not in r.err
    _assert_untouched(b, before)
    assert sorted(os.listdir(tmp_path)) == outside_before
    assert not (tmp_path / "outside").exists()


def test_symlinks_anywhere_are_substituted_and_nothing_is_written_through_them(
    built_demo, tmp_path
):
    """Like Nix, a symlink target is data: links to absolute paths and up out of the path are
    restored as they are; entries after them land in the store path, never through them."""
    proj, secret, public = built_demo
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"mine")
    os.chmod(outside / "keep", 0o644)
    data = _nar(
        _dir(
            (b"a", _link(os.fsencode(outside))),
            (b"b", _dir((b"keep", _file(b"theirs")))),
            (b"up", _link(b"../../../../outside")),
        )
    )
    out = Path(_show(proj)["motd"]["out"]).name
    _signed_cache(tmp_path / "cache", secret, out, data, len(data))
    b = _fresh(proj, tmp_path / "b")
    r = _sub(b, f"file://{tmp_path / 'cache'}", public, "motd")
    assert r.code == 0 and "substituted 1" in r.err, r
    got = b / "store" / out
    assert os.readlink(got / "a") == str(outside)
    assert os.readlink(got / "up") == "../../../../outside"
    assert (got / "b" / "keep").read_bytes() == b"theirs"
    assert os.listdir(outside) == ["keep"] and (outside / "keep").read_bytes() == b"mine"
    st = os.stat(outside / "keep")
    assert st.st_mode & 0o777 == 0o644 and st.st_mtime != 1  # normalise followed no link
    assert _dump(got) == data
    assert raisin("store", "verify", cwd=b).code == 0


@pytest.fixture
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied by ``rm -rf`` afterwards even if a test fails: pytest's own cleanup
    (shutil.rmtree, recursive) cannot remove trees thousands of levels deep."""
    yield tmp_path
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], capture_output=True, check=False)
    tmp_path.mkdir()


def test_a_nar_nesting_5000_directories_is_substituted_then_realize_and_gc_work(
    built_demo, deep_tmp
):
    """5,000 nested directories (paths far past PATH_MAX) restore, normalise, verify and are
    collected by gc, and nothing is left in the store's tmp to block later runs."""
    proj, secret, public = built_demo
    head = b"".join(_s(t) for t in (b"(", b"type", b"directory", b"entry", b"(", b"name", b"d"))
    head += _s(b"node")
    data = _nar(head * 5000 + _file(b"bottom") + _s(b")") * 2 * 5000)
    out = Path(_show(proj)["motd"]["out"]).name
    _signed_cache(deep_tmp / "cache", secret, out, data, len(data))
    b = _fresh(proj, deep_tmp / "b")
    r = _sub(b, f"file://{deep_tmp / 'cache'}", public, "motd")
    assert r.code == 0 and "substituted 1" in r.err, r
    assert _tmp_left(b / "store") == []
    assert raisin("store", "hash", str(b / "store" / out), cwd=b).out.strip() == (
        "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    )
    r = raisin("store", "verify", cwd=b)
    assert r.code == 0 and "consistent" in r.err, r
    r = raisin("realize", "greet", cwd=b)  # another component, built locally
    assert r.code == 0, r
    text = (b / "raisin.toml").read_text()  # only greet is wanted now
    (b / "raisin.toml").write_text(text[: text.index("[components.motd]")])
    assert raisin("lock", cwd=b).code == 0
    r = raisin("gc", cwd=b)
    assert r.code == 0 and out in r.out, r
    assert not os.path.lexists(b / "store" / out)
    assert raisin("store", "verify", cwd=b).code == 0


def test_narinfo_for_another_path_is_refused(built_demo, tmp_path):
    proj, cache, public = _pushed(built_demo, tmp_path)
    info = _show(proj)
    motd, greet = Path(info["motd"]["out"]).name, Path(info["greet"]["out"]).name
    shutil.copy(
        cache / f"{greet[:32]}.narinfo", cache / f"{motd[:32]}.narinfo"
    )  # a signed answer, wrong path
    b = _fresh(proj, tmp_path / "b")
    r = _sub(b, f"file://{cache}", public, "motd")
    assert r.code == 2 and f"describes {greet}" in r.err, r
    assert _valid(b / "store") == []


# ---------------------------------------------------------------- export / import


def test_export_import_hand_over(built_demo, tmp_path):
    proj, secret, public = built_demo
    bundle = tmp_path / "stack.raisin"
    r = raisin("export", str(bundle), "--key", str(secret), cwd=proj)
    assert r.code == 0, r
    assert "3 store paths" in r.err
    # the maintainer: no manifest, a store elsewhere
    m = tmp_path / "maintainer"
    m.mkdir()
    r = raisin(
        "--store",
        str(tmp_path / "elsewhere" / "store"),
        "import",
        str(bundle),
        "--trusted-key",
        public,
        cwd=m,
    )
    assert r.code == 0, r
    assert "imported 3 store paths" in r.err
    assert (m / "raisin.lock").read_bytes() == (proj / "raisin.lock").read_bytes()
    store = tmp_path / "elsewhere" / "store"
    a_info = _show(proj)
    for c in a_info.values():
        got = store / Path(c["out"]).name
        assert _dump(got) == _dump(Path(c["out"]))
    r = raisin("--store", str(store), "realize", "--lock", str(m / "raisin.lock"), cwd=m)
    assert r.code == 0 and "nothing to build" in r.err, r
    out = subprocess.run(
        [str(store / Path(a_info["hello"]["out"]).name / "usr/bin/hello")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("Hello, Xen!")
    assert raisin("--store", str(store), "store", "verify", cwd=m).code == 0
    # importing again: nothing new
    r = raisin("--store", str(store), "import", str(bundle), "--trusted-key", public, cwd=m)
    assert r.code == 0 and "imported 0 store paths (3 already valid)" in r.err, r


def test_import_refuses_untrusted_or_damaged(built_demo, tmp_path):
    proj, secret, public = built_demo
    bundle = tmp_path / "stack.raisin"
    assert raisin("export", str(bundle), "--key", str(secret), cwd=proj).code == 0
    m = tmp_path / "m"
    m.mkdir()
    other = "test-cache-1:" + base64.b64encode(os.urandom(32)).decode()
    r = raisin("import", str(bundle), "--trusted-key", other, cwd=m)
    assert r.code == 2 and "no valid signature" in r.err, r
    assert _valid(m / "store") == [] and not (m / "raisin.lock").exists()
    r = raisin("import", str(bundle), cwd=m)
    assert r.code == 2 and "--trusted-key" in r.err
    # one flipped byte deep inside a NAR member
    import tarfile

    with tarfile.open(bundle) as tar:
        nar_member = next(
            t for t in tar.getmembers() if t.name.startswith("nar/") and t.size > 1000
        )
    data = bytearray(bundle.read_bytes())
    data[nar_member.offset_data + nar_member.size // 2] ^= 0x40
    bad = tmp_path / "bad.raisin"
    bad.write_bytes(bytes(data))
    r = raisin("import", str(bad), "--trusted-key", public, cwd=m)
    assert r.code == 2 and "Traceback" not in r.err, r  # hash mismatch
    assert _tmp_left(m / "store") == []
    assert raisin("store", "verify", cwd=m).code == 0
    r = raisin("import", str(tmp_path / "nope.raisin"), "--trusted-key", public, cwd=m)
    assert r.code == 2 and "cannot read" in r.err
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello")
    r = raisin("import", str(junk), "--trusted-key", public, cwd=m)
    assert r.code == 2 and "not a raisin export" in r.err, r


def test_xz_and_uncompressed_nars_are_readable(built_demo, tmp_path):
    """Caches written by Nix use xz; raisin reads it (and `none`)."""
    from raisin_lock.cache.keys import SecretKey
    from raisin_lock.cache.push import ensure_cache_info, pack
    from raisin_lock.cache.transport import open_cache
    from raisin_lock.store.local import Store
    from raisin_lock.store_path import StorePath

    proj, secret, public = built_demo
    cache_dir = tmp_path / "cache"
    cache = open_cache(f"file://{cache_dir}")
    ensure_cache_info(cache)
    key = SecretKey.load(secret)
    info = _show(proj)
    with Store(proj / "store") as store:
        for name, kind in (("greet", "xz"), ("motd", "none"), ("hello", "xz")):
            sp = StorePath.parse(Path(info[name]["out"]).name)
            tmp = tmp_path / f"{name}.nar"
            ni = pack(store, sp, tmp, compression=kind)
            ni = ni.signed(key.sign(ni.fingerprint()))
            cache.put_file(ni.url, tmp)
            cache.put_bytes(f"{sp.digest}.narinfo", ni.render().encode())
    assert list((cache_dir / "nar").glob("*.nar.xz"))
    b = _fresh(proj, tmp_path / "b")
    r = _sub(b, f"file://{cache_dir}", public)
    assert r.code == 0 and "substituted 3" in r.err, r


def test_downloads_run_beside_independent_builds(built_demo, tmp_path):
    """A substitution does not wait for a build it does not depend on (one build slot)."""
    _, secret, public = built_demo
    a = tmp_path / "a"
    (a / "src").mkdir(parents=True)
    (a / "src" / "f").write_text("f\n")
    (a / "raisin.toml").write_text(
        """
[components.cached]
source = { path = "src" }
version = "1"
build = ["install -Dm644 f $out/share/f"]

[components.slow]
source = { path = "src" }
version = "1"
build = ["sleep 3", "install -Dm644 f $out/share/slow"]
"""
    )
    assert raisin("realize", "cached", cwd=a).code == 0
    cache = tmp_path / "cache"
    assert raisin("push", f"file://{cache}", "cached", "--key", str(secret), cwd=a).code == 0
    b = _fresh(a, tmp_path / "b")
    r = raisin(
        "realize", "-j", "1", "--substituter", f"file://{cache}", "--trusted-key", public, cwd=b
    )
    assert r.code == 0, r
    assert "substituted 1, built 1" in r.err
    lines = r.err.splitlines()
    done = [i for i, line in enumerate(lines) if line.startswith("[")]
    assert "cached ok" in lines[done[0]] and "substituted" in lines[done[0]]
    assert "slow ok" in lines[done[1]]


def test_j0_needs_a_substituter_and_bad_urls_are_input_errors(demo):
    r = raisin("realize", "-j", "0", cwd=demo)
    assert r.code == 2 and "-j 0 builds nothing locally" in r.err, r
    r = raisin(
        "realize",
        "--substituter",
        "ftp://example.org/c",
        "--trusted-key",
        "k:" + "A" * 43 + "=",
        cwd=demo,
    )
    assert r.code == 2 and "not a cache URL" in r.err, r
    r = raisin(
        "realize", "--substituter", "file:///nonexistent", "--trusted-key", "k:short", cwd=demo
    )
    assert r.code == 2 and "--trusted-key" in r.err and "invalid public key" in r.err, r
    (demo / "raisin.toml").write_text(
        (demo / "raisin.toml").read_text() + '\n[cache]\nsubstituters = "x"\n'
    )
    r = raisin("realize", cwd=demo)
    assert r.code == 2 and "cache" in r.err and "Traceback" not in r.err, r


def test_http_transport_leaves_httpcore_unpatched():
    """Public httpx/httpcore API only: making a transport changes nothing inside httpcore."""
    import httpcore

    conn = httpcore.HTTPConnection  # public; the HTTP/1.1 class behind it is private
    before = {k: v for k, v in vars(httpcore).items() if not k.startswith("__")}
    from raisin_lock.cache.transport import open_cache

    t = open_cache("http://127.0.0.1:9/cache")
    import importlib

    http11 = importlib.import_module("httpcore._sync.http11")  # only to look, never to touch
    assert http11.HTTP11Connection.READ_NUM_BYTES == 64 * 1024
    assert {k: v for k, v in vars(httpcore).items() if not k.startswith("__")} == before
    assert httpcore.HTTPConnection is conn
    t.client.close()
