"""`cps doctor`'s revocation-sources check: real servers on 127.0.0.1, one per way to fail.

The TEST PKI's HTTP server (CRLs, OCSP, CA certificates), a real slapd for the
LDAP deltas, and small socket servers of this file for the rest: a port nobody
listens on, a listener that never answers, a captive portal answering HTML, a
server that would send a CRL forever. Certificates are issued by the TEST PKI's
CAs with the URLs under test. No PC/SC here, except the last test (marked).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from cps.card import KeyRole
from cps.diagnostics import CHECKS, Report
from cps.diagnostics.reachability import (
    PEEK_BYTES,
    Probe,
    Source,
    _check_revocation_sources,
    judge_sources,
    network_advice,
    probe_sources,
    revocation_sources,
)
from cps.diagnostics.report import _State
from cps.testing.serving import QuietHttpServer

CPS = str(Path(sys.executable).with_name("cps"))
SOURCE_KEYS = {"url", "kind", "protocol", "host", "port", "result", "elapsed", "detail", "via",
               "http_status", "content_type", "certificates"}


# --------------------------------------------------------------------------- servers
class _Handler(BaseHTTPRequestHandler):
    """A captive portal (``mode="html"``) or a CRL that never ends (``"endless"``)."""

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "html":
            page = b"<!DOCTYPE html><html><body>Please sign in to the Wi-Fi</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-crl")
        self.end_headers()
        try:
            self.wfile.write(b"\x30\x84\x7f\xff\xff\xff")
            while not self.server.stopping.is_set():  # type: ignore[attr-defined]
                self.wfile.write(b"\x00" * 65536)
        except OSError:
            self.server.hung_up.set()  # type: ignore[attr-defined]

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(mode: str) -> Iterator[Any]:
    httpd = QuietHttpServer(("127.0.0.1", 0), _Handler)
    httpd.mode, httpd.seen = mode, []
    httpd.stopping, httpd.hung_up = threading.Event(), threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def portal() -> Iterator[Any]:
    yield from _serve("html")


@pytest.fixture
def endless() -> Iterator[Any]:
    yield from _serve("endless")


@pytest.fixture
def banner_port() -> Iterator[int]:
    """A server of another protocol (an SSH-like banner, then it hangs up)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)

        def serve() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

        threading.Thread(target=serve, daemon=True).start()
        yield sock.getsockname()[1]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound (so nobody takes it) but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts (the kernel does) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Tuple[Any, Any]]:
    from cps.testing.pkiserver import serve_test_pki

    with serve_test_pki(tmp_path_factory.mktemp("reach-pki")) as (pki, server):
        yield pki, server


@pytest.fixture(scope="module")
def slapd(cps_pki, tmp_path_factory):
    from cps.testing.slapd import Slapd

    with Slapd.for_test_pki(cps_pki, tmp_path_factory.mktemp("reach-slapd")) as server:
        yield server


# --------------------------------------------------------------------------- helpers
def _leaf(pki: Any, *, crl: Sequence[str] = (), delta: Sequence[str] = (),
          ocsp_urls: Sequence[str] = (), ca_issuers: Sequence[str] = (),
          ca_name: str = "FORT PERSONNES") -> x509.Certificate:
    """A card-like certificate of the TEST PKI naming the given revocation sources."""
    ca = pki.ca(ca_name)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST REACH")]))
               .issuer_name(ca.cert.subject)
               .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=365))
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.cert.public_key()), critical=False))

    def points(urls: Sequence[str]) -> List[x509.DistributionPoint]:
        return [x509.DistributionPoint([x509.UniformResourceIdentifier(u) for u in urls],
                                       None, None, None)]

    if crl:
        builder = builder.add_extension(x509.CRLDistributionPoints(points(crl)), critical=False)
    if delta:
        builder = builder.add_extension(x509.FreshestCRL(points(delta)), critical=False)
    access = [x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                     x509.UniformResourceIdentifier(u)) for u in ocsp_urls]
    access += [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                      x509.UniformResourceIdentifier(u)) for u in ca_issuers]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _state(pki: Any, *certs: x509.Certificate, online: bool = True,
           crls: Sequence[Any] = ()) -> _State:
    st = _State(reader=None, module=None, anchors=pki.trust_store(), crls=tuple(crls),
                online=online, at=dt.datetime.now(dt.timezone.utc))
    for role, cert in zip((KeyRole.AUTH, KeyRole.SIGN), certs, strict=False):
        st.certs[role] = cert
    return st


