# Log output for the command line: plain text for people, one JSON object per
# line for log collectors. A connection's line carries its report in
# ``extra={"report": report}``; the JSON format puts the report's fields at the
# top level of the object (they are only computed there: the text format does
# not need them).
from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import TextIO

__all__ = ["JSONFormatter", "configure_logging"]

LOG_FORMATS = ("text", "json")


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
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
        )
    # What the log lines never show, not collected for each record: the logging
    # HOWTO's "Optimization" section lists these switches. A line per
    # connection is the server's hottest use of logging.
    logging._srcfile = None  # the caller's file and line
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger("trio_echo")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number)
    root.propagate = False
