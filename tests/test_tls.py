"""TLS on the server's side: every way a handshake fails is one log line of
its own (``tls-handshake``), a handshake has its own deadline, the ends of a
TLS stream (close_notify, and a close without it), bad certificate files,
and a certificate reloaded on SIGUSR1 without a dropped connection."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from tests.support.processes import ROOT, ChildProcess
from tests.support.tls import TLSFiles
from trio_echo import (
    ConnectionReport,
    EchoServer,
    Limits,
    Mode,
    Outcome,
    ServerConfig,
    ServerTLS,
    TLSFileError,
    TLSFiles as ServerFiles,
    handle_connection,
    open_listeners,
)
from trio_echo.server._listeners import accepted_stream
from trio_echo.server._socket_stream import FastSocketStream


def server_tls(files: TLSFiles, *, client_ca: bool = False) -> ServerTLS:
    return ServerTLS(ServerFiles(files.cert, files.key, files.ca if client_ca else None))


def client_context(files: TLSFiles, *, certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=files.ca)
    if certificate:
        context.load_cert_chain(files.client_cert, files.client_key)
    return context


def tcp_pair() -> tuple[FastSocketStream, FastSocketStream]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return FastSocketStream(client), accepted_stream(server)


def serve_one(
    tls: ServerTLS,
) -> tuple[FastSocketStream, trio.SSLStream[FastSocketStream], list[ConnectionReport]]:
    """One connection: the client's plain end, the server's end as the server
    wraps it, and a list for the server's report."""
    client, server = tcp_pair()
    return client, trio.SSLStream(server, tls.context, server_side=True), []


async def run_server_side(
    server: trio.abc.Stream, config: ServerConfig, reports: list[ConnectionReport]
) -> None:
    reports.append(await handle_connection(server, config, peer="peer"))


async def test_plain_text_to_the_tls_port_is_a_failed_handshake(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_echo")
    client, server, reports = serve_one(server_tls(tls_files))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, ServerConfig(), reports)
        await client.send_all(b"5 hello")
        with trio.fail_after(5):
            while await client.receive_some():
                pass  # a TLS alert, then the close
        await client.aclose()
    (report,) = reports
    assert report.outcome == Outcome.TLS_HANDSHAKE
    assert "WRONG_VERSION_NUMBER" in report.detail or "wrong version" in report.detail
    (line,) = [r for r in caplog.records if r.name == "trio_echo.server"]
    assert line.levelno == logging.WARNING
    assert "connection from peer ended: tls-handshake" in line.getMessage()


@pytest.mark.parametrize("certificate", ["none", "unknown-issuer", "expired"])
async def test_a_client_certificate_that_does_not_verify_is_a_failed_handshake(
    tls_files: TLSFiles, tmp_path: Path, certificate: str
) -> None:
    tls = server_tls(tls_files, client_ca=True)
    context = client_context(tls_files)
    if certificate == "unknown-issuer":
        trustme.CA().issue_cert("client@example.org").configure_cert(context)
    elif certificate == "expired":
        authority = trustme.CA()
        authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        tls = ServerTLS(ServerFiles(tls_files.cert, tls_files.key, str(tmp_path / "ca.pem")))
        expired = authority.issue_cert(
            "client@example.org",
            not_before=_days_ago(10),
            not_after=_days_ago(1),
        )
        expired.configure_cert(context)
    client, server, reports = serve_one(tls)
    tls_client = trio.SSLStream(client, context, server_hostname="localhost")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, ServerConfig(), reports)
        with pytest.raises(trio.BrokenResourceError):  # the server closed
            await receive_all_after(tls_client, b"5 hello")
        await trio.aclose_forcefully(tls_client)
    (report,) = reports
    assert report.outcome == Outcome.TLS_HANDSHAKE
    words = {
        "none": "certificate",
        "unknown-issuer": "certificate verify failed",
        "expired": "certificate has expired",
    }[certificate]
    assert words in report.detail.lower()


async def receive_all_after(stream: trio.abc.Stream, message: bytes) -> bytes:
    await stream.send_all(message)
    received = b""
    while data := await stream.receive_some():
        received += data
    return received


