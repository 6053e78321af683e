"""Generated manifests and corrupted locks: always a verdict, never a traceback.

Most examples run in-process (the parsers and validators the CLI calls), a
smaller sample goes through the real CLI to check what a user sees: exit
code 0, 1 or 2, no "Traceback", and on exit 2 nothing written.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import raisin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raisin_lock.app import following
from raisin_lock.errors import InputError
from raisin_lock.lock import graph, lockfile
from raisin_lock.manifest import model

NAMES = ["a", "b", "c", "xen", "qemu-xen", "-x", "a.b", "..", ""]
NASTY = [
    "--upload-pack=touch /tmp/pwned",
    "-c",
    "../../etc",
    "..",
    "/abs/path",
    "a\0b",
    "\0",
    "",
    " ",
    "main",
    "v1.0",
    "file:///nonexistent/repo.git",
    "x" * 300,
    "é\u202e",
]

text_values = st.one_of(st.sampled_from(NASTY), st.text(max_size=20))
scalars = st.one_of(
    text_values, st.integers(-(2**70), 2**70), st.booleans(), st.floats(allow_nan=False)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(NAMES + ["k"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def toml_doc(doc: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())


@st.composite
def sources(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["git", "path", "url", "debian", "junk"]))
    if kind == "junk":
        return draw(values)
    src: dict[str, Any] = {kind: draw(text_values)}
    if kind == "git" and draw(st.booleans()):
        src["ref"] = draw(text_values)
    if kind == "debian":
        src["version"] = draw(text_values)
    if draw(st.integers(0, 5)) == 0:
        src[draw(st.sampled_from(["ref", "hash", "version", "extra"]))] = draw(values)
    return src


@st.composite
def manifests(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    comps: dict[str, Any] = {}
    for n in names:
        c: dict[str, Any] = {"source": draw(sources())}
        if draw(st.booleans()):
            c["build"] = draw(st.lists(text_values, max_size=3))
        else:
            c["recipe"] = draw(st.sampled_from(["seabios", "xen", "nosuch", "../x"]))
        if draw(st.booleans()):
            c["deps"] = draw(st.lists(st.sampled_from(NAMES), max_size=3))
        if draw(st.integers(0, 3)) == 0:
            c["follows"] = draw(st.sampled_from(NAMES))
        if draw(st.integers(0, 3)) == 0:
            c["env"] = draw(
                st.dictionaries(
                    st.sampled_from(["K", "out", "a-b", "CFLAGS"]), text_values, max_size=2
                )
            )
        if draw(st.integers(0, 4)) == 0:
            c[draw(st.sampled_from(["version", "options", "pre-build", "activate", "bogus"]))] = (
                draw(values)
            )
        comps[n] = c
    doc: dict[str, Any] = {"components": comps}
    if draw(st.integers(0, 5)) == 0:
        doc["profiles"] = {
            "default": {"components": draw(st.lists(st.sampled_from(NAMES), max_size=2))}
        }
    text = toml_doc(doc)
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.integers(20, 3000))
        text += "deep = " + "[" * depth + "]" * depth + "\n"
    return text


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real lock of two components (path and git sources) to corrupt."""
    from conftest import make_repo

    base = tmp_path_factory.mktemp("fuzzbase")
    proj = base / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "f.txt").write_text("x\n")
    make_repo(base / "repo", {"g.txt": "g\n"})
    (proj / "raisin.toml").write_text(
        '[components.a]\nsource = { path = "src" }\nbuild = ["install -D f.txt $out/f.txt"]\nenv = { K = "v" }\n'
        f'[components.b]\nsource = {{ git = "file://{base}/repo", ref = "main" }}\ndeps = ["a"]\n'
        'build = ["install -D g.txt $out/g.txt"]\n'
    )
    r = raisin("lock", cwd=proj)
    assert r.code == 0, r
    return proj


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def corruptions(draw: st.DrawFn, base: dict[str, Any]) -> str:
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        *parent_keys, last = path
        parent = doc
        for k in parent_keys:
            parent = parent[k]
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            del parent[last]
        else:
            parent[last] = draw(
                st.one_of(values, st.sampled_from([["x"], [1], {}, 2**64, -1, "sha256-AAAA", "\0"]))
            )
    text = toml_doc(doc)
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.integers(20, 3000))
        text += "deep = " + "[" * depth + "]" * depth + "\n"
    return text


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=manifests())
def test_generated_manifests_in_process(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-manifest" / "raisin.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    try:
        m = model.load(path)
        graph.build(m)
        following.check_follows(m)
    except InputError as exc:
        shown = str(exc)
        assert shown.startswith(str(path)), shown
        assert len(shown) < 600 and "\0" not in shown, shown


def test_lock_corruptions_in_process(locked: Path) -> None:
    base = tomllib.loads((locked / "raisin.lock").read_text())
    seen = {"ok": 0, "refused": 0}

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=corruptions(base))
    def check(text: str) -> None:
        try:
            lk = lockfile.loads(text)
            lockfile.check_consistent(lk, "raisin.lock")
            lk.closure(sorted(lk.components))
            seen["ok"] += 1
        except InputError as exc:
            shown = str(exc)
            assert shown.startswith("raisin.lock"), shown
            assert len(shown) < 600 and "\0" not in shown, shown
            seen["refused"] += 1

    check()
    assert seen["refused"] >= 100, seen


def _cli_case(proj: Path, work: Path, file: str, text: str, cmd: list[str]) -> None:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(proj, work, ignore=shutil.ignore_patterns("store"))
    (work / file).write_text(text)
    before = {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()}
    outside = sorted(p.name for p in work.parent.iterdir())
    r = raisin("--store", str(work / "store"), *cmd, cwd=work, timeout=120)
    assert r.code in (0, 1, 2), r
    assert "Traceback" not in r.err, r
    assert sorted(p.name for p in work.parent.iterdir()) == outside
    if r.code == 2:
        assert {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()} == before, r


def test_cli_sample(locked: Path, tmp_path: Path) -> None:
    """20 corrupted locks through `realize`, 20 generated manifests through `lock`."""
    base = tomllib.loads((locked / "raisin.lock").read_text())
    work = tmp_path / "w"

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=corruptions(base))
    def locks(text: str) -> None:
        _cli_case(locked, work, "raisin.lock", text, ["realize", "--offline"])

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=manifests())
    def manifests_(text: str) -> None:
        _cli_case(locked, work, "raisin.toml", text, ["lock", "--offline"])

    locks()
    manifests_()
