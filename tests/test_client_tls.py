"""The client over TLS and over unix sockets, through the library and the
command line, against small servers made here: each mode's behaviour as the
protocol says, over a TCP or unix listener, with or without TLS."""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import socket
import ssl
import struct
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trustme

from tests.support.processes import ROOT
from tests.support.tls import TLSFiles
from trio_echo import Endpoint, HandshakeError, Mode, echo, echo_count, run_load
from trio_echo._tls import client_context
from trio_echo.cli._parser import ExitStatus
from trio_echo.server._tls import TLSFiles as ServerFiles

MiB = 1024 * 1024


@dataclass
class Served:
    """What a test server saw.

    Attributes:
        ends: How each connection ended on the server's side: ``eof`` (the
            client ended its stream cleanly: over TLS, with close_notify),
            ``closed`` (the server closed first, count mode), or the
            failure's words.
    """

    ends: list[str] = field(default_factory=list)
    handshake_failures: list[str] = field(default_factory=list)


Handler = Callable[[trio.abc.Stream, Served], Awaitable[None]]


async def echo_until_eof(stream: trio.abc.Stream, served: Served) -> None:
    """Echo and framed mode: echo every byte until the client's end of stream.

    A framed answer has its message's framing, so answering each message
    sends back the bytes that came.
    """
    while data := await stream.receive_some(65536):
        await stream.send_all(data)
    served.ends.append("eof")


async def echo_one_count_message(stream: trio.abc.Stream, served: Served) -> None:
    """Count mode: read ``length SP``, echo ``length`` bytes, close."""
    buffer = b""
    while b" " not in buffer:
        data = await stream.receive_some(65536)
        assert data, "the stream ended inside the length"
        buffer += data
    digits, _, payload = buffer.partition(b" ")
    left = int(digits)
    while True:
        piece, payload = payload[:left], b""
        await stream.send_all(piece)
        left -= len(piece)
        if left == 0:
            break
        payload = bytes(await stream.receive_some(65536))
        assert payload, "the stream ended inside the payload"
    served.ends.append("closed")


HANDLERS: dict[Mode, Handler] = {
    Mode.COUNT: echo_one_count_message,
    Mode.ECHO: echo_until_eof,
    Mode.FRAMED: echo_until_eof,
}


@asynccontextmanager
async def serving(
    mode: Mode,
    *,
    tls: ssl.SSLContext | None = None,
    unix: Path | None = None,
    handler: Handler | None = None,
) -> AsyncIterator[tuple[Endpoint, Served]]:
    """Serve ``mode`` on 127.0.0.1 port 0, or on the unix socket ``unix``.

    Yields an `Endpoint` without a client context (the caller adds one) and
    what the server saw.
    """
    served = Served()
    handle = handler or HANDLERS[mode]
    listeners: list[trio.abc.Listener[trio.abc.Stream]]
    if unix is None:
        listeners = list(await trio.open_tcp_listeners(0, host="127.0.0.1"))
    else:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(os.fspath(unix))
        sock.listen()
        listeners = [trio.SocketListener(sock)]
    if tls is not None:
        listeners = [trio.SSLListener(lis, tls, https_compatible=False) for lis in listeners]

    async def serve(stream: trio.abc.Stream) -> None:
        async with stream:
            if isinstance(stream, trio.SSLStream):
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as error:
                    served.handshake_failures.append(str(error.__cause__))
                    return
            try:
                await handle(stream, served)
            except trio.BrokenResourceError as error:
                served.ends.append(f"broken: {error.__cause__}")

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, serve, listeners)
        if unix is None:
            inner = listeners[0]
            if isinstance(inner, trio.SSLListener):
                inner = inner.transport_listener
            assert isinstance(inner, trio.SocketListener)
            endpoint = Endpoint(port=inner.socket.getsockname()[1])
        else:
            endpoint = Endpoint(unix=os.fspath(unix))
        yield endpoint, served
        nursery.cancel_scope.cancel()