def _days_ago(days: int) -> object:
    import datetime

    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)


async def test_mutual_tls_serves_a_client_with_a_good_certificate(tls_files: TLSFiles) -> None:
    client, server, reports = serve_one(server_tls(tls_files, client_ca=True))
    tls_client = trio.SSLStream(
        client, client_context(tls_files, certificate=True), server_hostname="localhost"
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, ServerConfig(), reports)
        await tls_client.send_all(b"5 hello")
        echo = b""
        while data := await tls_client.receive_some():
            echo += data
        await tls_client.aclose()
    assert echo == b"hello"
    assert reports[0].outcome == Outcome.COMPLETE


async def test_a_stalled_handshake_ends_at_its_own_deadline(
    tls_files: TLSFiles, autojump_clock: trio.testing.MockClock
) -> None:
    # The peer connects and says nothing: not even a ClientHello.
    config = ServerConfig(limits=Limits(header_timeout=30, handshake_timeout=4, idle_timeout=100))
    client, server, reports = serve_one(server_tls(tls_files))
    start = trio.current_time()
    await run_server_side(server, config, reports)
    assert 4 <= trio.current_time() - start < 5
    assert (reports[0].outcome, reports[0].detail) == (
        Outcome.TLS_HANDSHAKE,
        "no TLS handshake within 4 s",
    )
    await client.aclose()


async def test_the_header_timer_starts_when_the_handshake_ends(
    tls_files: TLSFiles, autojump_clock: trio.testing.MockClock
) -> None:
    config = ServerConfig(limits=Limits(header_timeout=5, handshake_timeout=20, idle_timeout=100))
    client, server, reports = serve_one(server_tls(tls_files))
    tls_client = trio.SSLStream(client, client_context(tls_files), server_hostname="localhost")
    handshake_done = trio.Event()

    async def peer() -> None:
        await trio.sleep(3)  # within the handshake's time, past nothing yet
        await tls_client.do_handshake()
        handshake_done.set()
        await tls_client.send_all(b"12")  # a header begun, never ended

    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        await run_server_side(server, config, reports)
        nursery.cancel_scope.cancel()
    assert handshake_done.is_set()
    assert reports[0].outcome == Outcome.HEADER_TIMEOUT
    assert 8 <= trio.current_time() < 9  # 3 s of handshake, then 5 s for the header
    await trio.aclose_forcefully(tls_client)


async def test_a_reset_in_the_middle_of_the_handshake_is_a_failed_handshake(
    tls_files: TLSFiles,
) -> None:
    client, server, reports = serve_one(server_tls(tls_files))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    half = client_context(tls_files).wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        half.do_handshake()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, ServerConfig(), reports)
        await client.send_all(outgoing.read())  # the ClientHello, then a reset
        assert await client.receive_some()  # the server's answer: it is mid-handshake
        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        client.socket.close()
    assert reports[0].outcome == Outcome.TLS_HANDSHAKE
    assert reports[0].detail


@pytest.mark.parametrize(
    ("sent", "outcome"),
    [(b"5 hello", Outcome.COMPLETE), (b"5 hel", Outcome.RESET)],
    ids=["after-the-message", "inside-the-message"],
)
async def test_a_close_without_close_notify_ends_a_complete_message_only(
    tls_files: TLSFiles, sent: bytes, outcome: Outcome
) -> None:
    # https_compatible=False (trio's default): a close without close_notify
    # is a truncation, reported as a broken stream; once the message is
    # complete nothing was lost, and the outcome stays complete.
    config = ServerConfig(limits=Limits(linger_timeout=30))
    client, server, reports = serve_one(server_tls(tls_files))
    tls_client = trio.SSLStream(client, client_context(tls_files), server_hostname="localhost")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, config, reports)
        await tls_client.send_all(sent + b"MORE" if outcome is Outcome.COMPLETE else sent)
        await tls_client.receive_some()  # the echo begins: the server is past the handshake
        await trio.aclose_forcefully(tls_client)  # no close_notify
    assert reports[0].outcome == outcome


