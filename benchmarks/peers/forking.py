"""The count protocol with a process per connection
(socketserver.ForkingTCPServer), the classic Unix model the threads peer is
compared with.

Each connection is served in a child process of its own by the threads
peer's handler (a reader, and a writer thread behind a queue of at most
64 MiB), so the two differ only in what runs a connection: a process or a
thread.
"""

from __future__ import annotations

import socket
import socketserver

from _common import announce, parse_args
from threads import Handler


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 4096
    max_children = 1024  # past it, accepting waits for children to exit


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    Handler.mode = args.mode
    Server.address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with Server((args.host, args.port), Handler) as server:
        announce(args.host, server.server_address[1], args.mode)
        server.serve_forever()