def server_context(
    files: TLSFiles, *, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    return ServerFiles(cert or files.cert, key or files.key).load()


def with_tls(endpoint: Endpoint, files: TLSFiles, **names: str) -> Endpoint:
    return Endpoint(
        host=endpoint.host,
        port=endpoint.port,
        unix=endpoint.unix,
        tls=client_context(files.ca),
        **names,
    )


TRANSPORTS = ["tls", "unix", "tls-over-unix"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("size", [0, 1, 3 * MiB])
async def test_each_mode_echoes(
    tls_files: TLSFiles, short_tmp: Path, transport: str, mode: Mode, size: int
) -> None:
    payload = random.Random(size).randbytes(size)
    tls = server_context(tls_files) if "tls" in transport else None
    unix = short_tmp / "sock" if "unix" in transport else None
    with trio.fail_after(30):
        async with serving(mode, tls=tls, unix=unix) as (where, served):
            endpoint = with_tls(where, tls_files) if tls is not None else where
            async with await endpoint.connect() as stream:
                assert await echo(stream, payload, mode) == payload
    # Echo and framed: the client's end of stream (a half-close over a unix
    # socket, close_notify over TLS once every answer is in) ended the
    # server's reading cleanly. Count: the server closed.
    assert served.ends == ["closed" if mode is Mode.COUNT else "eof"]


async def test_over_tls_the_client_closes_with_close_notify_once_it_has_every_answer(
    tls_files: TLSFiles,
) -> None:
    ended = trio.Event()
    reads: list[bytes] = []

    async def record_reads(stream: trio.abc.Stream, served: Served) -> None:
        while data := await stream.receive_some(65536):
            reads.append(bytes(data))
            await stream.send_all(data)
        reads.append(bytes(data))  # b"": close_notify, not a cut connection
        ended.set()

    with trio.fail_after(30):
        async with serving(Mode.ECHO, tls=server_context(tls_files), handler=record_reads) as (
            endpoint,
            _served,
        ):
            stream = await with_tls(endpoint, tls_files).connect()
            assert await echo(stream, b"hello", Mode.ECHO) == b"hello"
            assert not ended.is_set()  # the server answers until the client closes
            await stream.aclose()
            await ended.wait()
    assert reads[-1] == b""
    assert b"".join(reads) == b"hello"


async def cut_after(stream: trio.abc.Stream, payload: bytes, echoed: int) -> None:
    """A count server that cuts the connection after ``echoed`` bytes (no close_notify)."""
    assert isinstance(stream, trio.SSLStream)
    received = b""
    while len(received) < len(b"%d " % len(payload)) + len(payload):
        received += await stream.receive_some(65536)
    await stream.send_all(payload[:echoed])
    await stream.transport_stream.aclose()


@pytest.mark.parametrize(("echoed", "whole"), [(5, True), (3, False)])
async def test_a_count_server_that_closes_without_close_notify(
    tls_files: TLSFiles, echoed: int, whole: bool
) -> None:
    # After the whole echo, nothing is lost: the close ends the exchange.
    # Before, it is a reset.
    async def handler(stream: trio.abc.Stream, served: Served) -> None:
        await cut_after(stream, b"hello", echoed)

    with trio.fail_after(30):
        async with serving(Mode.COUNT, tls=server_context(tls_files), handler=handler) as (
            endpoint,
            _served,
        ):
            stream = await with_tls(endpoint, tls_files).connect()
            async with stream:
                if whole:
                    assert await echo_count(stream, b"hello") == b"hello"
                else:
                    with pytest.raises(trio.BrokenResourceError):
                        await echo_count(stream, b"hello")


async def test_a_handshake_failure_is_a_handshake_error(tls_files: TLSFiles) -> None:
    with trio.fail_after(30):
        async with serving(Mode.ECHO, tls=server_context(tls_files)) as (endpoint, _served):
            wrong = with_tls(endpoint, tls_files, server_name="other.example")
            with pytest.raises(HandshakeError) as caught:
                await wrong.connect()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert str(caught.value) == (
        "the server's certificate was rejected: wrong name"
        " (Hostname mismatch, certificate is not valid for 'other.example'.)"
    )


def test_where_a_server_is_in_words() -> None:
    assert str(Endpoint(host="::1", port=7)) == "[::1]:7"
    assert str(Endpoint(host="localhost", port=7)) == "localhost:7"
    assert str(Endpoint(unix="/run/echo.sock")) == "unix:/run/echo.sock"
    assert Endpoint(host="example.org").tls_name == "example.org"
    assert Endpoint(unix="/run/echo.sock").tls_name == "localhost"
    assert Endpoint(unix="/x", server_name="echo.example").tls_name == "echo.example"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", list(Mode))
async def test_a_load_run(tls_files: TLSFiles, short_tmp: Path, transport: str, mode: Mode) -> None:
    tls = server_context(tls_files) if "tls" in transport else None
    unix = short_tmp / "sock" if "unix" in transport else None
    with trio.fail_after(60):
        async with serving(mode, tls=tls, unix=unix) as (endpoint, served):
            report = await run_load(
                endpoint.host,
                endpoint.port,
                unix=endpoint.unix,
                tls=client_context(tls_files.ca) if tls else None,
                mode=mode,
                repeat=30,
                concurrency=4,
                size=1000,
            )
    assert (report.messages, report.errors) == (30, 0), report.first_error
    # count: a connection per message; echo and framed: one per worker,
    # each ended cleanly (a half-close, or close_notify).
    assert served.ends == ["closed"] * 30 if mode is Mode.COUNT else ["eof"] * 4


# The command line, run as a program against the servers above.


async def client(*args: str) -> tuple[int, bytes, bytes]:
    """Run ``trio-echo client ARGS``; its status, output and error output."""
    result = await trio.run_process(
        [sys.executable, "-m", "trio_echo", "client", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.fspath(ROOT)},
    )
    return result.returncode, result.stdout, result.stderr


def where_flags(endpoint: Endpoint) -> list[str]:
    if endpoint.unix is not None:
        return ["--unix", endpoint.unix]
    return ["--port", str(endpoint.port)]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", list(Mode))
async def test_the_command_echoes(
    tls_files: TLSFiles, short_tmp: Path, transport: str, mode: Mode
) -> None:
    tls = server_context(tls_files) if "tls" in transport else None
    unix = short_tmp / "sock" if "unix" in transport else None
    messages = ["one", "", "three"] if mode is Mode.FRAMED else ["hello"]
    tls_flags = ["--tls", "--cafile", tls_files.ca] if tls else []
    with trio.fail_after(60):
        async with serving(mode, tls=tls, unix=unix) as (endpoint, served):
            result = await client(
                *where_flags(endpoint), *tls_flags, "--mode", str(mode), *messages
            )
    assert result == (0, "".join(messages).encode(), b"")
    assert served.ends == ["closed" if mode is Mode.COUNT else "eof"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.ECHO])
async def test_the_command_runs_a_load(
    tls_files: TLSFiles, short_tmp: Path, transport: str, mode: Mode
) -> None:
    tls = server_context(tls_files) if "tls" in transport else None
    unix = short_tmp / "sock" if "unix" in transport else None
    tls_flags = ["--tls", "--cafile", tls_files.ca] if tls else []
    with trio.fail_after(60):
        async with serving(mode, tls=tls, unix=unix) as (endpoint, _served):
            status, out, err = await client(
                *where_flags(endpoint), *tls_flags, "--mode", str(mode), "--repeat", "20"
            )
    assert (status, err) == (0, b"")
    assert b"20 echoed, 0 errors" in out


@pytest.fixture(scope="session")
def other_authority(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The certificate of an authority that issued none of the test certificates."""
    path = tmp_path_factory.mktemp("other") / "ca.pem"
    trustme.CA(key_type=trustme.KeyType.ECDSA).cert_pem.write_to_path(os.fspath(path))
    return os.fspath(path)


@pytest.fixture(scope="session")
def expired(tls_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate for localhost that expired yesterday, and its key."""
    now = datetime.datetime.now(datetime.UTC)
    leaf = tls_authority.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    directory = tmp_path_factory.mktemp("expired")
    cert, key = os.fspath(directory / "cert.pem"), os.fspath(directory / "key.pem")
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    return cert, key


@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.ECHO])
@pytest.mark.parametrize(
    ("case", "words"),
    [
        pytest.param(
            "unknown-issuer",
            "the server's certificate was rejected: unknown issuer"
            " (unable to get local issuer certificate)",
            id="unknown-issuer",
        ),
        pytest.param(
            "wrong-name",
            "the server's certificate was rejected: wrong name"
            " (Hostname mismatch, certificate is not valid for 'other.example'.)",
            id="wrong-name",
        ),
        pytest.param(
            "expired",
            "the server's certificate was rejected: expired (certificate has expired)",
            id="expired",
        ),
    ],
)
async def test_a_rejected_server_certificate_is_one_sentence(  # noqa: PLR0917
    tls_files: TLSFiles,
    other_authority: str,
    expired: tuple[str, str],
    case: str,
    words: str,
    mode: Mode,
) -> None:
    cafile = other_authority if case == "unknown-issuer" else tls_files.ca
    extra = ["--server-name", "other.example"] if case == "wrong-name" else []
    if case == "expired":
        tls = server_context(tls_files, cert=expired[0], key=expired[1])
    else:
        tls = server_context(tls_files)
    with trio.fail_after(60):
        async with serving(mode, tls=tls) as (endpoint, served):
            flags = ["--port", str(endpoint.port), "--mode", str(mode)]
            load = await client(*flags, "--tls", "--cafile", cafile, *extra, "--repeat", "3")
            result = await client(*flags, "--tls", "--cafile", cafile, *extra, "hello")
    sentence = f"trio-echo: client: cannot connect to 127.0.0.1:{endpoint.port} over TLS: {words}\n"
    assert result == (ExitStatus.CERTIFICATE, b"", sentence.encode())
    assert served.ends == []
    status, _out, err = load
    assert status == ExitStatus.CERTIFICATE
    assert f"the first: cannot connect over TLS: {words}\n".encode() in err
    assert err.count(b"\n") == 1


