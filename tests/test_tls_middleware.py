"""cps.tls server side: a client certificate becomes a validated practitioner.

Real parts: the test PKI's cards and CAs, ``cps.tls.wsgi_server.make_server``
(wsgiref + the ``ssl`` module) with a real ``ssl`` client presenting a card's
authentication certificate and (software, TEST-ONLY) key; wsgiref over plain
HTTP on 127.0.0.1 for the proxy header path, the client sending the header as
nginx or Apache would. ASGI: neither hypercorn 0.18 nor uvicorn fills the ASGI
TLS extension (``scope["extensions"]["tls"]``), so the ASGI middleware is
driven by calling it with scopes, ``receive`` and ``send``: the ASGI protocol
itself, without a server.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.client
import importlib.util
import json
import os
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cps import KeyRole
from cps.emulator.pki import TestPKI
from cps.errors import ClientCertificateRefused
from cps.tls import AsgiMiddleware, CertificateAuthenticator, WsgiMiddleware
from cps.tls.middleware import PEER_CERTIFICATE_KEY, ClientCertificate
from cps.tls.wsgi_server import make_server as make_tls_server

PEM = serialization.Encoding.PEM
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "tls_app.py"


# ---------------------------------------------------------------------------- material
def pem_of(cert: x509.Certificate) -> str:
    return cert.public_bytes(PEM).decode()


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def nginx_form(cert: x509.Certificate) -> str:
    """$ssl_client_escaped_cert: the PEM, URL-escaped (newlines as %0A)."""
    return urllib.parse.quote(pem_of(cert), safe="")


def apache_form(cert: x509.Certificate) -> str:
    """SSL_CLIENT_CERT forwarded with RequestHeader: newlines became spaces."""
    return pem_of(cert).strip().replace("\n", " ")


@pytest.fixture(scope="module")
def cards(cps_pki):
    return {name: cps_pki.issue_card(name)
            for name in ("cps3-medecin", "cps3-revoked", "cps3-expired", "cps3-pharmacien")}


@pytest.fixture(scope="module")
def validator(cps_pki, cards):
    return cps_pki.validator()  # after the cards: their revocations are in the CRLs


@pytest.fixture(scope="module")
def medecin(cards):
    return cards["cps3-medecin"]


def self_signed(key_usage_digital_signature: bool = True) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "810100000001")])
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(key_usage_digital_signature, False, False, False,
                                         False, False, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))


def key_agreement_certificate(pki: TestPKI, card) -> tuple:
    """A certificate of the card's CA and subject whose keyUsage is keyAgreement only:
    OpenSSL accepts it for a TLS client (digitalSignature OR keyAgreement), the
    middleware's authentication purpose (digitalSignature) does not."""
    ca = pki.ca(card.issuer)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(card.auth_cert.subject)
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(0x7A11CE)
            .not_valid_before(card.auth_cert.not_valid_before_utc)
            .not_valid_after(card.auth_cert.not_valid_after_utc)
            .add_extension(x509.KeyUsage(False, False, False, False, True, False, False,
                                         False, False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return cert, key


# ---------------------------------------------------------------------------- the app
class Recorder:
    """A WSGI app answering what the middleware gave it; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        p = environ["cps.practitioner"]
        result = environ["cps.client_certificate"]
        validation = environ["cps.validation"]
        refusal = environ["cps.refusal"]
        body = json.dumps({
            "idnat": p.idnat if p else None,
            "validated": p.validated if p else None,
            "source": result.source if result else None,
            "purpose": validation.purpose.value if validation else None,
            "refusal": refusal.reason if refusal else None,
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_app(validator):
    """Start wsgiref (plain HTTP, 127.0.0.1) around a middleware; yields (port, recorder)."""
    servers = []

    def start(**options):
        recorder = Recorder()
        middleware = WsgiMiddleware(recorder, CertificateAuthenticator(validator, **options))
        server = make_server("127.0.0.1", 0, middleware, server_class=_Threading,
                             handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1], recorder

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def http_get(port, headers=None, path="/"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        connection.close()


# ---------------------------------------------------------------------------- (1) real TLS
@pytest.fixture(scope="module")
def tls_files(cps_pki, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls-server")
    files = cps_pki.issue_server(("localhost", "127.0.0.1")).write(directory)
    cas = directory / "client-cas.pem"
    cas.write_bytes(b"".join(c.public_bytes(PEM) for c in
                             [*cps_pki.roots.values(), *cps_pki.intermediates.values()]))
    files["client-cas.pem"] = cas
    return files


@pytest.fixture(scope="module")
def tls_server(tls_files, validator):
    recorder = Recorder()
    server = make_tls_server(WsgiMiddleware(recorder, validator), "127.0.0.1", 0,
                             certfile=tls_files["server.pem"], keyfile=tls_files["server.key"],
                             client_ca=tls_files["client-cas.pem"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], recorder
    server.shutdown()
    server.server_close()


def https_get(port, root, tmp_path, cert=None, key=None):
    """GET / with Python's ssl client, presenting ``cert`` and its ``key`` if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(root)
    if cert is not None:
        cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
        cert_file.write_bytes(cert.public_bytes(PEM))
        key_file.touch(mode=0o600)
        key_file.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context.load_cert_chain(cert_file, key_file)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=20)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        connection.close()


def test_tls_card_certificate_gives_the_validated_practitioner(tls_server, tls_files,
                                                              medecin, tmp_path):
    port, _ = tls_server
    status, _, body = https_get(port, tls_files["root.pem"], tmp_path,
                                medecin.auth_cert, medecin.auth_key)
    assert status == 200
    assert body["idnat"] == medecin.profile.holder.idnat
    assert body["validated"] is True
    assert body["source"] == "tls"
    assert body["purpose"] == KeyRole.AUTH.value


def test_tls_without_certificate_is_401(tls_server, tls_files, tmp_path):
    port, recorder = tls_server
    calls = recorder.calls
    status, content_type, body = https_get(port, tls_files["root.pem"], tmp_path)
    assert (status, content_type) == (401, "application/json")
    assert body["error"] == "no-certificate" and body["detail"]
    assert recorder.calls == calls


def test_tls_revoked_card_is_403(tls_server, tls_files, cards, tmp_path):
    port, recorder = tls_server
    revoked = cards["cps3-revoked"]
    calls = recorder.calls
    status, _, body = https_get(port, tls_files["root.pem"], tmp_path,
                                revoked.auth_cert, revoked.auth_key)
    assert (status, body["error"]) == (403, "certificate-revoked")
    assert recorder.calls == calls


def test_tls_signature_certificate_is_refused_by_the_handshake(tls_server, tls_files,
                                                               medecin, tmp_path):
    """OpenSSL itself refuses a client certificate whose keyUsage is nonRepudiation
    only (its "ssl_client" purpose): no HTTP exchange, the app is never called.
    The middleware's own 403 for a signature certificate is shown over the
    proxy header and the DER key below."""
    port, recorder = tls_server
    calls = recorder.calls
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(port, tls_files["root.pem"], tmp_path, medecin.sign_cert, medecin.sign_key)
    assert recorder.calls == calls


def test_tls_certificate_the_handshake_accepts_but_not_for_authentication_is_403(
        tls_server, tls_files, cps_pki, medecin, tmp_path):
    port, recorder = tls_server
    cert, key = key_agreement_certificate(cps_pki, medecin)
    calls = recorder.calls
    status, _, body = https_get(port, tls_files["root.pem"], tmp_path, cert, key)
    assert (status, body["error"]) == (403, "certificate-purpose")
    assert recorder.calls == calls


def test_tls_server_survives_a_silent_client(tls_files, validator, medecin, tmp_path):
    """A client that connects and says nothing holds only its own thread, for the timeout."""
    import socket

    recorder = Recorder()
    server = make_tls_server(WsgiMiddleware(recorder, validator), "127.0.0.1", 0,
                             certfile=tls_files["server.pem"],
                             keyfile=tls_files["server.key"],
                             client_ca=tls_files["client-cas.pem"], timeout=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        silent = socket.create_connection(server.server_address)
        status, _, body = https_get(server.server_address[1], tls_files["root.pem"], tmp_path,
                                    medecin.auth_cert, medecin.auth_key)
        assert status == 200 and body["idnat"] == medecin.profile.holder.idnat
        silent.settimeout(5)
        assert silent.recv(1) == b""  # closed by the server after its timeout
        silent.close()
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- (2) proxy header
@pytest.mark.parametrize("form", [nginx_form, apache_form,
                                  lambda c: base64.b64encode(der_of(c)).decode()],
                         ids=["nginx-escaped", "apache-spaces", "haproxy-base64-der"])
def test_header_from_a_trusted_proxy_is_accepted(http_app, medecin, form):
    port, _ = http_app(trusted_proxies=("127.0.0.1",))
    status, _, body = http_get(port, {"X-SSL-Client-Cert": form(medecin.auth_cert)})
    assert status == 200
    assert body["idnat"] == medecin.profile.holder.idnat
    assert (body["validated"], body["source"]) == (True, "proxy-header")


def test_trusted_proxies_take_networks_and_a_configured_header(http_app, medecin):
    port, _ = http_app(trusted_proxies=("10.0.0.0/8", "127.0.0.0/30"), header="X-Client-Cert")
    status, _, body = http_get(port, {"X-Client-Cert": nginx_form(medecin.auth_cert)})
    assert status == 200 and body["idnat"] == medecin.profile.holder.idnat


@pytest.mark.parametrize("trusted", [(), ("10.0.0.0/8", "::1")], ids=["none", "others"])
def test_header_from_an_untrusted_address_is_403(http_app, medecin, trusted):
    port, recorder = http_app(trusted_proxies=trusted)
    status, content_type, body = http_get(
        port, {"X-SSL-Client-Cert": nginx_form(medecin.auth_cert)})
    assert (status, content_type, body["error"]) == (403, "application/json", "untrusted-proxy")
    assert recorder.calls == 0


def test_trusted_proxy_without_a_certificate_is_401(http_app):
    port, recorder = http_app(trusted_proxies=("127.0.0.1",))
    for headers in ({}, {"X-SSL-Client-Cert": ""}, {"X-SSL-Client-Cert": "(null)"}):
        status, _, body = http_get(port, headers)
        assert (status, body["error"]) == (401, "no-certificate")
    assert recorder.calls == 0


@pytest.mark.parametrize("profile,reason", [("cps3-revoked", "certificate-revoked"),
                                            ("cps3-expired", "certificate-expired")])
def test_refused_cards_through_the_proxy_are_403(http_app, cards, profile, reason):
    port, _ = http_app(trusted_proxies=("127.0.0.1",))
    status, _, body = http_get(
        port, {"X-SSL-Client-Cert": nginx_form(cards[profile].auth_cert)})
    assert (status, body["error"]) == (403, reason)


def test_signature_certificate_through_the_proxy_is_403(http_app, medecin):
    port, recorder = http_app(trusted_proxies=("127.0.0.1",))
    status, _, body = http_get(port, {"X-SSL-Client-Cert": nginx_form(medecin.sign_cert)})
    assert (status, body["error"]) == (403, "certificate-purpose")
    assert recorder.calls == 0


def test_unknown_ca_through_the_proxy_is_403(http_app):
    port, _ = http_app(trusted_proxies=("127.0.0.1",))
    status, _, body = http_get(port, {"X-SSL-Client-Cert": nginx_form(self_signed())})
    assert (status, body["error"]) == (403, "certificate-untrusted")


def _garbage(medecin):
    escaped = nginx_form(medecin.auth_cert)
    pem = pem_of(medecin.auth_cert)
    body = pem.split("\n")[1:-2]
    return {
        "text": "garbage",
        "bad-escapes": "%ZZ%%41%",
        "armour-only": urllib.parse.quote("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"),
        "no-end": urllib.parse.quote("-----BEGIN CERTIFICATE-----\n" + "\n".join(body)),
        "truncated-body": urllib.parse.quote("-----BEGIN CERTIFICATE-----\n"
                                             + "\n".join(body[: len(body) // 2])
                                             + "\n-----END CERTIFICATE-----\n"),
        "cut-escaped": escaped[: len(escaped) // 2],
        "bad-base64": urllib.parse.quote("-----BEGIN CERTIFICATE-----\n!!!!\n"
                                         "-----END CERTIFICATE-----"),
        "two-certificates": escaped + escaped,
        "joined-headers": escaped + "," + escaped,
        "random-base64": base64.b64encode(os.urandom(300)).decode(),
        "der-of-nothing": base64.b64encode(b"\x30\x84\xff\xff\xff\xff").decode(),
    }


def test_garbage_headers_are_401_typed(http_app, medecin):
    port, recorder = http_app(trusted_proxies=("127.0.0.1",))
    for name, value in _garbage(medecin).items():
        status, content_type, body = http_get(port, {"X-SSL-Client-Cert": value})
        assert (status, content_type, body["error"]) == (
            401, "application/json", "malformed-certificate"), name
    assert recorder.calls == 0


def test_huge_header_is_401_and_bounded(http_app):
    # wsgiref itself refuses header lines over 64 KiB (431): the cap is set lower
    # here to reach the middleware's own limit over HTTP.
    port, _ = http_app(trusted_proxies=("127.0.0.1",), max_header_bytes=16 * 1024)
    started = time.monotonic()
    status, _, body = http_get(port, {"X-SSL-Client-Cert": "A" * (20 * 1024)})
    assert (status, body["error"]) == (401, "malformed-certificate")
    assert "larger than 16384" in body["detail"]
    assert time.monotonic() - started < 5


def test_huge_inputs_are_refused_before_decoding(validator, medecin):
    authenticator = CertificateAuthenticator(validator, trusted_proxies=("127.0.0.1",))
    begin = urllib.parse.quote("-----BEGIN CERTIFICATE-----\n")
    cases = [
        "%41" * (10 * 1024 * 1024),                       # 30 MB of escapes
        begin * 2000,                                     # many armour lines, under 64 KiB
        nginx_form(medecin.auth_cert) * 20,               # a chain in one header
    ]
    for value in cases:
        environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_SSL_CLIENT_CERT": value}
        started = time.monotonic()
        with pytest.raises(ClientCertificateRefused) as info:
            authenticator.authenticate_wsgi(environ)
        assert (info.value.reason, info.value.status) == ("malformed-certificate", 401)
        assert time.monotonic() - started < 1.0


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096))
def test_any_header_bytes_give_a_typed_refusal(validator, data):
    authenticator = CertificateAuthenticator(validator, trusted_proxies=("127.0.0.1",))
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_SSL_CLIENT_CERT": data.decode("latin-1")}
    with pytest.raises(ClientCertificateRefused) as info:
        authenticator.authenticate_wsgi(environ)
    assert info.value.status == 401
    assert info.value.reason in ("no-certificate", "malformed-certificate")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_certificates_are_accepted_intact_or_refused_typed(validator, medecin, data):
    """Flip one byte of a good header: either the very certificate is still read
    (a change in the armour's white space) or a typed refusal, never anything else."""
    good = bytearray(nginx_form(medecin.auth_cert).encode())
    at = data.draw(st.integers(0, len(good) - 1))
    good[at] = data.draw(st.integers(0, 255))
    authenticator = CertificateAuthenticator(validator, trusted_proxies=("127.0.0.1",))
    environ = {"REMOTE_ADDR": "127.0.0.1",
               "HTTP_X_SSL_CLIENT_CERT": good.decode("latin-1")}
    try:
        result = authenticator.authenticate_wsgi(environ)
    except ClientCertificateRefused as refusal:
        assert refusal.status in (401, 403)
    else:
        assert result.certificate_der == der_of(medecin.auth_cert)


# ---------------------------------------------------------------------------- WSGI options
def environ_for(path="/", **extra):
    environ = {"PATH_INFO": path, "REMOTE_ADDR": "192.0.2.10"}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    environ.update(extra)
    return environ


def call_wsgi(app, environ):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], json.loads(body)


def test_peer_certificate_key_and_mod_ssl_environ(validator, medecin):
    app = WsgiMiddleware(Recorder(), validator)
    status, _, body = call_wsgi(app, environ_for(**{PEER_CERTIFICATE_KEY:
                                                    der_of(medecin.auth_cert)}))
    assert status == "200 OK" and body["source"] == "tls"
    environ = environ_for(SSL_CLIENT_CERT=pem_of(medecin.auth_cert),
                          SSL_CLIENT_CERT_CHAIN_0=pem_of(medecin.chain[0]))
    status, _, body = call_wsgi(app, environ)
    assert status == "200 OK" and body["source"] == "ssl-client-cert"
    assert body["idnat"] == medecin.profile.holder.idnat
    status, _, body = call_wsgi(app, environ_for(**{PEER_CERTIFICATE_KEY:
                                                    der_of(medecin.sign_cert)}))
    assert (status, body["error"]) == ("403 Forbidden", "certificate-purpose")


def test_behind_a_trusted_proxy_the_header_is_the_only_source(validator, medecin):
    app = WsgiMiddleware(Recorder(), validator, trusted_proxies=("192.0.2.0/24",))
    environ = environ_for(**{PEER_CERTIFICATE_KEY: der_of(medecin.auth_cert)})
    status, _, body = call_wsgi(app, environ)
    assert (status, body["error"]) == ("401 Unauthorized", "no-certificate")


def test_not_required_lets_only_the_absence_through(validator, cards):
    recorder = Recorder()
    app = WsgiMiddleware(recorder, validator, required=False)
    status, _, body = call_wsgi(app, environ_for())
    assert status == "200 OK"
    assert (body["idnat"], body["refusal"]) == (None, "no-certificate")
    revoked = der_of(cards["cps3-revoked"].auth_cert)
    status, _, body = call_wsgi(app, environ_for(**{PEER_CERTIFICATE_KEY: revoked}))
    assert (status, body["error"]) == ("403 Forbidden", "certificate-revoked")
    forged = nginx_form(cards["cps3-medecin"].auth_cert)
    status, _, body = call_wsgi(app, environ_for(HTTP_X_SSL_CLIENT_CERT=forged))
    assert (status, body["error"]) == ("403 Forbidden", "untrusted-proxy")
    assert recorder.calls == 1


def test_paths_filter(validator):
    app = WsgiMiddleware(Recorder(), validator, paths=("/secure",))
    status, _, body = call_wsgi(app, environ_for("/public/page"))
    assert status == "200 OK" and body["idnat"] is None
    status, _, body = call_wsgi(app, environ_for("/securex"))
    assert status == "200 OK"
    for path in ("/secure", "/secure/x", "/public/../secure/x", "//secure"):
        status, _, body = call_wsgi(app, environ_for(path))
        assert (status, body["error"]) == ("401 Unauthorized", "no-certificate"), path


def test_results_unpack_and_are_frozen(validator, medecin):
    authenticator = CertificateAuthenticator(validator)
    result = authenticator.authenticate_wsgi(
        environ_for(**{PEER_CERTIFICATE_KEY: der_of(medecin.auth_cert)}))
    assert isinstance(result, ClientCertificate)
    practitioner, validation = result
    assert practitioner.validated and practitioner.idnat == medecin.profile.holder.idnat
    assert validation.path_der[0] == der_of(medecin.auth_cert)
    with pytest.raises(AttributeError):
        result.source = "x"


def test_configuration_mistakes_are_caller_errors(validator):
    with pytest.raises(ValueError):
        CertificateAuthenticator(validator, trusted_proxies=("not an address",))
    with pytest.raises(ValueError):
        CertificateAuthenticator(validator, header="X-Cert: evil")
    with pytest.raises(TypeError):
        WsgiMiddleware(Recorder(), CertificateAuthenticator(validator), header="X")


# ---------------------------------------------------------------------------- caching
def test_a_remembered_certificate_is_validated_again(tmp_path):
    """The cache holds what never changes; a revocation after the first request
    refuses the next one, as the Verifier does."""
    pki = TestPKI.generate(tmp_path / "pki", seed=2)
    card = pki.issue_card("cps3-medecin")
    now = dt.datetime.now(dt.timezone.utc)
    clock = [now - dt.timedelta(hours=2)]
    validator = pki.validator(clock[0], clock=lambda: clock[0])  # the validation time
    authenticator = CertificateAuthenticator(validator, known_certificates=1)
    environ = environ_for(**{PEER_CERTIFICATE_KEY: der_of(card.auth_cert)})
    assert authenticator.authenticate_wsgi(environ).practitioner.validated
    assert list(authenticator._known) == [der_of(card.auth_cert)]  # by the DER bytes
    pki.revoke(card.issuer, card.auth_cert.serial_number, now - dt.timedelta(hours=1),
               x509.ReasonFlags.key_compromise)
    validator.add_crl(pki.crl(card.issuer, now))
    clock[0] = now
    with pytest.raises(ClientCertificateRefused) as info:
        authenticator.authenticate_wsgi(environ)
    assert (info.value.reason, info.value.status) == ("certificate-revoked", 403)
    other = pki.issue_card("cps3-pharmacien")
    authenticator.authenticate_wsgi(
        environ_for(**{PEER_CERTIFICATE_KEY: der_of(other.auth_cert)}))
    assert list(authenticator._known) == [der_of(other.auth_cert)]  # bounded: oldest out


def test_revocation_unavailable_is_503(cps_pki, medecin):
    validator = cps_pki.validator(crls=[])  # hard-fail, no CRL at all
    app = WsgiMiddleware(Recorder(), validator)
    status, headers, body = call_wsgi(
        app, environ_for(**{PEER_CERTIFICATE_KEY: der_of(medecin.auth_cert)}))
    assert (status, body["error"]) == ("503 Service Unavailable", "revocation-unavailable")
    assert headers["Content-Type"] == "application/json"


# ---------------------------------------------------------------------------- (3) ASGI
class AsgiRecorder:
    def __init__(self) -> None:
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        if scope["type"] == "http":
            p = scope["cps.practitioner"]
            body = json.dumps({"idnat": p.idnat if p else None}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})


def run_asgi(app, scope):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(client=("192.0.2.10", 50000), headers=(), chain=None, path="/", **extensions):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "https", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": list(headers), "client": list(client),
             "server": ["127.0.0.1", 8443], "extensions": dict(extensions)}
    if chain is not None:
        scope["extensions"]["tls"] = {"client_cert_chain": chain, "client_cert_error": None,
                                      "tls_version": 0x0303, "server_cert": None}
    return scope


