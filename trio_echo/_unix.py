# Unix socket listeners: the socket file, made with the permissions asked
# for and removed by whoever made it; and the peer named by its credentials.
#
# A socket file outlives a server that was killed, and then makes the next
# one fail to bind. So a socket file that nobody listens on (a connection to
# it is refused) is stale and removed; a file that is not a socket is never
# removed, and one that a server listens on is left to it.
from __future__ import annotations

import errno
import os
import socket
import stat
import struct

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

    A stale socket file (nobody listens on it) is removed first. The file's
    permissions are set before the socket listens, so no one connects
    through wider ones.

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
    _remove_if_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        info = os.lstat(path)
        socket_file = UnixSocketFile(path, (info.st_dev, info.st_ino))
        try:
            os.chmod(path, mode)
            sock.listen(backlog)
        except BaseException:
            socket_file.remove()
            raise
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, socket_file


def _remove_if_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EEXIST, "the path exists and is not a socket: not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: nobody listens on it
        return
    except OSError:
        return  # let the bind say what is wrong
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "a server is listening on it")


def peer_credentials(sock: socket.socket) -> str:
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
