# TLS for both ends: contexts made from PEM files, with one sentence for
# each way the files can be wrong, and for each way a peer's certificate can
# fail to verify. The server's own files, and their reload, are in
# server/_tls.py.
#
# Each file is read once, by us, and OpenSSL is given what was read, through
# an anonymous file (OpenSSL loads a key from a path only): what is checked
# is what is used, however the file changes meanwhile, and a file that
# cannot be read is our sentence, not OpenSSL's exception. OpenSSL is never
# let ask for a pass phrase: it would prompt on the terminal, or fail with
# an error of its own where there is none.
from __future__ import annotations

import contextlib
import os
import ssl
import stat
import tempfile
from collections.abc import Iterator

import attrs

__all__ = [
    "CertificateFailure",
    "TLSFileError",
    "certificate_failure",
    "client_context",
]

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
"""The oldest TLS either end speaks."""


class TLSFileError(Exception):
    """A certificate or key file cannot be used; the message says why, in a sentence."""


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror and not isinstance(error, ssl.SSLError):
        return error.strerror.lower()
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason.lower().replace("_", " ")
    return str(error)


def _read(path: str, what: str) -> bytes:
    """Read the file at ``path``, a regular file: a FIFO or a device could block a read."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise TLSFileError(f"the {what} {path} is not a regular file")
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise TLSFileError(f"cannot read the {what} {path}: {_reason(error)}") from None


@contextlib.contextmanager
def _as_path(data: bytes, what: str) -> Iterator[str]:
    """A path that reads as ``data``, for OpenSSL to open once.

    An anonymous file, reached through ``/dev/fd``: nothing is left on disk
    by name, not even while it is read.
    """
    try:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("trio-echo-pem", os.MFD_CLOEXEC)
        else:
            with tempfile.TemporaryFile() as file:  # its name is removed at once
                fd = os.dup(file.fileno())
    except OSError as error:
        raise TLSFileError(f"cannot load the {what}: {_reason(error)}") from None
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.lseek(fd, 0, os.SEEK_SET)
        yield f"/dev/fd/{fd}"
    finally:
        os.close(fd)


class _PassPhraseError(Exception):
    """OpenSSL asked for a key's pass phrase."""


def _refuse_pass_phrase() -> bytes:
    raise _PassPhraseError


def _load_chain(
    context: ssl.SSLContext, chain: bytes, key: bytes, *, cert: str, key_name: str, what: str
) -> None:
    """Load a certificate chain and its key into ``context``, naming the file at fault.

    ``chain`` and ``key`` are what was read from the files ``cert`` and
    ``key_name``.
    """
    try:
        # The certificate alone first: a PEM lib error then means the key's.
        with _as_path(chain, f"{what} certificate") as path:
            ssl.create_default_context().load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError) as error:
        raise TLSFileError(
            f"the {what} certificate {cert} is not a PEM certificate ({_reason(error)})"
        ) from None
    except OSError as error:
        raise TLSFileError(f"cannot load the {what} certificate {cert}: {_reason(error)}") from None
    with _as_path(chain, f"{what} certificate") as path, _as_path(key, f"{what} key") as keyfile:
        try:
            context.load_cert_chain(path, keyfile, password=_refuse_pass_phrase)
        except _PassPhraseError:
            raise TLSFileError(
                f"the {what} key {key_name} is protected by a pass phrase, which trio_echo"
                " never asks for: give the key unencrypted"
            ) from None
        except ssl.SSLError as error:
            if error.reason == "KEY_VALUES_MISMATCH":
                raise TLSFileError(
                    f"the {what} key {key_name} does not match the certificate {cert}"
                ) from None
            raise TLSFileError(f"the {what} key {key_name} is not a PEM private key") from None
        except (OSError, ValueError) as error:
            raise TLSFileError(f"cannot load the {what} key {key_name}: {_reason(error)}") from None


def _load_authorities(context: ssl.SSLContext, data: bytes, *, cafile: str, what: str) -> None:
    """Load the authorities' certificates read from the file ``cafile`` into ``context``."""
    try:
        with _as_path(data, what) as path:
            context.load_verify_locations(cafile=path)
    except (OSError, ValueError) as error:
        raise TLSFileError(
            f"the {what} {cafile} is not a PEM certificate ({_reason(error)})"
        ) from None


def client_context(
    cafile: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """Make a client context: the server's certificate and name are verified.

    Args:
        cafile: Certificates of the authorities to trust; the system's
            trust store if None.
        cert: A client certificate, for a server that asks for one.
        key: Its private key (with ``cert``).

    Raises:
        TLSFileError: If a file cannot be used.
    """
    context = ssl.create_default_context()
    context.minimum_version = MINIMUM_VERSION
    if cafile is not None:
        what = "authority file"
        _load_authorities(context, _read(cafile, what), cafile=cafile, what=what)
    if cert is not None:
        key = key or cert
        chain, key_pem = _read(cert, "client certificate"), _read(key, "client key")
        _load_chain(context, chain, key_pem, cert=cert, key_name=key, what="client")
    return context


# What OpenSSL's verification codes mean, in the words a user needs.
_VERIFY_CODES = {
    2: "unknown issuer",  # unable to get issuer certificate
    10: "expired",
    9: "not yet valid",
    18: "self-signed",
    19: "unknown issuer",  # self-signed certificate in the chain
    20: "unknown issuer",  # unable to get local issuer certificate
    21: "unknown issuer",  # unable to verify the first certificate
    62: "wrong name",  # hostname mismatch
    64: "wrong name",  # IP address mismatch
}


@attrs.frozen
class CertificateFailure:
    """Why a TLS handshake failed over a certificate.

    Attributes:
        whose: ``server`` (this end rejected the server's certificate) or
            ``client`` (the server rejected ours, or asked for one we did not
            give).
        what: In a few words: ``unknown issuer``, ``wrong name``,
            ``expired``...
        words: The ssl library's own words.
    """

    whose: str
    what: str
    words: str

    def __str__(self) -> str:
        if self.whose == "server":
            return f"the server's certificate was rejected: {self.what} ({self.words})"
        return f"the server rejected the client certificate: {self.what} ({self.words})"


# TLS alerts a server sends about the client's certificate, and what they mean.
_CLIENT_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "none was given, and the server requires one",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "expired",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown issuer",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "unknown issuer",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "revoked",
}


def certificate_failure(error: BaseException) -> CertificateFailure | None:
    """The certificate failure behind ``error`` (or its causes), if there is one."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            message = seen.verify_message or seen.reason or str(seen)
            what = _VERIFY_CODES.get(seen.verify_code, str(message).lower())
            return CertificateFailure("server", what, str(message))
        if isinstance(seen, ssl.SSLError) and (alert := _CLIENT_ALERTS.get(seen.reason or "")):
            words = (seen.reason or "").lower().replace("_", " ")
            return CertificateFailure("client", alert, words)
        seen = seen.__cause__ or seen.__context__
    return None
