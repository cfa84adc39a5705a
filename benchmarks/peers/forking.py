"""The count protocol with a process per connection
(socketserver.ForkingTCPServer), the classic Unix model the threads peer is
compared with.

Each connection is served in a child process of its own by the threads
peer's handler (a reader, and a writer thread behind a queue of at most
64 MiB), so the two differ only in what runs a connection: a process or a
thread.
"""

from __future__ import annotations

import socketserver

from threads import serve


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 4096
    max_children = 1024  # past it, accepting waits for children to exit


if __name__ == "__main__":
    serve(__doc__.splitlines()[0], Server)
