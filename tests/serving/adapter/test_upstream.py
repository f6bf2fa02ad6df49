"""The lean upstream HTTP/1.1 client (serving/adapter/upstream.py) and the adapter's raw streaming relay."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time

from serving.adapter.upstream import UpstreamConnection, UpstreamError, UpstreamPool
from tests.serving.adapter.conftest import KEY

EVENTS = [b'data: {"n":%d,"content":"%s"}\n\n' % (i, b"x" * (i * 7 % 300)) for i in range(40)]
BODY = b"".join(EVENTS)


class FakeTransport:
    def __init__(self):
        self.written, self.aborted, self.paused = [], False, False

    def write(self, data):
        self.written.append(data)

    def abort(self):
        self.aborted = True

    def is_closing(self):
        return self.aborted

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False


def chunked(events: list[bytes], ext: bool = False) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(e), b";x=1" if ext else b"", e) for e in events)
    return out + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def feed(wire: bytes, cuts: list[int]) -> tuple[UpstreamConnection, bytes]:
    """Feed ``wire`` to a connection in pieces cut at ``cuts``; returns it and the body bytes it decoded."""

    async def go():
        conn = UpstreamConnection()
        conn.connection_made(FakeTransport())
        conn.request(b"POST / HTTP/1.1\r\n\r\n", b"")
        got = []
        conn.on_data = got.append
        last = 0
        for cut in [*sorted(cuts), len(wire)]:
            if cut > last:
                conn.data_received(wire[last:cut])
                last = cut
        return conn, b"".join(got)

    return asyncio.run(go())


def test_chunked_decoding_at_every_single_split_point():
    wire = HEAD + chunked(EVENTS[:6], ext=True)
    expected = b"".join(EVENTS[:6])
    for cut in range(len(wire) + 1):
        conn, got = feed(wire, [cut])
        assert got == expected, cut
        assert conn.done.done() and conn.done.exception() is None and conn.status == 200
        assert conn.headers["content-type"] == "text/event-stream"


def test_chunked_decoding_at_random_split_points_and_byte_by_byte():
    wire = HEAD + chunked(EVENTS)
    rng = random.Random(7)
    for _ in range(200):
        cuts = rng.sample(range(len(wire)), rng.randint(1, 60))
        conn, got = feed(wire, cuts)
        assert got == BODY and conn.done.done()
    conn, got = feed(wire, list(range(len(wire))))
    assert got == BODY and conn.done.result() is None


def test_one_read_with_many_chunks_is_handed_over_in_one_call():
    async def go():
        conn = UpstreamConnection()
        conn.connection_made(FakeTransport())
        conn.request(b"", b"")
        calls = []
        conn.data_received(HEAD)
        conn.on_data = calls.append
        conn.data_received(chunked(EVENTS[:5])[:-5])  # every chunk but the last-chunk marker
        return calls

    calls = asyncio.run(go())
    assert calls == [b"".join(EVENTS[:5])]


def test_content_length_and_close_delimited_bodies():
    wire = b"HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    for cut in (0, 10, len(wire) - 3):
        conn, got = feed(wire, [cut])
        assert got == BODY and conn.done.done() and conn.status == 400

    async def close_delimited():
        conn = UpstreamConnection()
        conn.connection_made(FakeTransport())
        conn.request(b"", b"")
        conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n" + BODY[:100])
        conn.data_received(BODY[100:])
        assert not conn.done.done()
        conn.connection_lost(None)
        return conn

    conn = asyncio.run(close_delimited())
    assert conn.done.result() is None and b"".join(conn.body) == BODY and not conn._keep_alive


def test_a_connection_lost_mid_chunk_fails_the_response():
    wire = HEAD + chunked(EVENTS)

    async def go(cut):
        conn = UpstreamConnection()
        conn.connection_made(FakeTransport())
        conn.request(b"", b"")
        got = []
        conn.on_data = got.append
        conn.data_received(wire[:cut])
        conn.connection_lost(ConnectionResetError("gone"))
        return conn, b"".join(got)

    for cut in (10, len(HEAD) + 3, len(HEAD) + 200, len(wire) - 4):
        conn, got = asyncio.run(go(cut))
        assert conn.done.done() and isinstance(conn.done.exception(), UpstreamError)
        assert BODY.startswith(got)
        if cut < len(HEAD):
            assert isinstance(conn.head_waiter.exception(), UpstreamError)


def test_garbage_is_an_upstream_error():
    for wire in (b"SSH-2.0-OpenSSH\r\n\r\n", HEAD + b"zz\r\nabc\r\n", HEAD + b"3\r\nabcXY"):
        conn, _ = feed(wire, [])
        assert conn.done.done() and isinstance(conn.done.exception(), UpstreamError)
        assert conn.transport.aborted


async def _serve(handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_request(reader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


def test_the_pool_reuses_connections_and_retries_one_the_peer_closed():
    async def go():
        connections = []

        async def handler(reader, writer):
            connections.append(writer)
            while True:
                try:
                    await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()

        server, port = await _serve(handler)
        pool = UpstreamPool(f"http://127.0.0.1:{port}")
        for _ in range(3):
            conn = await pool.post("/v1/x", b"{}", {})
            await conn.done
            assert b"".join(conn.body) == b"ok"
            conn.release()
        assert len(connections) == 1
        connections[0].close()  # the peer's keep-alive runs out while the connection idles in the pool
        await asyncio.sleep(0.05)
        conn = await pool.post("/v1/x", b"{}", {})
        await conn.done
        assert b"".join(conn.body) == b"ok" and len(connections) == 2
        conn.release()
        pool.close()
        server.close()

    asyncio.run(go())


def test_an_unreachable_upstream_raises():
    async def go():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        pool = UpstreamPool(f"http://127.0.0.1:{port}")
        try:
            await pool.post("/", b"", {})
        except OSError:
            return
        raise AssertionError("no error")

    asyncio.run(go())


# ---- through the adapter -------------------------------------------------------------------------------


def test_a_slow_caller_gets_every_byte_in_order_and_the_engine_is_paused(start_adapter, engine, monkeypatch):
    """Backpressure: the engine outruns the caller by far; nothing is lost or reordered, memory stays bounded."""
    pauses = []
    original = UpstreamConnection.pause_reading
    monkeypatch.setattr(UpstreamConnection, "pause_reading", lambda self: (pauses.append(1), original(self)))
    big = "y" * 10000
    engine.tokens = [f" {i:05d}{big}" for i in range(300)]  # ~3 MB of events, written with no delay
    engine.delay = 0
    url = start_adapter(served_model_name="engine-model")
    body = json.dumps({"model": "engine-model", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    host, port = url.split("//")[1].split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the adapter's buffer fills
        sock.connect((host, int(port)))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (KEY.encode(), len(body), body.encode())
        )
        time.sleep(0.5)  # not reading at all for a while
        wire = b""
        while piece := sock.recv(65536):
            wire += piece
    assert wire.startswith(b"HTTP/1.1 200")
    conn, data = feed(wire, [])
    assert conn.done.result() is None
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in data.split(b"\n")
        if line.startswith(b"data: {") and b'"choices":[{' in line
    )
    assert text == engine.text
    assert data.endswith(b"data: [DONE]\n\n")
    assert pauses  # the engine connection was paused while the caller lagged


def test_reads_of_exactly_one_chunk_each_take_the_fast_path_correctly():
    wire_chunks = [b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS]
    cuts, pos = [len(HEAD)], len(HEAD)
    for c in wire_chunks:
        pos += len(c)
        cuts.append(pos)
    conn, got = feed(HEAD + b"".join(wire_chunks) + b"0\r\n\r\n", cuts)
    assert got == BODY and conn.done.result() is None
