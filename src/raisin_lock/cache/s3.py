"""An S3 bucket as a binary cache: the URL, the credentials, and AWS Signature V4.

``s3://BUCKET/PREFIX?endpoint=URL&region=R`` names the cache; its files are
the objects ``PREFIX/nix-cache-info``, ``PREFIX/<digest>.narinfo`` and
``PREFIX/nar/<filehash>.nar.zst``, the layout of an HTTP cache, the layout
Nix's own ``s3://`` store writes. Requests go path-style to
``ENDPOINT/BUCKET/PREFIX/...`` (MinIO, SeaweedFS, Ceph RGW, Garage and AWS
all answer them) over the HTTP transport's client, signed here: SigV4 is a
few HMACs, not worth boto3's import time and dependency tree. Only GET, PUT
and HEAD are used.

Without ``endpoint`` the AWS endpoint of the region is used. The region is
``region=``, else ``$AWS_REGION``/``$AWS_DEFAULT_REGION``, else
``us-east-1`` (what S3-compatible servers accept by default).

Credentials, in the order the AWS CLI reads them: ``$AWS_ACCESS_KEY_ID`` +
``$AWS_SECRET_ACCESS_KEY`` (+ ``$AWS_SESSION_TOKEN``), else the profile
``$AWS_PROFILE`` (default ``default``) of ``$AWS_SHARED_CREDENTIALS_FILE``
(default ``~/.aws/credentials``). With none, requests go unsigned (a public
bucket can still be read).
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from raisin_lock.errors import InputError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
CREDENTIAL_VARS = "$AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY"

# S3 error codes that mean "these credentials are not accepted": bad input, not an outage.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "AuthorizationQueryParametersError",
        "MissingSecurityHeader",
        "RequestTimeTooSkewed",
    }
)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None
    origin: str  # where they came from, for error messages

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials({self.access_key!r}, from {self.origin})"


@dataclass(frozen=True)
class S3Url:
    url: str  # as the user wrote it
    bucket: str
    prefix: str  # "" or "a/b" (no leading or trailing slash)
    endpoint: str  # scheme://host[:port], no trailing slash
    region: str

    @property
    def base(self) -> str:
        """The HTTP URL of the cache root, path-style."""
        path = "/".join(p for p in (self.bucket, self.prefix) if p)
        return f"{self.endpoint}/{quote(path, safe='/-_.~')}"


def parse_url(url: str, *, key: str = "CACHE", env: Mapping[str, str] | None = None) -> S3Url:
    env = os.environ if env is None else env
    parts = urlsplit(url)
    bucket = parts.netloc
    if parts.scheme != "s3" or not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,254}", bucket):
        raise InputError(
            f"{url!r}: expected s3://BUCKET/PREFIX?endpoint=URL&region=R "
            "(a bucket name of lower-case letters, digits, '.', '-')",
            key=key,
        )
    prefix = unquote(parts.path).strip("/")
    if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        raise InputError(f"{url!r}: the prefix {prefix!r} has an empty, '.' or '..' part", key=key)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"endpoint", "region"})
    if unknown:
        raise InputError(
            f"{url!r}: unknown parameter {unknown[0]!r} (expected endpoint= and region=)", key=key
        )
    region = (
        query.get("region", [""])[-1]
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    endpoint = query.get("endpoint", [""])[-1] or f"https://s3.{region}.amazonaws.com"
    ep = urlsplit(endpoint)
    if ep.scheme not in ("http", "https") or not ep.netloc or ep.path.strip("/") or ep.query:
        raise InputError(
            f"{url!r}: endpoint must be http(s)://HOST[:PORT] with no path, got {endpoint!r}",
            key=key,
        )
    return S3Url(url, bucket, prefix, f"{ep.scheme}://{ep.netloc}", region)


def load_credentials(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The first credentials found (environment, then the shared credentials file), or None."""
    env = os.environ if env is None else env
    ak, sk = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if ak or sk:
        if not (ak and sk):
            missing = "AWS_SECRET_ACCESS_KEY" if ak else "AWS_ACCESS_KEY_ID"
            raise InputError(f"${missing} is not set (S3 needs both {CREDENTIAL_VARS})")
        return Credentials(ak, sk, env.get("AWS_SESSION_TOKEN") or None, CREDENTIAL_VARS)
    explicit = env.get("AWS_SHARED_CREDENTIALS_FILE")
    path = Path(explicit) if explicit else Path(env.get("HOME") or Path.home()) / ".aws/credentials"
    profile = env.get("AWS_PROFILE") or "default"
    if not path.is_file():
        if explicit or env.get("AWS_PROFILE"):
            raise InputError(
                f"{path}: no such file (named by "
                f"{'$AWS_SHARED_CREDENTIALS_FILE' if explicit else '$AWS_PROFILE'})"
            )
        return None
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read AWS credentials: {first}", file=str(path)) from None
    if not cp.has_section(profile):
        if env.get("AWS_PROFILE"):
            raise InputError(
                f"no profile [{profile}] (named by $AWS_PROFILE)", file=str(path), key=profile
            )
        return None
    sec = cp[profile]
    ak, sk = sec.get("aws_access_key_id", ""), sec.get("aws_secret_access_key", "")
    if not (ak and sk):
        raise InputError(
            "expected aws_access_key_id and aws_secret_access_key", file=str(path), key=profile
        )
    return Credentials(ak, sk, sec.get("aws_session_token") or None, f"{path} [{profile}]")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    creds: Credentials,
    region: str,
    *,
    now: datetime | None = None,
    service: str = "s3",
) -> dict[str, str]:
    """The headers that sign a request with AWS Signature V4.

    ``raw_path`` is the request target as sent (already percent-encoded,
    with any query); ``headers`` must hold ``host`` and
    ``x-amz-content-sha256`` (the payload's hex SHA-256, or
    ``UNSIGNED-PAYLOAD``); every header given is signed. Returns
    ``x-amz-date``, ``authorization`` and, with a session token,
    ``x-amz-security-token``.
    """
    when = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    out = {"x-amz-date": when}
    if creds.token:
        out["x-amz-security-token"] = creds.token
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()} | out
    path, _, query = raw_path.partition("?")
    pairs = sorted(
        (quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
        for k, _, v in (p.partition("=") for p in query.split("&") if p)
    )
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            path or "/",
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            signed["x-amz-content-sha256"],
        ]
    )
    scope = f"{when[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", when, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = _hmac(("AWS4" + creds.secret_key).encode(), when[:8])
    for part in (region, service, "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


def error_code(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 error document; ("", "") if the body is not one."""
    text = body[:8192].decode(errors="replace")
    code = re.search(r"<Code>([^<]{1,100})</Code>", text)
    msg = re.search(r"<Message>([^<]{1,300})</Message>", text)
    return (code.group(1) if code else "", msg.group(1).strip() if msg else "")
