"""raisin bisect: the first bad commit of one component, everything else from the store."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_repo, raisin

JUDGE = 'grep -q BUG "$RAISIN_OUT_app/value" && exit 1; exit 0'


def _history(repo: Path, n: int, bad: int) -> list[str]:
    """``n`` commits of ``value``; from commit ``bad`` (0-based) on, it holds BUG."""
    revs = []
    for i in range(n):
        text = f"release {i}\n" + ("BUG\n" if i >= bad else "")
        revs.append(make_repo(repo, {"value": text}, date=1700000000 + 100 * i))
    return revs


def _project(tmp_path: Path, repo: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "base").mkdir(parents=True)
    (proj / "base" / "b.txt").write_text("base\n")
    (proj / "raisin.toml").write_text(
        f"""
[components.base]
source = {{ path = "base" }}
build = ["install -Dm644 b.txt $out/b.txt"]

[components.app]
source = {{ git = "file://{repo}", ref = "main" }}
deps = ["base"]
build = ["install -Dm644 value $out/value", "cat $base/b.txt >> $out/value"]
"""
    )
    return proj


def test_bisect_finds_the_first_bad_commit_with_everything_else_from_the_store(
    tmp_path: Path,
) -> None:
    revs = _history(tmp_path / "app", 16, bad=11)
    proj = _project(tmp_path, tmp_path / "app")
    r = raisin("realize", cwd=proj)
    assert r.code == 0, r
    lock_before = (proj / "raisin.lock").read_bytes()
    base_out = json.loads(raisin("show", "--json", cwd=proj).out)["components"]["base"]["out"]

    r = raisin(
        "bisect", "app", "--good", revs[0], "--bad", "main", "--", "sh", "-c", JUDGE, cwd=proj
    )
    assert r.code == 0, r
    assert r.out.strip() == f"{revs[11]} is the first bad commit of app"
    summary = next(line for line in r.err.splitlines() if " steps over " in line)
    steps = int(summary.split()[0])
    built = int(summary.split(", ")[1].split()[0])
    assert summary.startswith(f"{steps} steps over 15 commits")
    assert steps <= 5 and built <= 5, summary
    # the lock is untouched, and base was never built again (it stayed the same path)
    assert (proj / "raisin.lock").read_bytes() == lock_before
    assert "base" not in [ln.split()[-1] for ln in r.err.splitlines() if ln.startswith("building")]
    assert (
        json.loads(raisin("show", "--json", cwd=proj).out)["components"]["base"]["out"] == base_out
    )


def test_bisect_skips_commits_that_do_not_build_and_says_when_it_cannot_tell(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "app"
    revs = _history(repo, 6, bad=5)
    proj = _project(tmp_path, repo)
    # commit 3 cannot be judged (exit 125); commit 5 is the first with BUG
    assert raisin("realize", "base", cwd=proj).code == 0
    r = raisin(
        "bisect",
        "app",
        "--good",
        revs[0],
        "--bad",
        revs[5],
        "--",
        "sh",
        "-c",
        'test "$RAISIN_REV" = ' + revs[3] + " && exit 125; " + JUDGE,
        cwd=proj,
    )
    assert r.code == 0, r
    assert r.out.strip() == f"{revs[5]} is the first bad commit of app"
    assert f"{revs[3][:12]}: skip (exit status 125)" in r.err

    r = raisin(
        "bisect", "app", "--good", revs[0], "--bad", revs[5], "--", "sh", "-c", "exit 125", cwd=proj
    )
    assert r.code == 1, r
    assert r.out.splitlines() == ["the first bad commit could be any of:", *revs[1:6]]


def test_bisect_refuses_a_component_without_git_history(tmp_path: Path) -> None:
    revs = _history(tmp_path / "app", 2, bad=1)
    proj = _project(tmp_path, tmp_path / "app")
    assert raisin("lock", cwd=proj).code == 0
    r = raisin("bisect", "base", "--good", revs[0], "--bad", revs[1], "--", "true", cwd=proj)
    assert r.code == 2, r
    assert "base has a path source; bisect walks a git history" in r.err
