# systemd's readiness notification (sd_notify over the datagram socket named
# in NOTIFY_SOCKET), with the standard library only. Its socket activation
# (listening sockets handed over in LISTEN_FDS) is `_listeners.py`'s.
from __future__ import annotations

import os
import socket

__all__ = ["notify"]


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (for example ``"READY=1"``) to systemd, if it listens.

    Args:
        state: Newline-separated ``KEY=value`` assignments (sd_notify(3)).
        environ: Where to find NOTIFY_SOCKET; the process environment if
            None.

    Returns:
        Whether a notification socket was set and the message sent.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address or address[0] not in "@/" or not hasattr(socket, "AF_UNIX"):
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
