"""The floor for any relay written in Python on this machine: a bare TCP byte pipe, for ``make bench-serving``.

``python -m benchmarks.tcp_pipe --port 9001 --upstream-port 9000``

Each caller connection gets its own upstream connection and bytes are copied both ways as they arrive, with
no HTTP parsing, no inspection and no accounting: one read and one write per chunk on the same event loop
(uvloop when installed) the adapter uses. What this costs in CPU per streamed chunk, and what it loses in
throughput, is the least a Python relay can cost here; ``make bench-serving`` prints it next to the
adapter's figures so that they can be read against the machine (its kernel's cost of a loopback read and
write) rather than in the abstract. It is a yardstick, not a proxy: nothing in AICP uses it.
"""

from __future__ import annotations

import argparse
import asyncio


class _Upstream(asyncio.Protocol):
    def __init__(self, caller: asyncio.Transport):
        self.caller = caller

    def data_received(self, data: bytes) -> None:
        self.caller.write(data)

    def connection_lost(self, exc) -> None:
        self.caller.close()


class _Caller(asyncio.Protocol):
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # bytes that arrived before the upstream connection was up

    def connection_made(self, transport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(
                lambda: _Upstream(self.transport), "127.0.0.1", self.upstream_port
            )
        except OSError:
            self.transport.close()
            return
        self.upstream = upstream
        for data in self.pending:
            upstream.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Caller(upstream_port), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tcp_pipe", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop  # the adapter's loop, so that the comparison is like for like
    except ImportError:
        asyncio.run(serve(args.port, args.upstream_port))
    else:
        uvloop.run(serve(args.port, args.upstream_port))


if __name__ == "__main__":
    main()
