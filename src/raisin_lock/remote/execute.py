"""Build derivations on a REAPI v2 farm: one derivation, one Action.

For each derivation the scheduler would build, :class:`RemoteBuilder`:

1. makes the Action: the input root (the source and the dependencies'
   closure at ``raisin/store/<base>``, plus raisin's sandbox wrapper, see
   :mod:`.wrapper`), the Command ``sh .raisin/run.sh`` with output path
   ``out``, platform ``OSFamily``, ``ISA`` and ``raisin-toolchain`` (the
   digest of the lock's toolchain record);
2. asks the ActionCache (GetActionResult); on a miss, uploads what
   FindMissingBlobs says is missing and Executes (streaming the Operation);
3. downloads the output, every blob checked against its digest, into the
   store path a local build would make, and registers it like one
   (normalised, NAR-hashed, references scanned), marked built remotely.

Nothing is registered when anything fails: the partial output is removed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from raisin_lock.build.killer import human_size
from raisin_lock.errors import BuildError
from raisin_lock.remote import wrapper
from raisin_lock.remote.cas import Cas, digest_of, key
from raisin_lock.remote.channel import RemoteUrl, call_metadata, open_channel, rpc, translate
from raisin_lock.remote.errors import RemoteError, RemoteUnreachable
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
    remote_execution_pb2_grpc as re_grpc,
)
from raisin_lock.remote.tree import InputRoot, restore_tree
from raisin_lock.store import remote_marks

if TYPE_CHECKING:
    from raisin_lock.build.scheduler import Scheduler
    from raisin_lock.store_path import StorePath


def toolchain_digest(toolchain: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(toolchain, sort_keys=True).encode()).hexdigest()


def platform_of(toolchain: dict[str, str]) -> re.Platform:
    props = {
        "OSFamily": "linux",
        "ISA": platform.machine(),
        "raisin-toolchain": toolchain_digest(toolchain),
    }
    return re.Platform(
        properties=[re.Platform.Property(name=k, value=v) for k, v in sorted(props.items())]
    )


class RemoteBuilder:
    """Builds the scheduler's derivations on ``remote`` (``sched.remote_build``)."""

    def __init__(self, sched: Scheduler, remote: RemoteUrl, *, fallback: bool = False) -> None:
        self.sched = sched
        self.remote = remote
        self.fallback = fallback
        self.channel = open_channel(remote)
        self.md = call_metadata(remote)
        self.cas = Cas(self.channel, remote)
        self.ac: Any = re_grpc.ActionCacheStub(self.channel)  # type: ignore[no-untyped-call]
        self.exe: Any = re_grpc.ExecutionStub(self.channel)  # type: ignore[no-untyped-call]
        self.executed: list[str] = []  # names Executed (not from the ActionCache)
        self.cached: list[str] = []  # names from the ActionCache

    def probe(self, timeout: float = 20.0) -> None:
        """Ask the server's capabilities: RemoteUnreachable (one clear line) when it does not answer."""
        caps: Any = re_grpc.CapabilitiesStub(self.channel)  # type: ignore[no-untyped-call]
        req = re.GetCapabilitiesRequest(instance_name=self.remote.instance)
        rpc(
            self.remote,
            "GetCapabilities",
            lambda: caps.GetCapabilities(req, metadata=self.md, timeout=timeout),
        )

    def close(self) -> None:
        self.channel.close()

    def __call__(self, name: str, local: Callable[[str], str]) -> str:
        try:
            return self.build(name)
        except RemoteUnreachable as exc:
            if not self.fallback:
                raise BuildError(f"{name}: {exc.message}") from None
            self.sched.events.warn(f"{name}: {exc.message}; building locally (--fallback)")
            return local(name)

    # ------------------------------------------------------------ the action

    def action_for(self, name: str) -> tuple[re.Digest, InputRoot, set[StorePath]]:
        """The Action of ``name``'s build, everything to upload for it, its possible references."""
        s = self.sched
        src = s.source(name)
        root = InputRoot()
        with s.store.tmpdir(f"remote-{name}") as bdir:
            spec, candidates = s.spec_for(name, bdir / "out", bdir, src, bdir / "log")
            wrapper.add_to_root(root, spec)
        for sp in sorted({*candidates, src}, key=lambda p: p.base):
            root.add_tree(f"raisin/store/{sp.base}", s.store.host_path(sp))
        plat = platform_of(s.lock.toolchain)
        cmd = re.Command(
            arguments=["/bin/sh", wrapper.SCRIPT],
            output_paths=[wrapper.OUTPUT],
            platform=plat,
        )
        cmd_bytes = cmd.SerializeToString(deterministic=True)
        cmd_dg = digest_of(cmd_bytes)
        root.blobs[key(cmd_dg)] = cmd_bytes
        action = re.Action(
            command_digest=cmd_dg,
            input_root_digest=root.finish(),
            do_not_cache=False,
            platform=plat,
        )
        act_bytes = action.SerializeToString(deterministic=True)
        act_dg = digest_of(act_bytes)
        root.blobs[key(act_dg)] = act_bytes
        return act_dg, root, candidates

    # ------------------------------------------------------------ one build

    def build(self, name: str) -> str:
        s = self.sched
        out = s.drvs[name].out
        with s.store.lock(out):
            if s.store.is_valid(out):
                s.events.finished(name, True, 0.0, None, "built by another process")
                return "valid"
            t0 = time.monotonic()
            s.events.started(name, f"building on {self.remote.url}")
            act_dg, root, candidates = self.action_for(name)
            result = self._cached(act_dg)
            how = "remote, cached"
            if result is None:
                self.cas.upload_missing(root.blobs)
                result = self._execute(name, act_dg)
                how = "remote"
                self.executed.append(name)
            else:
                self.cached.append(name)
            log = s.store.log_path(out)
            self._save_log(result, log)
            if result.exit_code != 0:
                s.events.finished(name, False, time.monotonic() - t0, log)
                raise BuildError(
                    f"{name}: remote build failed with exit status {result.exit_code} (log: {log})"
                )
            info = self._register(name, out, result, candidates)
            s.store.record_derivation(s.drvs[name].hash().sri, out, name)
            s.events.finished(
                name, True, time.monotonic() - t0, log, f"{how}, {human_size(info.nar_size)}"
            )
            return "built"

    def _cached(self, act_dg: re.Digest) -> re.ActionResult | None:
        req = re.GetActionResultRequest(
            instance_name=self.remote.instance, action_digest=act_dg, inline_stdout=False
        )
        try:
            result: re.ActionResult = self.ac.GetActionResult(req, metadata=self.md)
        except grpc.RpcError as e:
            if isinstance(e, grpc.Call) and e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise translate(self.remote, "GetActionResult", e) from None
        return result

    def _execute(self, name: str, act_dg: re.Digest) -> re.ActionResult:
        req = re.ExecuteRequest(
            instance_name=self.remote.instance, action_digest=act_dg, skip_cache_lookup=False
        )

        def run() -> Any:
            last = None
            for op in self.exe.Execute(req, metadata=self.md):
                last = op
                if op.done:
                    break
            return last

        op = rpc(self.remote, "Execute", run)
        if op is None or not op.done:
            raise RemoteError(f"{name}: remote Execute stream ended before the action was done")
        if op.HasField("error") and op.error.code != 0:
            raise RemoteError(f"{name}: remote execution failed: {op.error.message}")
        resp = re.ExecuteResponse()
        op.response.Unpack(resp)
        if resp.status.code != 0:
            raise RemoteError(f"{name}: remote execution failed: {resp.status.message}")
        return resp.result

    def _save_log(self, result: re.ActionResult, log: Any) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        parts = []
        for raw, dg in (
            (result.stdout_raw, result.stdout_digest),
            (result.stderr_raw, result.stderr_digest),
        ):
            if raw:
                parts.append(raw)
            elif dg.hash and dg.size_bytes:
                parts.append(self.cas.read(dg))
        log.write_bytes(b"".join(parts))

    def _register(
        self, name: str, out: StorePath, result: re.ActionResult, candidates: set[StorePath]
    ) -> Any:
        s = self.sched
        host = s.store.prepare_build(out)
        try:
            self._restore(result, host)
            info = s.store.register(
                out, candidates=candidates, deriver=s.drvs[name].hash().sri, sandboxed=True
            )
        except BaseException:
            s.store.prepare_build(out)  # nothing half-registered
            raise
        remote_marks.mark(s.store.root, out, self.remote.url)
        return info

    def _restore(self, result: re.ActionResult, host: Any) -> None:
        dirs = [d for d in result.output_directories if d.path == wrapper.OUTPUT]
        files = [f for f in result.output_files if f.path == wrapper.OUTPUT]
        if dirs:
            tree = re.Tree.FromString(self.cas.read(dirs[0].tree_digest))
            restore_tree(self.cas, tree, host)
        elif files:
            self.cas.read_to_file(files[0].digest, host)
            host.chmod(0o755 if files[0].is_executable else 0o644)
        else:
            raise RemoteError(f"remote build produced no {wrapper.OUTPUT!r} (the build's $out)")
