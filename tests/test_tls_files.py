"""The server's certificate files: every way a file can be bad (unreadable,
protected by a pass phrase, half written, mismatched) is one sentence and
status 2 at start-up and one warning on reload, never a prompt or a
traceback; with workers, every worker serves the pair its supervisor holds
in use, whatever is on disk."""

from __future__ import annotations

import builtins
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tests.support.processes import ROOT, ChildProcess, children
from tests.support.tls import TLSFiles
from trio_echo import ServerTLS, TLSFileError, TLSFiles as ServerFiles, _tls

Spawn = Callable[..., ChildProcess]


def encrypted(key: str) -> bytes:
    """``key``, protected by a pass phrase."""
    loaded = serialization.load_pem_private_key(Path(key).read_bytes(), None)
    return loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def half(path: str) -> bytes:
    """The first half of the file at ``path``: a renewal cut short."""
    data = Path(path).read_bytes()
    return data[: len(data) // 2]


BAD_FILES = {
    # which file, what it holds, the sentence
    "key-encrypted": (
        "key",
        lambda files: encrypted(files.key),
        r"the server key .*key\.pem is protected by a pass phrase, which trio_echo never asks"
        r" for: give the key unencrypted",
    ),
    "key-half-written": (
        "key",
        lambda files: half(files.key),
        r"the server key .*key\.pem is not a PEM private key",
    ),
    "cert-half-written": (
        "cert",
        lambda files: half(files.cert),
        r"the server certificate .*cert\.pem is not a PEM certificate.*",
    ),
    "key-empty": ("key", lambda files: b"", r"the server key .*key\.pem is not a PEM private key"),
}


def copies(files: TLSFiles, directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    shutil.copy(files.cert, cert)
    shutil.copy(files.key, key)
    return cert, key


def run_server(*args: str) -> subprocess.CompletedProcess[bytes]:
    # A session of its own: no controlling terminal, as under systemd or in
    # a container, where OpenSSL's prompt fails with an error of its own.
    return subprocess.run(
        [sys.executable, "-m", "trio_echo", "server", "--port", "0", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
        cwd=ROOT,
        start_new_session=True,
    )


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_at_start_up_is_one_sentence_and_status_2(
    tls_files: TLSFiles, tmp_path: Path, case: str
) -> None:
    which, content, sentence = BAD_FILES[case]
    cert, key = copies(tls_files, tmp_path)
    (cert if which == "cert" else key).write_bytes(content(tls_files))
    result = run_server("--tls-cert", str(cert), "--tls-key", str(key))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.decode().strip().splitlines()
    assert re.fullmatch(r"trio-echo: server: " + sentence, line), line


def unreadable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` unreadable to the server's code, as mode 000 makes it
    for any user but root (whom mode bits do not bind)."""

    def refuse(name: Any, *args: Any, **kwargs: Any) -> Any:
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return builtins.open(name, *args, **kwargs)

    monkeypatch.setattr(_tls, "open", refuse, raising=False)


def test_an_unreadable_file_is_one_sentence(
    tls_files: TLSFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = copies(tls_files, tmp_path)
    unreadable(monkeypatch, key)
    with pytest.raises(TLSFileError) as caught:
        ServerFiles(str(cert), str(key)).load()
    assert str(caught.value) == f"cannot read the server key {key}: permission denied"


@pytest.mark.parametrize("case", [*BAD_FILES, "key-unreadable", "key-mismatched"])
def test_a_reload_keeps_the_pair_in_use_whatever_is_wrong_with_the_new_files(
    tls_files: TLSFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    cert, key = copies(tls_files, tmp_path)
    tls = ServerTLS(ServerFiles(str(cert), str(key)))
    pair, context = tls.pair, tls.context
    if case == "key-unreadable":
        unreadable(monkeypatch, key)
    elif case == "key-mismatched":
        trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(key))
    else:
        which, content, _sentence = BAD_FILES[case]
        (cert if which == "cert" else key).write_bytes(content(tls_files))
    caplog.set_level(logging.INFO, "trio_echo")
    assert tls.reload() is False
    assert (tls.pair, tls.context) == (pair, context)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("TLS certificate not reloaded, the one in use stays: ")


def test_what_is_loaded_is_what_was_read(tls_files: TLSFiles, tmp_path: Path) -> None:
    cert, key = copies(tls_files, tmp_path)
    files = ServerFiles(str(cert), str(key))
    pair = files.read()
    key.write_text("a renewal half done\n")
    files.load(pair)  # the pair as read: the file on disk no longer matters
    assert ServerTLS(files, pair).pair == pair


# -- workers ----------------------------------------------------------------


def tls_round_trip(port: int, files: TLSFiles, payload: bytes) -> tuple[bytes, bytes]:
    """The echo of ``payload``, and the certificate the server presented."""
    context = ssl.create_default_context(cafile=files.ca)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        certificate = sock.getpeercert(binary_form=True)
        assert certificate is not None
        sock.sendall(b"%d " % len(payload) + payload)
        received = b""
        while data := sock.recv(65536):
            received += data
        return received, certificate


def start_workers(spawn: Spawn, cert: Path, key: Path) -> ChildProcess:
    parent = spawn(
        *("-m", "trio_echo", "server", "--port", "0", "--workers", "2"),
        *("--tls-cert", str(cert), "--tls-key", str(key)),
    )
    parent.wait_for_port()
    return parent


def wait_for_count(process: ChildProcess, text: bytes, count: int, timeout: float = 30) -> None:
    """Wait until the log has ``text`` ``count`` times (polling the log file)."""
    deadline = time.monotonic() + timeout
    while process.stderr.count(text) < count:
        assert process.popen.poll() is None, f"exited: {process.stderr[-2000:]!r}"
        assert time.monotonic() < deadline, f"not {count} {text!r} in {process.stderr[-2000:]!r}"
        time.sleep(0.02)


def test_a_replacement_worker_serves_the_pair_in_use_not_the_files_on_disk(
    spawn: Spawn, tls_files: TLSFiles, tmp_path: Path
) -> None:
    cert, key = copies(tls_files, tmp_path)
    parent = start_workers(spawn, cert, key)
    _echo, served = tls_round_trip(parent.port, tls_files, b"before")
    # The key on disk goes bad; the reload rightly keeps the pair in use.
    trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(key))
    parent.popen.send_signal(signal.SIGUSR1)
    parent.wait_for_log(b"TLS certificate not reloaded")
    # Then a worker dies: its replacement starts, with the pair in use.
    os.kill(children(parent.pid)[0], signal.SIGKILL)
    wait_for_count(parent, b") started", 3)
    for _ in range(8):  # over both workers, as the kernel spreads them
        assert tls_round_trip(parent.port, tls_files, b"after") == (b"after", served)
    assert parent.popen.poll() is None
    assert b"did not start" not in parent.stderr


def test_a_reload_reaches_every_worker(
    spawn: Spawn, tls_files: TLSFiles, tls_authority: trustme.CA, tmp_path: Path
) -> None:
    cert, key = copies(tls_files, tmp_path)
    parent = start_workers(spawn, cert, key)
    _echo, first = tls_round_trip(parent.port, tls_files, b"before")
    renewed = tls_authority.issue_cert("localhost", "127.0.0.1")
    renewed.cert_chain_pems[0].write_to_path(str(cert))
    renewed.private_key_pem.write_to_path(str(key))
    parent.popen.send_signal(signal.SIGUSR1)
    wait_for_count(parent, b"TLS certificate reloaded, as its supervisor read it", 2)
    wait_for_count(parent, b"TLS certificate reloaded from", 1)
    assert parent.stderr.count(b"TLS certificate reloaded from") == 1  # read once, by the parent
    for _ in range(8):
        echo, served = tls_round_trip(parent.port, tls_files, b"after")
        assert echo == b"after"
        assert served != first
