"""A minimal REAPI bot for tests (Bots API v1test2): exercises a client's Execute path.

Not raisin's worker (``raisin worker``): a generic one, as a farm's bot is:
it materialises the input root from the CAS in a fresh directory, runs
``Command.arguments`` there with only ``Command.environment_variables``,
uploads ``Command.output_paths`` and completes the lease with the
ActionResult. Runs in a thread until ``stop`` is set.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import threading
from pathlib import Path

import grpc

from raisin_lock.remote.cas import Cas, digest_of, key
from raisin_lock.remote.channel import open_channel, parse_url
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from raisin_lock.remote.proto.google.devtools.remoteworkers.v1test2 import bots_pb2, worker_pb2
from raisin_lock.remote.proto.google.devtools.remoteworkers.v1test2 import (
    bots_pb2_grpc as bots_grpc,
)
from raisin_lock.remote.tree import InputRoot


class TestBot(threading.Thread):
    def __init__(self, url: str, name: str = "testbot") -> None:
        super().__init__(daemon=True, name=name)
        self.remote = parse_url(url)
        self.bot_id = name
        self.stop = threading.Event()
        self.ran: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001  (reported to the test)
            self.error = e

    def _loop(self) -> None:
        with open_channel(self.remote) as ch:
            cas = Cas(ch, self.remote)
            bots = bots_grpc.BotsStub(ch)
            props = [("OSFamily", "linux"), ("ISA", platform.machine())]
            worker = worker_pb2.Worker(
                devices=[
                    worker_pb2.Device(
                        handle="primary",
                        properties=[worker_pb2.Device.Property(key=k, value=v) for k, v in props],
                    )
                ]
            )
            session = bots.CreateBotSession(
                bots_pb2.CreateBotSessionRequest(
                    parent=self.remote.instance,
                    bot_session=bots_pb2.BotSession(
                        bot_id=self.bot_id, status=bots_pb2.OK, worker=worker
                    ),
                ),
                timeout=10,
            )
            while not self.stop.is_set():
                for lease in session.leases:
                    # BuildGrid hands leases out ACTIVE already
                    if lease.state in (bots_pb2.LeaseState.PENDING, bots_pb2.LeaseState.ACTIVE):
                        result = self._execute(cas, lease)
                        lease.result.Pack(result)
                        lease.state = bots_pb2.LeaseState.COMPLETED
                        lease.status.code = 0
                try:
                    session = bots.UpdateBotSession(
                        bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session),
                        timeout=8,  # BuildGrid leases nothing when 0.8 x deadline < 3 s
                    )
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise

    def _execute(self, cas: Cas, lease: bots_pb2.Lease) -> re.ActionResult:
        action = re.Action()
        if lease.payload.Is(re.Action.DESCRIPTOR):
            lease.payload.Unpack(action)
        else:
            dg = re.Digest()
            lease.payload.Unpack(dg)
            action = re.Action.FromString(cas.read(dg))
        cmd = re.Command.FromString(cas.read(action.command_digest))
        with tempfile.TemporaryDirectory(prefix="testbot-") as tmp:
            root = Path(tmp) / "root"
            _fetch_dir(cas, action.input_root_digest, root)
            cwd = root / cmd.working_directory
            env = {v.name: v.value for v in cmd.environment_variables}
            p = subprocess.run(list(cmd.arguments), cwd=cwd, env=env, capture_output=True)
            self.ran.append(cmd.arguments[-1])
            result = re.ActionResult(exit_code=p.returncode)
            blobs = {key(digest_of(p.stdout)): p.stdout, key(digest_of(p.stderr)): p.stderr}
            result.stdout_digest.CopyFrom(digest_of(p.stdout))
            result.stderr_digest.CopyFrom(digest_of(p.stderr))
            for rel in cmd.output_paths:
                host = cwd / rel
                if host.is_dir() and not host.is_symlink():
                    tree, more = _tree(host)
                    blobs.update(more)
                    data = tree.SerializeToString(deterministic=True)
                    blobs[key(digest_of(data))] = data
                    result.output_directories.add(path=rel, tree_digest=digest_of(data))
                elif host.is_file():
                    data = host.read_bytes()
                    blobs[key(digest_of(data))] = data
                    result.output_files.add(
                        path=rel, digest=digest_of(data), is_executable=os.access(host, os.X_OK)
                    )
            cas.upload_missing(blobs)
            return result


def _fetch_dir(cas: Cas, dg: re.Digest, path: Path) -> None:
    d = re.Directory.FromString(cas.read(dg))
    path.mkdir()
    for f in d.files:
        (path / f.name).write_bytes(cas.read(f.digest))
        (path / f.name).chmod(0o755 if f.is_executable else 0o644)
    for s in d.symlinks:
        os.symlink(s.target, path / s.name)
    for sub in d.directories:
        _fetch_dir(cas, sub.digest, path / sub.name)


def _tree(host: Path) -> tuple[re.Tree, dict]:
    root = InputRoot()
    root.add_tree("out", host)
    root.finish()
    dirs: list[re.Directory] = []

    def seal(d) -> re.Directory:  # children first, the root last
        msg = re.Directory(
            directories=[
                re.DirectoryNode(
                    name=n, digest=digest_of(seal(sub).SerializeToString(deterministic=True))
                )
                for n, sub in sorted(d.dirs.items())
            ],
            files=[
                re.FileNode(name=n, digest=dg, is_executable=x)
                for n, (dg, x) in sorted(d.files.items())
            ],
            symlinks=[re.SymlinkNode(name=n, target=t) for n, t in sorted(d.links.items())],
        )
        dirs.append(msg)
        return msg

    top = seal(root.root.dirs["out"])
    return re.Tree(root=top, children=dirs[:-1]), root.blobs
