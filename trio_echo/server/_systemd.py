# systemd integration, with the standard library only: socket activation
# (listening sockets handed over in LISTEN_FDS), and readiness notification
# (sd_notify over the datagram socket named in NOTIFY_SOCKET).
from __future__ import annotations

import os
import socket

from ._listeners import check_listener

__all__ = ["LISTEN_FDS_START", "listeners_from_fds", "notify", "systemd_listeners"]

LISTEN_FDS_START = 3
"""The first file descriptor systemd passes (SD_LISTEN_FDS_START)."""


class ActivationError(ValueError):
    """A handed-over file descriptor is not a listening stream socket."""


def listeners_from_fds(fds: list[int]) -> list[socket.socket]:
    """Wrap inherited file descriptors of listening stream sockets.

    Args:
        fds: The file descriptors.

    Returns:
        Non-blocking socket objects that own the descriptors.

    Raises:
        ActivationError: If a descriptor is not an open, listening TCP
            socket.
    """
    listeners = []
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as error:
            raise ActivationError(
                f"file descriptor {fd} is not a socket ({error.strerror})"
            ) from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            sock.detach()
            raise ActivationError(f"file descriptor {fd} is not a listening stream socket")
        try:
            check_listener(sock)
        except ValueError as error:
            sock.detach()
            raise ActivationError(f"file descriptor {fd}: {error}") from None
        sock.setblocking(False)
        listeners.append(sock)
    return listeners


def systemd_listeners(environ: dict[str, str] | None = None) -> list[socket.socket] | None:
    """Return the sockets systemd passed to this process, if it passed any.

    Follows sd_listen_fds(3): the sockets are file descriptors 3 to
    3 + LISTEN_FDS - 1, meant for this process only if LISTEN_PID is its
    process id. The variables are removed from the environment either way,
    so that child processes do not take the sockets for their own.

    Returns:
        The listening sockets, or None if none were passed.

    Raises:
        ActivationError: If a passed descriptor is not a listening stream
            socket.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not pid or not count or not pid.isdigit() or int(pid) != os.getpid():
        return None
    if not count.isdigit() or int(count) == 0:
        return None
    return listeners_from_fds(list(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count))))


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
