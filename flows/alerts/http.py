"""One bounded HTTP POST: a notice's whole delivery (connect, TLS, send, the answer read to its last
byte) ends by its deadline, however the receiver behaves.

httpx's timeouts bound each socket operation, not the request: a receiver answering one byte every
few seconds never trips a 10 s read timeout and holds the caller for as long as it likes. Here every
connect, read and write gets what is left of the deadline (httpcore's network backend, wrapped), so
a slow or hanging receiver costs the deadline and no more. Proxies from the environment
(``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``) are honoured like httpx does.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore


class PostFailed(Exception):
    """The receiver did not accept the POST in time (one line; the caller masks it)."""


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise error(f"no answer within the channel's deadline ({self.seconds:g} s)")
        return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return _Stream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options), self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (None: go direct)."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _pool(url: str, deadline: _Deadline) -> httpcore.ConnectionPool | httpcore.HTTPProxy:
    backend = _Backend(deadline)
    context = ssl.create_default_context()
    proxy = _proxy(url)
    if proxy:
        return httpcore.HTTPProxy(proxy_url=proxy, ssl_context=context, network_backend=backend)
    return httpcore.ConnectionPool(ssl_context=context, network_backend=backend)


def post_json(
    url: str, payload: Any, *, deadline_seconds: float, headers: dict[str, str] | None = None
) -> int:
    """POST ``payload`` as JSON; the status code of a 2xx answer, read to its end by the deadline.
    ``PostFailed`` otherwise (a non-2xx status, a network error, the deadline passed)."""
    deadline = _Deadline(deadline_seconds)
    body = json.dumps(payload, default=str).encode()
    sent = {"content-type": "application/json", "user-agent": "pgtender-alerts", **(headers or {})}
    timeouts = {"connect": deadline_seconds, "read": deadline_seconds, "write": deadline_seconds}
    try:
        with _pool(url, deadline) as pool:
            response = pool.request(
                "POST", url, headers=list(sent.items()), content=body, extensions={"timeout": timeouts}
            )
    except httpcore.TimeoutException:
        raise PostFailed(f"no complete answer within the deadline ({deadline_seconds:g} s)") from None
    except (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.ProxyError,
        httpcore.UnsupportedProtocol,
        OSError,
    ) as exc:
        raise PostFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status < 300:
        raise PostFailed(f"the receiver answered HTTP {response.status}")
    return response.status