def answer(sent):
    start, body = sent[0], sent[1]
    assert start["type"] == "http.response.start"
    return start["status"], dict(start["headers"]), json.loads(body["body"])


def test_asgi_tls_extension_gives_the_practitioner(validator, medecin):
    recorder = AsgiRecorder()
    scope = http_scope(chain=[pem_of(medecin.auth_cert), pem_of(medecin.chain[0])])
    status, _, body = answer(run_asgi(AsgiMiddleware(recorder, validator), scope))
    assert (status, body["idnat"]) == (200, medecin.profile.holder.idnat)
    seen = recorder.scopes[0]
    assert seen["cps.practitioner"].validated
    assert seen["cps.client_certificate"].source == "asgi-tls"
    assert seen["cps.validation"].purpose is KeyRole.AUTH
    assert "cps.practitioner" not in scope  # the scope was copied, not changed


def test_asgi_refusals(validator, medecin, cards):
    recorder = AsgiRecorder()
    app = AsgiMiddleware(recorder, validator, trusted_proxies=("127.0.0.1",))
    header = (b"x-ssl-client-cert", nginx_form(medecin.auth_cert).encode())
    cases = [
        (http_scope(), 401, "no-certificate"),
        (http_scope(chain=[]), 401, "no-certificate"),
        (http_scope(chain=["not a PEM"]), 401, "malformed-certificate"),
        (http_scope(chain=[pem_of(medecin.auth_cert)] * 20), 401, "malformed-certificate"),
        (http_scope(chain=[pem_of(cards["cps3-revoked"].auth_cert)]), 403,
         "certificate-revoked"),
        (http_scope(chain=[pem_of(medecin.sign_cert)]), 403, "certificate-purpose"),
        (http_scope(headers=[header]), 403, "untrusted-proxy"),
        (http_scope(client=("127.0.0.1", 1), headers=[header, header]), 401,
         "malformed-certificate"),
        (http_scope(client=("127.0.0.1", 1), chain=[pem_of(medecin.auth_cert)]), 401,
         "no-certificate"),
    ]
    for scope, status, reason in cases:
        got_status, headers, body = answer(run_asgi(app, scope))
        assert (got_status, body["error"]) == (status, reason), reason
        assert headers[b"content-type"] == b"application/json"
    scope = http_scope(chain=[pem_of(medecin.auth_cert)])
    scope["extensions"]["tls"]["client_cert_error"] = "certificate verify failed"
    status, _, body = answer(run_asgi(app, scope))
    assert (status, body["error"]) == (403, "certificate-invalid")
    assert recorder.scopes == []


