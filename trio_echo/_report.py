# What happened on one connection, and the one log line that says so.
#
# Every way a connection can end is an Outcome (or, for a peer that broke the
# protocol, the Reason of its error). The handler decides the outcome where
# it happens, records it in the connection's report, and logs the report
# once, when the connection is closed.
from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

import attrs

from ._errors import Reason

if TYPE_CHECKING:
    from ._protocol import Mode

__all__ = ["ConnectionReport", "Outcome", "log_report"]

logger = logging.getLogger("trio_echo.server")


class Outcome(enum.StrEnum):
    """How a connection ended, as it appears in the log.

    Besides these, a connection that broke the protocol ends with the
    `trio_echo.Reason` of its error (``bad-length``, ``too-many-digits``,
    ``length-too-large``, ``eof-in-header``, ``eof-in-payload``).
    """

    COMPLETE = "complete"
    """Count mode: the payload was echoed in full."""
    NO_MESSAGE = "no-message"
    """Count mode: the peer closed before sending a byte."""
    CLOSED = "closed"
    """Echo and framed modes: the peer closed and every answer was sent."""
    HEADER_TIMEOUT = "header-timeout"
    """A length prefix did not arrive within the header timeout."""
    IDLE_TIMEOUT = "idle-timeout"
    """Nothing was received or sent for the idle timeout."""
    RESET = "reset"
    """The peer went away (a reset, or a broken pipe) mid-transfer."""
    CANCELLED = "cancelled"
    """The server cut the connection short (shutdown after the grace period)."""
    INTERNAL_ERROR = "internal-error"
    """A bug in this server; logged with its traceback."""


_CLEAN = frozenset({Outcome.COMPLETE, Outcome.NO_MESSAGE, Outcome.CLOSED})


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

    @property
    def clean(self) -> bool:
        """Whether the connection ended the way the protocol intends."""
        return self.outcome in _CLEAN

    def end(self, outcome: Outcome | Reason, detail: str = "") -> None:
        """Record how the connection ended, unless an outcome is recorded already.

        The first outcome is the one that counts: a reset noticed while a
        timeout is closing the connection does not replace the timeout.
        """
        if self.outcome is None:
            self.outcome = outcome
            self.detail = detail

    def log_fields(self) -> dict[str, object]:
        """Return the report as the structured fields of a log record."""
        fields = attrs.asdict(self)
        fields["mode"] = str(self.mode)
        fields["outcome"] = str(self.outcome)
        fields["duration"] = round(self.duration, 6)
        if not self.detail:
            del fields["detail"]
        return fields


def log_report(report: ConnectionReport, failure: BaseException | None = None) -> None:
    """Log the one line of a connection that has ended.

    INFO for a clean end, ERROR (with ``failure``'s traceback) for a bug in
    the server, WARNING for everything else.
    """
    if report.clean:
        level = logging.INFO
    elif report.outcome is Outcome.INTERNAL_ERROR:
        level = logging.ERROR
    else:
        level = logging.WARNING
    if not logger.isEnabledFor(level):
        return
    text = (
        f"connection from {report.peer} ended: {report.outcome}"
        f" (mode={report.mode} in={report.bytes_in} out={report.bytes_out}"
        f" messages={report.messages} duration={report.duration:.3f}s)"
    )
    if report.detail:
        text += f": {report.detail}"
    logger.log(level, text, exc_info=failure, extra={"report": report})
