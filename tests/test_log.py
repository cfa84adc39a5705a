"""The log: whole lines, however many processes share standard error and
however slow its reader; a reader that stalls stalls no server; lines that
cannot be written counted; the text format as the standard formatter's, made
for less; and a standard error that cannot be written, which changes no exit
status."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.processes import LISTENING, ROOT
from tests.support.streams import round_trip
from trio_echo import ConnectionReport, Mode
from trio_echo.cli._parser import ExitStatus
from trio_echo.server import _log_writer
from trio_echo.server._log import (
    TEXT_FORMAT,
    JSONFormatter,
    TextFormatter,
    _BufferingHandler,
    hold_text_line,
)
from trio_echo.server._log_writer import BATCH, PIPE_BUF, LogBuffer, LogWriter
from trio_echo.server._report import _record

SERVER = [sys.executable, "-m", "trio_echo", "server"]


def record(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    logger = logging.getLogger("test.logging")
    return logger.makeRecord(logger.name, level, "", 0, message, args, None)


def start_writer(buffer: LogBuffer, formatter: logging.Formatter, out: Any) -> None:
    """Start the writer thread on ``buffer``, as the server does."""
    threading.Thread(target=LogWriter(buffer, formatter, out).run, daemon=True).start()


def written(buffer: LogBuffer, count: int, seconds: float = 30.0) -> None:
    """Wait until the writer has finished with ``count`` records (a thread's state)."""
    buffer.wake.set()
    deadline = time.monotonic() + seconds
    while buffer.written < count:
        assert time.monotonic() < deadline, f"{buffer.written} of {count} records written"
        time.sleep(0.001)


def hold(buffer: LogBuffer, records: list[logging.LogRecord]) -> None:
    handler = _BufferingHandler(buffer)
    for each in records:
        handler.handle(each)


def test_a_log_reader_that_stalls_does_not_stall_the_server() -> None:
    # Standard error is a pipe that is full before the server starts, and
    # that nobody reads: every log line would block a write to it.
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(writer, b"x" * 65536)
    os.set_blocking(writer, True)
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_echo", "server", "--port", "0", "--grace", "1"],
        stdout=subprocess.PIPE,
        stderr=writer,
        cwd=ROOT,
    )
    os.close(writer)
    try:
        assert process.stdout is not None
        port = int(LISTENING.search(process.stdout.readline())[1])  # type: ignore[index]
        for _ in range(20):  # a bad length each: a WARNING line each
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"x ")
                assert sock.recv(10) == b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"5 hello")
            assert sock.recv(10) == b"hello"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        os.close(reader)


def test_log_records_past_the_buffer_are_dropped_and_counted() -> None:
    buffer = LogBuffer(limit=2)
    handler = _BufferingHandler(buffer)
    for index in range(5):
        handler.handle(record(f"line {index}"))
    assert buffer.dropped == 3
    assert [r.getMessage() for r in buffer.take()] == ["line 0", "line 1"]
    handler.handle(record("line 5"))
    assert [r.getMessage() for r in buffer.take()] == [
        "3 log line(s) dropped: the log's reader is not keeping up",
        "line 5",
    ]
    assert (buffer.dropped, buffer.held) == (0, 4)


