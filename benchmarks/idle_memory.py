"""What one idle connection holds in the server, measured with tracemalloc.

An in-process server accepts N connections that send nothing, or one digit
of a length prefix, and wait. The clients connect before tracing starts (the
kernel completes their handshakes into the listen backlog), so only what the
server allocates for them is counted.

    python benchmarks/idle_memory.py [--connections 2000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import tracemalloc

import trio
import trio.testing

from trio_echo import EchoServer, ServerConfig, open_listeners


async def measure(count: int, first: bytes) -> float:
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        (address,) = await nursery.start(server.serve)
        clients = [socket.create_connection((address.host, address.port)) for _ in range(count)]
        for client in clients:
            if first:
                client.send(first)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        while server.connections < count:  # noqa: ASYNC110  (the server has no event for it)
            await trio.sleep(0.01)
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        server.abort()
    for client in clients:
        client.close()
    return held / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    for label, first in (("nothing sent", b""), ("one digit sent", b"1")):
        per_connection = trio.run(measure, args.connections, first)
        print(f"{label:15s} {per_connection:7.0f} B per idle connection ({args.connections} open)")


if __name__ == "__main__":
    main()
