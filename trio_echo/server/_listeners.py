# Listening sockets, built in one place: bound here (TCP, or a unix socket),
# or handed over (inherited file descriptors, or systemd's socket
# activation); and what accepts connections on them (`Listener`).
#
# `listen_on` binds what a server is asked to listen on, and `handed_over`
# takes what it was given; each failure is one sentence. The unix socket's
# file (made, found stale, removed) is `_unix.py`'s.
#
# A `SocketListener` accepts on a listening socket: each connection is a
# `FastSocketStream`, named by its peer. A `TLSListener` wraps a listener and
# each stream it accepts in a `trio.SSLStream`, as `trio.SSLListener` does;
# the handshake waits for the connection's own task.
from __future__ import annotations

import _socket
import logging
import os
import socket
from collections.abc import Sequence
from typing import Protocol

import attrs
import trio

from ._socket_stream import FastSocketStream
from ._tls import ServerTLS
from ._unix import UnixSocketFile, open_unix_listener, peer_credentials

__all__ = [
    "ALL_INTERFACES",
    "ActivationError",
    "CannotListenError",
    "ListenAddress",
    "Listener",
    "SocketListener",
    "TLSListener",
    "accepted_stream",
    "check_listener",
    "handed_over",
    "listen_on",
    "listeners_from_fds",
    "open_listeners",
    "systemd_listeners",
]

logger = logging.getLogger("trio_echo.server")

ALL_INTERFACES = "*"
"""The host that listens on every interface, IPv4 and IPv6."""

BACKLOG = 4096
"""Pending connections the kernel may queue (it caps this at somaxconn)."""


@attrs.frozen
class ListenAddress:
    """An address a server listens on.

    Attributes:
        host: The numeric host address (empty for a unix socket).
        port: The port number (0 for a unix socket).
        path: A unix socket's path; None for TCP.
    """

    host: str
    port: int
    path: str | None = None

    @classmethod
    def of(cls, sock: socket.socket) -> ListenAddress:
        """The address ``sock`` is bound to."""
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            return cls("", 0, os.fsdecode(name) if name else "")
        return cls(str(name[0]), int(name[1]))

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return format_address(self.host, self.port)


