"""Where a cache's files live: a directory (``file://``), an HTTP server, or an S3 bucket.

Both offer the same five operations on paths relative to the cache root:
``get`` (a small file, or None if absent), ``open`` (a streaming read),
``exists``, ``put_file`` and ``put_bytes``. HTTP uses one pooled
``httpx.Client`` per cache with timeouts (``RAISIN_HTTP_TIMEOUT`` seconds,
default 30, for connect and for each read), bounded retries with exponential
backoff on connection errors, timeouts and 5xx answers
(``RAISIN_HTTP_RETRIES``, default 2 retries), credentials from ``.netrc``
(``$NETRC`` or ``~/.netrc``) and a bearer token from ``RAISIN_CACHE_TOKEN``,
CA certificates from ``$SSL_CERT_FILE``/``$SSL_CERT_DIR`` for https, and
proxies from ``$http_proxy``/``$https_proxy``/``$all_proxy`` (``$no_proxy``
exempts hosts).
Writes are HTTP ``PUT`` (nginx's WebDAV module, an object store's HTTP
endpoint); a ``file://`` write goes through a temp file and ``os.replace``,
so readers never see half a file.

Only public httpx/httpcore API is used. Bodies of more than 4 MiB are read
straight off the connection through httpcore's documented ``network_stream``
response extension (:class:`_Body`), 1 MiB per read; smaller ones go through
httpx's ``iter_raw``, where h11 reads the socket 64 KiB at a time. raisin
once raised that to 1 MiB by patching a private httpcore class attribute
(``HTTP11Connection.READ_NUM_BYTES``). Dropping the patch cost nothing
measurable: substituting 8 x 128 MiB over loopback took 9.39 s with it and
8.82 s without (best of 5, ``bench/run.py --only cache``, on 2 cores under a
load average of ~13, so that difference is noise), since big NARs never
went through h11's reads.

``s3://BUCKET/PREFIX?endpoint=URL&region=R`` is HTTP to the bucket's
endpoint, path-style, each request signed with AWS Signature V4
(:mod:`.s3` holds the URL, credentials and signing); S3 error documents
become one-line messages, and refused credentials :class:`CacheDenied`
(exit 2: bad input, like an untrusted key).

Errors: :class:`CacheUnreachable` when the server cannot be reached or keeps
failing (the caller falls back to building), :class:`CacheError` for other
refusals. Neither is an input error: exit 1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from raisin_lock import atomic
from raisin_lock.cache import s3
from raisin_lock.errors import InputError, RaisinError

T = TypeVar("T")


MAX_SMALL = (1 << 20) + 1  # a narinfo is a few hundred bytes; this bounds a hostile answer


class CacheError(RaisinError):
    """The cache refused or failed an operation."""


class CacheUnreachable(CacheError):
    """The cache could not be reached (connection refused, DNS, timeout, 5xx)."""


class CacheDenied(CacheError):
    """The cache refused our credentials: bad input (exit 2), not an outage."""

    exit_code = 2


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise InputError(f"${name} must be a number of seconds, got {os.environ[name]!r}") from None


class Transport:
    url: str

    def get(self, rel: str) -> bytes | None:
        raise NotImplementedError

    def open(self, rel: str) -> Any:  # context manager yielding a readable
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def put_file(
        self, rel: str, path: Path, content_type: str = "application/octet-stream"
    ) -> None:
        raise NotImplementedError

    def put_bytes(self, rel: str, data: bytes, content_type: str = "text/plain") -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def where(self, rel: str) -> str:
        return f"{self.url.rstrip('/')}/{rel}"


def _safe_rel(rel: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CacheError(f"refusing cache file name {rel[:80]!r}")
    return rel


class FileTransport(Transport):
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def _p(self, rel: str) -> Path:
        return self.root / _safe_rel(rel)

    def get(self, rel: str) -> bytes | None:
        try:
            return self._p(rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(f"cannot read {self.where(rel)}: {exc.strerror}") from None

    @contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        try:
            f = open(self._p(rel), "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise CacheError(f"cannot read {self.where(rel)}: {exc.strerror}") from None
        with f:
            yield f

    def exists(self, rel: str) -> bool:
        return self._p(rel).exists()

    def _write(self, rel: str, fill: Callable[[IO[bytes]], None]) -> None:
        dest = self._p(rel)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic.writing(dest) as f:
                fill(f)
        except OSError as exc:
            raise CacheError(f"cannot write {self.where(rel)}: {exc.strerror}") from None

    def put_file(
        self, rel: str, path: Path, content_type: str = "application/octet-stream"
    ) -> None:
        def fill(out: IO[bytes]) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        self._write(rel, fill)

    def put_bytes(self, rel: str, data: bytes, content_type: str = "text/plain") -> None:
        def fill(out: IO[bytes]) -> None:
            out.write(data)

        self._write(rel, fill)


class _Stream:
    """``read(n)`` over an httpx response's raw byte iterator (no re-buffering copies)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._off = 0

    def read(self, n: int = -1) -> bytes:
        if self._off >= len(self._chunk):
            try:
                self._chunk, self._off = next(self._chunks), 0
            except StopIteration:
                return b""
        if self._off == 0 and (n < 0 or n >= len(self._chunk)):
            out, self._chunk = self._chunk, b""  # the whole chunk: no copy
            return out
        end = len(self._chunk) if n < 0 else self._off + n
        out = self._chunk[self._off : end]
        self._off += len(out)
        return out

    def readable(self) -> bool:
        return True