def test_asgi_header_from_a_trusted_proxy(validator, medecin):
    app = AsgiMiddleware(AsgiRecorder(), validator, trusted_proxies=("::1", "127.0.0.1"))
    for client in (("127.0.0.1", 1), ("::1", 1), ("::ffff:127.0.0.1", 1)):
        scope = http_scope(client=client, headers=[
            (b"X-SSL-Client-Cert", apache_form(medecin.auth_cert).encode())])
        status, _, body = answer(run_asgi(app, scope))
        assert (status, body["idnat"]) == (200, medecin.profile.holder.idnat), client


def test_asgi_websocket_refusal_and_lifespan(validator, medecin):
    recorder = AsgiRecorder()
    app = AsgiMiddleware(recorder, validator)
    ws = dict(http_scope(), type="websocket")
    sent = run_asgi(app, ws)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "no-certificate"}]
    ws = dict(http_scope(**{"websocket.http.response": {}}), type="websocket")
    sent = run_asgi(app, ws)
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 401
    assert json.loads(sent[1]["body"])["error"] == "no-certificate"
    run_asgi(app, {"type": "lifespan", "asgi": {"version": "3.0"}})
    assert [s["type"] for s in recorder.scopes] == ["lifespan"]
    assert "cps.practitioner" not in recorder.scopes[0]