def format_address(host: str, port: int) -> str:
    """Return ``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_listeners(
    host: str,
    port: int,
    *,
    backlog: int = BACKLOG,
    reuse_port: bool = False,
    listen: bool = True,
) -> list[socket.socket]:
    """Bind and listen on every address ``host`` resolves to.

    Args:
        host: A host name or address, or `ALL_INTERFACES`.
        port: The port; 0 picks a free one (the same one for every address
            of ``host``, where it can).
        backlog: The listen backlog.
        reuse_port: Set ``SO_REUSEPORT``, so that several processes can share
            the port.
        listen: Whether to listen; False only binds (to hold a port that
            other processes listen on, without taking their connections).

    Returns:
        Non-blocking listening sockets, one per address.

    Raises:
        OSError: If the host does not resolve or an address cannot be bound
            (for example, the port is in use). Sockets already bound are
            closed first.
        ValueError: If ``reuse_port`` is asked for on a platform without
            ``SO_REUSEPORT``.
    """
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT is not available on this platform")
    infos = socket.getaddrinfo(
        None if host == ALL_INTERFACES else host,
        port,
        type=socket.SOCK_STREAM,
        flags=socket.AI_PASSIVE,
    )
    seen: set[tuple[object, ...]] = set()
    listeners: list[socket.socket] = []
    try:
        for family, type_, proto, _canonname, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = socket.socket(family, type_, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            address = sockaddr
            if port == 0 and len(listeners) > 1:
                # Share the port picked for the first address.
                address = (sockaddr[0], listeners[0].getsockname()[1], *sockaddr[2:])
            sock.bind(address)
            if listen:
                sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def check_listener(sock: socket.socket) -> None:
    """Check that ``sock`` is a socket a server can listen on.

    Raises:
        ValueError: If it is not a TCP (IPv4 or IPv6) or unix stream socket.
    """
    if sock.family not in _FAMILIES or sock.type != socket.SOCK_STREAM:
        raise ValueError(
            f"a {sock.family.name} {sock.type.name} socket was handed over;"
            " trio_echo serves stream sockets only: TCP (IPv4 or IPv6) or unix"
        )


_FAMILIES = frozenset(
    {socket.AF_INET, socket.AF_INET6, *([socket.AF_UNIX] if hasattr(socket, "AF_UNIX") else [])}
)


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


class CannotListenError(Exception):
    """No listening socket could be had; the message says why, in a sentence."""


def listen_on(
    host: str,
    port: int,
    *,
    tcp: bool = True,
    unix: str | None = None,
    unix_mode: int = 0o600,
    reuse_port: bool = False,
    listen: bool = True,
) -> tuple[list[socket.socket], UnixSocketFile | None]:
    """Listen where a server is asked to: TCP on ``host`` and ``port``, a unix socket, or both.

    Args:
        host: The host (or `ALL_INTERFACES`), if ``tcp``.
        port: The port (0: a free one), if ``tcp``.
        tcp: Whether to listen on TCP.
        unix: A unix socket's path to listen on, if any.
        unix_mode: The unix socket file's permissions.
        reuse_port: Bind TCP with ``SO_REUSEPORT``.
        listen: Whether to listen on TCP; False only binds (see `open_listeners`).

    Returns:
        The listening sockets, and the unix socket's file, to remove on exit.

    Raises:
        CannotListenError: If an address cannot be had; nothing is left open.
    """
    listeners = []
    if tcp:
        try:
            listeners = open_listeners(host, port, reuse_port=reuse_port, listen=listen)
        except OSError as error:
            where = format_address(host, port)
            raise CannotListenError(f"cannot listen on {where}: {_reason(error)}") from None
    if unix is None:
        return listeners, None
    try:
        sock, socket_file = open_unix_listener(unix, mode=unix_mode, backlog=BACKLOG)
    except OSError as error:
        for other in listeners:
            other.close()
        raise CannotListenError(f"cannot listen on unix:{unix}: {_reason(error)}") from None
    return [*listeners, sock], socket_file


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def handed_over(fds: Sequence[int] = ()) -> list[socket.socket] | None:
    """The listening sockets handed over: ``fds`` if any, else systemd's, if it passed any.

    Raises:
        ActivationError: If a descriptor is not a listening stream socket.
    """
    return listeners_from_fds(list(fds)) if fds else systemd_listeners()


def accepted_stream(sock: socket.SocketType) -> FastSocketStream:
    """Return the stream a server serves an accepted socket on.

    The socket inherits ``TCP_NODELAY`` from its listener, and the stream's
    calls never block, so neither needs a system call here.
    """
    return FastSocketStream(sock, set_nodelay=False, set_nonblocking=False)


class Listener(Protocol):
    """Where a server accepts connections, each as a stream to serve.

    Attributes:
        socket: The listening socket, to wait on until it is readable.
    """

    socket: socket.socket

    def accept_nowait(self) -> tuple[trio.abc.Stream, str] | None:
        """Accept a pending connection: its stream and its peer's name.

        Returns:
            None if no connection is pending.

        Raises:
            OSError: If the socket's accept failed.
        """


class SocketListener:
    """Accepts on a listening TCP or unix socket: each connection a `FastSocketStream`."""

    __slots__ = ("_kind", "socket")

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        # The accepted sockets' family, type and protocol, as numbers: a
        # socket's own properties make an enum of each, on every accept.
        self._kind = (
            _socket.socket.family.__get__(sock),
            _socket.socket.type.__get__(sock),
            _socket.socket.proto.__get__(sock),
        )

    def accept_nowait(self) -> tuple[trio.abc.Stream, str] | None:
        while True:
            try:
                # socket.accept(), less its enums: the listener's non-blocking,
                # so the new socket's default timeout stands, as it would there.
                fd, address = self.socket._accept()  # type: ignore[attr-defined]
            except BlockingIOError:
                return None
            # The C type socket.socket extends: the same calls, without the
            # Python-level __init__ and close, and 40 bytes smaller.
            sock = socket.SocketType(*self._kind, fd)
            peer = _peer_name(sock, address)
            try:
                return accepted_stream(sock), peer
            except OSError as error:  # reset while queued: on to the next
                sock.close()
                logger.warning(
                    "connection from %s ended: reset before it was served: %s", peer, error
                )


class TLSListener:
    """Wraps a listener: each stream it accepts is served in a `trio.SSLStream`.

    Args:
        inner: The listener to wrap.
        tls: The server's TLS context, read on each accept (so that a
            reloaded certificate serves the connections accepted from then on).
    """

    __slots__ = ("_inner", "_tls", "socket")

    def __init__(self, inner: Listener, tls: ServerTLS) -> None:
        self._inner = inner
        self._tls = tls
        self.socket = inner.socket

    def accept_nowait(self) -> tuple[trio.abc.Stream, str] | None:
        if (accepted := self._inner.accept_nowait()) is None:
            return None
        stream, peer = accepted
        return trio.SSLStream(stream, self._tls.context, server_side=True), peer


def _peer_name(sock: socket.SocketType, address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return format_address(str(address[0]), int(address[1]))
    if sock.family == getattr(socket, "AF_UNIX", None):
        return f"unix:{peer_credentials(sock)}"  # a client's address is seldom named
    return str(address) or socket.AddressFamily(sock.family).name