def _by_url(check: Any) -> Dict[str, Dict[str, Any]]:
    return {s["url"]: s for s in check.data["sources"]}


def _source(url: str, kind: str = "crl") -> Source:
    sources, _ = revocation_sources([])
    assert sources == []
    from cps.diagnostics.reachability import _source as make

    return make(url, kind, ("the auth certificate",))


# --------------------------------------------------------------------------- the sources
def test_the_sources_a_card_certificate_names(served):
    pki, server = served
    card = pki.issue_card("cps3-medecin").auth_cert
    issuer = pki.ca("FORT PERSONNES")
    sources, by_cert = revocation_sources([("the auth certificate", card),
                                           ("TEST AC IGC-SANTE FORT PERSONNES", issuer.cert)])
    kinds = {s.url: s.kind for s in sources}
    assert kinds == {issuer.crl_url: "crl", issuer.delta_crl_url: "delta",
                     f"{pki.base_url}/ocsp": "ocsp", issuer.cert_url: "ca-issuers",
                     pki.ca("FORT").crl_url: "crl"}
    assert all((s.protocol, s.host, s.port) == ("http", "127.0.0.1", server.port)
               for s in sources)
    # the intermediate's own revocation is its root's CRL
    assert by_cert["TEST AC IGC-SANTE FORT PERSONNES"] == [(pki.ca("FORT").crl_url, "crl")]
    ldap = Source("ldap://annuaire-igc.esante.gouv.fr/CN=X?deltaRevocationList;binary",
                  "delta", "ldap", "annuaire-igc.esante.gouv.fr", 389)
    assert _source(ldap.url, "delta") == Source(ldap.url, "delta", "ldap", ldap.host, 389,
                                                ("the auth certificate",))
    assert ldap.endpoint == "annuaire-igc.esante.gouv.fr:389"


# --------------------------------------------------------------------------- the check
def test_every_source_answers(served):
    pki, server = served
    card = pki.issue_card("cps3-medecin")
    server.clear_requests()
    check = _check_revocation_sources(_state(pki, card.auth_cert, card.sign_cert))
    assert check.status == "ok", (check.summary, check.data)
    assert f"127.0.0.1:{server.port}" in check.summary
    sources = check.data["sources"]
    assert {s["kind"] for s in sources} == {"crl", "delta", "ocsp", "ca-issuers"}
    assert all(set(s) == SOURCE_KEYS and s["result"] == "reachable" for s in sources)
    labels = {c["certificate"]: c["covered"] for c in check.data["certificates"]}
    assert labels == {"the auth certificate": True, "the sign certificate": True,
                      "TEST AC IGC-SANTE FORT PERSONNES": True}
    assert json.loads(json.dumps(check.as_dict()))["data"] == check.data
    # the CRLs were asked for their first bytes only; OCSP got a real request for the card
    gets = [r for r in server.requests if r.method == "GET"]
    assert gets and all(r.headers.get("range") == f"bytes=0-{PEEK_BYTES - 1}" for r in gets)
    posts = server.requests_for("/ocsp", "POST")
    assert len(posts) == 1 and posts[0].status == 200
    asked = ocsp.load_der_ocsp_request(posts[0].body)
    assert asked.serial_number in (card.auth_cert.serial_number, card.sign_cert.serial_number)


