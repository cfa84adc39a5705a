# Log output for the command line: plain text for people, one JSON object per
# line for log collectors. A connection's line carries its report in
# ``extra={"report": report}``; the JSON format puts the report's fields at the
# top level of the object (they are only computed there: the text format does
# not need them).
#
# The server never waits for its log's reader, and a line costs it little
# more than its record. Records are held in a bounded buffer, and one thread
# writes them out in batches, as nginx's ``access_log ... buffer=64k
# flush=1s`` does: it wakes every FLUSH_INTERVAL, or sooner once BATCH
# records wait, and writes all of them with one system call. A reader that
# falls behind (a blocking container log driver, a full pipe) stalls only
# that thread. When the buffer is full, records are dropped and counted, and
# the next record that fits is preceded by a line saying how many were lost.
# At exit, what is held is written for at most FLUSH_AT_EXIT.
#
# The line of a connection that ended is the server's most frequent record.
# Where it can only end up as a line of the text log (`hold_text_line`), the
# line is put together at once, as `TextFormatter` would write it, and held
# as text: no record is made, and the writer has nothing left to format.
from __future__ import annotations

import atexit
import collections
import datetime
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["JSONFormatter", "LogBuffer", "TextFormatter", "configure_logging", "hold_text_line"]

LOG_FORMATS = ("text", "json")

HELD_RECORDS = 10_000
"""The most log records waiting for the writer thread; past it, they are dropped."""

FLUSH_INTERVAL = 0.25
"""Seconds a record may wait for the writer thread, at most (while the
reader keeps up)."""

BATCH = 256
"""Records waiting that wake the writer before its interval is over."""

FLUSH_AT_EXIT = 1.0
"""Seconds the writer has, at exit, to write what is held."""


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
        self.wake = threading.Event()
        """Set to make the writer write now."""

    def hold(self, record: logging.LogRecord | str) -> None:
        """Hold ``record`` (or a line) for the writer, or drop it if the buffer is full."""
        records = self.records
        if len(records) >= self.limit:
            self.dropped += 1
            return
        if self.dropped:
            records.append(_dropped_record(self.dropped))
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


def _dropped_record(count: int) -> logging.LogRecord:
    return logging.LogRecord(
        "trio_echo",
        logging.WARNING,
        "",
        0,
        "%d log line(s) dropped: the log's reader is not keeping up",
        (count,),
        None,
    )


class _BufferingHandler(logging.Handler):
    """Holds records for the writer thread, never waiting.

    Args:
        buffer: Where records are held.
        text: The `TextFormatter` the writer writes them with, if it is
            one: then `hold_text_line` may hold lines it makes the same way.
    """

    def __init__(self, buffer: LogBuffer, *, text: TextFormatter | None = None) -> None:
        super().__init__()
        self.buffer = buffer
        self.text = text

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the handler's lock: holding a record is atomic already.
        if self.filter(record):
            self.buffer.hold(record)
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.hold(record)


def hold_text_line(logger: logging.Logger, level: int, message: str) -> bool:
    """Hold the line a record of ``message`` would become, without the record.

    Only where the record could end nowhere but in the text log that
    `configure_logging` set up: no filter on the logger, no handler on the
    record's way up but that log's, unfiltered, and no record factory of the
    program's (`logging.setLogRecordFactory`). The line is then the one
    `TextFormatter` writes for the record (the tests hold them equal), and
    the writer thread has nothing left to format.

    Returns:
        Whether the line was held (or dropped, the buffer being full); if
        not, log the record as usual.
    """
    if logger.disabled or logger.filters or logging.getLogRecordFactory() is not _RECORD:
        return False
    target = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if target is not None or type(handler) is not _BufferingHandler:
                return False
            target = handler
        current = current.parent if current.propagate else None
    if target is None or target.text is None or target.filters or level < target.level:
        return False
    target.buffer.hold(
        f"{target.text.time_text(time.time())} {logging.getLevelName(level)}"
        f" {logger.name}[{os.getpid()}]: {message}"
    )
    return True


_RECORD = logging.LogRecord


