"""Merkle trees of REAPI ``Directory`` messages: input roots up, output trees down.

Up: :class:`InputRoot` collects host directories (a store path each, at its
relative place) and generated files into one root ``Directory``, and the
blobs (serialized directories, file contents by path) to upload.

Down: :func:`restore_tree` writes an output ``Tree`` into a new host
directory, every file fetched from the CAS and checked against its digest.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from raisin_lock.remote.cas import Cas, digest_of, digest_of_file, key
from raisin_lock.remote.errors import RemoteError
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import remote_execution_pb2 as re

Blobs = dict[tuple[str, int], bytes | Path]


@dataclass
class DirNode:
    dirs: dict[str, DirNode] = field(default_factory=dict)
    files: dict[str, tuple[re.Digest, bool]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


@dataclass
class InputRoot:
    """An input root being assembled; :meth:`finish` gives its digest."""

    root: DirNode = field(default_factory=DirNode)
    blobs: Blobs = field(default_factory=dict)

    def _dir(self, rel: str) -> DirNode:
        d = self.root
        for part in filter(None, rel.split("/")):
            d = d.dirs.setdefault(part, DirNode())
        return d

    def add_file(self, rel: str, data: bytes, executable: bool = False) -> None:
        parent, _, name = rel.rpartition("/")
        dg = digest_of(data)
        self.blobs[key(dg)] = data
        self._dir(parent).files[name] = (dg, executable)

    def add_dir(self, rel: str) -> None:
        self._dir(rel)

    def add_tree(self, rel: str, host: Path) -> None:
        """``host`` (a directory, file or symlink) at ``rel``."""
        parent, _, name = rel.rpartition("/")
        self._add(self._dir(parent), name, host)

    def _add(self, parent: DirNode, name: str, host: Path) -> None:
        st = os.lstat(host)
        if stat.S_ISLNK(st.st_mode):
            parent.links[name] = os.readlink(host)
        elif stat.S_ISDIR(st.st_mode):
            d = parent.dirs.setdefault(name, DirNode())
            for entry in sorted(os.listdir(host)):
                self._add(d, entry, host / entry)
        elif stat.S_ISREG(st.st_mode):
            dg = digest_of_file(host)
            self.blobs.setdefault(key(dg), host)
            parent.files[name] = (dg, bool(st.st_mode & 0o111))
        else:
            raise RemoteError(f"cannot send {host} to a remote: not a file, directory or symlink")

    def finish(self) -> re.Digest:
        return self._seal(self.root)

    def _seal(self, d: DirNode) -> re.Digest:
        msg = re.Directory(
            directories=[
                re.DirectoryNode(name=n, digest=self._seal(sub))
                for n, sub in sorted(d.dirs.items())
            ],
            files=[
                re.FileNode(name=n, digest=dg, is_executable=x)
                for n, (dg, x) in sorted(d.files.items())
            ],
            symlinks=[re.SymlinkNode(name=n, target=t) for n, t in sorted(d.links.items())],
        )
        data = msg.SerializeToString(deterministic=True)
        dg = digest_of(data)
        self.blobs[key(dg)] = data
        return dg


def restore_tree(cas: Cas, tree: re.Tree, dest: Path) -> None:
    """Write ``tree`` at ``dest`` (must not exist), every file checked against its digest."""
    children = {key(digest_of(c.SerializeToString(deterministic=True))): c for c in tree.children}
    wanted: list[re.Digest] = []

    def collect(d: re.Directory) -> None:
        for f in d.files:
            wanted.append(f.digest)
        for sub in d.directories:
            collect(_child(children, sub.digest))

    collect(tree.root)
    small = cas.read_many(dg for dg in wanted if dg.size_bytes <= (1 << 20))

    def write(d: re.Directory, path: Path) -> None:
        path.mkdir()
        for f in d.files:
            target = path / _safe(f.name)
            if key(f.digest) in small:
                target.write_bytes(small[key(f.digest)])
            else:
                cas.read_to_file(f.digest, target)
            target.chmod(0o755 if f.is_executable else 0o644)
        for link in d.symlinks:
            os.symlink(link.target, path / _safe(link.name))
        for sub in d.directories:
            write(_child(children, sub.digest), path / _safe(sub.name))

    write(tree.root, dest)


def _child(children: dict[tuple[str, int], re.Directory], dg: re.Digest) -> re.Directory:
    c = children.get(key(dg))
    if c is None:
        # a child that is not there, or whose bytes do not hash to its digest
        raise RemoteError(f"output tree refers to directory {dg.hash} it does not contain")
    return c


def _safe(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise RemoteError(f"output tree has an unsafe name {name!r}")
    return name