def test_not_online_connects_to_nothing(served, portal):
    pki, _ = served
    leaf = _leaf(pki, crl=[f"http://127.0.0.1:{portal.server_address[1]}/a.crl"])
    check = _check_revocation_sources(_state(pki, leaf, online=False))
    assert check.status == "skipped" and "--online" in check.summary
    assert portal.seen == []


def test_blocked_ldap_delta_is_a_warning(served, refused_port):
    """IGC-Santé's usual case: LDAP 389 closed by the practice's firewall."""
    pki, server = served
    crl = pki.ca("FORT PERSONNES").crl_url
    delta = f"ldap://127.0.0.1:{refused_port}/CN=TEST?deltaRevocationList;binary?base?" \
            "objectClass=pkiCA"
    leaf = _leaf(pki, crl=[crl], delta=[delta], ocsp_urls=[server.ocsp_url])
    check = _check_revocation_sources(_state(pki, leaf))
    assert check.status == "warn", check.summary
    found = _by_url(check)
    assert found[delta]["result"] == "refused" and found[delta]["protocol"] == "ldap"
    assert found[crl]["result"] == found[server.ocsp_url]["result"] == "reachable"
    assert f"127.0.0.1:{refused_port}" in check.data["blocked"]
    assert "delta" in check.advice and f"127.0.0.1:{refused_port}" in check.advice
    assert f"127.0.0.1:{server.port}" in check.summary      # what still works
    assert all(c["covered"] for c in check.data["certificates"])


def test_no_working_source_fails_with_exit_11(served, refused_port):
    from cps_cli.doctor import exit_code

    pki, _ = served
    dead = f"http://127.0.0.1:{refused_port}/crl/x.crl"
    leaf = _leaf(pki, crl=[dead], ocsp_urls=["http://no-such-ocsp.invalid/"])
    check = _check_revocation_sources(_state(pki, leaf))
    assert check.status == "fail", check.summary
    assert "the auth certificate" in check.summary
    found = _by_url(check)
    assert found[dead]["result"] == "refused"
    assert found["http://no-such-ocsp.invalid/"]["result"] == "dns"
    assert f"127.0.0.1:{refused_port}" in check.advice and "no-such-ocsp.invalid" in check.advice
    report = Report(ok=False, first_failure=check.name, checks=(check,))
    assert exit_code(report) == 11
    # CRL files given with --crl may stand in for the network: a warning then
    lenient = _check_revocation_sources(_state(pki, leaf, crls=[b"not read by this check"]))
    assert lenient.status == "warn" and "--crl" in lenient.summary


def test_a_captive_portal_is_not_a_crl(served, portal):
    pki, _ = served
    url = f"http://127.0.0.1:{portal.server_address[1]}/crl/ACI-FO-PP.crl"
    check = _check_revocation_sources(_state(pki, _leaf(pki, crl=[url])))
    assert check.status == "fail"
    source = _by_url(check)[url]
    assert source["result"] == "html" and source["http_status"] == 200
    assert source["content_type"].startswith("text/html")
    assert "captive portal" in check.advice


def test_redirects_are_followed_to_what_they_serve(served, portal):
    """A CRL moved elsewhere on the server is served; a redirect to a portal is not."""
    pki, server = served
    moved = f"{pki.base_url}/crl/moved.crl"
    try:
        server.faults.match, server.faults.redirect = "/crl/moved", pki.ca("FORT").crl_url
        (probe,) = probe_sources([_source(moved)], proxies={})
        assert probe.result == "reachable" and probe.http_status == 200
        server.faults.redirect = f"http://127.0.0.1:{portal.server_address[1]}/login"
        (probe,) = probe_sources([_source(moved)], proxies={})
        assert probe.result == "html"
        assert portal.seen[-1][1] == "/login"
    finally:
        server.faults.reset()


