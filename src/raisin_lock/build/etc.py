"""The ``/etc`` a build sees: a few host files a toolchain reads, and generated identity files.

Nothing with secrets and, for builds, nothing network-related: ``ld.so.*``
for the dynamic loader and ld's ``-rpath-link`` search, ``alternatives``
because Debian's ``/usr/bin/cc``, ``c++``, ``ld`` are links through it; then
``passwd``, ``group``, ``hosts`` and ``nsswitch.conf`` written for the build
user. A *fetch* (:mod:`.fetching`) also gets name resolution and the CA
certificates.
"""

from __future__ import annotations

import os

_ETC_FROM_HOST = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives")
# What a *fetch* (BuildSpec.network) adds: name resolution and the CA certificates.
_ETC_FOR_NETWORK = ("resolv.conf", "nsswitch.conf", "hosts", "ssl", "ca-certificates", "gitconfig")


def etc_args(
    uid: int,
    gid: int,
    hostname: str,
    home: str,
    *,
    network: bool,
    data_fds: list[int],
    files_dir: str | None = None,
) -> list[str]:
    """bwrap arguments making ``/etc``; the pipes bwrap reads generated files from go to ``data_fds``.

    With ``files_dir`` (a remote action's wrapper: no pipes), the generated
    files are bound from there instead; :func:`etc_files` writes them.
    """
    argv = ["--perms", "0755", "--dir", "/etc"]
    generated = _etc_files(0, 0, hostname, home)
    names = _ETC_FROM_HOST + tuple(n for n in _ETC_FOR_NETWORK if n not in generated) * network
    for name in names:
        host = "/etc/" + name
        if os.path.lexists(host):
            argv += ["--ro-bind", host, host]
    for name, text in _etc_files(uid, gid, hostname, home, network).items():
        if files_dir is not None:
            argv += ["--ro-bind", f"{files_dir}/{name}", "/etc/" + name]
            continue
        fd = _data_fd(text)
        data_fds.append(fd)
        argv += ["--perms", "0644", "--ro-bind-data", str(fd), "/etc/" + name]
    return argv


def etc_files(uid: int, gid: int, hostname: str, home: str) -> dict[str, str]:
    """The generated files of a build's ``/etc`` (name -> text)."""
    return _etc_files(uid, gid, hostname, home)


def _etc_files(
    uid: int, gid: int, hostname: str, home: str, network: bool = False
) -> dict[str, str]:
    users = {
        0: "root:x:0:0:root:/root:/bin/sh",
        65534: "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    }
    users.setdefault(uid, f"{hostname}:x:{uid}:{gid}:raisin build user:{home}:/bin/sh")
    groups = {0: "root:x:0:", 65534: "nogroup:x:65534:"}
    groups.setdefault(gid, f"{hostname}:x:{gid}:")
    return {
        "passwd": "".join(line + "\n" for _, line in sorted(users.items())),
        "group": "".join(line + "\n" for _, line in sorted(groups.items())),
        "hosts": f"127.0.0.1 localhost {hostname}\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files"
        + (" dns\n" if network else "\n"),
    }


def _data_fd(text: str) -> int:
    """A pipe's read end holding ``text``, for bwrap's ``--ro-bind-data`` (which closes it)."""
    data = text.encode()
    read, write = os.pipe()
    try:
        os.write(write, data)  # a few hundred bytes: far below the pipe buffer
    finally:
        os.close(write)
    return read
