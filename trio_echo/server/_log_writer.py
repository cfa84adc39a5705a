# The log's way out: records held in a bounded buffer, and the thread that
# writes them to standard error.
#
# The server never waits for its log's reader. Records are held in a bounded
# buffer, and one thread writes them out in batches, as nginx's ``access_log
# ... buffer=64k flush=1s`` does: it wakes every FLUSH_INTERVAL, or sooner
# once BATCH records wait. A reader that falls behind (a blocking container
# log driver, a full pipe) stalls only that thread. When the buffer is full,
# records are dropped and counted, and the next record that fits is preceded
# by a line saying how many were lost. At exit, what is held is written for
# at most FLUSH_AT_EXIT.
#
# Every line is whole where it lands. Standard error may be one pipe shared
# by several processes (the workers of a supervisor): a write of at most
# PIPE_BUF bytes to a pipe goes in whole, never mixed with another's, and a
# longer one may be cut anywhere by another process's write. So a batch goes
# out in writes of whole lines, at most PIPE_BUF bytes each, and a line
# longer than that is cut in its middle to fit (a JSON line is made to fit
# by its formatter, so that it stays JSON). A descriptor that is non-blocking
# (the flag belongs to the file description, which every process holding it
# shares) is waited on until it can be written, as a blocking one would be.
# Lines that cannot be written (a full disk, a reader gone) are counted, and
# the next line written says how many were lost.
from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["BATCH", "FLUSH_INTERVAL", "HELD_RECORDS", "PIPE_BUF", "LogBuffer", "LogWriter"]

HELD_RECORDS = 10_000
"""The most log records waiting for the writer thread; past it, they are dropped."""

FLUSH_INTERVAL = 0.25
"""Seconds a record may wait for the writer thread, at most (while the
reader keeps up)."""

BATCH = 256
"""Records waiting that wake the writer before its interval is over."""

FLUSH_AT_EXIT = 1.0
"""Seconds the writer has, at exit, to write what is held."""

PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)
"""The most bytes one write puts in a pipe whole (4096 on Linux, POSIX's
least is 512): the most bytes of one write of the log, and of one line."""


class LogBuffer:
    """Records held for the writer thread, bounded, and what became of them.

    Appending and taking are safe across threads without a lock (a deque's
    append and popleft are atomic); the counts are only ever raised by one
    thread each.

    Args:
        limit: The most records held; past it, records are dropped, counted.
    """

    def __init__(self, limit: int = HELD_RECORDS) -> None:
        # Records, and lines made already (`hold_text_line`).
        self.records: collections.deque[logging.LogRecord | str] = collections.deque()
        self.limit = limit
        self.dropped = 0
        """Records dropped since the last one that was held."""
        self.held = 0
        """Records held so far, in all (lines about dropped ones included)."""
        self.written = 0
        """Records the writer has finished with, in all."""
        self.lost = 0
        """Records the writer could not write, in all (the log's end failed)."""
        self.wake = threading.Event()
        """Set to make the writer write now."""

    def hold(self, record: logging.LogRecord | str) -> None:
        """Hold ``record`` (or a line) for the writer, or drop it if the buffer is full."""
        records = self.records
        if len(records) >= self.limit:
            self.dropped += 1
            return
        if self.dropped:
            records.append(
                _warning("%d log line(s) dropped: the log's reader is not keeping up", self.dropped)
            )
            self.held += 1
            self.dropped = 0
        records.append(record)
        self.held += 1
        if len(records) == BATCH:
            self.wake.set()

    def take(self) -> list[logging.LogRecord | str]:
        """Take every record held, oldest first."""
        records = self.records
        return [records.popleft() for _ in range(len(records))]

    def flush(self) -> None:
        """Have the writer write what is held, waiting FLUSH_AT_EXIT at most (at exit)."""
        deadline = time.monotonic() + FLUSH_AT_EXIT
        while self.written < self.held and time.monotonic() < deadline:
            self.wake.set()
            time.sleep(0.01)