class Writes(io.StringIO):
    """A stream that keeps each of its writes, and fails while ``error`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        if self.error is not None:
            raise self.error
        self.writes.append(text)
        return super().write(text)


def test_the_writer_is_woken_by_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Woken by the BATCH-th record, not by its interval (made too long to matter).
    monkeypatch.setattr(_log_writer, "FLUSH_INTERVAL", 3600.0)
    buffer, out = LogBuffer(), Writes()
    start_writer(buffer, TextFormatter(), out)
    hold(buffer, [record("line %d", index) for index in range(BATCH)])
    deadline = time.monotonic() + 30
    while buffer.written < BATCH:  # no wake but the handler's
        assert time.monotonic() < deadline
        time.sleep(0.001)
    lines = out.getvalue().splitlines()
    assert [line.rsplit(": ", 1)[1] for line in lines] == [f"line {i}" for i in range(BATCH)]
    assert buffer.written == buffer.held == BATCH


def test_a_lone_record_is_written_within_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log_writer, "FLUSH_INTERVAL", 0.05)
    buffer, out = LogBuffer(), Writes()
    start_writer(buffer, TextFormatter(), out)
    hold(buffer, [record("alone")])
    deadline = time.monotonic() + 30
    while buffer.written < 1:  # not a batch, and no wake: the interval writes it
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert out.getvalue().endswith(": alone\n")


def test_each_write_is_whole_lines_of_at_most_pipe_buf() -> None:
    # A socket of packets keeps each write apart, as it was written.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.setblocking(False)
    long = "x" * 3 + "ü" * 5000 + "the end"
    records = [record("line %d %s", index, "y" * (index % 200)) for index in range(300)]
    records.insert(150, record(long))
    buffer = LogBuffer()
    with ours, theirs, open(ours.fileno(), "w", closefd=False) as out:
        start_writer(buffer, TextFormatter(), out)
        hold(buffer, records)
        written(buffer, len(records))
        writes = []
        with contextlib.suppress(BlockingIOError):
            while True:
                writes.append(theirs.recv(1 << 20))
    assert all(len(write) <= PIPE_BUF and write.endswith(b"\n") for write in writes)
    assert len(writes) < len(records) / 4  # lines share writes
    lines = b"".join(writes).decode().splitlines()
    assert [line.split(": ", 1)[1] for line in lines[:150]] == [
        each.getMessage() for each in records[:150]
    ]
    cut = lines[150]  # the long line, cut in its middle to PIPE_BUF bytes
    assert PIPE_BUF - 50 < len(cut.encode()) + 1 <= PIPE_BUF
    assert ": xxxüü" in cut
    assert cut.endswith("üüthe end")
    assert "bytes cut ...]" in cut
    assert len(lines) == len(records)


def test_a_json_line_past_pipe_buf_is_cut_and_stays_json() -> None:
    error = ValueError("deep " * 2000)
    failed = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, "", 0, "a message %s", ("é" * 3000,), (ValueError, error, None)
    )
    line = JSONFormatter().format(failed)
    assert len(line) < PIPE_BUF
    entry = json.loads(line)
    assert entry["cut"] is True
    assert entry["message"].startswith("a message éé")
    assert entry["exception"].startswith("ValueError: deep deep")
    assert entry["exception"].endswith("deep deep ")
    assert "characters cut ...]" in entry["exception"]
    short = json.loads(JSONFormatter().format(record("short")))
    assert "cut" not in short


def fill(fd: int) -> None:
    """Fill the pipe ``fd`` (non-blocking) to the brim."""
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(fd, b"#" * 4096)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(fd, b"#")


def test_a_full_non_blocking_log_is_waited_for_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Standard error is a pipe whose file description is non-blocking (the
    # flag is shared by every process holding it), full.
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    fill(writer)
    waiting = threading.Event()
    wait = getattr(_log_writer, "_wait_until_writable", None)

    def wait_and_say(fd: int) -> None:
        waiting.set()
        assert wait is not None
        wait(fd)

    monkeypatch.setattr(_log_writer, "_wait_until_writable", wait_and_say, raising=False)
    buffer = LogBuffer()
    records = [record("line %d %s", index, "z" * 100) for index in range(200)]
    with open(writer, "w", closefd=False) as out:
        start_writer(buffer, JSONFormatter(), out)
    os.close(writer)  # the writer has a descriptor of its own
    hold(buffer, records)
    buffer.wake.set()
    deadline = time.monotonic() + 30
    while not waiting.is_set() and buffer.written < len(records):  # one or the other
        assert time.monotonic() < deadline
        time.sleep(0.001)
    received = b""
    with open(reader, "rb", buffering=0) as pipe:
        while received.count(b"\n") < len(records) and time.monotonic() < deadline:
            if select.select([pipe], [], [], 0.05)[0]:
                received += pipe.read(1 << 16)
            elif buffer.written == len(records):
                break  # written, or given up: nothing more comes
    lines = received.lstrip(b"#").splitlines()
    assert [json.loads(line)["message"] for line in lines] == [r.getMessage() for r in records]
    assert buffer.lost == 0


def test_lines_that_cannot_be_written_are_counted_and_said() -> None:
    buffer, out = LogBuffer(), Writes()
    writer = LogWriter(buffer, TextFormatter(), out)
    out.error = OSError(errno.ENOSPC, "No space left on device")
    writer.write([record("lost %d", index) for index in range(3)])
    assert buffer.lost == 3
    out.error = None
    writer.write([record("after")])
    assert [line.split(": ", 1)[1] for line in out.getvalue().splitlines()] == [
        "3 log line(s) lost: cannot write the log: no space left on device",
        "after",
    ]
    assert buffer.lost == 3
    closed = LogWriter(LogBuffer(), TextFormatter(), None)  # standard error closed
    closed.write([record("nowhere")])
    assert closed.buffer.lost == 1


def is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_the_lines_of_two_workers_are_whole_however_slow_the_reader() -> None:
    # Two workers share one pipe for their log, the smallest a pipe can be
    # (a page), and nobody reads it while they serve: both writers are soon
    # waiting in a write, with more lines held behind it. Then a reader takes
    # a page at a time: each page it frees goes to the writer that has waited
    # longest, so the two take turns, a page each.
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen(
        [*SERVER, "--port", "0", "--workers", "2", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=writer,
        cwd=ROOT,
    )
    os.close(writer)
    received = bytearray()
    try:
        assert process.stdout is not None
        port = int(LISTENING.search(process.stdout.readline())[1])  # type: ignore[index]
        for index in range(1000):
            payload = b"message %d" % index
            assert round_trip(port, payload) == payload
        process.send_signal(signal.SIGTERM)
        while data := os.read(reader, 4096):
            received += data
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        os.close(reader)
    lines = received.splitlines()
    assert [line for line in lines if not is_json(line)] == []  # every line whole
    entries = [json.loads(line) for line in lines]
    workers = {entry["pid"] for entry in entries if "outcome" in entry}
    assert len(workers) == 2
    assert len(entries) > 900


@pytest.mark.parametrize("stderr", ["full", "closed"])
@pytest.mark.parametrize(
    ("arguments", "status"),
    [
        pytest.param(["client", "--port", "{refused}", "hi"], ExitStatus.REFUSED, id="refused"),
        pytest.param(["server", "--tls-cert", "/nonexistent"], ExitStatus.USAGE, id="tls-file"),
        pytest.param(["client", "--key", "k", "hi"], ExitStatus.USAGE, id="usage"),
    ],
)
def test_a_standard_error_that_cannot_be_written_changes_no_exit_status(
    stderr: str, arguments: list[str], status: ExitStatus
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: refused
        argv = [a.format(refused=unused.getsockname()[1]) for a in arguments]
        command = [sys.executable, "-m", "trio_echo", *argv]
        if stderr == "closed":
            command = ["sh", "-c", 'exec "$@" 2>&-', "sh", *command]
        with open("/dev/full", "w") as full:
            result = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=full, cwd=ROOT, timeout=60, check=False
            )
    assert (result.returncode, result.stdout) == (status, b"")  # nothing on the echo's stream


def test_the_text_format_is_the_standard_formatters() -> None:
    fast, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    error = ValueError("boom")
    failed = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, "", 0, "bug", (), (ValueError, error, None)
    )
    for each in (record("plain"), record("with %s", "args"), failed):
        assert fast.format(each) == standard.format(each)
    assert "ValueError: boom" in fast.format(failed)


@pytest.fixture
def text_log() -> tuple[logging.Logger, _BufferingHandler]:
    """A logger whose records end in a text log's buffer only, as the server's.

    Made apart from the logging module's tree of loggers, which pytest's own
    handlers watch.
    """
    top = logging.Logger("test.text_log")
    handler = _BufferingHandler(LogBuffer(), text=TextFormatter())
    top.addHandler(handler)
    top.propagate = False
    logger = logging.Logger("test.text_log.server")
    logger.parent = top
    return logger, handler


def test_a_line_held_as_text_is_the_line_its_record_would_be(
    text_log: tuple[logging.Logger, _BufferingHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler = text_log
    for created in (1_700_000_000.0, 1_700_000_000.9995, 1_700_000_001.25):
        monkeypatch.setattr(time, "time", lambda created=created: created)
        for level in (logging.INFO, logging.WARNING):
            assert hold_text_line(logger, level, "connection from p ended: complete")
            made = logger.makeRecord(logger.name, level, "", 0, "connection from p", (), None)
            made.msg = "connection from p ended: complete"
            (line,) = handler.buffer.take()
            assert (
                line == TextFormatter().format(made) == logging.Formatter(TEXT_FORMAT).format(made)
            )


def test_a_line_goes_as_a_record_wherever_anything_else_could_see_it(
    text_log: tuple[logging.Logger, _BufferingHandler],
) -> None:
    logger, handler = text_log

    def look(record: logging.LogRecord) -> bool:
        return True

    other = logging.Handler()
    cases: list[tuple[Callable[[], None], Callable[[], None]]] = [
        (lambda: logger.addFilter(look), lambda: logger.removeFilter(look)),
        (lambda: handler.addFilter(look), lambda: handler.removeFilter(look)),
        (lambda: logger.addHandler(other), lambda: logger.removeHandler(other)),
        (lambda: handler.setLevel(logging.ERROR), lambda: handler.setLevel(logging.NOTSET)),
        (lambda: setattr(logger, "disabled", True), lambda: setattr(logger, "disabled", False)),
    ]
    for change, undo in cases:
        change()
        assert not hold_text_line(logger, logging.INFO, "a line")
        undo()
        assert hold_text_line(logger, logging.INFO, "a line")
    assert len(handler.buffer.take()) == len(cases)
    # The JSON log (its fields come from the record), and no log at all.
    json_log = logging.Logger("test.json_log")
    json_log.addHandler(_BufferingHandler(LogBuffer()))
    assert not hold_text_line(json_log, logging.INFO, "a line")
    assert not hold_text_line(logging.Logger("test.no_log"), logging.INFO, "a line")


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time five hours from UTC, for what a converter changes."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_a_line_held_as_text_has_the_time_the_formatters_converter_gives(
    text_log: tuple[logging.Logger, _BufferingHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler = text_log
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.5)
    for converter in (time.localtime, time.gmtime):  # gmtime: the usual way to UTC logs
        monkeypatch.setattr(logging.Formatter, "converter", converter)
        assert hold_text_line(logger, logging.INFO, "m")
        made = logger.makeRecord(logger.name, logging.INFO, "", 0, "m", (), None)
        (line,) = handler.buffer.take()
        assert line == logging.Formatter(TEXT_FORMAT).format(made) == TextFormatter().format(made)
    assert time.localtime(1_700_000_000).tm_hour != time.gmtime(1_700_000_000).tm_hour


def test_a_record_factory_of_the_programs_sees_every_line(
    text_log: tuple[logging.Logger, _BufferingHandler],
) -> None:
    logger, _handler = text_log
    made: list[logging.LogRecord] = []

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = logging.LogRecord(*args, **kwargs)
        record.tenant = "x"
        made.append(record)
        return record

    report = ConnectionReport(peer="p", mode=Mode.COUNT, outcome="complete")
    standard = logging.getLogRecordFactory()
    logging.setLogRecordFactory(factory)
    try:
        assert not hold_text_line(logger, logging.INFO, "a line")  # a record, then
        record = _record(logging.INFO, "connection from p ended: complete", report)
    finally:
        logging.setLogRecordFactory(standard)
    assert record in made
    assert (record.tenant, record.report, record.getMessage()) == (  # type: ignore[attr-defined]
        "x",
        report,
        "connection from p ended: complete",
    )


def test_a_connection_record_is_a_whole_log_record() -> None:
    # Made from a template for speed, it has every field logger.log gives.
    report = ConnectionReport(peer="p", mode=Mode.COUNT, outcome="complete", duration=0.5)
    made = _record(logging.INFO, "connection from p ended: complete", report)
    logged = logging.getLogger("trio_echo.server").makeRecord(
        "trio_echo.server", logging.INFO, "", 0, "connection from p ended: complete", (), None
    )
    assert set(vars(made)) == set(vars(logged)) | {"report"}
    assert made.report is report
    assert abs(made.created - logged.created) < 60
    assert (
        logging.Formatter(TEXT_FORMAT).format(made).split(" ", 2)[2]
        == (logging.Formatter(TEXT_FORMAT).format(logged).split(" ", 2)[2])
    )
