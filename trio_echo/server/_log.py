# Log output for the command line: plain text for people, one JSON object per
# line for log collectors. A connection's line carries its report in
# ``extra={"report": report}``; the JSON format puts the report's fields at the
# top level of the object (they are only computed there: the text format does
# not need them).
#
# The server never waits for its log's reader, and a line costs it little
# more than its record: records go to a bounded buffer that a thread of its
# own writes out in batches, each line whole (see _log_writer.py).
#
# The line of a connection that ended is the server's most frequent record.
# Where it can only end up as a line of the text log (`hold_text_line`), the
# line is put together at once, as `TextFormatter` would write it, and held
# as text: no record is made, and the writer has nothing left to format.
from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ._log_writer import PIPE_BUF, LogBuffer, LogWriter

__all__ = ["JSONFormatter", "LogBuffer", "TextFormatter", "configure_logging", "hold_text_line"]

LOG_FORMATS = ("text", "json")


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


_MILLISECONDS = [f",{millisecond:03d}" for millisecond in range(1000)]
"""Each millisecond as `logging.Formatter.default_msec_format` writes it."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, written as `logging.Formatter` writes it, for less.

    The date is formatted once a second, not once a line, and a line with no
    arguments, traceback or stack is put together directly. Safe to share
    between threads: the second and its date change together.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, Callable[..., time.struct_time] | None, str] = (-1, None, "")

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as a line of text."""
        if record.args or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = message = str(record.msg)
        return (
            f"{self.time_text(record.created)} {record.levelname} {record.name}"
            f"[{record.process}]: {message}"
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        """Return the time of a record made at ``created``, as `formatTime` writes it.

        With the formatter's ``converter``: `time.localtime` unless set.
        """
        second = int(created)
        cached = self._second
        if second != cached[0] or self.converter is not cached[1]:
            date = time.strftime(self.default_time_format, self.converter(second))
            cached = self._second = (second, self.converter, date)
        return cached[2] + _MILLISECONDS[int((created - second) * 1000)]


class JSONFormatter(logging.Formatter):
    """Format each record as one line of JSON.

    The object has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
    ``message``, then the record's structured fields, then ``exception``
    (the formatted traceback) when there is one. A line longer than
    PIPE_BUF bytes (newline included) is made to fit: its longest texts are
    cut in their middle, and it gets ``"cut": true``.
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
        line = json.dumps(entry, default=str)  # ASCII: a character is a byte
        return line if len(line) < PIPE_BUF else _fitted(entry)


def _fitted(entry: dict[str, object]) -> str:
    """``entry`` as a line of JSON shorter than PIPE_BUF, its longest texts cut in their middle.

    The longest text (as JSON) is cut, by half at most, until the line fits;
    cutting n characters makes the line n bytes shorter at least (an escaped
    character takes more than one).
    """
    entry = {**entry, "cut": True}
    texts = {key: value for key, value in entry.items() if isinstance(value, str)}
    kept = {key: len(text) for key, text in texts.items()}
    line = json.dumps(entry, default=str)
    while len(line) >= PIPE_BUF:
        cuttable = [key for key in kept if kept[key]]
        if not cuttable:
            break  # nothing left to cut: the writer cuts the line
        key = max(cuttable, key=lambda key: len(json.dumps(entry[key])))
        excess = len(line) - PIPE_BUF + 1 + len(_CUT_MARK) + 10  # the mark's own length too
        cut = min(excess, kept[key] // 2)
        kept[key] = kept[key] - cut if cut > len(_CUT_MARK) + 10 else 0
        text, keep = texts[key], kept[key]
        entry[key] = (
            text[: keep // 2]
            + _CUT_MARK % (len(text) - keep)
            + text[len(text) - (keep - keep // 2) :]
        )
        line = json.dumps(entry, default=str)
    return line


_CUT_MARK = " [... %d characters cut ...] "


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
    writer = LogWriter(buffer, formatter, stream if stream is not None else sys.stderr)
    threading.Thread(target=writer.run, name="log writer", daemon=True).start()
    atexit.register(buffer.flush)
    root = logging.getLogger("trio_echo")
    for old in list(root.handlers):
        root.removeHandler(old)
    text = formatter if isinstance(formatter, TextFormatter) else None
    root.addHandler(_BufferingHandler(buffer, text=text))
    root.setLevel(level_number)
    root.propagate = False