class _Body:
    """``read(n)`` over a big HTTP/1.x body, straight from the connection.

    On its way out of httpcore every body byte is copied three times by h11
    (into its receive buffer, out of it, into ``bytes``): 0.8 CPU-seconds per
    GB here, as much as curl spends on the whole download, and on 2 cores the
    substitution is CPU-bound. So for a plain body (a Content-Length, no
    content or transfer encoding) of more than ``FAST_MIN`` bytes, the first
    chunk (what h11 read along with the headers) comes through httpx and the
    rest, exactly Content-Length bytes in all, from the connection's network
    stream (httpcore's ``network_stream`` response extension): one copy, out
    of the kernel. h11 then never sees the end of the response, so httpcore
    closes that connection instead of pooling it: one new connection per big
    NAR, nothing to reuse by mistake.
    """

    FAST_MIN = 4 << 20
    CHUNK = 1 << 20

    def __init__(self, r: Any, stream: Any, length: int, where: str, timeout: float) -> None:
        self._it = r.iter_raw()
        self._stream = stream
        self._where = where
        self._timeout = timeout
        self._first: bytes | None = None
        self._left = length
        self._length = length
        import httpcore  # httpx's own transport: its errors, not httpx's, come from the stream

        self._errors = (httpcore.TimeoutException, httpcore.NetworkError, OSError)

    @classmethod
    def of(cls, r: Any, where: str, timeout: float) -> _Body | None:
        h = r.headers
        stream = r.extensions.get("network_stream")
        if (
            stream is None
            or r.extensions.get("http_version") not in (b"HTTP/1.1", b"HTTP/1.0")
            or h.get("content-encoding") not in (None, "identity")
            or h.get("transfer-encoding") is not None
        ):
            return None
        try:
            length = int(h.get("content-length", ""))
        except ValueError:
            return None
        if length <= cls.FAST_MIN:
            return None
        body = cls(r, stream, length, where, timeout)
        first = next(body._it, b"")  # what h11 buffered with the headers (or one read)
        if len(first) > length:
            raise CacheError(f"{where}: body longer than its Content-Length")
        body._first, body._left = first, length - len(first)
        return body

    def read(self, n: int = -1) -> bytes:
        if self._first:
            first, self._first = self._first, None
            if 0 <= n < len(first):
                self._first = first[n:]
                return first[:n]
            return first
        if not self._left:
            return b""
        want = self._left if n < 0 else n
        try:
            data: bytes = self._stream.read(
                min(want, self._left, self.CHUNK), timeout=self._timeout
            )
        except self._errors as exc:
            raise CacheUnreachable(
                f"{self._where}: download failed: {type(exc).__name__}: {exc}"
            ) from None
        if not data:
            got = self._length - self._left
            raise CacheUnreachable(
                f"{self._where}: connection closed after {got} of {self._length} bytes"
            )
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._it.close()


class _ByScheme:
    """httpx's transport, in two halves made on first use: TLS for https, plain for http.

    Making the TLS half loads the CA certificates (:func:`_tls_verify`: 25-30 ms,
    a tenth of a substitute-only realize's start-up), which an ``http://`` cache
    never needs. The plain half (``verify=False``) only ever carries ``http://``
    requests, so it never makes a TLS connection; a redirect to ``https://``
    goes through the TLS half. Duck-typed as an ``httpx.BaseTransport`` (httpx
    is imported late).
    """

    def __init__(self, make: Callable[[Any], Any], verify: Callable[[], Any]) -> None:
        self._make = make
        self._verify = verify
        self._made: dict[bool, Any] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: Any) -> Any:
        tls = request.url.scheme != "http"
        t = self._made.get(tls)
        if t is None:
            with self._lock:
                t = self._made.get(tls)
                if t is None:
                    t = self._made[tls] = self._make(self._verify() if tls else False)
        return t.handle_request(request)

    def close(self) -> None:
        for t in self._made.values():
            t.close()


