"""A minimal HTTP/1.1 client for the streaming hot path: one ``asyncio.Protocol`` per upstream connection.

aiohttp's client costs a StreamReader feed, a future wake-up and a task step per streamed chunk; here the
response body is decoded (chunked, Content-Length or read-until-close) inside ``data_received`` and each read's
decoded bytes are handed straight to a callback, so a relayed chunk costs no task switch at all. Connections
are kept alive and pooled per adapter. Only what the adapter needs: plain ``http://``, a POST with a body,
no redirects, no compression (the request asks for ``identity``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from urllib.parse import urlsplit

_MAX_HEAD = 64 << 10  # bytes of status line + headers
_MAX_LINE = 4096  # bytes of one chunk-size or trailer line


class UpstreamError(Exception):
    """The upstream connection failed, closed early, or sent something that is not HTTP/1.1."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection. ``request`` → await ``head`` → body bytes arrive via ``on_data`` → ``done``."""

    def __init__(self, pool: UpstreamPool | None = None):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.used = False  # a request was sent on it before (a reused connection may have been closed by the peer)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.on_data: Callable[[bytes], None] | None = None
        self.body: list[bytes] = []  # decoded body, when no on_data callback is set
        self.received = False  # any response byte arrived
        self._head_buf = b""
        self._in_head = True
        self._pending = b""  # an incomplete chunk-size line or chunk-ending CRLF
        self._left = 0  # chunked: bytes left of the current chunk; -1: CRLF expected; -2: trailers
        self._length = -1  # Content-Length left, or -1 (until close) when not chunked
        self._chunked = False
        self._keep_alive = True
        self._finished = False
        self.head_waiter: asyncio.Future | None = None
        self.done: asyncio.Future | None = None

    # ---- use ---------------------------------------------------------------------------------------

    def request(self, head: bytes, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.head_waiter, self.done = loop.create_future(), loop.create_future()
        self.used = True
        self.transport.write(head + body)

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection (the engine stops generating when its client goes away)."""
        self._keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    def release(self) -> None:
        """Give the connection back to the pool if its response was read to the end, else close it."""
        if self._finished and self._keep_alive and not self.lost and self.pool is not None:
            self._reset()
            self.pool.put(self)
        else:
            self.abort()

    # ---- protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self.pool is not None:
            self.pool.discard(self)
        if self._finished or self.done is None:
            return
        if not self._in_head and not self._chunked and self._length < 0:  # body delimited by the close
            self._finish()
            return
        error = UpstreamError(f"upstream closed the connection mid-response ({exc or 'EOF'})")
        self._fail(error)

    def eof_received(self):
        return False  # close our side too; connection_lost decides whether the response was complete

    def _fail(self, error: Exception) -> None:
        self._finished = True
        self._keep_alive = False
        for fut in (self.head_waiter, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: whoever awaits it still gets it, nobody is warned otherwise
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def _finish(self) -> None:
        self._finished = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._finished:  # bytes after the response: not HTTP we understand; never reuse this connection
            self._keep_alive = False
            return
        self.received = True
        if self._in_head:
            data = self._head_buf + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > _MAX_HEAD:
                    self._fail(UpstreamError("upstream response headers too large"))
                else:
                    self._head_buf = data
                return
            self._head_buf = b""
            try:
                self._parse_head(data[:end])
            except (ValueError, IndexError) as exc:
                self._fail(UpstreamError(f"bad upstream response head: {exc}"))
                return
            data = data[end + 4 :]
            if self.status // 100 == 1:  # 100 Continue and friends: skip, the real answer follows
                self._in_head = True
                if data:
                    self.data_received(data)
                return
            if not self.head_waiter.done():
                self.head_waiter.set_result(None)
            if self._chunked:
                pass
            elif self._length == 0:
                self._finish()
                return
            if not data:
                return
        if self._chunked:
            self._feed_chunked(data)
        else:
            if self._length >= 0:
                if len(data) >= self._length:
                    data, self._length = data[: self._length], 0
                else:
                    self._length -= len(data)
            self._emit(data)
            if self._length == 0:
                self._finish()

    def _emit(self, data: bytes) -> None:
        if data:
            if self.on_data is not None:
                self.on_data(data)
            else:
                self.body.append(data)

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not HTTP/1.x: {lines[0]!r}")
        self.status = int(status)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.headers = headers
        self._in_head = False
        connection = headers.get("connection", "").lower()
        self._keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked, self._left = True, 0
        elif "content-length" in headers:
            self._length = int(headers["content-length"])
        elif self.status in (204, 304):
            self._length = 0
        else:
            self._keep_alive = False  # delimited by the close

    def _feed_chunked(self, data: bytes) -> None:
        if self._pending:
            data, self._pending = self._pending + data, b""
        elif self._left == 0 and data[-2:] == b"\r\n":  # fast path: the read is exactly one whole chunk
            i = data.find(b"\r\n")
            if 0 < i <= 8 and data[:i].isalnum():
                try:
                    size = int(data[:i], 16)
                except ValueError:
                    size = 0
                if size and i + 4 + size == len(data):
                    self._emit(data[i + 2 : -2])
                    return
        pos, n = 0, len(data)
        out = []
        while pos < n:
            left = self._left
            if left > 0:
                end = pos + left
                if end <= n:
                    out.append(data[pos:end] if pos or end != n else data)
                    pos, self._left = end, -1
                else:
                    out.append(data[pos:] if pos else data)
                    self._left -= n - pos
                    pos = n
            elif left == -1:  # the CRLF after a chunk's data
                if n - pos < 2:
                    self._pending = data[pos:]
                    break
                if data[pos : pos + 2] != b"\r\n":
                    self._fail(UpstreamError("bad chunked encoding from upstream"))
                    return
                pos, self._left = pos + 2, 0
            else:  # left == 0: a chunk-size line; left == -2: a trailer line (empty: the end)
                i = data.find(b"\r\n", pos)
                if i < 0:
                    if n - pos > _MAX_LINE:
                        self._fail(UpstreamError("bad chunked encoding from upstream"))
                        return
                    self._pending = data[pos:]
                    break
                line = data[pos:i]
                pos = i + 2
                if left == -2:
                    if not line:
                        if pos < n:
                            self._keep_alive = False
                        self._flush(out)
                        self._finish()
                        return
                    continue
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self._fail(UpstreamError("bad chunked encoding from upstream"))
                    return
                if size < 0:
                    self._fail(UpstreamError("bad chunked encoding from upstream"))
                    return
                self._left = size if size else -2
        self._flush(out)

    def _flush(self, out: list[bytes]) -> None:
        if out:
            self._emit(out[0] if len(out) == 1 else b"".join(out))


class UpstreamPool:
    """Keep-alive connections to one ``http://host:port``."""

    def __init__(self, base_url: str, connect_timeout: float = 10.0, max_idle: int = 1024):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http:// upstreams are supported here, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.host_header = parts.netloc.encode("idna")
        self.connect_timeout, self.max_idle = connect_timeout, max_idle
        self._idle: list[UpstreamConnection] = []

    def put(self, conn: UpstreamConnection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.abort()

    def discard(self, conn: UpstreamConnection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port)
        return conn

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> UpstreamConnection:
        """Send a POST and wait for the response head; the body then flows to ``conn.on_data`` (or ``conn.body``).

        A reused connection that the peer closed before answering (its keep-alive ran out) is retried once
        on a fresh one. Raises ``UpstreamError``/``OSError``/``TimeoutError`` when the upstream is unreachable.
        """
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host_header.decode()}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        ).encode("latin-1")
        while True:
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.lost and not candidate.transport.is_closing():
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            conn.request(head, body)
            try:
                await conn.head_waiter
            except UpstreamError:
                if reused and not conn.received:
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            return conn