async def test_a_tls_echo_ends_with_close_notify_both_ways(tls_files: TLSFiles) -> None:
    client, server, reports = serve_one(server_tls(tls_files))
    tls_client = trio.SSLStream(client, client_context(tls_files), server_hostname="localhost")
    config = ServerConfig(mode=Mode.ECHO)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, config, reports)
        await tls_client.send_all(b"abc")
        assert await tls_client.receive_some() == b"abc"
        # The client's close_notify is the end of the stream: closed, not reset.
        await tls_client.aclose()
    assert reports[0].outcome == Outcome.CLOSED


async def test_a_count_message_ends_with_the_servers_close_notify(tls_files: TLSFiles) -> None:
    # With https_compatible=False a close without close_notify would raise:
    # a clean b"" shows the server sent close_notify.
    client, server, reports = serve_one(server_tls(tls_files))
    tls_client = trio.SSLStream(
        client, client_context(tls_files), server_hostname="localhost", https_compatible=False
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, ServerConfig(), reports)
        await tls_client.send_all(b"5 hello")
        received = b""
        while data := await tls_client.receive_some():
            received += data
        await tls_client.aclose()
    assert (received, reports[0].outcome) == (b"hello", Outcome.COMPLETE)


async def test_no_linger_time_still_ends_with_close_notify(tls_files: TLSFiles) -> None:
    # The linger time bounds the wait for the peer's close, not the words
    # that say "closing": close_notify goes out whatever it is.
    client, server, reports = serve_one(server_tls(tls_files))
    tls_client = trio.SSLStream(
        client, client_context(tls_files), server_hostname="localhost", https_compatible=False
    )
    config = ServerConfig(limits=Limits(linger_timeout=0.0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server_side, server, config, reports)
        await tls_client.send_all(b"5 hello")
        received = b""
        while data := await tls_client.receive_some():  # raises on a close without it
            received += data
        await tls_client.aclose()
    assert (received, reports[0].outcome) == (b"hello", Outcome.COMPLETE)


async def test_the_handshake_runs_in_the_connections_task_not_the_accepting_one(
    tls_files: TLSFiles,
) -> None:
    # Ten peers connect and stall their handshakes; an eleventh is served.
    server = EchoServer(
        ServerConfig(limits=Limits(handshake_timeout=60)),
        open_listeners("127.0.0.1", 0),
        tls=server_tls(tls_files),
    )
    async with trio.open_nursery() as nursery:
        (address,) = await nursery.start(server.serve)
        stalled = [await trio.open_tcp_stream("127.0.0.1", address.port) for _ in range(10)]
        with trio.fail_after(10):
            stream = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", address.port),
                client_context(tls_files),
                server_hostname="localhost",
            )
            await stream.send_all(b"5 hello")
            received = b""
            while data := await stream.receive_some():
                received += data
        assert received == b"hello"
        await trio.testing.wait_all_tasks_blocked()
        assert server.connections == 10  # the stalled ones wait in tasks of their own
        for peer in [*stalled, stream]:
            await peer.aclose()
        server.abort()


# -- the command line -----------------------------------------------------


def run_server(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trio_echo", "server", "--port", "0", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("files", "sentence"),
    [
        (
            ("missing.pem", "key"),
            r"cannot read the server certificate .*missing\.pem: no such file",
        ),
        (("cert", "missing.pem"), r"cannot read the server key .*missing\.pem: no such file"),
        (("junk", "key"), r"the server certificate .*junk\.pem is not a PEM certificate"),
        (("cert", "junk"), r"the server key .*junk\.pem is not a PEM private key"),
        (("cert", "other-key"), r"the server key .*other-key\.pem does not match the certificate"),
    ],
    ids=["missing-cert", "missing-key", "cert-not-pem", "key-not-pem", "key-mismatch"],
)
def test_bad_certificate_files_are_one_sentence(
    tls_files: TLSFiles, tmp_path: Path, files: tuple[str, str], sentence: str
) -> None:
    paths = {"cert": tls_files.cert, "key": tls_files.key}
    (tmp_path / "junk.pem").write_text("not a PEM file\n")
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    for name in ("junk", "other-key"):
        paths[name] = str(tmp_path / f"{name}.pem")
    paths["missing.pem"] = str(tmp_path / "missing.pem")
    cert, key = (paths[name] for name in files)
    result = run_server("--tls-cert", cert, "--tls-key", key)
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert re.fullmatch(r"trio-echo: server: " + sentence + r".*", line), line


