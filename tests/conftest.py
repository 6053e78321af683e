"""Shared fixtures: run the real CLI, make real git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import loopback_unproxied

RAISIN = str(Path(sys.executable).parent / "raisin")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent-home",
}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


def raisin(
    *args: str,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> Result:
    full_env = dict(os.environ)
    full_env.pop("RAISIN_STORE", None)
    loopback_unproxied(full_env)
    if env:
        full_env.update(env)
    p = subprocess.run(
        [RAISIN, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    return Result(p.returncode, p.stdout, p.stderr)


def install_builddeps(proj: Path) -> None:
    """``raisin install-builddep -y`` for a real-stack project, when running as root (CI).

    Elsewhere the tests say which packages are missing and fail, as a user would see."""
    if os.geteuid() == 0:
        r = raisin("install-builddep", "-y", cwd=proj, timeout=1800)
        assert r.code == 0, r


def git(repo: Path, *args: str, date: int | None = None) -> str:
    env = dict(os.environ, **GIT_ENV)
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{date} +0000"
    p = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr}")
    return p.stdout.strip()


def make_repo(
    path: Path,
    files: dict[str, str],
    *,
    tag: str | None = None,
    annotated: bool = False,
    date: int = 1700000000,
) -> str:
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"commit at {date}", date=date)
    if tag:
        if annotated:
            git(path, "tag", "-a", tag, "-m", f"release {tag}", date=date)
        else:
            git(path, "tag", tag)
    return git(path, "rev-parse", "HEAD")


def nix_hash(path: Path) -> str:
    import base64

    hexd = subprocess.run(
        ["nix-hash", "--type", "sha256", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    return "sha256-" + base64.b64encode(bytes.fromhex(hexd)).decode()


@pytest.fixture
def run():
    return raisin


DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A fresh copy of the demo stack: no store, no lock, no profiles."""
    import shutil

    dst = tmp_path / "demo"
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("store", "raisin.lock", "profiles"))
    return dst
