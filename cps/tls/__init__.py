"""TLS client authentication with the card, both sides (``pip install 'cps-middleware[tls]'``).

Client: the card's authentication key signs the TLS 1.2 CertificateVerify
(RSA PKCS#1 v1.5, the only scheme a CPS3 key does) through the Card API, and
the server's certificate and name are verified by cryptography's X.509
verifier. :class:`CardHTTPAdapter` mounts it under ``requests`` (and so under
``zeep``); :func:`connect` gives the bare connection.

Server: :class:`WsgiMiddleware` and :class:`AsgiMiddleware` turn a client
certificate -- from the Python server's TLS connection or a trusted reverse
proxy's header -- into a validated :class:`~cps.identity.Practitioner`.

docs/tls.md tells why tlslite-ng, how to deploy behind nginx, and the errors.
Importing this package imports neither tlslite-ng nor requests: each name is
loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapter import CardHTTPAdapter, CardSSLError
    from .client import TlsConnection, TlsSettings, connect
    from .middleware import AsgiMiddleware, CertificateAuthenticator, WsgiMiddleware
    from .server_trust import ServerTrust

__all__ = ["CardHTTPAdapter", "CardSSLError", "TlsConnection", "TlsSettings", "connect",
           "ServerTrust", "CertificateAuthenticator", "WsgiMiddleware", "AsgiMiddleware"]

# name -> module that defines it
_LAZY = {
    "CardHTTPAdapter": "adapter", "CardSSLError": "adapter",
    "TlsConnection": "client", "TlsSettings": "client", "connect": "client",
    "ServerTrust": "server_trust",
    "CertificateAuthenticator": "middleware", "WsgiMiddleware": "middleware",
    "AsgiMiddleware": "middleware",
}

if not TYPE_CHECKING:  # hidden from type checkers (see cps/__init__.py)

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module 'cps.tls' has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
