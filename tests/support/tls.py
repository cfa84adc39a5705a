"""The files of a test certificate authority."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a test certificate authority and a certificate it issued.

    Attributes:
        ca: The authority's certificate (what a client trusts).
        cert: The server's certificate, for ``localhost``, 127.0.0.1 and ::1.
        key: Its private key.
        client_cert: A client certificate from the same authority.
        client_key: Its private key.
    """

    ca: str
    cert: str
    key: str
    client_cert: str
    client_key: str
