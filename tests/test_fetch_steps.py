"""Fetch steps: run with network before the build, pinned by the NAR hash of what they leave."""

from __future__ import annotations

import shutil
import threading
import tomllib
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import nix_hash, raisin

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the fetch step uses curl")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[Path, str, ThreadingHTTPServer]]:
    root = tmp_path / "upstream"
    root.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()


def _project(
    tmp_path: Path, url: str, build: str = "install -Dm644 payload.txt $out/payload.txt"
) -> Path:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True, exist_ok=True)
    (proj / "src" / "README").write_text("a tree whose build needs a download\n")
    (proj / "raisin.toml").write_text(
        f"""
[components.c]
source = {{ path = "src" }}
fetch = ["curl -fsS --noproxy '*' {url}/payload.txt -o payload.txt"]
build = ["{build}"]
"""
    )
    return proj


def test_fetch_steps_are_pinned_checked_and_reused_offline(
    tmp_path: Path, upstream: tuple[Path, str, ThreadingHTTPServer]
) -> None:
    root, url, srv = upstream
    (root / "payload.txt").write_text("one\n")
    proj = _project(tmp_path, url)

    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    assert "pinned c's fetched tree: fetch-hash = 'sha256-" in r.err
    doc = tomllib.loads((proj / "raisin.lock").read_text())
    assert doc["version"] == 2
    pinned = doc["components"]["c"]["fetch-hash"]
    # the pin is the NAR hash of the source tree plus what the steps left (nix-hash agrees)
    expected_tree = tmp_path / "expected"
    shutil.copytree(proj / "src", expected_tree)
    shutil.copy(root / "payload.txt", expected_tree / "payload.txt")
    assert pinned == nix_hash(expected_tree)

    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    r = raisin("show", "--json", cwd=proj)
    import json

    out = Path(json.loads(r.out)["components"]["c"]["out"])
    assert (out / "payload.txt").read_text() == "one\n"

    # upstream goes away: a changed build step reuses the pinned fetched tree offline
    srv.shutdown()
    text = (proj / "raisin.toml").read_text()
    (proj / "raisin.toml").write_text(text.replace("$out/payload.txt", "$out/again.txt"))
    r = raisin("realize", "--offline", cwd=proj)
    assert r.code == 0, r
    doc2 = tomllib.loads((proj / "raisin.lock").read_text())
    assert doc2["components"]["c"]["fetch-hash"] == pinned


def test_changed_upstream_fails_the_next_realize(
    tmp_path: Path, upstream: tuple[Path, str, ThreadingHTTPServer]
) -> None:
    root, url, _srv = upstream
    (root / "payload.txt").write_text("one\n")
    proj = _project(tmp_path, url)
    assert raisin("lock", cwd=proj).code == 0
    pinned = tomllib.loads((proj / "raisin.lock").read_text())["components"]["c"]["fetch-hash"]

    (root / "payload.txt").write_text("two\n")  # upstream now serves something else
    r = raisin("--store", str(tmp_path / "fresh-store"), "realize", cwd=proj)
    assert r.code == 2, r
    assert "components.c.fetch-hash" in r.err
    assert f"the lock expects {pinned}" in r.err
    assert "Traceback" not in r.err
    # nothing of the bad fetch was registered
    r = raisin("--store", str(tmp_path / "fresh-store"), "show", "--json", cwd=proj)
    assert r.code == 0, r

    # `lock --update c` takes the new content, and then it builds
    r = raisin("lock", "--update", "c", cwd=proj)
    assert r.code == 0, r
    new = tomllib.loads((proj / "raisin.lock").read_text())["components"]["c"]["fetch-hash"]
    assert new != pinned
    r = raisin("--store", str(tmp_path / "fresh-store"), "realize", cwd=proj)
    assert r.code == 0, r


def test_offline_without_the_fetched_tree_says_so(
    tmp_path: Path, upstream: tuple[Path, str, ThreadingHTTPServer]
) -> None:
    root, url, _srv = upstream
    (root / "payload.txt").write_text("one\n")
    proj = _project(tmp_path, url)
    assert raisin("lock", cwd=proj).code == 0
    r = raisin("--store", str(tmp_path / "other"), "realize", "--offline", cwd=proj)
    assert r.code == 2, r
    assert "c's fetch steps need the network, and --offline was given" in r.err


def test_fetch_hash_given_in_the_manifest_is_required(
    tmp_path: Path, upstream: tuple[Path, str, ThreadingHTTPServer]
) -> None:
    root, url, _srv = upstream
    (root / "payload.txt").write_text("one\n")
    proj = _project(tmp_path, url)
    wrong = "sha256-" + "A" * 43 + "="
    text = (proj / "raisin.toml").read_text()
    (proj / "raisin.toml").write_text(
        text.replace("build = [", f'fetch-hash = "{wrong}"\nbuild = [')
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r  # taken as given: nothing runs at lock time
    assert "fetching c" not in r.err
    r = raisin("realize", cwd=proj)
    assert r.code == 2, r
    assert "components.c.fetch-hash" in r.err