def _warning(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("trio_echo", logging.WARNING, "", 0, message, args, None)


class LogWriter:
    """The writer thread's work: the buffer's records, as whole lines, out to the log.

    Standard error is written through a descriptor of its own with
    ``os.write``: the thread may stay blocked in a write to the end, and it
    must hold no lock that the interpreter's shutdown (its flush of
    ``sys.stderr``, `logging.shutdown`) would wait for. A stream that is not
    a file (no descriptor) is written as a stream, in the same pieces.

    Args:
        buffer: Where the records are held.
        formatter: Makes a record a line.
        out: The log's end; None (a closed standard error) loses every line.
    """

    def __init__(self, buffer: LogBuffer, formatter: logging.Formatter, out: TextIO | None) -> None:
        self.buffer = buffer
        self.formatter = formatter
        self.out = out
        self.fd: int | None = None
        if out is not None:
            with contextlib.suppress(AttributeError, OSError, ValueError):  # not a file: a stream
                self.fd = os.dup(out.fileno())
        self.unreported = 0
        """Lines lost since the last write that succeeded."""
        self.failure = ""
        """Why the last lines were lost."""

    def run(self) -> None:
        """Write what is held, in batches, for ever (the thread's target)."""
        buffer = self.buffer
        while True:
            buffer.wake.wait(FLUSH_INTERVAL)
            buffer.wake.clear()
            batch = buffer.take()
            if batch:
                try:
                    self.write(batch)
                finally:
                    buffer.written += len(batch)

    def write(self, batch: list[logging.LogRecord | str]) -> None:
        """Write ``batch``, after a line saying how many were lost before it, if any.

        What cannot be written is counted.
        """
        data = self._text(batch)
        if self.unreported and not self._report_losses():
            self._lose(data.count(b"\n"))
            return
        for chunk in _chunks(data):
            try:
                self._write_whole(chunk)
            except (OSError, ValueError) as error:  # ValueError: a stream closed
                self.failure = f"cannot write the log: {_reason(error)}"
                self._lose(chunk.count(b"\n"))

    def _text(self, batch: list[logging.LogRecord | str]) -> bytes:
        """The lines of ``batch``, each with its newline."""
        format_record = self.formatter.format
        texts = []
        for record in batch:
            try:
                texts.append(record if isinstance(record, str) else format_record(record))
            except Exception as error:  # a record that cannot be formatted is lost, counted
                self.failure = f"a record cannot be formatted: {error!r}"
                self._lose(1)
        texts.append("")
        return "\n".join(texts).encode(errors="backslashreplace")

    def _report_losses(self) -> bool:
        """Write how many lines were lost; return whether that line was written."""
        record = _warning("%d log line(s) lost: %s", self.unreported, self.failure)
        try:
            for chunk in _chunks((self.formatter.format(record) + "\n").encode()):
                self._write_whole(chunk)
        except (OSError, ValueError):
            return False
        self.unreported = 0
        return True

    def _lose(self, count: int) -> None:
        self.unreported += count
        self.buffer.lost += count

    def _write_whole(self, chunk: bytes) -> None:
        """Write ``chunk`` (at most PIPE_BUF bytes) with one write, waiting if need be."""
        if self.fd is None:
            if self.out is None:
                raise OSError(errno.EBADF, "standard error is closed")
            self.out.write(chunk.decode())
            self.out.flush()
            return
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:  # a non-blocking descriptor: wait as a blocking write would
                _wait_until_writable(self.fd)


def _chunks(data: bytes) -> Iterator[bytes]:
    """``data`` (lines) in chunks of whole lines, at most PIPE_BUF bytes each.

    A line longer than PIPE_BUF is a chunk of its own, cut to fit (`_cut`).
    """
    start, end = 0, len(data)
    while end - start > PIPE_BUF:
        newline = data.rfind(b"\n", start, start + PIPE_BUF)
        if newline >= 0:
            yield data[start : newline + 1]
        else:  # the line at start is longer
            newline = data.find(b"\n", start + PIPE_BUF)
            yield _cut(data[start : newline + 1])
        start = newline + 1
    if start < end:
        yield data[start:]


def _cut(line: bytes) -> bytes:
    """``line`` (ending in a newline) cut in its middle to PIPE_BUF bytes, if longer.

    A mark says how many bytes were cut; the two ends are kept whole
    characters of UTF-8.
    """
    if len(line) <= PIPE_BUF:
        return line
    keep = PIPE_BUF - 40  # the mark takes the rest
    head = line[: keep // 2].decode(errors="ignore").encode()
    tail = line[len(line) - (keep - keep // 2) :].decode(errors="ignore").encode()
    return b"%s [... %d bytes cut ...] %s" % (head, len(line) - len(head) - len(tail), tail)


def _wait_until_writable(fd: int) -> None:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.poll()
    else:  # no poll (Windows): select's limit on descriptors does not matter here
        select.select([], [fd], [])


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return str(error) or type(error).__name__