def test_asgi_not_required_and_paths(validator):
    recorder = AsgiRecorder()
    app = AsgiMiddleware(recorder, validator, required=False)
    status, _, body = answer(run_asgi(app, http_scope()))
    assert (status, body["idnat"]) == (200, None)
    assert recorder.scopes[-1]["cps.refusal"].reason == "no-certificate"
    app = AsgiMiddleware(recorder, validator, paths=["/api"], offload=False)
    assert answer(run_asgi(app, http_scope(path="/index.html")))[0] == 200
    assert answer(run_asgi(app, http_scope(path="/api/records")))[0] == 401


# ---------------------------------------------------------------------------- the example
@pytest.fixture(scope="module")
def tls_app():
    spec = importlib.util.spec_from_file_location("tls_app_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app_behind_a_proxy(tls_app, validator, medecin):
    server = tls_app.serve(validator)
    try:
        port = server.server_address[1]
        status, _, body = http_get(port, {"X-SSL-Client-Cert": nginx_form(medecin.auth_cert)})
        holder = medecin.profile.holder
        assert status == 200
        assert body["idnat"] == holder.idnat and body["validated"] is True
        assert body["name"] == f"{holder.first_name} {holder.last_name}"
        assert body["profession"] == holder.profession_label
        status, _, body = http_get(port)
        assert (status, body["error"]) == (401, "no-certificate")
    finally:
        server.shutdown()
        server.server_close()
    server = tls_app.serve(validator, trusted_proxies=("10.9.8.7",))
    try:
        status, _, body = http_get(server.server_address[1],
                                   {"X-SSL-Client-Cert": nginx_form(medecin.auth_cert)})
        assert (status, body["error"]) == (403, "untrusted-proxy")
    finally:
        server.shutdown()
        server.server_close()