# --------------------------------------------------------------------------- probing
def test_each_failure_is_told_apart(served, slapd, cps_pki, portal, refused_port, silent_port,
                                    banner_port):
    pki, server = served
    html = portal.server_address[1]
    cases = {
        pki.ca("FORT PERSONNES").crl_url: "reachable",
        server.ocsp_url: "reachable",
        slapd.crl_url(cps_pki, "FORT PERSONNES", delta=True): "reachable",
        f"http://127.0.0.1:{refused_port}/a.crl": "refused",
        f"ldap://127.0.0.1:{refused_port}/CN=X?deltaRevocationList;binary": "refused",
        f"http://127.0.0.1:{silent_port}/a.crl": "timeout",
        f"ldap://127.0.0.1:{silent_port}/CN=X?deltaRevocationList;binary": "timeout",
        f"http://127.0.0.1:{html}/a.crl": "html",
        f"ldap://127.0.0.1:{banner_port}/CN=X?deltaRevocationList;binary": "not-ldap",
        f"http://127.0.0.1:{banner_port}/a.crl": "not-http",
        f"http://127.0.0.1:{server.port}/crl/none.crl": "http-status",
        "http://no-such-host.invalid/a.crl": "dns",
        f"https://127.0.0.1:{server.port}/crl/a.crl": "tls",      # plain HTTP on that port
        "ftp://127.0.0.1/a.crl": "unsupported",
    }
    sources = [_source(url, "ocsp" if url == server.ocsp_url else "crl") for url in cases]
    server.clear_requests()
    began = time.monotonic()
    probes = probe_sources(sources, timeout=1.0, deadline=3.0, proxies={})
    took = time.monotonic() - began
    assert {p.source.url: p.result for p in probes} == cases
    assert took < 3.0 + 2.0      # bounded: the silent listeners did not hold the check
    answered = {p.source.url: p for p in probes}
    assert answered[f"http://127.0.0.1:{server.port}/crl/none.crl"].http_status == 404
    assert "bind accepted" in answered[slapd.crl_url(cps_pki, "FORT PERSONNES",
                                                     delta=True)].detail
    # no issuer known: a well-formed OCSP request all the same, answered "unauthorized"
    (post,) = server.requests_for("/ocsp", "POST")
    assert ocsp.load_der_ocsp_request(post.body).serial_number == 1
    assert answered[server.ocsp_url].content_type == "application/ocsp-response"


def test_a_crl_that_never_ends_is_not_downloaded(endless):
    url = f"http://127.0.0.1:{endless.server_address[1]}/big.crl"
    (probe,) = probe_sources([_source(url)], timeout=5.0, deadline=8.0, proxies={})
    assert probe.result == "reachable" and "CRL is served" in probe.detail
    assert endless.hung_up.wait(5)      # we hung up after the first bytes


def test_proxies(portal, refused_port):
    url = "http://igc-sante.example/CRL/ACI-FO-PP.crl"
    dead = {"http": f"http://user:secret@127.0.0.1:{refused_port}"}
    (probe,) = probe_sources([_source(url)], timeout=1.0, deadline=3.0, proxies=dead)
    assert probe.result == "refused" and probe.via == f"127.0.0.1:{refused_port}"
    assert "secret" not in json.dumps(probe.as_dict())
    # a proxy answering its own HTML page: the request went to it, for the full URL
    html = {"http": f"http://127.0.0.1:{portal.server_address[1]}"}
    (probe,) = probe_sources([_source(url)], timeout=1.0, deadline=3.0, proxies=html)
    assert probe.result == "html" and probe.via == f"127.0.0.1:{portal.server_address[1]}"
    assert portal.seen[-1][1] == url
    # no_proxy wins
    bypass = dict(dead, no="igc-sante.example")
    (probe,) = probe_sources([_source(url)], timeout=1.0, deadline=3.0, proxies=bypass)
    assert probe.via is None and probe.result == "dns"


