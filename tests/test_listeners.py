"""Listening sockets, built in one place: bound where asked (TCP, a unix
socket, both) or handed over (inherited descriptors); and the listeners
that accept on them, TLS wrapping a listener as trio.SSLListener does."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import trio
import trustme

from trio_echo import TLSFiles
from trio_echo.server._listeners import (
    CannotListenError,
    ListenAddress,
    SocketListener,
    TLSListener,
    _peer_name,
    handed_over,
    listen_on,
)
from trio_echo.server._socket_stream import FastSocketStream
from trio_echo.server._tls import ServerTLS


def test_tcp_and_a_unix_socket_are_listened_on_at_once(short_tmp: Path) -> None:
    path = str(short_tmp / "echo.sock")
    listeners, socket_file = listen_on("127.0.0.1", 0, unix=path)
    try:
        assert [sock.family for sock in listeners] == [socket.AF_INET, socket.AF_UNIX]
        assert socket_file is not None
        assert socket_file.path == path
        assert str(ListenAddress.of(listeners[1])) == f"unix:{path}"
        port = listeners[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)), socket.socket(socket.AF_UNIX) as unix:
            unix.connect(path)
            accepted = [SocketListener(sock).accept_nowait() for sock in listeners]
            for stream, _peer in filter(None, accepted):
                assert isinstance(stream, FastSocketStream)
                stream.close_nowait()
            assert all(accepted)
    finally:
        for sock in listeners:
            sock.close()
        if socket_file is not None:
            socket_file.remove()
    assert not os.path.exists(path)


def test_an_accepted_socket_is_the_c_type_with_the_listeners_kind_and_a_peer_name() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        with socket.create_connection(server.getsockname()) as client:
            accepted = SocketListener(server).accept_nowait()
            assert accepted is not None
            stream, peer = accepted
            assert isinstance(stream, FastSocketStream)
            sock = stream.socket
            assert type(sock) is socket.SocketType  # no Python-level wrapper
            assert (sock.family, sock.type, sock.proto) == (
                server.family,
                server.type,
                server.proto,
            )
            assert peer == f"127.0.0.1:{client.getsockname()[1]}"
            assert stream.send_nowait(b"hi") == 2
            assert client.recv(2) == b"hi"
            stream.close_nowait()
            assert sock.fileno() == -1
            assert client.recv(1) == b""
    # A peer with no address to name is named by its family.
    unnamed = socket.SocketType()
    try:
        assert _peer_name(unnamed, "") == "AF_INET"
    finally:
        unnamed.close()


def test_only_a_unix_socket_when_tcp_is_not_asked_for(short_tmp: Path) -> None:
    listeners, socket_file = listen_on("127.0.0.1", 0, tcp=False, unix=str(short_tmp / "s"))
    assert [sock.family for sock in listeners] == [socket.AF_UNIX]
    listeners[0].close()
    assert socket_file is not None
    socket_file.remove()


def test_a_port_in_use_is_one_sentence() -> None:
    (taken,), _ = listen_on("127.0.0.1", 0)
    port = taken.getsockname()[1]
    with taken, pytest.raises(CannotListenError) as caught:
        listen_on("127.0.0.1", port)
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_a_unix_socket_that_cannot_be_had_leaves_nothing_listening(short_tmp: Path) -> None:
    (probe,), _ = listen_on("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    not_a_socket = short_tmp / "file"
    not_a_socket.write_text("mine")
    with pytest.raises(CannotListenError, match=r"^cannot listen on unix:.*/file: "):
        listen_on("127.0.0.1", port, unix=str(not_a_socket))
    listeners, _ = listen_on("127.0.0.1", port)  # the TCP socket bound first was closed
    listeners[0].close()
    assert not_a_socket.read_text() == "mine"


def test_inherited_descriptors_are_handed_over() -> None:
    (original,), _ = listen_on("127.0.0.1", 0)
    with original:
        fd = os.dup(original.fileno())
        (inherited,) = handed_over([fd]) or []
        with inherited:
            assert inherited.fileno() == fd
            assert inherited.getsockname() == original.getsockname()
            assert not inherited.getblocking()


def test_nothing_is_handed_over_without_descriptors_or_systemd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LISTEN_PID", raising=False)
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert handed_over() is None


async def test_a_listener_accepts_what_is_pending_and_names_the_peer() -> None:
    (sock,), _ = listen_on("127.0.0.1", 0)
    listener = SocketListener(sock)
    assert listener.accept_nowait() is None  # nothing pending
    with socket.create_connection(sock.getsockname()) as client:
        await trio.lowlevel.wait_readable(sock)
        accepted = listener.accept_nowait()
        assert accepted is not None
        stream, peer = accepted
        assert peer == "{}:{}".format(*client.getsockname())
        client.sendall(b"hi")
        await stream.wait_receivable()
        assert stream.receive_nowait(10) == b"hi"
        await stream.aclose()
    trio.lowlevel.notify_closing(sock)
    sock.close()


async def test_tls_wraps_a_listener_with_the_context_in_use(
    tls_authority: trustme.CA, tmp_path: Path
) -> None:
    cert, key = str(tmp_path / "cert"), str(tmp_path / "key")
    issued = tls_authority.issue_cert("localhost")
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    (sock,), _ = listen_on("127.0.0.1", 0)
    tls = ServerTLS(TLSFiles(cert, key))
    listener = TLSListener(SocketListener(sock), tls)
    assert listener.socket is sock
    assert listener.accept_nowait() is None
    with socket.create_connection(sock.getsockname()):
        await trio.lowlevel.wait_readable(sock)
        accepted = listener.accept_nowait()
        assert accepted is not None
        stream, _peer = accepted
        assert isinstance(stream, trio.SSLStream)
        assert isinstance(stream.transport_stream, FastSocketStream)
        assert stream.context is tls.context  # its handshake waits for the connection's task
        stream.transport_stream.close_nowait()
    trio.lowlevel.notify_closing(sock)
    sock.close()
