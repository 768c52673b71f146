"""A tiny web application that knows the practitioner by the card's TLS client certificate.

Standard library only on the server side (wsgiref), plus cps. Behind nginx,
which does the TLS with the card and forwards the certificate::

    ssl_verify_client optional;                     # or on
    ssl_client_certificate /etc/nginx/igc-sante-cas.pem;
    location / {
        proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        proxy_pass http://127.0.0.1:8000;
    }

Run it with::

    python docs/examples/tls_app.py --port 8000 --test-pki /tmp/cps-pki

``GET /`` (any path) answers the practitioner as JSON, or the middleware's
refusal: ``{"error": reason, "detail": ...}`` with 401, 403 or 503 (docs/tls.md).
The certificate header is believed only from ``trusted_proxies`` (nginx's
address): from anywhere else it is refused (``untrusted-proxy``, 403).
"""

from __future__ import annotations

import argparse
import json
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Dict, Iterable, List, Sequence
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cps.tls import CertificateAuthenticator, WsgiMiddleware


def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    """The application: it reads only ``environ["cps.practitioner"]``, never the header."""
    practitioner = environ["cps.practitioner"]
    names = (practitioner.first_name, practitioner.last_name)
    body = json.dumps({
        "idnat": practitioner.idnat,
        "name": " ".join(n for n in names if n),
        "first_name": practitioner.first_name,
        "last_name": practitioner.last_name,
        "profession": practitioner.profession_label,
        "profession_code": practitioner.profession_code,
        "validated": practitioner.validated,
        "source": environ["cps.client_certificate"].source,
    }, ensure_ascii=False).encode()
    start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def make_app(validator: Any, *, trusted_proxies: Iterable[str] = ("127.0.0.1",)
             ) -> WsgiMiddleware:
    """The application behind :class:`~cps.tls.WsgiMiddleware` (a certificate required)."""
    authenticator = CertificateAuthenticator(validator, trusted_proxies=trusted_proxies)
    return WsgiMiddleware(app, authenticator)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


def serve(validator: Any, *, host: str = "127.0.0.1", port: int = 0,
          trusted_proxies: Sequence[str] = ("127.0.0.1",)) -> WSGIServer:
    """Start the app (plain HTTP, for a proxy in front) in a background thread;
    returns the server (``server_address``; ``shutdown()`` to stop)."""
    server = make_server(host, port, make_app(validator, trusted_proxies=trusted_proxies),
                         server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:  # pragma: no cover - manual use
    from cps.emulator import TestPKI

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--trusted-proxy", action="append", default=None,
                        help="address or network of the proxy (default 127.0.0.1)")
    # A throwaway demo PKI (test keys only), as in the module docstring.
    parser.add_argument("--test-pki", default="/tmp/cps-pki")  # noqa: S108
    args = parser.parse_args()
    pki = TestPKI.generate(args.test_pki, seed=1)
    server = serve(pki.validator(), host=args.host, port=args.port,
                   trusted_proxies=args.trusted_proxy or ("127.0.0.1",))
    print(f"listening on http://{args.host}:{server.server_address[1]}")
    threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
