"""A tiny web application that logs a practitioner in with a CPS card.

Standard library only on the server side (http.server). Run it with::

    python docs/examples/webapp.py --port 8000 --test-pki /tmp/cps-pki

Routes: GET /challenge -> {"nonce": ...}; POST /login with a token (JSON) ->
sets a session cookie; GET /me -> the practitioner of the session.
The client side (``login()`` below) is what medical software on the
practitioner's workstation does: open the card, verify the PIN, answer.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import urllib.request
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

from cps import errors
from cps.auth import ChallengeIssuer, Verifier

MAX_BODY = 32 * 1024


class App:
    """The server's state: challenges, verifier, sessions."""

    def __init__(self, validator: Any, origin: str) -> None:
        self.origin = origin
        self.issuer = ChallengeIssuer()
        self.verifier = Verifier(validator, self.issuer.store, [origin])
        self.sessions: Dict[str, Dict[str, Any]] = {}
        self.lock = threading.Lock()

    def handler(self) -> type:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _json(self, status: int, body: Dict[str, Any],
                      cookie: Optional[str] = None) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if cookie:
                    self.send_header("Set-Cookie",
                                     f"session={cookie}; HttpOnly; SameSite=Strict; Path=/")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/challenge":
                    challenge = app.issuer.issue()
                    self._json(200, {"nonce": challenge.nonce,
                                     "expires": challenge.expires_at.isoformat()})
                elif self.path == "/me":
                    cookie = SimpleCookie(self.headers.get("Cookie", ""))
                    sid = cookie["session"].value if "session" in cookie else ""
                    with app.lock:
                        who = app.sessions.get(sid)
                    if who is None:
                        self._json(401, {"error": "not logged in"})
                    else:
                        self._json(200, who)
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/login":
                    self._json(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._json(413, {"error": "token too large"})
                    return
                body = self.rfile.read(length)
                try:
                    result = app.verifier.verify(body, app.origin)
                except errors.CpsError as exc:
                    reason = getattr(exc, "reason", type(exc).__name__)
                    self._json(401, {"error": type(exc).__name__, "reason": reason})
                    return
                sid = secrets.token_urlsafe(32)
                who = result.practitioner.to_dict()
                with app.lock:
                    app.sessions[sid] = who
                self._json(200, who, cookie=sid)

        return Handler


def serve(validator: Any, host: str = "127.0.0.1", port: int = 0,
          origin: Optional[str] = None) -> ThreadingHTTPServer:
    """Start the app in a background thread; returns the server (``server_address``)."""
    server = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)
    origin = origin or f"http://{host}:{server.server_address[1]}"
    server.RequestHandlerClass = App(validator, origin).handler()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _http(url: str, timeout: float, data: Optional[bytes] = None,
          headers: Optional[Dict[str, str]] = None) -> Any:
    """urlopen for http(s) URLs only: never file: or custom schemes."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, data=data, headers=headers or {},  # noqa: S310 - checked
                                     method="POST" if data is not None else "GET")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked above


def login(base_url: str, card: Any, pin: str) -> Dict[str, Any]:
    """The client side: challenge, PIN, token, session; returns /me's answer."""
    with _http(f"{base_url}/challenge", timeout=10) as r:
        nonce = json.load(r)["nonce"]
    card.verify_pin(pin)
    token = json.dumps(card.auth_token(nonce, base_url)).encode()
    with _http(f"{base_url}/login", timeout=30, data=token,
               headers={"Content-Type": "application/json"}) as r:
        cookie = r.headers["Set-Cookie"].split(";")[0]
    with _http(f"{base_url}/me", timeout=10, headers={"Cookie": cookie}) as r:
        return json.load(r)


def main() -> None:  # pragma: no cover - manual use
    import cps
    from cps.emulator import EmulatedCard, TestPKI
    from cps.trust import TrustStore, Validator

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    # A throwaway demo PKI (test keys only), as in the module docstring.
    parser.add_argument("--test-pki", default="/tmp/cps-pki")  # noqa: S108
    args = parser.parse_args()
    pki = TestPKI.generate(args.test_pki, seed=1)
    store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
    validator = Validator(store, crls=[pki.crl(n) for n in list(pki.intermediates)
                                       + list(pki.roots)])
    server = serve(validator, port=args.port)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    emu = EmulatedCard.from_profile("cps3-medecin", pki=pki)
    with cps.open_card(connection=emu.connection()) as card:
        print(json.dumps(login(base, card, emu.pin), ensure_ascii=False, indent=2))
    server.shutdown()


if __name__ == "__main__":  # pragma: no cover
    main()
