# Unix socket listeners: the socket file, made with the permissions asked
# for and removed by whoever made it; and the peer named by its credentials.
#
# A socket file outlives a server that was killed, and then makes the next
# one fail to bind. So a socket file that nobody listens on (a connection to
# it is refused) is stale and removed; a file that is not a socket is never
# removed, and one that a server listens on is left to it.
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import struct
import time
from collections.abc import Iterator

import attrs

__all__ = ["UnixSocketFile", "open_unix_listener", "peer_credentials"]

_PEERCRED = getattr(socket, "SO_PEERCRED", None)
_UCRED = struct.Struct("3i")  # pid, uid, gid (Linux's struct ucred)


@attrs.frozen
class UnixSocketFile:
    """A socket file this process made, to remove on exit.

    Attributes:
        path: Where it is.
        inode: Its device and inode: what is there is removed only if it is
            still a socket with these (a file put there since is kept).
    """

    path: str
    inode: tuple[int, int]

    def remove(self) -> None:
        """Remove the file, if it is still the one this process made."""
        try:
            info = os.lstat(self.path)
            if stat.S_ISSOCK(info.st_mode) and (info.st_dev, info.st_ino) == self.inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def open_unix_listener(
    path: str, *, mode: int = 0o600, backlog: int = 4096
) -> tuple[socket.socket, UnixSocketFile]:
    """Bind and listen on a unix socket at ``path``.

    A stale socket file (nobody listens on it) is removed first. The file is
    made with ``mode`` from the start (no wider permissions for a moment).
    Servers starting at once at one path take turns (a lock on the
    directory, held for a few system calls), so none takes another's socket,
    bound but not listening yet, for a stale one.

    Args:
        path: The socket file's path.
        mode: Its permissions.
        backlog: The listen backlog.

    Returns:
        The non-blocking listening socket, and its file (to `remove` on exit).

    Raises:
        OSError: If the path is taken (by a file that is not a socket, or by
            a socket a server listens on), or cannot be bound; its message
            says which, in words.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _directory_locked(os.path.dirname(path) or "."):
            _remove_if_stale(path)
            umask = os.umask(0o777 & ~mode)
            try:
                sock.bind(path)
            finally:
                os.umask(umask)
            info = os.lstat(path)
            socket_file = UnixSocketFile(path, (info.st_dev, info.st_ino))
            try:
                sock.listen(backlog)
            except BaseException:
                socket_file.remove()
                raise
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, socket_file


LOCK_WAIT = 2.0
"""Seconds a server waits for another to finish making its socket."""


@contextlib.contextmanager
def _directory_locked(directory: str) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (flock), waiting at most LOCK_WAIT."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OSError(
                        errno.EWOULDBLOCK, f"its directory stayed locked for {LOCK_WAIT:g} s"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # and the lock with it


def _remove_if_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EEXIST, "the path exists and is not a socket: not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a listener whose backlog is full would hold a blocking one
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        # Stale: nobody listens on it. Removed only if it is still that file.
        UnixSocketFile(path, (info.st_dev, info.st_ino)).remove()
        return
    except BlockingIOError:
        pass  # a listener, with a full backlog
    except OSError:
        return  # let the bind say what is wrong
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "a server is listening on it")


def peer_credentials(sock: socket.SocketType) -> str:
    """Name a unix socket's peer by its process and user: ``pid=12,uid=1000``.

    Where the platform has no ``SO_PEERCRED``, or it fails: ``unix``.
    """
    if _PEERCRED is None:
        return "unix"
    try:
        pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, _PEERCRED, _UCRED.size))
    except OSError:
        return "unix"
    return f"pid={pid},uid={uid}"
