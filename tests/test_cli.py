"""The command line itself: global flags, help, init, completion, JSON output, error places."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RAISIN, Result, make_repo, raisin

from raisin_lock.cli.main import build_parser


def _walk(
    p: argparse.ArgumentParser, path: tuple[str, ...] = ("raisin",)
) -> Iterator[tuple[tuple[str, ...], argparse.Action, str | None]]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in a._choices_actions}
            for name, child in a.choices.items():
                if name.startswith("__"):  # hidden helpers (raisin __complete)
                    continue
                yield path + (name,), a, helps.get(name)
                yield from _walk(child, path + (name,))
        else:
            yield path, a, a.help


def test_every_command_option_and_positional_has_help() -> None:
    missing = [
        f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}"
        for path, a, text in _walk(build_parser())
        if not (text and text.strip())
    ]
    assert missing == []


# -- global options after the subcommand ---------------------------------------------


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    r = raisin("init", "-q", "-C", str(proj), cwd=tmp_path)
    assert r.code == 0, r
    assert r.err == ""  # -q after the subcommand silenced "wrote ..."
    assert (proj / "raisin.toml").is_file()
    r = raisin("profile", "list", "-C", str(proj), "-q", cwd=tmp_path)
    assert r.code == 0, r
    assert r.out == "default  (no generations)\n"


def test_a_global_option_after_the_subcommand_wins_only_when_given(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # before only: used
    assert raisin("-C", str(a), "init", cwd=tmp_path).code == 0
    assert (a / "raisin.toml").is_file()
    # before and after: the later one wins
    assert raisin("-C", str(a), "init", "-C", str(b), cwd=tmp_path).code == 0
    assert (b / "raisin.toml").is_file()
    # --store after the subcommand
    r = raisin("-C", str(a), "store", "verify", "--store", str(tmp_path / "nostore"), cwd=tmp_path)
    assert r.code == 0, r
    assert not (a / "store").exists()


def test_unknown_flag_is_still_exit_2(tmp_path: Path) -> None:
    r = raisin("lock", "--no-such-flag", cwd=tmp_path)
    assert r.code == 2
    assert "unrecognized arguments: --no-such-flag" in r.err


# -- raisin init -----------------------------------------------------------------------


def test_init_then_lock_then_realize_in_an_empty_directory(tmp_path: Path) -> None:
    assert raisin("init", cwd=tmp_path).code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello", "raisin.toml"]
    assert raisin("lock", cwd=tmp_path).code == 0
    r = raisin("realize", "--sandbox", "bwrap", cwd=tmp_path)
    assert r.code == 0, r
    shown = json.loads(raisin("show", "--json", cwd=tmp_path).out)["components"]["hello"]
    assert shown["built"] is True
    p = subprocess.run([shown["out"] + "/usr/bin/hello"], capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (0, "hello from raisin\n")


def test_init_does_not_overwrite_the_starter_source(tmp_path: Path) -> None:
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "hello.c").write_text("mine\n")
    r = raisin("init", cwd=tmp_path)
    assert r.code == 2, r
    assert (
        r.err
        == "error: hello/hello.c: already exists; not overwriting (raisin init writes it for --template starter)\n"
    )
    assert not (tmp_path / "raisin.toml").exists()
    assert (tmp_path / "hello" / "hello.c").read_text() == "mine\n"


@pytest.mark.parametrize(
    "ref",
    ["RELEASE-4.17.0", "stable-4.19", "staging-4.20", "master", "staging", "4.21.0-rc1", "a" * 40],
)
def test_init_xen_alone_implies_the_xen_template(tmp_path: Path, ref: str) -> None:
    r = raisin("init", "--xen", ref, cwd=tmp_path)
    assert r.code == 0, r
    comps = tomllib.loads((tmp_path / "raisin.toml").read_text())["components"]
    assert comps["xen"]["source"]["ref"] == ref
    assert not (tmp_path / "hello").exists()


@pytest.mark.parametrize("ref", ["garbage", "RELEASE-4.21", "4.21", "stable-4", "abc123", "A" * 40])
def test_init_rejects_a_xen_ref_of_no_known_form(tmp_path: Path, ref: str) -> None:
    r = raisin("init", "--xen", ref, cwd=tmp_path)
    assert r.code == 2, r
    assert r.err == (
        "error: --xen: expected a Xen tag (RELEASE-X.Y.Z), a branch (stable-X.Y, master, "
        f"staging) or a full 40-hex commit, found {ref!r}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_init_xen_with_another_template_is_bad_input(tmp_path: Path) -> None:
    r = raisin("init", "--template", "starter", "--xen", "RELEASE-4.21.0", cwd=tmp_path)
    assert r.code == 2, r
    assert r.err == "error: --xen: only applies to --template xen, not --template starter\n"
    assert list(tmp_path.iterdir()) == []


def test_init_xen_4_5_leaves_libvirt_out_and_says_what_is_untested(tmp_path: Path) -> None:
    assert raisin("init", "--xen", "RELEASE-4.5.0", cwd=tmp_path).code == 0
    text = (tmp_path / "raisin.toml").read_text()
    data = tomllib.loads(text)
    assert "libvirt" not in data["components"]
    assert "libvirt" not in data["profiles"]["default"]["components"]
    assert "# libvirt's libxl driver needs Xen >= 4.6; left out for Xen 4.5." in text
    assert "# UNTESTED with Xen 4.5:" in text
    assert data["components"]["grub"]["source"]["ref"] == "grub-2.12"


def test_init_xen_for_the_tested_release_has_no_untested_note(tmp_path: Path) -> None:
    assert raisin("init", "--template", "xen", cwd=tmp_path).code == 0
    text = (tmp_path / "raisin.toml").read_text()
    assert "UNTESTED" not in text
    data = tomllib.loads(text)
    assert "libvirt" in data["profiles"]["default"]["components"]


# -- where an error is --------------------------------------------------------------------


def test_errors_about_manifest_keys_name_the_line(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    make_repo(repo, {"f": "x\n"})
    manifest = (
        "# a comment\n"
        "[components.a]\n"
        f'source = {{ git = "file://{repo}", ref = "nope" }}\n'
        'build = ["true"]\n'
    )
    (tmp_path / "raisin.toml").write_text(manifest)
    r = raisin("lock", cwd=tmp_path)
    assert r.code == 2, r
    assert r.err.splitlines()[-1] == (
        f"error: raisin.toml:3: components.a.source: ref 'nope' not found in git remote file://{repo}"
    )
    # a cycle, from another directory with -C: the file as the user can open it
    (tmp_path / "raisin.toml").write_text(
        manifest.replace('ref = "nope"', 'ref = "main"')
        + '\n[components.b]\nsource = { path = "r" }\ndeps = ["c"]\nbuild = ["true"]\n'
        + '\n[components.c]\nsource = { path = "r" }\ndeps = ["b"]\nbuild = ["true"]\n'
    )
    r = raisin("-C", tmp_path.name, "lock", cwd=tmp_path.parent)
    assert r.code == 2, r
    assert r.err == (
        f"error: {tmp_path.name}/raisin.toml:8: components.b.deps: dependency cycle: b -> c -> b\n"
    )
    assert not (tmp_path / "raisin.lock").exists()


# -- shell completion ---------------------------------------------------------------------


def _bash_complete(script: str, words: list[str], cwd: Path) -> list[str]:
    env = dict(os.environ, PATH=f"{Path(RAISIN).parent}:{os.environ['PATH']}")
    array = " ".join(shlex.quote(w) for w in words)
    p = subprocess.run(
        [
            "bash",
            "-c",
            f'{script}\nCOMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _raisin; printf "%s\\n" "${{COMPREPLY[@]}}"',
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    return [w for w in p.stdout.splitlines() if w]


def test_bash_completion_is_valid_and_completes_names_from_the_manifest(
    demo: Path, tmp_path: Path
) -> None:
    r = raisin("completion", "bash", cwd=tmp_path)
    assert r.code == 0, r
    assert subprocess.run(["bash", "-n"], input=r.out, text=True).returncode == 0
    script = r.out
    assert _bash_complete(script, ["raisin", "rea"], tmp_path) == ["realize"]
    assert _bash_complete(script, ["raisin", "-C", str(demo), "realize", ""], tmp_path) == [
        "greet",
        "hello",
        "motd",
    ]
    assert _bash_complete(script, ["raisin", "show", "h"], demo) == ["hello"]
    assert _bash_complete(script, ["raisin", "profile", "sw"], demo) == ["switch"]
    assert _bash_complete(script, ["raisin", "profile", "switch", ""], demo) == ["default"]
    assert "--keep-going" in _bash_complete(script, ["raisin", "realize", "--k"], demo)
    assert _bash_complete(script, ["raisin", "realize", "--sandbox", "b"], demo) == ["bwrap"]


def test_hidden_complete_prints_the_manifest_names(demo: Path, tmp_path: Path) -> None:
    r = raisin("-C", str(demo), "__complete", "components", cwd=tmp_path)
    assert (r.code, r.out, r.err) == (0, "greet\nhello\nmotd\n", "")
    r = raisin("__complete", "profiles", cwd=demo)
    assert (r.code, r.out, r.err) == (0, "default\n", "")
    # no manifest (or a broken one): nothing, quietly
    r = raisin("__complete", "components", cwd=tmp_path)
    assert (r.code, r.out, r.err) == (0, "", "")
    assert "__complete" not in raisin("--help", cwd=tmp_path).out


def test_zsh_and_fish_completion_scripts(tmp_path: Path) -> None:
    zsh = raisin("completion", "zsh", cwd=tmp_path)
    assert zsh.code == 0 and "bashcompinit" in zsh.out and "complete -F _raisin raisin" in zsh.out
    fish = raisin("completion", "fish", cwd=tmp_path)
    assert fish.code == 0, fish
    assert "__complete components" in fish.out and "-a realize" in fish.out
    if shutil.which("fish"):  # optional: fish is not part of the CI image
        assert subprocess.run(["fish", "-n"], input=fish.out, text=True).returncode == 0
    r = raisin("completion", "tcsh", cwd=tmp_path)
    assert r.code == 2 and "invalid choice: 'tcsh'" in r.err


# -- --json ---------------------------------------------------------------------------------


def _json(r: Result, code: int = 0) -> Any:
    assert r.code == code, r
    return json.loads(r.out)


def test_json_output_of_lock_show_diff_verify_gc(demo: Path, tmp_path: Path) -> None:
    got = _json(raisin("lock", "--json", cwd=demo))
    assert got["lock"] == "raisin.lock" and got["written"] is True
    # stale: what the lock lacked before this run
    assert got["stale"] == {n: "not in the lock" for n in ("greet", "hello", "motd")}
    assert sorted(got["locked"]) == ["greet", "hello", "motd"]
    assert got["locked"]["hello"]["version"] == "1.2"
    assert got["locked"]["hello"]["nar_hash"].startswith("sha256-")
    shutil.copy(demo / "raisin.lock", tmp_path / "old.lock")

    got = _json(raisin("lock", "--check", "--json", cwd=demo))
    assert (got["up_to_date"], got["stale"], got["written"]) == (True, {}, False)
    (demo / "src/motd/motd.txt").write_text("changed\n")
    before = (demo / "raisin.lock").read_bytes()
    got = _json(raisin("lock", "--check", "--json", cwd=demo), code=1)
    assert got["up_to_date"] is False and list(got["stale"]) == ["motd"]
    assert (demo / "raisin.lock").read_bytes() == before

    assert raisin("lock", cwd=demo).code == 0
    got = _json(raisin("diff", "--json", str(tmp_path / "old.lock"), cwd=demo))
    assert (got["added"], got["removed"]) == ([], [])
    assert sorted(got["changed"]) == ["hello", "motd"]
    old, new = (got["changed"]["motd"]["fields"]["nar_hash"][k] for k in ("old", "new"))
    assert old != new and new.startswith("sha256-")

    r = raisin("realize", "motd", cwd=demo)
    assert r.code == 0, r
    got = _json(raisin("show", "--json", cwd=demo))
    motd = got["components"]["motd"]
    assert motd["source"] == {"kind": "path", "path": "src/motd"}
    assert motd["built"] is True and got["components"]["hello"]["built"] is False
    assert set(motd) == {
        "rev",
        "nar_hash",
        "out",
        "built",
        "sandboxed",
        "deps",
        "version",
        "source",
    }

    store = demo / "store"
    assert _json(raisin("store", "verify", "--json", cwd=demo)) == {
        "ok": True,
        "damaged": [],
        "repaired": [],
    }
    out = Path(motd["out"])
    f = out / "usr/share/motd/motd.txt"
    f.chmod(0o644)
    out.joinpath("usr/share/motd").chmod(0o755)
    f.write_text("tampered\n")
    got = _json(raisin("store", "verify", "--json", cwd=demo), code=1)
    assert got["ok"] is False and got["repaired"] == []
    assert {(d["path"], d["kind"]) for d in got["damaged"]} >= {(str(out), "hash")}

    got = _json(raisin("gc", "--dry-run", "--json", cwd=demo))
    assert got["dry_run"] is True
    assert all(Path(d["path"]).parent == store.resolve() for d in got["deleted"])
    assert got["bytes_freed"] == sum(d["bytes"] for d in got["deleted"])


def test_json_output_of_profiles(demo: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert _json(raisin("profile", "list", "--json", cwd=demo)) == {
        "profiles": {
            "default": {
                "current": None,
                "generations": 0,
                "active": None,
                "root": None,
                "declared": True,
            }
        }
    }
    r = raisin("profile", "switch", "default", "--root", str(root), "-y", cwd=demo)
    assert r.code == 0, r
    got = _json(raisin("profile", "list", "--json", cwd=demo))["profiles"]["default"]
    assert (got["current"], got["generations"], got["active"]) == (1, 1, 1)
    assert Path(got["root"]).resolve() == root.resolve()
    got = _json(raisin("profile", "generations", "default", "--json", cwd=demo))
    assert got["profile"] == "default"
    (g,) = got["generations"]
    assert (g["number"], g["current"], g["components"]) == (1, True, {"hello": "1.2"})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", g["date"])


def test_json_output_of_test(demo: Path) -> None:
    with open(demo / "raisin.toml", "a") as f:
        f.write('\n[tests.fine]\nrun = ["true"]\n\n[tests.broken]\nrun = ["exit 3"]\n')
    got = _json(raisin("test", "--list", "--json", cwd=demo))
    assert sorted(got["tests"]) == ["broken", "fine"]
    got = _json(raisin("test", "--json", cwd=demo), code=1)
    assert got["ok"] is False
    status = {t["name"]: t["status"] for t in got["results"]}
    assert status == {"fine": "passed", "broken": "failed"}