@contextmanager
def stdlib_tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A count server on stdlib ssl in a thread, for one connection.

    The ssl module sends the alert that ends a failed handshake (trio's
    SSLStream leaves it unsent), so a client learns why. After a failure
    the server reads until the client closes, so that its close does not
    reset the connection and destroy that alert.
    """
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn.dup() as raw:
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        header = tls.recv(100)
                        tls.sendall(header.partition(b" ")[2])
                except ssl.SSLError:
                    while raw.recv(65536):
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(30)


def requiring_client_certificates(files: TLSFiles) -> ssl.SSLContext:
    return ServerFiles(files.cert, files.key, client_ca=files.ca).load()


async def test_a_server_that_requires_a_client_certificate(tls_files: TLSFiles) -> None:
    with stdlib_tls_server(requiring_client_certificates(tls_files)) as port:
        result = await client("--port", str(port), "--tls", "--cafile", tls_files.ca, "hello")
    assert result == (
        ExitStatus.CERTIFICATE,
        b"",
        f"trio-echo: client: cannot connect to 127.0.0.1:{port} over TLS: the server rejected"
        " the client certificate: none was given, and the server requires one"
        " (tlsv13 alert certificate required)\n".encode(),
    )


async def refusing_server(
    context: ssl.SSLContext,
    ending: str,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A trio TLS server whose handshakes fail, for one connection; ends it as ``ending`` says.

    ``eof``: it sends an end of stream, and reads until the client closes,
    so that nothing the client sent can turn its close into a reset.
    ``reset``: it closes with SO_LINGER 0, which resets the connection.
    Either way it sends no alert, as trio does not.
    """
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    task_status.started(listener.socket.getsockname()[1])
    async with listener:
        stream = await listener.accept()
    tls = trio.SSLStream(stream, context, server_side=True, https_compatible=False)
    with pytest.raises(trio.BrokenResourceError):
        await tls.do_handshake()
    if ending == "eof":
        await stream.send_eof()
        with contextlib.suppress(trio.BrokenResourceError):
            while await stream.receive_some(65536):
                pass
    else:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await trio.aclose_forcefully(stream)


