"""TLS client authentication with the card (``cps.tls``, issue 16): handshakes per
second, full and resumed, and HTTP requests over a kept connection.

The card is the in-process emulated CPS3 (its RSA-2048 signature of the
CertificateVerify included); the servers are real, on 127.0.0.1:
``openssl s_server`` for the handshakes (one connection at a time; the
handshake alone, closed with close_notify, no request), nginx for the
requests (``/whoami-raw``, which nginx answers itself, and a 1 MiB static
file; keep-alive). Both run TLS 1.2, ECDHE and AES-GCM, and ask for a client
certificate they verify against the test PKI.

Anchors, measured in the same run against the same server:

* **software key**: the same ``cps.tls`` client with a ``Card``-like object
  whose ``authenticate`` signs with the card's RSA-2048 private key (from the
  test PKI) by cryptography: the card's share of a full handshake is the
  difference (here the emulator's: APDUs and its own RSA in-process; a real
  CPS3 takes a few hundred ms to sign).
* **Python's ssl**: the standard library's client (OpenSSL) with that key from
  a PEM file, the same handshakes: the TLS stack's share (tlslite-ng runs the
  handshake in pure Python; only the record protection is OpenSSL's, through
  cryptography's AEADs).
* for requests: ``requests`` with its own urllib3 adapter and
  ``cert=(certfile, keyfile)``: the adapter's overhead per request.

Each figure is the median of the passes; the note gives the slowest and the
fastest pass (one core each side; the server's share is in every figure
alike). The passes of ours and the anchors alternate, so that a burst of load
on the machine weighs on all alike.
"""

from __future__ import annotations

import socket
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .common import Figure, bench_pki

PASSES = 7
FULL_N = 30            # full handshakes per pass (each method)
RESUMED_N = 60         # resumed handshakes per pass
REQUESTS_N = 300       # requests per pass over one kept connection
BIG = 1 << 20          # the large response body
BIG_N = 8              # bodies per pass
HOST = "localhost"


class SoftwareCard:
    """The parts of :class:`cps.card.Card` that ``cps.tls`` uses, with the card's
    authentication key in software (cryptography)."""

    contactless = False

    def __init__(self, key: Any, cert: Any) -> None:
        self._key, self._cert = key, cert

    def certificate(self, role: Any = None) -> Any:
        return self._cert

    def authenticate(self, challenge: bytes, *, hash: Optional[str] = None) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        # tlslite-ng hands a whole DigestInfo: PKCS#1 v1.5 type 1 of it is the
        # standard signature of the digest it ends with
        algorithm = {51: hashes.SHA256(), 67: hashes.SHA384(),
                     83: hashes.SHA512()}[len(challenge)]
        return self._key.sign(challenge[-algorithm.digest_size:], PKCS1v15(),
                              Prehashed(algorithm))

    def check_present(self) -> None:
        pass


#: tlslite-ng's cipher names -> OpenSSL's (ECDHE with an RSA server key)
OPENSSL_NAMES = {"chacha20-poly1305": "ECDHE-RSA-CHACHA20-POLY1305",
                 "aes256gcm": "ECDHE-RSA-AES256-GCM-SHA384",
                 "aes128gcm": "ECDHE-RSA-AES128-GCM-SHA256"}


def _stdlib_context(cipher: str) -> ssl.SSLContext:
    """Python's TLS 1.2 client context, limited to one suite."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    return context


def _cipher_adapter(cipher: str) -> Any:
    """requests' own adapter, whose connections offer only ``cipher``."""
    from requests.adapters import HTTPAdapter

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = _stdlib_context(cipher)
            super().init_poolmanager(*args, **kwargs)

    return Adapter()


def _rates(methods: Dict[str, Callable[[], None]], n: int,
           per: int = 1) -> Dict[str, List[float]]:
    """Operations/s of each method per pass (``n`` calls of ``per`` operations);
    the methods alternate within each pass."""
    for fn in methods.values():
        fn()  # warm-up
    out: Dict[str, List[float]] = {name: [] for name in methods}
    for _ in range(PASSES):
        for name, fn in methods.items():
            start = time.perf_counter()
            for _ in range(n):
                fn()
            out[name].append(n * per / (time.perf_counter() - start))
    return out


