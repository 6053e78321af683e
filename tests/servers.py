"""Real servers for tests and benchmarks: nginx on 127.0.0.1 with WebDAV PUT.

Imported by tests/test_cache.py and bench/bench_cache.py (which puts tests/ on
sys.path), so both run the same configuration.
"""

from __future__ import annotations

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