class HttpTransport(Transport):
    def __init__(
        self,
        url: str,
        *,
        base: str | None = None,
        sign: Callable[[Any], None] | None = None,
    ) -> None:
        """``base``: the HTTP URL of the cache root when ``url`` (shown in messages) is not one;
        ``sign``: called on every request just before it is sent (instead of netrc or token auth)."""
        import httpx

        self.url = url.rstrip("/")
        self.base = (base or url).rstrip("/")
        timeout = _env_float("RAISIN_HTTP_TIMEOUT", 30.0)
        self.retries = int(_env_float("RAISIN_HTTP_RETRIES", 2))
        self.read_timeout = timeout
        headers = {"User-Agent": "raisin/0.1"}
        token = None if sign else os.environ.get("RAISIN_CACHE_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        auth: Any = None
        netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
        if not token and not sign and netrc.is_file():
            try:
                auth = httpx.NetRCAuth(str(netrc))
            except Exception as exc:  # noqa: BLE001 - a malformed .netrc: say so, don't crash
                raise InputError(f"cannot read .netrc: {exc}", file=str(netrc)) from None
        self._httpx = httpx
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
        # httpx routes through $http_proxy & co. only with its own transports (and makes
        # them at once); without a proxy, the two halves of _ByScheme are made on first use
        proxied = _proxied()
        lazy = (
            None
            if proxied
            else _ByScheme(lambda v: httpx.HTTPTransport(verify=v, limits=limits), _tls_verify)
        )
        self.client = httpx.Client(
            verify=_tls_verify() if proxied else True,
            transport=lazy,  # type: ignore[arg-type]  # duck-typed BaseTransport
            limits=limits,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers=headers,
            auth=auth,
            event_hooks={"request": [sign]} if sign else None,
            follow_redirects=True,
            trust_env=True,  # $http_proxy/$https_proxy/$all_proxy/$no_proxy, as curl and Nix honour them
        )

    def _u(self, rel: str) -> str:
        return f"{self.base}/{quote(_safe_rel(rel))}"

    def _retrying(self, what: str, op: Callable[[], T]) -> T:
        httpx = self._httpx
        delay = 0.25
        for attempt in range(self.retries + 1):
            try:
                return op()
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                err: CacheError = CacheUnreachable(f"cache {self.url} unreachable ({what}): {last}")
            except _ServerError as exc:
                err = CacheUnreachable(
                    f"cache {self.url}: {what}: HTTP {exc.status} (server error)"
                )
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise err

    def _check(self, r: Any, rel: str, ok: tuple[int, ...]) -> None:
        if r.status_code >= 500:
            raise _ServerError(r.status_code)
        if r.status_code not in ok:
            raise CacheError(f"{self.where(rel)}: HTTP {r.status_code} {r.reason_phrase}")

    def get(self, rel: str) -> bytes | None:
        """A small file (narinfo, nix-cache-info): at most ``MAX_SMALL`` bytes are read."""

        def op() -> bytes | None:
            with self.client.stream("GET", self._u(rel)) as r:
                if r.status_code == 404:
                    return None
                self._check(r, rel, (200,))
                parts: list[bytes] = []
                got = 0
                for chunk in r.iter_bytes():  # decoded, should a server gzip text
                    got += len(chunk)
                    if got > MAX_SMALL:
                        raise CacheError(
                            f"{self.where(rel)}: larger than {MAX_SMALL} bytes; refusing it"
                        )
                    parts.append(chunk)
                return b"".join(parts)

        return self._retrying(f"GET {rel}", op)

    @contextmanager
    def open(self, rel: str) -> Iterator[_Stream | _Body]:
        def op() -> Any:
            req = self.client.build_request("GET", self._u(rel))
            r = self.client.send(req, stream=True)
            try:
                self._check(r, rel, (200,))
            except BaseException:
                r.close()
                raise
            return r

        r = self._retrying(f"GET {rel}", op)
        body: _Stream | _Body | None = None
        try:
            body = _Body.of(r, self.where(rel), self.read_timeout)
            if body is None:
                # raw bytes (no decoding layer) unless the server added a content encoding
                body = _Stream(
                    r.iter_bytes() if r.headers.get("content-encoding") else r.iter_raw()
                )
            yield body
        except self._httpx.TransportError as exc:
            raise CacheUnreachable(
                f"cache {self.url}: download of {rel} failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            if isinstance(body, _Body):
                body.close()
            r.close()

    def exists(self, rel: str) -> bool:
        def op() -> bool:
            r = self.client.head(self._u(rel))
            if r.status_code == 404:
                return False
            self._check(r, rel, (200,))
            return True

        return self._retrying(f"HEAD {rel}", op)

    def _put(self, rel: str, content: Callable[[], Any], size: int, content_type: str) -> None:
        def op() -> None:
            r = self.client.put(
                self._u(rel),
                content=content(),
                headers={"Content-Type": content_type, "Content-Length": str(size)},
            )
            self._check(r, rel, (200, 201, 204))

        self._retrying(f"PUT {rel}", op)

    def put_file(
        self, rel: str, path: Path, content_type: str = "application/octet-stream"
    ) -> None:
        size = path.stat().st_size
        files: list[IO[bytes]] = []

        def content() -> Iterator[bytes]:
            f = open(path, "rb")  # noqa: SIM115 - closed after the PUT (httpx may call content() again on a retry)
            files.append(f)
            while chunk := f.read(1 << 20):
                yield chunk

        try:
            self._put(rel, content, size, content_type)
        finally:
            for f in files:
                f.close()

    def put_bytes(self, rel: str, data: bytes, content_type: str = "text/plain") -> None:
        self._put(rel, lambda: data, len(data), content_type)

    def close(self) -> None:
        self.client.close()


class S3Transport(HttpTransport):
    """An S3 bucket (path-style, SigV4-signed GET/PUT/HEAD): see :mod:`.s3`."""

    def __init__(self, loc: s3.S3Url, creds: s3.Credentials | None) -> None:
        self.loc = loc
        self.creds = creds
        super().__init__(loc.url, base=loc.base, sign=self._sign if creds else None)

    def where(self, rel: str) -> str:
        return "s3://" + "/".join(p for p in (self.loc.bucket, self.loc.prefix, rel) if p)

    def _sign(self, request: Any) -> None:
        assert self.creds is not None
        h = request.headers
        if "x-amz-content-sha256" not in h:
            try:
                body: bytes | None = request.content  # bytes given whole: signed
            except self._httpx.RequestNotRead:
                body = None  # a streamed file: its NAR hash is checked by every reader
            if body is None:
                h["x-amz-content-sha256"] = s3.UNSIGNED
            else:
                h["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
        signed = {"host": h["host"], "x-amz-content-sha256": h["x-amz-content-sha256"]}
        raw_path = request.url.raw_path.decode("ascii")
        h.update(s3.sign(request.method, raw_path, signed, self.creds, self.loc.region))

    def _check(self, r: Any, rel: str, ok: tuple[int, ...]) -> None:
        if r.status_code in ok or r.status_code >= 500:
            super()._check(r, rel, ok)
            return
        body = b"" if r.request.method == "HEAD" else r.read()
        code, msg = s3.error_code(body)
        what = f"{code}: {msg}" if msg else code or f"HTTP {r.status_code}"
        if r.status_code in (401, 403) or code in s3.DENIED_CODES:
            used = (
                f"the credentials from {self.creds.origin}"
                if self.creds
                else f"no credentials (set {s3.CREDENTIAL_VARS} or $AWS_PROFILE)"
            )
            raise CacheDenied(f"{self.where(rel)}: access denied ({what}) with {used}")
        if code:
            raise CacheError(f"{self.where(rel)}: HTTP {r.status_code} {what}")
        super()._check(r, rel, ok)


def _proxied() -> bool:
    """Whether the environment names a proxy (no_proxy is httpx's business)."""
    return any(
        os.environ.get(k)
        for k in (
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
        )
    )


def _tls_verify() -> Any:
    """The CA certificates to check a cache's TLS certificate against.

    ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` when set (a private cache behind an
    internal CA; the variables curl, OpenSSL and Nix read), else httpx's
    default bundle. httpx would read them too; loading them here turns a
    missing or broken file into an input error that names the variable.
    """
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return True
    import ssl

    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        where = " and ".join(
            f"${k}={v}" for k, v in (("SSL_CERT_FILE", cafile), ("SSL_CERT_DIR", capath)) if v
        )
        raise InputError(f"cannot load CA certificates from {where}: {exc}") from None


class _ServerError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def open_cache(url: str, *, key: str = "CACHE") -> Transport:
    """A transport for ``file:///dir``, ``http(s)://host/path`` or ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"{url}: a file:// cache must be a local path (file:///dir)", key=key)
        return FileTransport(url, Path(unquote(parts.path)))
    if parts.scheme in ("http", "https") and parts.netloc:
        return HttpTransport(url)
    if parts.scheme == "s3":
        return S3Transport(s3.parse_url(url, key=key), s3.load_credentials())
    raise InputError(
        f"{url!r} is not a cache URL "
        "(expected file:///dir, http(s)://host/path or s3://bucket/prefix)",
        key=key,
    )
