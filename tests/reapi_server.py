"""A real REAPI v2 server for tests: BuildGrid (PyPI ``buildgrid``, command ``bgd``).

BuildGrid's scheduler keeps its jobs in PostgreSQL: Debian's ``postgresql``
(``/usr/lib/postgresql/*/bin``) is started here in a temp dir, on 127.0.0.1
and a Unix socket in that dir, as an ordinary user (``postgres`` when the
tests run as root: PostgreSQL refuses to run as root). Then ``bgd server
start`` serves CAS + ByteStream (disk storage under the temp dir),
ActionCache, Execution and Bots for instance ``main`` (and the empty
instance name) on 127.0.0.1:<free port>.

Platform properties: jobs carry ``OSFamily``, ``ISA`` (matched against the
bot's properties) and ``raisin-toolchain`` (wildcard: not matched).

``buildgrid`` fixture (session-scoped): a started :class:`BuildGrid`,
skipped when bgd or PostgreSQL is not installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def bgd_path() -> str | None:
    """``bgd`` from the repository's ``.venv-buildgrid`` (what .ci/run and the README make),
    else beside this Python, else on PATH."""
    for here in (
        Path(__file__).resolve().parent.parent / ".venv-buildgrid" / "bin" / "bgd",
        Path(sys.executable).parent / "bgd",
    ):
        if here.exists():
            return str(here)
    return shutil.which("bgd")


CONFIG = """\
description: raisin's test REAPI server
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
connections:
  - !sql-connection &sql
    # psycopg2: BuildGrid's LISTEN/NOTIFY notifier calls connection.poll(), which psycopg 3
    # (SQLAlchemy 2.1's default postgresql driver) lacks: jobs would never reach a bot
    connection-string: postgresql+psycopg2://{user}@127.0.0.1:{pgport}/postgres
    pool-size: 5
    max-overflow: 10
storages:
  - !disk-storage &cas
    path: {cas}
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 10000
    allow-updates: true
    cache-failed-actions: false
schedulers:
  - !sql-scheduler &sched
    sql: *sql
    storage: *cas
    action-cache: *ac
    bot-session-keepalive-timeout: {keepalive}
    max-job-attempts: 3
    property-set: !dynamic-property-set
      match-property-keys: [OSFamily, ISA]
      wildcard-property-keys: [raisin-toolchain]
    # without an assigner, queued jobs are never leased to a bot
    assigners:
      - !priority-age-assigner
        count: 1
        interval: 0.2
instances:
{instances}
"""

INSTANCE = """\
  - name: "{name}"
    services:
      - !action-cache
        cache: *ac
      - !execution
        scheduler: *sched
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
"""


class BuildGrid:
    """PostgreSQL + ``bgd server start`` on 127.0.0.1, everything under ``base``."""

    def __init__(self, base: Path, *, keepalive: int = 10) -> None:
        self.base = base
        self.keepalive = keepalive
        self.port = _free_port()
        self.pgport = _free_port()
        self.cas = base / "cas"
        self.cas.mkdir(parents=True)
        # PostgreSQL's own dir: outside pytest's 0700 tmp tree, owned by the user it runs as.
        self.pgbase = Path(tempfile.mkdtemp(prefix="raisin-pg-"))
        self.pguser = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.pgbase, pw.pw_uid, pw.pw_gid)
        self.pgdata = self.pgbase / "data"
        self.log = base / "bgd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._pg_started = False
        self.verbose: list[str] = []  # ["-vv"] to debug

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def _as_pg(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start_postgres(self) -> None:
        bindir = pg_bindir()
        assert bindir is not None
        subprocess.run(
            self._as_pg(
                [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", self.pguser]
                + ["--auth=trust", "--no-sync", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        opts = f"-k {self.pgbase} -c listen_addresses=127.0.0.1 -p {self.pgport} -c fsync=off"
        subprocess.run(
            self._as_pg(
                [str(bindir / "pg_ctl"), "-D", str(self.pgdata), "-o", opts, "-w"]
                + ["-l", str(self.pgbase / "pg.log"), "start"]
            ),
            check=True,
            capture_output=True,
        )
        self._pg_started = True
        # BuildGrid's schema (alembic migrations), as its docs deploy it.
        bgd = bgd_path()
        assert bgd is not None
        subprocess.run(
            [
                bgd,
                "migrate",
                "apply",
                f"postgresql://{self.pguser}@127.0.0.1:{self.pgport}/postgres",
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.start_postgres()
        self.start_bgd()

    def start_bgd(self) -> None:
        bgd = bgd_path()
        assert bgd is not None
        cfg = self.base / "bgd.yml"
        instances = "".join(INSTANCE.format(name=n) for n in ("main", ""))
        cfg.write_text(
            CONFIG.format(
                port=self.port,
                user=self.pguser,
                pgport=self.pgport,
                cas=self.cas,
                keepalive=self.keepalive,
                instances=instances,
            )
        )
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
            env.pop(k, None)
        env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [bgd, "server", "start", *self.verbose, str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._wait_serving()

    def _wait_serving(self, timeout: float = 60.0) -> None:
        import grpc

        from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
            remote_execution_pb2 as re_pb2,
        )
        from raisin_lock.remote.proto.build.bazel.remote.execution.v2 import (
            remote_execution_pb2_grpc as re_grpc,
        )

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"bgd exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                    stub = re_grpc.CapabilitiesStub(ch)
                    stub.GetCapabilities(
                        re_pb2.GetCapabilitiesRequest(instance_name="main"), timeout=2
                    )
                    return
            except grpc.RpcError as e:
                last = e
                time.sleep(0.3)
        raise RuntimeError(f"bgd does not serve: {last}\n{self.log.read_text()[-4000:]}")

    def stop_bgd(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.stop_bgd()
        bindir = pg_bindir()
        if self._pg_started and bindir is not None:
            subprocess.run(
                self._as_pg([str(bindir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "stop"]),
                capture_output=True,
            )
            self._pg_started = False
        shutil.rmtree(self.pgbase, ignore_errors=True)


@pytest.fixture(scope="session")
def buildgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildGrid]:
    if bgd_path() is None:
        pytest.skip("BuildGrid is not installed (pip install 'buildgrid[database]')")
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    srv = BuildGrid(tmp_path_factory.mktemp("buildgrid"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