@pytest.mark.parametrize("ending", ["eof", "reset"])
@pytest.mark.parametrize("given", ["no-certificate", "unknown-issuer"])
async def test_a_server_that_closes_for_want_of_a_client_certificate(
    tls_files: TLSFiles, other_authority_pair: tuple[str, str], ending: str, given: str
) -> None:
    # A trio server does not send its handshake's alert: the client sees
    # the connection end before any reply, by an end of stream or a reset
    # (whichever way the server ended it), and names the likely cause.
    cert_flags = ["--cert", *other_authority_pair[:1], "--key", other_authority_pair[1]]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                refusing_server, requiring_client_certificates(tls_files), ending
            )
            result = await client(
                "--port",
                str(port),
                "--tls",
                "--cafile",
                tls_files.ca,
                *(cert_flags if given == "unknown-issuer" else []),
                "hello",
            )
    cause = (
        "as a server that requires a client certificate does when it gets none (see --cert)"
        if given == "no-certificate"
        else "as a server does that does not trust the client certificate (--cert): its issuer"
        " may not be in the server's --tls-client-ca"
    )
    assert result == (
        ExitStatus.CERTIFICATE,
        b"",
        f"trio-echo: client: cannot connect to 127.0.0.1:{port} over TLS: the server ended"
        f" the connection before any reply, {cause}\n".encode(),
    )


