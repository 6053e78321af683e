"""A worker for a REAPI farm: joins a scheduler through the Bots API and runs its leases.

``raisin worker --server grpc://HOST:PORT[/INSTANCE]`` is a bot in the sense
of ``google.devtools.remoteworkers.v1test2`` (what BuildGrid schedules with):
it opens a bot session announcing its platform (``OSFamily``, ``ISA``, as
device properties, where BuildGrid reads them), and keeps updating it; the
scheduler answers with leases. For each lease it fetches the Action, its
Command and its input root from the CAS (every blob checked against its
digest), materialises the root in a fresh directory under its work dir,
runs ``Command.arguments`` there with the Command's environment only,
uploads the outputs, stdout and stderr, and completes the lease with the
ActionResult, which the scheduler records in its ActionCache.

The worker is generic, as a farm's own workers are: raisin's sandbox is
inside the action (``.raisin/run.sh`` runs bubblewrap, see
:mod:`raisin_lock.remote.wrapper`), so this machine needs ``/bin/sh``,
``bwrap`` and the toolchain of the lock's record, nothing of raisin's.

When the server goes away (whether the worker is idle, fetching inputs or
uploading outputs) the worker keeps trying (with backoff) and opens a new
session once it answers again. A lease is reported completed only with the
result of a run that finished; a lease whose result could not be reported
is simply lost with the old session and the scheduler hands it out again.
An action this worker cannot run (a blob missing or not matching its
digest, an unsafe name in the input root, a program that does not exist)
completes its lease with an error status that says why, and the worker goes
on. ``stop`` (SIGTERM, SIGINT) during a lease stops the action's process
group at once and hands the lease back, so another bot runs it.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from raisin_lock.remote.cas import Cas, digest_of, key
from raisin_lock.remote.channel import RemoteUrl, open_channel, translate
from raisin_lock.remote.errors import RemoteError, RemoteUnreachable
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from raisin_lock.remote.proto.google.devtools.remoteworkers.v1test2 import bots_pb2, worker_pb2
from raisin_lock.remote.proto.google.devtools.remoteworkers.v1test2 import (
    bots_pb2_grpc as bots_grpc,
)
from raisin_lock.remote.tree import DirNode, InputRoot

# BuildGrid leases nothing when 0.8 x min(deadline, keepalive) is under 3 s.
UPDATE_DEADLINE = 8.0
RETRY_MAX = 10.0
_GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.CANCELLED)
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for an action's processes on stop
# google.rpc.Code values for a lease that failed here (REAPI: FAILED_PRECONDITION when an
# input blob is missing or bad; INVALID_ARGUMENT for an action that cannot be run as given)
FAILED_PRECONDITION = 9
INVALID_ARGUMENT = 3


class Stopped(Exception):
    """``stop`` was set while a lease ran: its processes are stopped, its lease handed back."""


class Worker:
    """One bot: leases run one at a time in ``work_dir``; ``stop`` ends the loop."""

    def __init__(
        self,
        remote: RemoteUrl,
        work_dir: Path,
        name: str,
        report: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.remote = remote
        self.work_dir = work_dir
        self.name = name
        self.report = report
        self.stop = threading.Event()
        self.ran = 0

    def run(self) -> None:
        """Serve leases until ``stop`` is set, reconnecting whenever the server goes away."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        wait = 0.5
        while not self.stop.is_set():
            try:
                self._session()
                wait = 0.5
            except Stopped:
                return
            except (grpc.RpcError, RemoteUnreachable) as exc:
                if isinstance(exc, grpc.RpcError):
                    if exc.code() not in _GONE:
                        raise translate(self.remote, "Bots", exc) from None
                    why = exc.code().name
                else:
                    why = exc.message
                self.report(f"server gone ({why}); retrying in {wait:.1f}s")
                self.stop.wait(wait)
                wait = min(wait * 2, RETRY_MAX)

    def _session(self) -> None:
        with open_channel(self.remote) as ch:
            cas = Cas(ch, self.remote)
            bots: Any = bots_grpc.BotsStub(ch)  # type: ignore[no-untyped-call]
            props = [("OSFamily", "linux"), ("ISA", platform.machine())]
            device = worker_pb2.Device(
                handle="primary",
                properties=[worker_pb2.Device.Property(key=k, value=v) for k, v in props],
            )
            session = bots.CreateBotSession(
                bots_pb2.CreateBotSessionRequest(
                    parent=self.remote.instance,
                    bot_session=bots_pb2.BotSession(
                        bot_id=self.name,
                        status=bots_pb2.OK,
                        worker=worker_pb2.Worker(devices=[device]),
                    ),
                ),
                timeout=10,
            )
            self.report(f"joined {self.remote.url} as {self.name} ({session.name})")
            while not self.stop.is_set():
                for lease in session.leases:
                    # BuildGrid hands leases out ACTIVE already; others send PENDING
                    if lease.state in (bots_pb2.LeaseState.PENDING, bots_pb2.LeaseState.ACTIVE):
                        try:
                            self._complete(cas, lease)
                        except Stopped:
                            self._hand_back(bots, session)
                            raise
                try:
                    session = bots.UpdateBotSession(
                        bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session),
                        timeout=UPDATE_DEADLINE,
                    )
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        raise

    def _complete(self, cas: Cas, lease: bots_pb2.Lease) -> None:
        """Run ``lease`` and mark it COMPLETED: with its ActionResult, or with an error status
        when the action cannot run here. A server gone (RemoteUnreachable) or ``stop`` leaves
        it as it is, for the scheduler to hand out again."""
        try:
            result = self._execute(cas, lease)
        except (Stopped, RemoteUnreachable):
            raise
        except RemoteError as exc:  # a blob missing from the CAS or not matching its digest
            self._fail(lease, FAILED_PRECONDITION, exc.message)
            return
        except (OSError, ValueError) as exc:  # no such program, an unsafe name, ...
            self._fail(lease, INVALID_ARGUMENT, f"{type(exc).__name__}: {exc}")
            return
        lease.result.Pack(result)
        lease.state = bots_pb2.LeaseState.COMPLETED
        lease.status.code = 0

    def _fail(self, lease: bots_pb2.Lease, code: int, message: str) -> None:
        self.report(f"failed lease {lease.id}: {message}")
        lease.state = bots_pb2.LeaseState.COMPLETED
        lease.status.code = code
        lease.status.message = f"raisin worker {self.name}: {message}"[:2000]

    def _hand_back(self, bots: Any, session: bots_pb2.BotSession) -> None:
        """Tell the scheduler this bot is going away without its leases (best effort): it then
        requeues them at once instead of when the session times out."""
        del session.leases[:]
        session.status = bots_pb2.BotStatus.BOT_TERMINATING
        try:
            bots.UpdateBotSession(
                bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session),
                timeout=5,
            )
        except grpc.RpcError as exc:
            self.report(f"could not hand the lease back ({exc.code().name}); it times out")

    def _run(self, cmd: re.Command, cwd: Path) -> subprocess.CompletedProcess[bytes]:
        """``cmd`` in its own process group, stopped (SIGTERM, then SIGKILL) when ``stop`` is set."""
        env = {v.name: v.value for v in cmd.environment_variables}
        p = subprocess.Popen(
            list(cmd.arguments),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        while True:
            try:
                out, err = p.communicate(timeout=0.2)
                return subprocess.CompletedProcess(p.args, p.returncode, out, err)
            except subprocess.TimeoutExpired:
                if self.stop.is_set():
                    break
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.communicate(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        p.communicate()
        raise Stopped()

    def _execute(self, cas: Cas, lease: bots_pb2.Lease) -> re.ActionResult:
        action = re.Action()
        if lease.payload.Is(re.Action.DESCRIPTOR):
            lease.payload.Unpack(action)
        else:
            dg = re.Digest()
            lease.payload.Unpack(dg)
            action = re.Action.FromString(cas.read(dg))
        cmd = re.Command.FromString(cas.read(action.command_digest))
        self.ran += 1
        what = f"{action.input_root_digest.hash[:12]} (lease {lease.id})"
        self.report(f"running {what}")
        work = self.work_dir / f"lease-{os.getpid()}-{self.ran}"
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.monotonic()
        try:
            root = work / "root"
            fetch_dir(cas, action.input_root_digest, root)
            cwd = root / cmd.working_directory
            _safe_rel(cmd.working_directory)
            if not cmd.arguments:
                raise ValueError("the Command has no arguments")
            p = self._run(cmd, cwd)
            result = re.ActionResult(exit_code=p.returncode)
            blobs: dict[tuple[str, int], bytes | Path] = {
                key(digest_of(p.stdout)): p.stdout,
                key(digest_of(p.stderr)): p.stderr,
            }
            result.stdout_digest.CopyFrom(digest_of(p.stdout))
            result.stderr_digest.CopyFrom(digest_of(p.stderr))
            for rel in [*cmd.output_paths, *cmd.output_directories, *cmd.output_files]:
                _safe_rel(rel)
                host = cwd / rel
                if host.exists() and not host.resolve().is_relative_to(root.resolve()):
                    raise ValueError(f"output {rel!r} leads outside the action's directory")
                _collect(host, rel, result, blobs)
            cas.upload_missing(blobs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.report(f"ran {what}: exit {p.returncode}, {time.monotonic() - t0:.1f}s")
        return result


def _collect(
    host: Path, rel: str, result: re.ActionResult, blobs: dict[tuple[str, int], bytes | Path]
) -> None:
    if host.is_dir() and not host.is_symlink():
        tree, more = tree_of(host)
        blobs.update(more)
        data = tree.SerializeToString(deterministic=True)
        blobs[key(digest_of(data))] = data
        result.output_directories.add(path=rel, tree_digest=digest_of(data))
    elif host.is_file() and not host.is_symlink():
        data = host.read_bytes()
        blobs[key(digest_of(data))] = data
        result.output_files.add(
            path=rel, digest=digest_of(data), is_executable=os.access(host, os.X_OK)
        )


def fetch_dir(cas: Cas, dg: re.Digest, path: Path) -> None:
    """Materialise the Directory ``dg`` (checked blobs) at ``path``, which must not exist."""
    d = re.Directory.FromString(cas.read(dg))
    path.mkdir(parents=True)
    for f in d.files:
        _safe(f.name)
        cas.read_to_file(f.digest, path / f.name)
        (path / f.name).chmod(0o755 if f.is_executable else 0o644)
    for s in d.symlinks:
        _safe(s.name)
        os.symlink(s.target, path / s.name)
    for sub in d.directories:
        _safe(sub.name)
        fetch_dir(cas, sub.digest, path / sub.name)


def _safe_rel(rel: str) -> None:
    """A working directory or output path: relative, with no ``..`` (REAPI's rule)."""
    if rel.startswith("/") or "\0" in rel or ".." in rel.split("/"):
        raise ValueError(f"unsafe path in the Command: {rel!r}")


def _safe(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"unsafe name in an input root: {name!r}")


def tree_of(host: Path) -> tuple[re.Tree, dict[tuple[str, int], bytes | Path]]:
    """The REAPI Tree of the directory ``host`` and the blobs it needs."""
    root = InputRoot()
    root.add_tree("out", host)
    root.finish()
    dirs: list[re.Directory] = []

    def seal(d: DirNode) -> re.Directory:  # children first, the root last
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
    return re.Tree(root=top, children=dirs[:-1]), dict(root.blobs)
