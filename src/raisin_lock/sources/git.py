"""Git sources: a ref resolved to a full commit, the commit's tree exported verbatim.

Git is driven through GitPython (imported on first use: it costs start-up
time), and its errors become :class:`SourceError` here, at the edge. One bare
mirror per URL lives under ``<store>/.raisin/git/``; a fetch asks only for the
ref being resolved, and a commit already in the mirror needs no network at
all. A mirror is made only once its remote has answered, so a bad URL or ref
leaves nothing behind (not even ``store/``).

The tree is written from the object database entry by entry (``ls-tree``, then
each blob through GitPython's persistent ``cat-file --batch``) rather than
with ``git archive``, so ``export-subst``/``export-ignore`` attributes (Xen's
repository has them), end-of-line conversion and filters never change the
bytes: the source is the commit's tree exactly. Submodules are fetched into
their own mirrors and exported in place, each at the commit its superproject
records (recursively), unless the source says ``submodules = false``; then
gitlinks stay empty directories. The lock lists every submodule, so realize
needs no ``.gitmodules`` parsing.

Safety: URLs and refs are checked (:mod:`raisin_lock.manifest.git_remote`),
``--`` precedes every URL and ref positional, and git runs with
``GIT_ALLOW_PROTOCOL`` restricted to file, git, http, https and ssh, so no
remote helper (``ext::``) or option-shaped URL can run a host command.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from raisin_lock.errors import SourceError
from raisin_lock.hashing import Hash
from raisin_lock.lock.pins import LockedSource, Submodule, make_label
from raisin_lock.manifest.git_remote import ref_problem, url_problem
from raisin_lock.nar import hash_path
from raisin_lock.sources import FetchContext

if TYPE_CHECKING:
    from git import Repo
    from git.cmd import Git
    from git.exc import GitCommandError

    from raisin_lock.manifest.model import SourceSpec

HEX40 = re.compile(r"^[0-9a-f]{40}$")
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ASKPASS": "true",
    "LC_ALL": "C",
    "GIT_PROTOCOL_FROM_USER": "0",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
}
ALL_REFS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]


# ---------------------------------------------------------------- GitPython edge


def _gitpython() -> tuple[type[Repo], type[Git], type[GitCommandError]]:
    try:
        import git
    except ImportError as exc:
        raise SourceError(f"git is not usable: {exc}", hint="apt-get install git") from None
    return git.Repo, git.cmd.Git, git.exc.GitCommandError


def _command() -> Git:
    """A GitPython command runner with raisin's git environment."""
    _, git_cls, _ = _gitpython()
    g = git_cls()
    g.update_environment(**GIT_ENV)
    return g


@contextmanager
def _open(path: Path) -> Iterator[Repo]:
    """The mirror at ``path`` as a GitPython repo (its helper processes closed afterwards)."""
    repo_cls, _, _ = _gitpython()
    repo = repo_cls(path)
    repo.git.update_environment(**GIT_ENV)
    try:
        yield repo
    finally:
        repo.close()


def _reason(exc: Exception) -> str:
    """git's own first complaint, without GitPython's wrapping ("fatal: ..." -> "...")."""
    text = str(getattr(exc, "stderr", "") or "").strip()
    text = text.removeprefix("stderr:").strip().strip("'").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        for prefix in ("fatal:", "error:"):
            if ln.startswith(prefix):
                return ln[len(prefix) :].strip().rstrip(".")
    return lines[0].rstrip(".") if lines else "git gave no reason"


def _run(repo: Repo, cmd: str, *args: str) -> str:
    """``git CMD ARGS`` in ``repo`` through ``repo.git.<cmd>`` (GitCommandError propagates)."""
    out: str = getattr(repo.git, cmd)(*args)
    return out


def _try(repo: Repo, cmd: str, *args: str) -> str | None:
    """``git CMD ARGS`` in ``repo``, or None when git fails."""
    _, _, err = _gitpython()
    try:
        return _run(repo, cmd, *args)
    except err:
        return None


# ---------------------------------------------------------------- mirrors