@pytest.fixture(scope="session")
def other_authority_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A client certificate and its key, from an authority no server here trusts."""
    directory = tmp_path_factory.mktemp("other-client")
    issued = trustme.CA().issue_cert("client.example.org")
    cert, key = directory / "client.pem", directory / "client.key"
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    return os.fspath(cert), os.fspath(key)


async def test_the_command_with_a_server_that_ends_before_any_reply(tls_files: TLSFiles) -> None:
    # The same refusal from the servers above: whatever way it reaches the
    # client, the status is 10.
    with trio.fail_after(60):
        async with serving(Mode.COUNT, tls=requiring_client_certificates(tls_files)) as (
            endpoint,
            served,
        ):
            status, out, err = await client(
                "--port", str(endpoint.port), "--tls", "--cafile", tls_files.ca, "hello"
            )
    assert (status, out) == (ExitStatus.CERTIFICATE, b"")
    assert err.endswith(b"(see --cert)\n")
    assert err.count(b"\n") == 1
    assert len(served.handshake_failures) == 1


@pytest.mark.parametrize("transport", ["tls", "tls-over-unix"])
@pytest.mark.parametrize("key_file", [True, False], ids=["cert-and-key", "cert-holding-key"])
async def test_mutual_tls(
    tls_files: TLSFiles, short_tmp: Path, tmp_path: Path, transport: str, key_file: bool
) -> None:
    if key_file:
        client_flags = ["--cert", tls_files.client_cert, "--key", tls_files.client_key]
    else:
        both = tmp_path / "client.pem"
        key, cert = Path(tls_files.client_key), Path(tls_files.client_cert)
        both.write_bytes(key.read_bytes() + cert.read_bytes())  # noqa: ASYNC240  (small, local)
        client_flags = ["--cert", os.fspath(both)]
    unix = short_tmp / "sock" if "unix" in transport else None
    with trio.fail_after(60):
        async with serving(Mode.ECHO, tls=requiring_client_certificates(tls_files), unix=unix) as (
            endpoint,
            served,
        ):
            result = await client(
                *where_flags(endpoint),
                "--tls",
                "--cafile",
                tls_files.ca,
                *client_flags,
                "--mode",
                "echo",
                "hello",
            )
    assert result == (0, b"hello", b"")
    assert served.ends == ["eof"]


async def test_a_server_that_does_not_speak_tls(tls_files: TLSFiles) -> None:
    # A count server reads the ClientHello as a length, rejects it and closes.
    async def closes_at_once(stream: trio.abc.Stream, served: Served) -> None:
        await stream.receive_some(65536)

    with trio.fail_after(60):
        async with serving(Mode.COUNT, handler=closes_at_once) as (endpoint, _served):
            result = await client(
                "--port", str(endpoint.port), "--tls", "--cafile", tls_files.ca, "hello"
            )
    assert result == (
        ExitStatus.RESET,
        b"",
        f"trio-echo: client: cannot connect to 127.0.0.1:{endpoint.port} over TLS: the server"
        " closed the connection during the handshake (is the server speaking TLS?)\n".encode(),
    )


async def test_an_echo_server_that_does_not_speak_tls(tls_files: TLSFiles) -> None:
    # It sends the ClientHello back: not what a TLS server answers.
    with trio.fail_after(60):
        async with serving(Mode.ECHO) as (endpoint, _served):
            status, out, err = await client(
                "--port", str(endpoint.port), "--tls", "--cafile", tls_files.ca, "hello"
            )
    assert (status, out) == (ExitStatus.RESET, b"")
    assert err.startswith(
        f"trio-echo: client: cannot connect to 127.0.0.1:{endpoint.port} over TLS:"
        " the handshake failed: ".encode()
    )
    assert err.endswith(b" (is the server speaking TLS?)\n")


async def test_a_unix_path_without_a_server(short_tmp: Path) -> None:
    missing = short_tmp / "missing"
    regular = short_tmp / "file"
    regular.write_bytes(b"")
    bound = short_tmp / "bound"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(bound))  # bound, not listening: connections are refused
        results = [
            await client("--unix", os.fspath(path), "x") for path in (missing, regular, bound)
        ]
    assert results == [
        (
            ExitStatus.REFUSED,
            b"",
            f"trio-echo: client: cannot connect to unix:{path}: {words}\n".encode(),
        )
        for path, words in (
            (missing, "no such file or directory"),
            (regular, "connection refused"),
            (bound, "connection refused"),
        )
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(
            ["--unix", "/x", "--host", "h"],
            "--unix names the server's socket: give no --host",
            id="unix-and-host",
        ),
        pytest.param(
            ["--unix", "/x", "--port", "1"],
            "--unix names the server's socket: give no --port",
            id="unix-and-port",
        ),
        pytest.param(
            ["--cafile", "ca.pem"], "--cafile is for TLS: give --tls too", id="cafile-alone"
        ),
        pytest.param(
            ["--server-name", "n"],
            "--server-name is for TLS: give --tls too",
            id="server-name-alone",
        ),
        pytest.param(["--cert", "c.pem"], "--cert is for TLS: give --tls too", id="cert-alone"),
        pytest.param(
            ["--tls", "--server-name", ""],
            "argument --server-name: '' is not a name a certificate can carry (example: localhost)",
            id="empty-server-name",
        ),
        pytest.param(
            ["--tls", "--server-name", ".x", "--repeat", "2"],
            "argument --server-name: '.x' is not a name a certificate can carry"
            " (example: localhost)",
            id="server-name-with-a-leading-dot",
        ),
        pytest.param(
            ["--tls", "--key", "k.pem"],
            "--key is the key of a client certificate: give --cert FILE too",
            id="key-without-cert",
        ),
    ],
)
async def test_usage_errors(args: list[str], words: str) -> None:
    status, out, err = await client(*args, "x")
    assert (status, out) == (ExitStatus.USAGE, b"")
    assert err == (
        f"trio-echo: client: {words}\nTry 'trio-echo client --help' for the options.\n".encode()
    )


async def test_tls_files_that_cannot_be_used(tls_files: TLSFiles, tmp_path: Path) -> None:
    missing = os.fspath(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    cases = [
        (
            ["--cafile", missing],
            f"cannot read the authority file {missing}: no such file or directory",
        ),
        (
            ["--cafile", os.fspath(garbage)],
            f"the authority file {garbage} is not a PEM certificate",
        ),
        (
            ["--cafile", tls_files.ca, "--cert", tls_files.client_cert, "--key", tls_files.key],
            f"the client key {tls_files.key} does not match"
            f" the certificate {tls_files.client_cert}",
        ),
    ]
    for flags, words in cases:
        for load in ([], ["--repeat", "2"]):
            status, out, err = await client("--tls", *flags, *load, *([] if load else ["x"]))
            assert (status, out) == (ExitStatus.USAGE, b"")
            assert err.startswith(f"trio-echo: client: {words}".encode()), err
            assert err.count(b"\n") == 1
