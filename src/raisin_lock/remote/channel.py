"""``grpc[s]://HOST:PORT[/INSTANCE]`` → a gRPC channel, and gRPC errors → raisin's.

``grpcs://`` uses TLS with the system roots (``$SSL_CERT_FILE`` /
``$GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` if set); a bearer token is sent when
``$RAISIN_REMOTE_TOKEN`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import grpc

from raisin_lock.remote.errors import BadRemoteUrl, RemoteError, RemoteUnreachable

T = TypeVar("T")
TOKEN_ENV = "RAISIN_REMOTE_TOKEN"
MAX_MESSAGE = 64 << 20


@dataclass(frozen=True)
class RemoteUrl:
    url: str
    host: str
    port: int
    instance: str
    tls: bool

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> RemoteUrl:
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "grpcs") or not parts.hostname:
        raise BadRemoteUrl(f"remote {url!r} is not grpc://HOST:PORT[/INSTANCE] (or grpcs://)")
    try:
        port = parts.port or (443 if parts.scheme == "grpcs" else 0)
    except ValueError:
        port = 0
    if not port:
        raise BadRemoteUrl(f"remote {url!r} has no valid port (grpc://HOST:PORT[/INSTANCE])")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return RemoteUrl(url, host, port, parts.path.strip("/"), parts.scheme == "grpcs")


def open_channel(remote: RemoteUrl) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.enable_http_proxy", 0),
    ]
    if not remote.tls:
        return grpc.insecure_channel(remote.target, options=options)
    roots = None
    for env in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "SSL_CERT_FILE"):
        if os.environ.get(env):
            roots = Path(os.environ[env]).read_bytes()
            break
    creds = grpc.ssl_channel_credentials(root_certificates=roots)
    token = os.environ.get(TOKEN_ENV)
    if token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(remote.target, creds, options=options)


def call_metadata(remote: RemoteUrl) -> list[tuple[str, str]]:
    """Per-call metadata: the bearer token over plain grpc:// (TLS carries it in the credentials)."""
    token = os.environ.get(TOKEN_ENV)
    return [("authorization", f"Bearer {token}")] if token and not remote.tls else []


UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def translate(remote: RemoteUrl, what: str, e: grpc.RpcError) -> RemoteError:
    code = e.code() if isinstance(e, grpc.Call) else None
    detail = e.details() if isinstance(e, grpc.Call) else str(e)
    if code in UNREACHABLE:
        return RemoteUnreachable(f"remote execution server {remote.url} does not answer ({what})")
    name = code.name if code is not None else "error"
    return RemoteError(f"remote {remote.url}: {what} failed: {name}: {detail}")


def rpc(remote: RemoteUrl, what: str, fn: Callable[[], T]) -> T:
    """Run one call, gRPC errors turned into :class:`RemoteError`."""
    try:
        return fn()
    except grpc.RpcError as e:
        raise translate(remote, what, e) from None
