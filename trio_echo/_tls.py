# TLS for both ends: contexts made from PEM files, with one sentence for
# each way the files can be wrong, and for each way a peer's certificate can
# fail to verify. The server's own files, and their reload, are in
# server/_tls.py.
from __future__ import annotations

import os
import ssl
import stat

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


def _check_file(path: str, what: str) -> None:
    """Check that ``path`` is a regular file: a FIFO or a device could block a read."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise TLSFileError(f"cannot read the {what} {path}: {_reason(error)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise TLSFileError(f"the {what} {path} is not a regular file")


def _load_chain(context: ssl.SSLContext, cert: str, key: str, *, what: str) -> None:
    """Load a certificate and its key into ``context``, naming the file at fault."""
    for path, kind in ((cert, "certificate"), (key, "key")):
        _check_file(path, f"{what} {kind}")
    try:
        # The certificate alone first: a PEM lib error then means the key's.
        ssl.create_default_context().load_verify_locations(cafile=cert)
    except (ssl.SSLError, ValueError) as error:
        raise TLSFileError(
            f"the {what} certificate {cert} is not a PEM certificate ({_reason(error)})"
        ) from None
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise TLSFileError(
                f"the {what} key {key} does not match the certificate {cert}"
            ) from None
        raise TLSFileError(f"the {what} key {key} is not a PEM private key") from None


def _load_authorities(context: ssl.SSLContext, cafile: str, *, what: str) -> None:
    _check_file(cafile, what)
    try:
        context.load_verify_locations(cafile=cafile)
    except OSError as error:
        if not isinstance(error, ssl.SSLError):
            raise TLSFileError(f"cannot read the {what} {cafile}: {_reason(error)}") from None
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
        _load_authorities(context, cafile, what="authority file")
    if cert is not None:
        _load_chain(context, cert, key or cert, what="client")
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
