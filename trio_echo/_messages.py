# What the client sends: a message given on the command line, a file, or
# standard input, held in memory only when it came from the command line.
#
# A count message's length goes first, so the whole size must be known
# before the first byte is sent: standard input that is not a regular file
# is first copied to a temporary file (disk, not memory) in the directory
# `tempfile.gettempdir()` names ($TMPDIR, else /tmp), and no more of it than
# the caller's bound: input with no end (`yes |`, /dev/zero) is refused
# once it passes the bound, not copied until the disk is full. The bytes are read
# in pieces to be sent, and read again (os.pread) to check the echo as it
# arrives: so a message of any size costs a few pieces of memory.
from __future__ import annotations

import os
import stat
import tempfile
from typing import BinaryIO

__all__ = ["Message", "MessageReadError", "MessageTooLongError", "SpoolError"]

SPOOL_CHUNK = 1024 * 1024


class MessageReadError(Exception):
    """A message's file could not be read (the cause says why)."""


class MessageTooLongError(Exception):
    """Input that is not a regular file went on past the bound its copy may have.

    Attributes:
        limit: The bound, in bytes.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"it goes on past {limit:,} bytes")
        self.limit = limit


class SpoolError(Exception):
    """The copy of the input could not be written (the cause says why).

    Attributes:
        directory: Where the copy was being written.
    """

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.directory = directory


def spool_directory() -> str:
    """Where input that is not a regular file is copied: ``$TMPDIR``, else /tmp."""
    return tempfile.gettempdir()


class Message:
    """One message to send: its size, and its bytes by position.

    Args:
        data: The message, in memory.
        fd: Or an open file to read it from.
        start: Where in ``fd`` the message begins.
        size: The message's size, with ``fd``.
        owned: Whether `close` closes ``fd``.
    """

    def __init__(
        self,
        data: bytes = b"",
        *,
        fd: int | None = None,
        start: int = 0,
        size: int = 0,
        owned: bool = False,
    ) -> None:
        self._data = memoryview(data)
        self._fd = fd
        self._start = start
        self.size = len(data) if fd is None else size
        self._owned = owned

    @classmethod
    def from_file(cls, path: str, *, limit: int | None = None) -> Message:
        """The contents of the file at ``path``.

        Copied to a temporary file first if it is not a regular file (a
        pipe, say), up to ``limit`` bytes.

        Raises:
            OSError: If it cannot be read.
            MessageTooLongError: If it is not a regular file, and goes on
                past ``limit``.
            SpoolError: If its copy cannot be written.
        """
        with open(path, "rb") as file:
            if (message := cls._in_place(file.fileno())) is not None:
                message._fd, message._owned = os.dup(file.fileno()), True
                return message
            return cls._spooled(file, limit)

    @classmethod
    def from_stream(cls, stream: BinaryIO, *, limit: int | None = None) -> Message:
        """What ``stream`` (standard input) holds from where it is to its end.

        Read in place if it is a regular file, else copied to a temporary
        file first, up to ``limit`` bytes.

        Raises:
            OSError: If it cannot be read.
            MessageTooLongError: If it is not a regular file, and goes on
                past ``limit``.
            SpoolError: If its copy cannot be written.
        """
        return cls._in_place(stream.fileno()) or cls._spooled(stream, limit)

    @classmethod
    def _in_place(cls, fd: int) -> Message | None:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
            return None  # a pipe, or a file whose size is not known (/proc's)
        start = os.lseek(fd, 0, os.SEEK_CUR)
        return cls(fd=fd, start=start, size=max(0, status.st_size - start))

    @classmethod
    def _spooled(cls, stream: BinaryIO, limit: int | None) -> Message:
        directory = spool_directory()
        try:
            spool = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115  (closed by the `with` below)
        except OSError as error:
            raise SpoolError(directory) from error
        with spool:
            size = 0
            while chunk := stream.read(SPOOL_CHUNK):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise MessageTooLongError(limit)
                try:
                    spool.write(chunk)
                except OSError as error:
                    raise SpoolError(directory) from error
            try:
                spool.flush()
            except OSError as error:
                raise SpoolError(directory) from error
            return cls(fd=os.dup(spool.fileno()), size=size, owned=True)

    @property
    def in_memory(self) -> bool:
        """Whether reading it never touches a file."""
        return self._fd is None

    def read(self, offset: int, count: int) -> bytes:
        """Up to ``count`` bytes from ``offset`` (fewer only at the end).

        Raises:
            MessageReadError: If the file cannot be read, or has shrunk.
        """
        count = max(0, min(count, self.size - offset))
        if self._fd is None:
            return bytes(self._data[offset : offset + count])
        try:
            data = os.pread(self._fd, count, self._start + offset)
        except OSError as error:
            raise MessageReadError(error.strerror or str(error)) from error
        if len(data) < count:
            raise MessageReadError("it became shorter while it was sent")
        return data

    def close(self) -> None:
        """Close its file, if it owns one."""
        if self._fd is not None and self._owned:
            os.close(self._fd)
            self._owned = False
