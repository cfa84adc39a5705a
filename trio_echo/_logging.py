# Log output for the command line: plain text for people, one JSON object per
# line for log collectors. A connection's line carries its report in
# ``extra={"report": report}``; the JSON format puts the report's fields at the
# top level of the object (they are only computed there: the text format does
# not need them).
#
# The server never waits for its log's reader. Records go into a bounded
# queue, and one thread writes them out (the logging cookbook's "Dealing
# with handlers that block"): a reader that falls behind (a blocking
# container log driver, a full pipe) stalls only that thread. When the queue
# is full, records are dropped and counted, and the next record that fits
# is preceded by a line saying how many were lost. At exit, what is queued
# is written for at most a second.
from __future__ import annotations

import atexit
import datetime
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from typing import TextIO

__all__ = ["JSONFormatter", "configure_logging"]

LOG_FORMATS = ("text", "json")

QUEUED_RECORDS = 10_000
"""The most log records waiting for the writer thread; past it, they are dropped."""

FLUSH_AT_EXIT = 1.0
"""Seconds the writer has, at exit, to write what is queued."""


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Queues records without ever waiting: a full queue drops them, counted."""

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The record stays in this process: formatted by the writer, whole
        # (its exception and structured fields too), not flattened here.
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                self.queue.put_nowait(self._dropped_record(record))
                self.dropped = 0
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _dropped_record(self, after: logging.LogRecord) -> logging.LogRecord:
        return logging.LogRecord(
            after.name,
            logging.WARNING,
            "",
            0,
            "%d log line(s) dropped: the log's reader is not keeping up",
            (self.dropped,),
            None,
        )


def _write(
    records: queue.Queue[logging.LogRecord], formatter: logging.Formatter, out: TextIO
) -> None:
    """The writer thread: format each record and write it out.

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
        record = records.get()
        try:
            line = formatter.format(record) + "\n"
            if fd is None:
                out.write(line)
                out.flush()
            else:
                data = memoryview(line.encode(errors="backslashreplace"))
                while data:
                    data = data[os.write(fd, data) :]
        except Exception:  # a line that cannot be written is lost, as logging loses it
            pass
        finally:
            records.task_done()


def _flush(records: queue.Queue[logging.LogRecord]) -> None:
    deadline = time.monotonic() + FLUSH_AT_EXIT
    while records.unfinished_tasks and time.monotonic() < deadline:
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
    formatter = (
        JSONFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    )
    # What the log lines never show, not collected for each record: the logging
    # HOWTO's "Optimization" section lists these switches. A line per
    # connection is the server's hottest use of logging.
    logging._srcfile = None  # the caller's file and line
    logging.logThreads = False
    logging.logMultiprocessing = False
    records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUED_RECORDS)
    # A daemon thread: one stuck in a write must not keep the process alive.
    out = stream if stream is not None else sys.stderr
    threading.Thread(
        target=_write, args=(records, formatter, out), name="log writer", daemon=True
    ).start()
    atexit.register(_flush, records)
    root = logging.getLogger("trio_echo")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_DroppingQueueHandler(records))
    root.setLevel(level_number)
    root.propagate = False
