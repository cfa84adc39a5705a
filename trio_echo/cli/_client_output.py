# What the client command shows while it runs: the echo, written to standard
# output as it arrives, and on a terminal, the bytes sent and echoed so far
# (or in a load run, the messages) on standard error.
from __future__ import annotations

import errno
import sys
import time
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ..client._load import LoadRun

__all__ = ["EchoOutput", "LoadProgress", "OutputError", "Progress"]


class OutputError(Exception):
    """Writing the echo to standard output failed (the cause says how)."""


class EchoOutput:
    """The echo, written to standard output as it arrives.

    Into a pipe or a file, the bytes exactly, unless ``lines``; on a
    terminal, or with ``lines``, a line ends each framed answer, and the
    output ends with a line.

    Raises:
        OutputError: If standard output is closed, and the echo is to be
            written.
    """

    def __init__(self, *, quiet: bool, lines: bool = False) -> None:
        if sys.stdout is None and not quiet:
            raise OutputError from OSError(errno.EBADF, "standard output is closed")
        self._out = sys.stdout.buffer if sys.stdout is not None else None
        self._quiet = quiet
        self._terminal = self._out is not None and not quiet and (lines or sys.stdout.isatty())
        self._line_open = False

    def write(self, data: bytes) -> None:
        """Write ``data``, unless quiet.

        Raises:
            OutputError: If it cannot be written.
        """
        if self._quiet or not data or self._out is None:
            return
        try:
            self._out.write(data)
            self._out.flush()
        except OSError as error:
            raise OutputError from error
        self._line_open = not data.endswith(b"\n")

    def end_line(self) -> None:
        """On a terminal, end the line if one is open."""
        if self._terminal and self._line_open:
            self.write(b"\n")


class StatusLine:
    """Figures shown over one line of standard error, every `INTERVAL` seconds.

    A subclass says what the line reads (`text`).
    """

    INTERVAL = 0.5

    _shown = False

    def text(self) -> str:
        """The figures, as the line reads."""
        raise NotImplementedError

    def show(self) -> None:
        """Show the figures, over the line shown last."""
        print(f"\r{self.text()}   ", end="", file=sys.stderr, flush=True)
        self._shown = True

    def finish(self) -> None:
        """Show the last figures, and end their line, if any were shown."""
        if self._shown:
            self.show()
            print(file=sys.stderr)

    async def run(self) -> None:
        """Show the figures every `INTERVAL` seconds, until cancelled."""
        while True:
            await trio.sleep(self.INTERVAL)
            self.show()


class Progress(StatusLine):
    """Bytes sent and echoed, shown on standard error while it is a terminal.

    Args:
        total: The bytes to send in all, if known.
    """

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.sent = 0
        self.echoed = 0
        self._start = time.monotonic()

    def on_sent(self, count: int) -> None:
        """Count ``count`` more bytes sent."""
        self.sent += count

    def on_echoed(self, count: int) -> None:
        """Count ``count`` more bytes echoed."""
        self.echoed += count

    def text(self) -> str:
        """Bytes sent (of how many, if known) and echoed, and the rate."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.echoed / elapsed / 1e6
        return (
            f"sent {self.sent:,}{'' if self.total is None else f' of {self.total:,}'} bytes,"
            f" echoed {self.echoed:,} ({rate:,.1f} MB/s)"
        )


class LoadProgress(StatusLine):
    """A load run's figures so far, shown on standard error while it is a terminal.

    Args:
        run: The load run.
    """

    def __init__(self, run: LoadRun) -> None:
        self._run = run

    def text(self) -> str:
        """Messages echoed of how many, failures, and the rate."""
        run = self._run
        rate = run.messages / run.seconds if run.seconds > 0 else 0.0
        return (
            f"{run.messages:,} of {run.repeat:,} messages echoed, {run.errors:,} failed"
            f" ({rate:,.0f} messages/s)"
        )
