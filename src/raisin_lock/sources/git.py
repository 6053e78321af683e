"""Git sources: a ref resolved to a full commit, the commit's tree exported verbatim.

One bare mirror per URL lives under ``<store>/.raisin/git/``; a fetch asks only
for the ref being resolved, and a commit already in the mirror needs no
network at all. The tree is written from the object database entry by entry
(``ls-tree`` + ``cat-file --batch``) rather than with ``git archive``, so
``export-subst``/``export-ignore`` attributes (Xen's repository has them),
end-of-line conversion and filters never change the bytes: the source is the
commit's tree exactly. Submodules (gitlinks) become empty directories.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from raisin_lock.errors import HashMismatch, SourceError
from raisin_lock.lock.pins import LockedSource, make_label
from raisin_lock.nar import hash_path
from raisin_lock.sources import FetchContext

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ASKPASS": "true",
    "LC_ALL": "C",
}


def mirror_dir(ctx: FetchContext, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return ctx.store.root / ".raisin" / "git" / f"{make_label(url)}-{digest}.git"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(_GIT_ENV)
    return env


def _git(
    args: list[str], cwd: Path | None = None, *, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise SourceError("git is not installed (apt-get install git)") from None
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
    return proc


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _ensure_mirror(ctx: FetchContext, url: str) -> Path:
    mirror = mirror_dir(ctx, url)
    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = mirror.with_name(mirror.name + f".tmp{os.getpid()}")
        _git(["init", "-q", "--bare", str(tmp)])
        _git(["config", "remote.origin.url", url], cwd=tmp)
        try:
            os.rename(tmp, mirror)
        except OSError:
            # Another process created it first.
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return mirror


def _has_commit(mirror: Path, rev: str) -> bool:
    return _git(["cat-file", "-e", f"{rev}^{{commit}}"], cwd=mirror, check=False).returncode == 0


def _ls_remote(url: str, ref: str, ctx: FetchContext) -> list[tuple[str, str]]:
    patterns = (
        [ref]
        if ref == "HEAD" or ref.startswith("refs/")
        else [f"refs/tags/{ref}", f"refs/heads/{ref}"]
    )
    try:
        proc = _git(["ls-remote", url, *patterns])
    except subprocess.CalledProcessError as exc:
        raise SourceError(
            f"cannot reach remote {url}: {_last_line(exc.stderr)}", file=ctx.file, key=ctx.key
        ) from None
    out = []
    for line in proc.stdout.decode().splitlines():
        sha, _, name = line.partition("\t")
        out.append((sha, name))
    return out


def _pick(refs: list[tuple[str, str]], ref: str) -> tuple[str, str] | None:
    """(refname, object id) of the best match: tags before branches."""
    table = {name: sha for sha, name in refs}
    candidates = (
        [ref]
        if ref == "HEAD" or ref.startswith("refs/")
        else [f"refs/tags/{ref}", f"refs/heads/{ref}"]
    )
    for name in candidates:
        if name in table:
            return name, table[name]
    return None


def _fetch(mirror: Path, url: str, refspecs: list[str], ctx: FetchContext) -> None:
    try:
        _git(["fetch", "-q", "--no-tags", "--no-write-fetch-head", url, *refspecs], cwd=mirror)
    except subprocess.CalledProcessError as exc:
        raise SourceError(
            f"cannot fetch {' '.join(refspecs)} from {url}: {_last_line(exc.stderr)}",
            file=ctx.file,
            key=ctx.key,
        ) from None


def _rev_parse(mirror: Path, name: str) -> str | None:
    proc = _git(["rev-parse", "-q", "--verify", f"{name}^{{commit}}"], cwd=mirror, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def _resolve_rev(url: str, ref: str, ctx: FetchContext) -> tuple[str, bool, Path]:
    """(commit, ref-is-a-tag, mirror)."""
    mirror = _ensure_mirror(ctx, url)
    if _HEX40.match(ref):
        if not _has_commit(mirror, ref):
            if ctx.offline:
                raise _needs_network(ctx, url, ref)
            try:
                _git(["fetch", "-q", "--no-tags", "--no-write-fetch-head", url, ref], cwd=mirror)
            except subprocess.CalledProcessError:
                # Servers may refuse fetching an unadvertised commit: take everything.
                _fetch(mirror, url, ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], ctx)
            if not _has_commit(mirror, ref):
                raise SourceError(f"commit {ref} not found in {url}", file=ctx.file, key=ctx.key)
        return ref, False, mirror
    if re.fullmatch(r"[0-9a-f]{7,39}", ref) and not ctx.offline:
        pass  # may still be a branch or tag name; fall through
    if ctx.offline:
        for name in [ref] if ref.startswith("refs/") else [f"refs/tags/{ref}", f"refs/heads/{ref}"]:
            rev = _rev_parse(mirror, name)
            if rev:
                return rev, name.startswith("refs/tags/"), mirror
        raise _needs_network(ctx, url, ref)
    picked = _pick(_ls_remote(url, ref, ctx), ref)
    if picked is None:
        hint = None
        if re.fullmatch(r"[0-9a-f]{7,39}", ref):
            hint = "a commit must be given as its full 40-character id"
        raise SourceError(
            f"ref {ref!r} not found in remote {url}", file=ctx.file, key=ctx.key, hint=hint
        )
    name, oid = picked
    local = "refs/raisin/HEAD" if name == "HEAD" else name
    have = _rev_parse(mirror, local)
    # An annotated tag's oid is the tag object; compare after peeling.
    current = (
        _git(["rev-parse", "-q", "--verify", local], cwd=mirror, check=False)
        .stdout.decode()
        .strip()
    )
    if not have or current != oid:
        _fetch(mirror, url, [f"+{name}:{local}"], ctx)
        have = _rev_parse(mirror, local)
    if not have:
        raise SourceError(
            f"ref {ref!r} of {url} does not point to a commit", file=ctx.file, key=ctx.key
        )
    return have, name.startswith("refs/tags/"), mirror


def _needs_network(ctx: FetchContext, url: str, ref: str) -> SourceError:
    return SourceError(
        f"needs the network: {ref!r} of {url} is not in the local mirror",
        file=ctx.file,
        key=ctx.key,
        hint="run without --offline",
    )


def export_tree(mirror: Path, rev: str, dest: Path) -> None:
    """Write the tree of ``rev`` into ``dest`` (created) byte for byte."""
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", rev], cwd=mirror).stdout
    entries: list[tuple[str, str, str, bytes]] = []
    for rec in listing.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        mode, typ, oid = meta.decode().split(" ")
        parts = path.split(b"/")
        if path.startswith(b"/") or any(p in (b"", b".", b"..", b".git") for p in parts):
            raise SourceError(f"refusing unsafe path {path!r} in commit {rev}")
        entries.append((mode, typ, oid, path))
    dest.mkdir(parents=True)
    root = os.fsencode(dest)
    blobs = [e for e in entries if e[1] == "blob"]
    for mode, typ, _oid, path in entries:
        if typ == "commit":
            os.makedirs(os.path.join(root, path), exist_ok=True)
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"],
        cwd=mirror,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    import threading

    def feed() -> None:
        assert proc.stdin is not None
        try:
            for _m, _t, oid, _p in blobs:
                proc.stdin.write(oid.encode() + b"\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out = proc.stdout
    try:
        for mode, _typ, oid, path in blobs:
            header = out.readline().split()
            if len(header) != 3 or header[0].decode() != oid:
                raise SourceError(f"git cat-file answered {header!r} for {oid}")
            size = int(header[2])
            target = os.path.join(root, path)
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):
                os.makedirs(parent)
            if mode == "120000":
                os.symlink(out.read(size), target)
            else:
                fd = os.open(
                    target,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                    0o755 if mode == "100755" else 0o644,
                )
                with os.fdopen(fd, "wb") as f:
                    left = size
                    while left:
                        chunk = out.read(min(left, 1 << 20))
                        if not chunk:
                            raise SourceError("git cat-file output ended early")
                        f.write(chunk)
                        left -= len(chunk)
            out.read(1)  # the newline after each object
    finally:
        feeder.join()
        out.close()
        proc.wait()


def commit_time(mirror: Path, rev: str) -> int:
    return int(_git(["show", "-s", "--format=%ct", rev], cwd=mirror).stdout.decode().strip())


def version_from_tag(tag: str) -> str | None:
    m = re.search(r"\d[A-Za-z0-9+._~\-]*$", tag)
    return m.group(0) if m else None


def resolve(spec, ctx: FetchContext) -> LockedSource:  # type: ignore[no-untyped-def]
    url, ref = spec.git, spec.ref or "HEAD"
    rev, is_tag, mirror = _resolve_rev(url, ref, ctx)
    label = make_label(url)
    hint = version_from_tag(ref) if is_tag else None
    nar_hash = _export_into_store(mirror, rev, label, ctx, expected=None)
    return LockedSource(
        kind="git",
        nar_hash=nar_hash,
        date=commit_time(mirror, rev),
        label=label,
        url=url,
        ref=ref,
        rev=rev,
        version_hint=hint or rev[:7],
    )


def _export_into_store(mirror: Path, rev: str, label: str, ctx: FetchContext, expected):  # type: ignore[no-untyped-def]
    with ctx.store.tmpdir("git-export") as tmp:
        tree = tmp / "tree"
        export_tree(mirror, rev, tree)
        actual = hash_path(tree)[0]
        if expected is not None and actual != expected:
            raise HashMismatch(
                f"commit {rev} has NAR hash {actual.sri}, the lock expects {expected.sri}",
                file=ctx.file,
                key=ctx.key,
            )
        ctx.store.add_tree(tree, f"{label}-source", expected=actual)
    return actual


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    assert src.url and src.rev
    _, _, mirror = _resolve_rev(src.url, src.rev, ctx)
    export_tree(mirror, src.rev, dest)


def log_between(
    ctx: FetchContext, url: str, old: str, new: str, limit: int = 20
) -> list[str] | None:
    """One-line log old..new from the mirror, or None when it lacks either commit."""
    mirror = mirror_dir(ctx, url)
    if not (mirror / "HEAD").exists() or not (
        _has_commit(mirror, old) and _has_commit(mirror, new)
    ):
        return None
    proc = _git(
        ["log", "--oneline", "--no-decorate", f"-{limit}", f"{old}..{new}"], cwd=mirror, check=False
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.decode(errors="replace").splitlines()