class _TimeText:
    """A record's time as `TEXT_FORMAT` writes it, the date part made once a second.

    Safe to share between threads: the second and its text change together.
    """

    def __init__(self) -> None:
        self._second: tuple[int, Callable[..., time.struct_time] | None, str] = (-1, None, "")

    def __call__(self, created: float, converter: Callable[..., time.struct_time]) -> str:
        second = int(created)
        cached = self._second
        if second != cached[0] or converter is not cached[1]:
            date = time.strftime(logging.Formatter.default_time_format, converter(second))
            cached = self._second = (second, converter, date)
        return cached[2] + _MILLISECONDS[int((created - second) * 1000)]


_MILLISECONDS = [f",{millisecond:03d}" for millisecond in range(1000)]
"""Each millisecond as `logging.Formatter.default_msec_format` writes it."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, written as `logging.Formatter` writes it, for less.

    The time is formatted once a second, not once a line, and a line with no
    arguments, traceback or stack is put together directly.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._time_text = _TimeText()

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as a line of text."""
        if record.args or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = message = str(record.msg)
        return (
            f"{self.formatTime(record)} {record.levelname} {record.name}[{record.process}]:"
            f" {message}"
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        """Return the time of a record made at ``created``, as `formatTime` writes it.

        With the formatter's ``converter``: `time.localtime` unless set.
        """
        return self._time_text(created, self.converter)


def _write(buffer: LogBuffer, formatter: logging.Formatter, out: TextIO) -> None:
    """The writer thread: write what is held, in batches.

    Standard error is written through a descriptor of its own with
    ``os.write``: the thread may stay blocked in a write to the end, and it
    must hold no lock that the interpreter's shutdown (its flush of
    ``sys.stderr``, `logging.shutdown`) would wait for.
    """
    try:
        fd = os.dup(out.fileno())
    except (AttributeError, OSError, ValueError):
        fd = None  # not a file: written as a stream
    while True:
        buffer.wake.wait(FLUSH_INTERVAL)
        buffer.wake.clear()
        batch = buffer.take()
        if not batch:
            continue
        try:
            text = "".join(
                [
                    (record if isinstance(record, str) else formatter.format(record)) + "\n"
                    for record in batch
                ]
            )
            if fd is None:
                out.write(text)
                out.flush()
            else:
                data = memoryview(text.encode(errors="backslashreplace"))
                while data:
                    data = data[os.write(fd, data) :]
        except Exception:  # lines that cannot be written are lost, as logging loses them
            pass
        finally:
            buffer.written += len(batch)


def _flush(buffer: LogBuffer) -> None:
    """At exit: have the writer write what is held, waiting FLUSH_AT_EXIT at most."""
    deadline = time.monotonic() + FLUSH_AT_EXIT
    while buffer.written < buffer.held and time.monotonic() < deadline:
        buffer.wake.set()
        time.sleep(0.01)


class JSONFormatter(logging.Formatter):
    """Format each record as one line of JSON.

    The object has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
    ``message``, then the record's structured fields, then ``exception``
    (the formatted traceback) when there is one.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as a line of JSON."""
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        report = getattr(record, "report", None)
        if report is not None:
            entry.update(report.log_fields())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send trio_echo's log records to ``stream`` (standard error by default).

    Args:
        level: A level name: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``.
        fmt: ``"text"`` or ``"json"``.
        stream: Where to write.

    Raises:
        ValueError: If ``level`` or ``fmt`` is not one of the names above.
    """
    level_number = logging.getLevelNamesMapping().get(level.upper())
    if level_number is None:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}")
    formatter = JSONFormatter() if fmt == "json" else TextFormatter()
    # What the log lines never show, not collected for each record: the logging
    # HOWTO's "Optimization" section lists these switches. A line per
    # connection is the server's hottest use of logging.
    logging._srcfile = None  # the caller's file and line
    logging.logThreads = False
    logging.logMultiprocessing = False
    buffer = LogBuffer()
    # A daemon thread: one stuck in a write must not keep the process alive.
    out = stream if stream is not None else sys.stderr
    threading.Thread(
        target=_write, args=(buffer, formatter, out), name="log writer", daemon=True
    ).start()
    atexit.register(_flush, buffer)
    root = logging.getLogger("trio_echo")
    for old in list(root.handlers):
        root.removeHandler(old)
    text = formatter if isinstance(formatter, TextFormatter) else None
    root.addHandler(_BufferingHandler(buffer, text=text))
    root.setLevel(level_number)
    root.propagate = False