def test_the_total_deadline_wins(silent_port, refused_port):
    """A probe still running at the check's deadline is a timeout, and the call returns."""
    from cps.diagnostics.reachability import MAX_SOURCES

    began = time.monotonic()
    (probe,) = probe_sources([_source(f"http://127.0.0.1:{silent_port}/a.crl")], timeout=30.0,
                             deadline=1.0, proxies={})
    assert time.monotonic() - began < 1.0 + 2.0
    assert probe.result == "timeout" and "check's 1 s" in probe.detail
    # the card names too many sources: the extra ones are not probed, and count for nothing
    many = [_source(f"http://127.0.0.1:{refused_port}/{i}.crl") for i in range(MAX_SOURCES + 1)]
    probes = probe_sources(many, timeout=1.0, deadline=3.0, proxies={})
    assert [p.result for p in probes] == ["refused"] * MAX_SOURCES + ["skipped"]


def test_bad_bounds():
    with pytest.raises(ValueError):
        probe_sources([], timeout=0)


# --------------------------------------------------------------------------- verdicts, advice
def _probe(url: str, kind: str, result: str) -> Probe:
    return Probe(_source(url, kind), result, 0.1, "detail")


LDAP_URL = "ldap://annuaire-igc.esante.gouv.fr/CN=AC?deltaRevocationList;binary"
CRL_URL = "http://igc-sante.esante.gouv.fr/CRL/ACI-FO-PP.crl"
OCSP_URL = "http://ocsp.esante.gouv.fr"


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_advice_is_for_the_platform(platform):
    blocked = [_probe(CRL_URL, "crl", "timeout"), _probe(LDAP_URL, "delta", "refused")]
    advice = network_advice(blocked, platform=platform)
    assert "igc-sante.esante.gouv.fr:80" in advice
    assert "annuaire-igc.esante.gouv.fr:389" in advice and "delta" in advice
    assert "systemctl" not in advice and "apt " not in advice
    if platform == "win32":
        assert "netsh winhttp show proxy" in advice and "http_proxy" not in advice
    else:
        assert "http_proxy" in advice and "netsh" not in advice
    if platform == "darwin":
        assert "System Settings" in advice


def test_verdicts():
    by_cert = {"the auth certificate": [(CRL_URL, "crl"), (LDAP_URL, "delta"),
                                        (OCSP_URL, "ocsp")]}
    every = [_probe(CRL_URL, "crl", "reachable"), _probe(LDAP_URL, "delta", "reachable"),
             _probe(OCSP_URL, "ocsp", "reachable")]
    assert judge_sources(every, by_cert).status == "ok"
    only_ocsp = [_probe(CRL_URL, "crl", "timeout"), _probe(LDAP_URL, "delta", "timeout"),
                 _probe(OCSP_URL, "ocsp", "reachable")]
    check = judge_sources(only_ocsp, by_cert, platform="linux")
    assert check.status == "warn" and "ocsp.esante.gouv.fr:80" in check.summary
    nothing = [_probe(CRL_URL, "crl", "timeout"), _probe(LDAP_URL, "delta", "reachable"),
               _probe(OCSP_URL, "ocsp", "dns")]
    assert judge_sources(nothing, by_cert).status == "fail"   # a delta alone decides nothing
    assert judge_sources([], {}).status == "warn"
    odd = [_probe("ftp://x/a.crl", "crl", "unsupported"), _probe(CRL_URL, "crl", "reachable")]
    assert judge_sources(odd, {"c": [("ftp://x/a.crl", "crl"), (CRL_URL, "crl")]}).status == "ok"


# --------------------------------------------------------------------------- through the CLI
def _cli(args: List[str], env: Dict[str, str]) -> Tuple[int, Any]:
    done = subprocess.run([CPS, "doctor", "--json", *args], capture_output=True, text=True,  # noqa: S603
                          env=dict(os.environ, **env), timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_cli_json_lists_the_check_in_its_place(tmp_path):
    """Without PC/SC (a socket that does not exist) the walk stops first: the check is
    in the report, in its place, skipped."""
    code, data = _cli(["--online"], {"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd")})
    assert code == 3 and data["exit_code"] == 3
    assert [c["name"] for c in data["checks"]] == list(CHECKS)
    assert CHECKS.index("certificates") < CHECKS.index("revocation-sources") \
        < CHECKS.index("chain")
    check = next(c for c in data["checks"] if c["name"] == "revocation-sources")
    assert check["title"] == "Revocation sources" and check["status"] == "skipped"
    assert check["data"] == {"after": "pcsc-service"}