@pytest.mark.parametrize(
    "flags",
    [["--tls-key", "k.pem"], ["--tls-client-ca", "ca.pem"], ["--tls-handshake-timeout", "3"]],
)
def test_tls_flags_without_a_certificate_are_one_sentence(flags: list[str]) -> None:
    result = run_server(*flags)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        f"trio-echo: server: {flags[0]} is for TLS: give --tls-cert too"
    )


def start_tls_server(directory: Path, cert: str | Path, key: str | Path) -> ChildProcess:
    return ChildProcess(
        [
            *(sys.executable, "-m", "trio_echo", "server", "--port", "0"),
            *("--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        directory,
    )


def tls_round_trip(port: int, files: TLSFiles, payload: bytes) -> bytes:
    context = client_context(files)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(b"%d " % len(payload) + payload)
        received = b""
        while data := sock.recv(65536):
            received += data
        return received


def served_certificate(port: int, files: TLSFiles) -> bytes:
    context = client_context(files)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        certificate = sock.getpeercert(binary_form=True)
        assert certificate is not None
        return certificate


def test_sigusr1_reloads_the_certificate_without_dropping_a_connection(
    tls_files: TLSFiles, tls_authority: trustme.CA, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(tls_files.cert, cert)
    shutil.copy(tls_files.key, key)
    process = start_tls_server(tmp_path, cert, key)
    try:
        port = process.wait_for_port()
        first = served_certificate(port, tls_files)
        # A connection in the middle of its message when the pair changes.
        context = client_context(tls_files)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as open_one,
        ):
            open_one.sendall(b"10 01234")
            assert open_one.recv(100) == b"01234"
            renewed = tls_authority.issue_cert("localhost", "127.0.0.1")
            renewed.cert_chain_pems[0].write_to_path(str(cert))
            renewed.private_key_pem.write_to_path(str(key))
            process.popen.send_signal(signal.SIGUSR1)
            process.wait_for_log(b"TLS certificate reloaded")
            open_one.sendall(b"56789")
            rest = b""
            while data := open_one.recv(100):
                rest += data
            assert rest == b"56789"  # the open connection went on
        assert served_certificate(port, tls_files) != first
        assert tls_round_trip(port, tls_files, b"renewed") == b"renewed"
        # A bad new file keeps the pair in use, with one warning.
        cert.write_text("not a certificate\n")
        process.popen.send_signal(signal.SIGUSR1)
        process.wait_for_log(b"TLS certificate not reloaded")
        assert tls_round_trip(port, tls_files, b"still served") == b"still served"
        (warning,) = [line for line in process.stderr.splitlines() if b"not reloaded" in line]
        assert b"is not a PEM certificate" in warning
    finally:
        process.stop()


def test_openssl_s_client_is_served(tls_files: TLSFiles, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command here")
    process = start_tls_server(tmp_path, tls_files.cert, tls_files.key)
    try:
        port = process.wait_for_port()
        result = subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-CAfile",
                tls_files.ca,
                "-servername",
                "localhost",
                "-verify_return_error",
                "-quiet",
            ],
            input=b"5 hello",
            capture_output=True,
            timeout=30,
            check=False,
        )
    finally:
        process.stop()
    assert result.stdout == b"hello"
    assert result.returncode == 0, result.stderr


def test_a_file_that_is_not_a_regular_file_is_refused_without_reading_it(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    # A read of a FIFO (or a device) could block start-up, or a reload, for ever.
    fifo = tmp_path / "cert.pem"
    os.mkfifo(fifo)
    with pytest.raises(TLSFileError, match=r"the server certificate .* is not a regular file"):
        ServerFiles(str(fifo), tls_files.key).load()
    result = run_server("--tls-cert", str(fifo), "--tls-key", tls_files.key)
    assert result.returncode == 2
    assert b"is not a regular file" in result.stderr
