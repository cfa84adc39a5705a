# What happened on one connection, and the one log line that says so.
#
# Every way a connection can end is an Outcome (or, for a peer that broke the
# protocol, the Reason of its error). The connection's EchoProtocol decides
# it; the handler copies it, with the connection's counts, into a report
# and logs the report once, when the connection is closed.
from __future__ import annotations

import logging
import time

import attrs
import trio

from ..protocol import CLEAN_OUTCOMES, EchoProtocol, Mode, Outcome, Reason
from ._log import hold_text_line

__all__ = [
    "ConnectionReport",
    "Outcome",
    "abort_for",
    "debugging",
    "describe_failure",
    "log_chunk",
    "log_ending",
    "split_failure",
]

logger = logging.getLogger("trio_echo.server")


@attrs.define
class ConnectionReport:
    """What happened on one connection: the fields of its log line.

    Attributes:
        peer: The peer's address, as text.
        mode: The protocol mode served.
        outcome: How it ended: an `Outcome`, or the `Reason` of the peer's
            protocol error; None while it is open.
        detail: What went wrong, in words, when something did.
        bytes_in: Bytes received from the peer.
        bytes_out: Bytes echoed to the peer.
        messages: Messages received in full (count and framed modes).
        duration: Seconds from the start of the handler to its end.
    """

    peer: str
    mode: Mode
    outcome: Outcome | Reason | None = None
    detail: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    messages: int = 0
    duration: float = 0.0

    @classmethod
    def of(cls, protocol: EchoProtocol, peer: str, duration: float) -> ConnectionReport:
        """The report of a connection whose state machine is ``protocol``."""
        return cls(
            peer=peer,
            mode=protocol.mode,
            outcome=protocol.outcome,
            detail=protocol.detail,
            bytes_in=protocol.bytes_in,
            bytes_out=protocol.bytes_out,
            messages=protocol.messages,
            duration=duration,
        )

    @property
    def clean(self) -> bool:
        """Whether the connection ended the way the protocol intends."""
        return self.outcome in CLEAN_OUTCOMES

    def log_fields(self) -> dict[str, object]:
        """Return the report as the structured fields of a log record."""
        fields = attrs.asdict(self)
        fields["mode"] = str(self.mode)
        fields["outcome"] = str(self.outcome)
        fields["duration"] = round(self.duration, 6)
        if not self.detail:
            del fields["detail"]
        return fields


def log_ending(
    protocol: EchoProtocol, peer: str, duration: float, failure: BaseException | None = None
) -> None:
    """Log the one line of a connection that has ended, with its report.

    INFO for a clean end, ERROR (with ``failure``'s traceback) for a bug in
    the server, WARNING for everything else. The `ConnectionReport` rides
    on the record (``extra``), made only where a record is.
    """
    outcome = protocol.outcome
    level = _level(outcome)
    if not logger.isEnabledFor(level):
        return
    text = (
        f"connection from {peer} ended: {outcome}"
        f" (mode={protocol.mode} in={protocol.bytes_in} out={protocol.bytes_out}"
        f" messages={protocol.messages} duration={duration:.3f}s)"
    )
    if protocol.detail:
        text += f": {protocol.detail}"
    if failure is None and hold_text_line(logger, level, text):
        return
    report = ConnectionReport.of(protocol, peer, duration)
    if failure is not None:
        logger.log(level, text, exc_info=failure, extra={"report": report})
    else:
        logger.handle(_record(level, text, report))


_record_template: dict[str, object] = {}
_START: float = logging._startTime  # type: ignore[attr-defined]  # what records count from


def _record(level: int, text: str, report: ConnectionReport) -> logging.LogRecord:
    """A connection's log record, made for less than `logging.Logger.log` costs.

    It is a `logging.LogRecord` with every attribute one made by
    ``logger.log`` has (for any handler or formatter), taken from a record
    made once for the line; only the time, level, text and report are its
    own. The line is the server's most frequent record: this is a third of
    the cost.
    """
    if logging.getLogRecordFactory() is not logging.LogRecord:  # the program's own
        return logger.makeRecord(
            logger.name, level, "", 0, text, (), None, extra={"report": report}
        )
    if not _record_template:  # after logging is configured: the same fields it sets
        template = logger.makeRecord(logger.name, logging.INFO, "", 0, "", (), None)
        _record_template.update(vars(template))
    record = logging.LogRecord.__new__(logging.LogRecord)
    fields = record.__dict__
    fields.update(_record_template)
    created = time.time()
    fields["created"] = created
    fields["msecs"] = (created - int(created)) * 1000
    fields["relativeCreated"] = (created - _START) * 1000
    fields["levelno"] = level
    fields["levelname"] = logging.getLevelName(level)
    fields["msg"] = text
    fields["report"] = report
    return record


def _level(outcome: Outcome | Reason | None) -> int:
    if outcome in CLEAN_OUTCOMES:
        return logging.INFO
    return logging.ERROR if outcome is Outcome.INTERNAL_ERROR else logging.WARNING


def debugging() -> bool:
    """Whether the per-chunk lines (`log_chunk`) are logged."""
    return logger.isEnabledFor(logging.DEBUG)


def log_chunk(peer: str, what: str, count: int | None, total: int = 0) -> None:
    """Log, at DEBUG, one of the lines the original printed for every chunk.

    Args:
        peer: The peer's address.
        what: ``received`` or ``echoed`` (``count`` bytes, ``total`` so far),
            or ``extracted`` (a length prefix announcing ``count`` bytes).
        count: The chunk's length, or the announced length.
        total: The bytes received, or sent, so far.
    """
    if what == "extracted":
        logger.debug("%s: extracted content length=%d", peer, count)
    else:
        direction = "received" if what == "received" else "sent"
        logger.debug("%s: %s data with len %d (total %s=%d)", peer, what, count, direction, total)


def abort_for(
    protocol: EchoProtocol, error: BaseException
) -> tuple[BaseException | None, BaseException | None]:
    """Tell ``protocol`` what ended its connection: a bug, a cancellation, or the peer.

    Returns:
        The bugs, if any (one exception, or a group of them), and what is
        not the connection's to absorb (a cancellation, an interrupt), to be
        raised on.
    """
    bugs, uncaught = split_failure(error)
    if bugs is not None:
        protocol.abort(Outcome.INTERNAL_ERROR, f"{type(bugs).__name__}: {bugs}")
    elif uncaught is not None:
        protocol.abort(Outcome.CANCELLED)
    else:
        protocol.abort(Outcome.RESET, describe_failure(error))
    return bugs, uncaught


def split_failure(error: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """Split what ended a connection into bugs, and what goes on up.

    What goes on up is a cancellation or an interrupt: the program's, not
    the connection's. What is neither, a `trio.BrokenResourceError`, is the
    peer going away.

    Returns:
        The bugs (one exception, or a group of them) and what goes on up;
        either may be None.
    """
    if not isinstance(error, BaseExceptionGroup):
        if isinstance(error, trio.BrokenResourceError):
            return None, None
        return (error, None) if isinstance(error, Exception) else (None, error)
    exceptions, uncaught = error.split(Exception)
    bugs = exceptions.split(trio.BrokenResourceError)[1] if exceptions is not None else None
    if bugs is not None and len(bugs.exceptions) == 1:
        return bugs.exceptions[0], uncaught
    return bugs, uncaught


def describe_failure(error: BaseException) -> str:
    """Say in words what broke a connection: the system's error, if there is one."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    cause = error.__cause__ or error.__context__
    return str(cause if cause is not None else error) or type(error).__name__