@pytest.mark.pcsc
def test_cli_json_with_a_card_online(cps_vpcd_card, cps_pki):
    """The emulated card's certificates name http://127.0.0.1:18080 (the TEST PKI's
    default base URL): the report lists every source, and fails when none answers."""
    env = {"CPS_TEST_PKI_DIR": str(cps_pki.directory)}
    code, data = _cli(["-r", cps_vpcd_card.attachment.reader_name, "--anchors", "test",
                       "--online"], env)
    check = next(c for c in data["checks"] if c["name"] == "revocation-sources")
    sources = check["data"]["sources"]
    assert sources and all(set(s) == SOURCE_KEYS for s in sources)
    assert {s["kind"] for s in sources} == {"crl", "delta", "ocsp", "ca-issuers"}
    assert {(s["protocol"], s["host"], s["port"]) for s in sources} == \
        {("http", "127.0.0.1", 18080)}
    assert all(isinstance(s["elapsed"], float) and s["elapsed"] >= 0 for s in sources)
    if all(s["result"] != "reachable" for s in sources):
        assert check["status"] == "fail" and code == 11
        assert data["first_failure"] == "revocation-sources"
        assert "127.0.0.1:18080" in check["advice"]


# --------------------------------------------------------------------------- hostile peers
@pytest.fixture
def raw_server() -> Iterator[Any]:
    """A TCP server answering each connection with ``behave(conn)`` (set by the test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        box: Dict[str, Any] = {"hits": 0, "behave": None, "stop": threading.Event()}

        def serve() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return

                def one(conn: socket.socket = conn) -> None:
                    with conn:
                        box["hits"] += 1
                        try:
                            conn.recv(4096)
                            box["behave"](conn)
                        except OSError:
                            pass

                threading.Thread(target=one, daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        box["port"] = sock.getsockname()[1]
        yield box
        box["stop"].set()


def test_a_server_that_trickles_is_a_timeout(raw_server):
    """The watchdog cut the answer: whatever was read so far, the source timed out."""
    def trickle(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX: " + b"a" * 1000:
            if raw_server["stop"].wait(0.05):
                return
            conn.sendall(bytes([byte]))

    raw_server["behave"] = trickle
    url = f"http://127.0.0.1:{raw_server['port']}/x.crl"
    [probe] = probe_sources([_source(url)], timeout=1.0, proxies={})
    assert probe.result == "timeout", probe


def test_a_redirect_to_an_internal_address_is_refused(raw_server):
    """A source on a public name may not steer the probe to this network's inside
    (loopback, link-local, private addresses): it is refused, nothing is fetched there."""
    target: Dict[str, Any] = {"hits": 0}

    with socket.socket() as inner:
        inner.bind(("127.0.0.1", 0))
        inner.listen(4)

        def serve_inner() -> None:
            try:
                conn, _ = inner.accept()
            except OSError:
                return
            with conn:
                target["hits"] += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n"
                             b"Content-Length: 2\r\n\r\n0\x00")

        threading.Thread(target=serve_inner, daemon=True).start()
        location = f"http://127.0.0.1:{inner.getsockname()[1]}/internal"

        def proxy(conn: socket.socket) -> None:   # the proxy relays the public server's 302
            conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n"
                         "Content-Length: 0\r\n\r\n".encode())

        raw_server["behave"] = proxy
        proxies = {"http": f"http://127.0.0.1:{raw_server['port']}", "no": "127.0.0.1"}
        [probe] = probe_sources([_source("http://crl.example.invalid/x.crl")], timeout=3.0,
                                proxies=proxies)
    assert probe.result == "redirect-refused", probe
    assert "127.0.0.1" in probe.detail
    assert target["hits"] == 0