def _med(runs: List[float]) -> float:
    return round(statistics.median(runs), 1)


def _spread(runs: List[float]) -> str:
    return f"passes {_fmt(min(runs))}–{_fmt(max(runs))}"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def run() -> List[Figure]:
    import requests
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    import cps
    from cps.emulator import EmulatedCard
    from cps.testing.tlspeers import Nginx, OpensslServer
    from cps.tls import CardHTTPAdapter, ServerTrust, connect
    from cps.tls.client import SessionCache

    pki = bench_pki()
    creds = pki.issue_card("cps3-medecin")
    server = pki.issue_server((HOST, "127.0.0.1"))
    client_ca = pki.anchors() + list(pki.intermediates.values())
    trust = ServerTrust([server.root])
    emu = EmulatedCard.from_profile("cps3-medecin", pki=pki)
    soft = SoftwareCard(creds.auth_key, creds.auth_cert)

    with tempfile.TemporaryDirectory(prefix="cps-bench-tls-") as tmp:
        d = Path(tmp)
        root_pem = d / "root.pem"
        root_pem.write_bytes(server.root.public_bytes(Encoding.PEM))
        cert_pem, key_pem = d / "client.pem", d / "client.key"
        cert_pem.write_bytes(creds.auth_cert.public_bytes(Encoding.PEM))
        key_pem.write_bytes(creds.auth_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        (d / "www").mkdir()
        big_path = d / "www" / "1m.bin"
        big_path.write_bytes(bytes(range(256)) * (BIG // 256))

        card = cps.open_card(connection=emu.connection())
        try:
            card.verify_pin(emu.pin)
            with OpensslServer(server, client_ca, directory=d / "s_server") as peer:
                port = peer.port
                fresh = SessionCache()
                # the anchors use the suite ours negotiates (tlslite-ng offers
                # ChaCha20-Poly1305 first whatever the settings' order)
                probe = connect(soft, HOST, port, trust=trust, sessions=fresh, resume=False)
                negotiated = probe.info.cipher
                probe.close()
                context = _stdlib_context(OPENSSL_NAMES[negotiated])
                context.load_verify_locations(root_pem)
                context.load_cert_chain(cert_pem, key_pem)

                def stdlib_socket() -> socket.socket:
                    raw = socket.create_connection((HOST, port))
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as ours
                    return raw

                def ours_full(who: Any) -> Callable[[], None]:
                    def go() -> None:
                        conn = connect(who, HOST, port, trust=trust, sessions=fresh,
                                       resume=False)
                        assert not conn.info.resumed and conn.info.signature_scheme  # noqa: S101
                        conn.close()
                    return go

                def stdlib_full() -> None:
                    with stdlib_socket() as raw, \
                            context.wrap_socket(raw, server_hostname=HOST) as tls:
                        tls.unwrap()

                full = _rates({"card": ours_full(card), "software": ours_full(soft),
                               "ssl": stdlib_full}, FULL_N)
                with stdlib_socket() as raw, \
                        context.wrap_socket(raw, server_hostname=HOST) as tls:
                    stdlib_cipher = tls.cipher()[0]
                    tls.unwrap()

                kept = SessionCache()

                def ours_resumed() -> None:
                    conn = connect(card, HOST, port, trust=trust, sessions=kept)
                    conn.close()
                    if not conn.info.resumed:
                        raise RuntimeError("a session was not resumed")

                connect(card, HOST, port, trust=trust, sessions=kept).close()  # the session
                saved: Dict[str, Any] = {}

                def stdlib_resumed() -> None:
                    with stdlib_socket() as raw, \
                            context.wrap_socket(raw, server_hostname=HOST,
                                                session=saved.get("s")) as tls:
                        if "s" in saved:
                            assert tls.session_reused  # noqa: S101
                        saved["s"] = tls.session
                        tls.unwrap()

                stdlib_resumed()
                resumed = _rates({"card": ours_resumed, "ssl": stdlib_resumed}, RESUMED_N)

            # nginx: keep-alive, /whoami-raw answered by nginx itself, a 1 MiB file
            extra = ("        keepalive_requests 1000000;\n"
                     f"        location = /1m {{ alias {big_path}; "
                     "default_type application/octet-stream; }")
            with Nginx(server, client_ca, extra_server=extra, directory=d / "nginx") as nginx:
                small_url = f"https://{HOST}:{nginx.port}/whoami-raw"
                big_url = f"https://{HOST}:{nginx.port}/1m"
                adapter = CardHTTPAdapter(card)
                ours = requests.Session()
                ours.mount("https://", adapter)
                theirs = requests.Session()
                theirs.mount("https://", _cipher_adapter(OPENSSL_NAMES[negotiated]))
                theirs.cert = (str(cert_pem), str(key_pem))
                # verify= on each request: a session's own would lose to
                # REQUESTS_CA_BUNDLE (requests' merge_environment_settings)
                verify = str(root_pem)
                for s in (ours, theirs):
                    answer = s.get(small_url, verify=verify)
                    assert answer.status_code == 200 and "TLSv1.2" in answer.text  # noqa: S101
                    assert len(s.get(big_url, verify=verify).content) == BIG  # noqa: S101

                def getter(s: requests.Session, url: str, size: int) -> Callable[[], None]:
                    def go() -> None:
                        r = s.get(url, verify=verify)
                        if r.status_code != 200 or len(r.content) != size:
                            raise RuntimeError(f"{url}: {r.status_code}, {len(r.content)} B")
                    return go

                small = len(theirs.get(small_url, verify=verify).content)
                reqs = _rates({"card": getter(ours, small_url, small),
                               "requests": getter(theirs, small_url, small)}, REQUESTS_N)
                big = _rates({"card": getter(ours, big_url, BIG),
                              "requests": getter(theirs, big_url, BIG)}, BIG_N, per=BIG)
                handshakes = len(adapter.handshakes)
                nginx_cipher = adapter.handshakes[0].cipher
                ours.close()
                theirs.close()
        finally:
            card.close()

    big_mb = {k: [v / 1e6 for v in runs] for k, runs in big.items()}
    setting = (f"TLS 1.2, {negotiated} (Python's ssl: {stdlib_cipher}; with nginx: "
               f"{nginx_cipher}), {PASSES} passes, median; ")
    return [
        Figure("full handshakes (client certificate, card signs), no resumption",
               "handshakes/s", _med(full["card"]),
               {"same client, software key (cryptography)": _med(full["software"]),
                "Python's ssl, software key (PEM)": _med(full["ssl"])},
               better="higher",
               note=setting + f"{FULL_N} handshakes per pass against openssl s_server; "
                    f"ours {_spread(full['card'])}, software key "
                    f"{_spread(full['software'])}, Python's ssl {_spread(full['ssl'])}"),
        Figure("resumed handshakes (SessionCache, no card signature)", "handshakes/s",
               _med(resumed["card"]),
               {"Python's ssl, session resumed": _med(resumed["ssl"]),
                "full handshakes, card (above)": _med(full["card"])},
               better="higher",
               note=setting + f"{RESUMED_N} per pass against openssl s_server (session "
                    f"IDs, no tickets); ours {_spread(resumed['card'])}, Python's ssl "
                    f"{_spread(resumed['ssl'])}"),
        Figure("requests over a kept connection (requests + CardHTTPAdapter)",
               "requests/s", _med(reqs["card"]),
               {"requests' own adapter, cert=(certfile, keyfile)": _med(reqs["requests"])},
               better="higher",
               note=setting + f"{REQUESTS_N} GET per pass of nginx's /whoami-raw "
                    f"({small} B), keep-alive; {handshakes} handshake(s) in all for "
                    f"the card adapter; ours {_spread(reqs['card'])}, requests' "
                    f"{_spread(reqs['requests'])}"),
        Figure("1 MiB response body over a kept connection (requests + CardHTTPAdapter)",
               "MB/s", _med(big_mb["card"]),
               {"requests' own adapter, cert=(certfile, keyfile)": _med(big_mb["requests"])},
               better="higher",
               note=setting + f"{BIG_N} GET of a 1 MiB static file per pass (nginx); "
                    f"ours {_spread(big_mb['card'])}, requests' "
                    f"{_spread(big_mb['requests'])}"),
    ]


if __name__ == "__main__":  # pragma: no cover - a run that writes nothing
    for fig in run():
        print(f"{fig.name}: {fig.ours} {fig.unit}  anchors: {fig.anchors}\n  {fig.note}")