def mirror_dir(ctx: FetchContext, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return ctx.store.root / ".raisin" / "git" / f"{make_label(url)}-{digest}.git"


def _check(url: str, ref: str | None, ctx: FetchContext) -> None:
    """Refuse what git would misread (the manifest and lock readers check this first)."""
    problem = url_problem(url)
    if problem:
        raise SourceError(problem, file=ctx.file, key=f"{ctx.key}.git")
    if ref is not None:
        problem = ref_problem(ref)
        if problem:
            raise SourceError(problem, file=ctx.file, key=f"{ctx.key}.ref")


@contextmanager
def _mirror(ctx: FetchContext, url: str) -> Iterator[tuple[Repo, bool]]:
    """(repo, made-now) for ``url``'s mirror; one made now is removed again if the body fails.

    Directories this call had to create (``store/``, ``store/.raisin/git``) go too, so
    a URL or ref that turns out bad leaves the disk as it was.
    """
    mirror = mirror_dir(ctx, url)
    if (mirror / "HEAD").exists():
        with _open(mirror) as repo:
            yield repo, False
        return
    top = mirror.parent
    while not top.parent.exists():
        top = top.parent
    made = None if top.exists() else top
    repo_cls, _, err = _gitpython()
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = mirror.with_name(mirror.name + f".tmp{os.getpid()}")
    ok = False
    try:
        try:
            repo_cls.init(tmp, bare=True).close()
        except (err, OSError) as exc:
            raise SourceError(f"cannot create a git mirror at {tmp}: {exc}") from None
        with _open(tmp) as repo:
            yield repo, True
        try:
            os.rename(tmp, mirror)
        except OSError:
            pass  # another process made it first; theirs is as good
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok and made is not None:
            shutil.rmtree(made, ignore_errors=True)


def _has_commit(repo: Repo, rev: str) -> bool:
    return _try(repo, "cat_file", "-e", f"{rev}^{{commit}}") is not None


def _rev_parse(repo: Repo, name: str) -> str | None:
    out = _try(repo, "rev_parse", "-q", "--verify", f"{name}^{{commit}}")
    return out.strip() if out else None


def _patterns(ref: str) -> list[str]:
    return (
        [ref]
        if ref == "HEAD" or ref.startswith("refs/")
        else [f"refs/tags/{ref}", f"refs/heads/{ref}"]
    )


def _ls_remote(url: str, ref: str, ctx: FetchContext) -> list[tuple[str, str]]:
    _, _, err = _gitpython()
    try:
        out = str(_command().ls_remote("--", url, *_patterns(ref)))
    except err as exc:
        raise SourceError(
            f"cannot reach git remote {url}: {_reason(exc)}", file=ctx.file, key=ctx.key
        ) from None
    pairs = []
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        pairs.append((sha, name))
    return pairs


def _pick(refs: list[tuple[str, str]], ref: str) -> tuple[str, str] | None:
    """(refname, object id) of the best match: tags before branches."""
    table = {name: sha for sha, name in refs}
    for name in _patterns(ref):
        if name in table:
            return name, table[name]
    return None


def _fetch(repo: Repo, url: str, refspecs: list[str], ctx: FetchContext) -> None:
    _, _, err = _gitpython()
    try:
        _run(repo, "fetch", "-q", "--no-tags", "--no-write-fetch-head", "--", url, *refspecs)
    except err as exc:
        raise SourceError(
            f"cannot fetch {' '.join(refspecs)} from {url}: {_reason(exc)}",
            file=ctx.file,
            key=ctx.key,
        ) from None


def _needs_network(ctx: FetchContext, url: str, ref: str) -> SourceError:
    return SourceError(
        f"needs the network: {ref!r} of {url} is not in the local mirror",
        file=ctx.file,
        key=ctx.key,
        hint="run without --offline",
    )


def _ensure_commit(ctx: FetchContext, url: str, rev: str) -> None:
    """Make the full commit ``rev`` of ``url`` present in its mirror."""
    _check(url, rev, ctx)
    mirror = mirror_dir(ctx, url)
    if (mirror / "HEAD").exists():
        with _open(mirror) as repo:
            if _has_commit(repo, rev):
                return
    if ctx.offline:
        raise _needs_network(ctx, url, rev)
    _ls_remote(url, "HEAD", ctx)  # the remote answers before a mirror is made
    _, _, err = _gitpython()
    with _mirror(ctx, url) as (repo, _new):
        try:
            _run(repo, "fetch", "-q", "--no-tags", "--no-write-fetch-head", "--", url, rev)
        except err:
            # Servers may refuse fetching an unadvertised commit: take everything.
            _fetch(repo, url, ALL_REFS, ctx)
        if not _has_commit(repo, rev):
            raise SourceError(f"commit {rev} not found in {url}", file=ctx.file, key=ctx.key)


def _resolve_rev(url: str, ref: str, ctx: FetchContext) -> tuple[str, bool]:
    """(commit, ref-is-a-tag), with the commit present in the mirror."""
    _check(url, ref, ctx)
    if HEX40.match(ref):
        _ensure_commit(ctx, url, ref)
        return ref, False
    mirror = mirror_dir(ctx, url)
    if ctx.offline:
        if (mirror / "HEAD").exists():
            with _open(mirror) as repo:
                for name in _patterns(ref):
                    rev = _rev_parse(repo, name)
                    if rev:
                        return rev, name.startswith("refs/tags/")
        raise _needs_network(ctx, url, ref)
    picked = _pick(_ls_remote(url, ref, ctx), ref)
    if picked is None:
        hint = None
        if re.fullmatch(r"[0-9a-f]{7,39}", ref):
            hint = "a commit must be given as its full 40-character id"
        raise SourceError(
            f"ref {ref!r} not found in git remote {url}", file=ctx.file, key=ctx.key, hint=hint
        )
    name, oid = picked
    local = "refs/raisin/HEAD" if name == "HEAD" else name
    with _mirror(ctx, url) as (repo, _new):
        # An annotated tag's oid is the tag object; compare before peeling.
        current = _try(repo, "rev_parse", "-q", "--verify", local)
        if current is None or current.strip() != oid:
            _fetch(repo, url, [f"+{name}:{local}"], ctx)
        have = _rev_parse(repo, local)
        if not have:
            raise SourceError(
                f"ref {ref!r} of {url} does not point to a commit", file=ctx.file, key=ctx.key
            )
    return have, name.startswith("refs/tags/")


# ---------------------------------------------------------------- trees


def export_tree(repo: Repo, rev: str, dest: Path) -> list[tuple[str, str]]:
    """Write the tree of ``rev`` into ``dest`` (new or empty) byte for byte.

    Returns the gitlinks (submodule path, commit), each left as an empty directory.
    """
    listing: bytes = repo.git.ls_tree("-r", "-z", "--full-tree", rev, stdout_as_string=False)
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
    dest.mkdir(parents=True, exist_ok=True)
    root = os.fsencode(dest)
    links: list[tuple[str, str]] = []
    for _mode, typ, oid, path in entries:
        if typ == "commit":
            os.makedirs(os.path.join(root, path), exist_ok=True)
            links.append((os.fsdecode(path), oid))
    for mode, typ, oid, path in entries:
        if typ != "blob":
            continue
        _hexsha, _type, size, stream = repo.git.stream_object_data(oid)
        target = os.path.join(root, path)
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        if mode == "120000":
            os.symlink(stream.read(size), target)
            continue
        fd = os.open(
            target,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            0o755 if mode == "100755" else 0o644,
        )
        with os.fdopen(fd, "wb") as f:
            left = size
            while left:
                chunk = stream.read(min(left, 1 << 20))
                if not chunk:
                    raise SourceError(f"git cat-file output ended early for {oid}")
                f.write(chunk)
                left -= len(chunk)
    return links


def commit_time(repo: Repo, rev: str) -> int:
    return int(repo.commit(rev).committed_date)


def version_from_tag(tag: str) -> str | None:
    m = re.search(r"\d[A-Za-z0-9+._~\-]*$", tag)
    return m.group(0) if m else None


def join_url(base: str, rel: str) -> str:
    """A ``.gitmodules`` URL made absolute: ``./x`` and ``../x`` are relative to ``base``."""
    if not rel.startswith(("./", "../")):
        return rel
    base = base.rstrip("/")
    while rel.startswith(("./", "../")):
        if rel.startswith("./"):
            rel = rel[2:]
            continue
        rel = rel[3:]
        if "://" in base:
            floor = base.index("://") + 3
            cut = base.rfind("/")
        else:
            floor = 0
            cut = max(base.rfind("/"), base.rfind(":"))
        if cut <= floor:
            raise ValueError(f"relative URL climbs above {base!r}")
        base = base[:cut]
    return f"{base}/{rel}" if rel else base


def _gitmodules(repo: Repo, rev: str) -> dict[str, str]:
    """Submodule path -> URL as the commit's own ``.gitmodules`` declares them."""
    out = _try(repo, "config", "-z", "--blob", f"{rev}:.gitmodules", "--list")
    if not out:
        return {}
    paths: dict[str, str] = {}
    urls: dict[str, str] = {}
    for rec in out.split("\0"):
        key, _, value = rec.partition("\n")
        m = re.fullmatch(r"submodule\.(.+)\.(path|url)", key)
        if m:
            (paths if m.group(2) == "path" else urls)[m.group(1)] = value
    return {p: urls[name] for name, p in paths.items() if name in urls}


def _export_with_submodules(
    url: str, rev: str, dest: Path, ctx: FetchContext, prefix: str = ""
) -> list[Submodule]:
    """Export ``rev`` of ``url`` into ``dest`` and, recursively, every submodule it records."""
    with _open(mirror_dir(ctx, url)) as repo:
        links = export_tree(repo, rev, dest)
        declared = _gitmodules(repo, rev) if links else {}
    found: list[Submodule] = []
    for path, oid in sorted(links):
        where = f"submodule {prefix}{path} of commit {rev}"
        if path not in declared:
            raise SourceError(f"{where} has no URL in .gitmodules", file=ctx.file, key=ctx.key)
        try:
            sub_url = join_url(url, declared[path])
        except ValueError as exc:
            raise SourceError(f"{where}: {exc}", file=ctx.file, key=ctx.key) from None
        problem = url_problem(sub_url)
        if problem:
            raise SourceError(f"{where}: {problem}", file=ctx.file, key=ctx.key)
        _ensure_commit(ctx, sub_url, oid)
        found.append(Submodule(path=f"{prefix}{path}", url=sub_url, rev=oid))
        found += _export_with_submodules(sub_url, oid, dest / path, ctx, f"{prefix}{path}/")
    return found


def _export(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    """The pinned tree from the mirrors (already holding every commit) into ``dest``."""
    assert src.url and src.rev
    with _open(mirror_dir(ctx, src.url)) as repo:
        export_tree(repo, src.rev, dest)
    for sub in sorted(src.submodules, key=lambda s: s.path):
        with _open(mirror_dir(ctx, sub.url)) as repo:
            export_tree(repo, sub.rev, dest / sub.path)


# ---------------------------------------------------------------- the fetcher


def resolve(spec: SourceSpec, ctx: FetchContext) -> LockedSource:
    assert spec.git is not None
    return _pin(spec.git, spec.ref or "HEAD", ctx, submodules=spec.submodules is not False)


def pin(ctx: FetchContext, url: str, rev: str) -> LockedSource:
    """The pin of commit ``rev`` of ``url`` (submodules included), for ``raisin bisect``."""
    return _pin(url, rev, ctx, submodules=True)


def commits_between(ctx: FetchContext, url: str, good: str, bad: str) -> list[str]:
    """The commits after ``good`` up to ``bad`` (included), oldest first, on the ancestry path."""
    good_rev, _ = _resolve_rev(url, good, ctx)
    bad_rev, _ = _resolve_rev(url, bad, ctx)
    with _open(mirror_dir(ctx, url)) as repo:
        out = _run(
            repo,
            "rev_list",
            "--reverse",
            "--topo-order",
            "--ancestry-path",
            f"{good_rev}..{bad_rev}",
        )
    return out.split()


def _pin(url: str, ref: str, ctx: FetchContext, *, submodules: bool) -> LockedSource:
    rev, is_tag = _resolve_rev(url, ref, ctx)
    label = make_label(url)
    hint = version_from_tag(ref) if is_tag else None
    with ctx.store.tmpdir("git-export") as tmp:
        tree = tmp / "tree"
        if not submodules:
            with _open(mirror_dir(ctx, url)) as repo:
                export_tree(repo, rev, tree)
            subs: list[Submodule] = []
        else:
            subs = _export_with_submodules(url, rev, tree, ctx)
        nar_hash: Hash = hash_path(tree)[0]
        ctx.store.add_tree(tree, f"{label}-source", expected=nar_hash)
    with _open(mirror_dir(ctx, url)) as repo:
        date = commit_time(repo, rev)
    return LockedSource(
        kind="git",
        nar_hash=nar_hash,
        date=date,
        label=label,
        url=url,
        ref=ref,
        rev=rev,
        submodules=tuple(subs),
        version_hint=hint or rev[:7],
    )


def fetch_tree(src: LockedSource, ctx: FetchContext, dest: Path) -> None:
    assert src.url and src.rev
    _ensure_commit(ctx, src.url, src.rev)
    for sub in src.submodules:
        _ensure_commit(ctx, sub.url, sub.rev)
    _export(src, ctx, dest)


def log_between(
    ctx: FetchContext, url: str, old: str, new: str, *, fetch: bool = False, limit: int = 20
) -> tuple[list[str], str | None]:
    """(one-line log old..new, None) or ([], why it is unavailable).

    Without ``fetch`` only the mirror is read; with it, missing commits are fetched.
    """
    if fetch:
        try:
            _ensure_commit(ctx, url, old)
            _ensure_commit(ctx, url, new)
        except SourceError as exc:
            return [], f"cannot fetch: {exc.message}"
    mirror = mirror_dir(ctx, url)
    if not (mirror / "HEAD").exists():
        return [], "not fetched (run with --fetch)"
    with _open(mirror) as repo:
        if not (_has_commit(repo, old) and _has_commit(repo, new)):
            return [], "not fetched (run with --fetch)"
        commits = list(repo.iter_commits(f"{old}..{new}", max_count=limit))
        return [f"{c.hexsha[:12]} {c.summary!s}" for c in commits], None
