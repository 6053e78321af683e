"""The command line itself: global flags, help, init, completion, JSON output, error places."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from conftest import raisin

from raisin_lock.cli.main import build_parser


def _walk(
    p: argparse.ArgumentParser, path: tuple[str, ...] = ("raisin",)
) -> Iterator[tuple[tuple[str, ...], argparse.Action, str | None]]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in a._choices_actions}
            for name, child in a.choices.items():
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
