"""CRLs over LDAP, from a real slapd, as IGC-Santé publishes its delta CRLs.

slapd (Debian package, installed by `make test`) runs on a free port of
127.0.0.1 with the test PKI's CA entries; hostile servers are small sockets
servers of this file. Nothing here may skip.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time

import pytest

from cps import errors
from cps.testing.slapd import Slapd
from cps.trust import ldap
from cps.trust.crlindex import CrlIndex
from cps.trust.fetch import Fetcher
from cps.trust.validate import Validator

IGC_SANTE_DELTA_URL = (  # as written in the freshestCRL of IGC-Santé certificates
    "ldap://annuaire-igc.esante.gouv.fr/CN=AC%20RACINE%20IGC-SANTE%20STANDARD,OU=IGC-SANTE,"
    "OU=0002%20187512751,O=ASIP-SANTE,C=FR?deltarevocationlist;binary?base?objectClass=pkiCA")


@pytest.fixture(scope="module")
def at(cps_pki):
    return cps_pki.reference_time + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def slapd(cps_pki, at, tmp_path_factory):
    with Slapd.for_test_pki(cps_pki, tmp_path_factory.mktemp("slapd"), at=at) as server:
        yield server


def test_the_igc_sante_url_shape():
    query = ldap.parse_ldap_url(IGC_SANTE_DELTA_URL)
    assert (query.host, query.port) == ("annuaire-igc.esante.gouv.fr", 389)
    assert query.dn == ("CN=AC RACINE IGC-SANTE STANDARD,OU=IGC-SANTE,OU=0002 187512751,"
                        "O=ASIP-SANTE,C=FR")
    assert query.attribute == "deltarevocationlist;binary"
    # (objectClass=pkiCA) as an equalityMatch [3] { "objectClass", "pkiCA" }
    assert query.filter == bytes.fromhex("a314040b6f626a656374436c6173730405706b694341")
    assert ldap.parse_ldap_url("ldap://h:1389/cn=x?a?base?(cn=*)").filter == b"\x87\x02cn"
    assert ldap.parse_ldap_url("ldap://h/cn=x?a").filter == b"\x87\x0bobjectClass"


@pytest.mark.parametrize("url", [
    "ldap:///cn=x?a",                       # no host
    "ldap://h/cn=x",                        # no attribute
    "ldap://h/cn=x?a,b",                    # two attributes
    "ldap://h/cn=x?a?sub",                  # not a base-object search
    "ldap://h/cn=x?a?base?(&(a=b)(c=d))",   # compound filter
    "ldap://h/cn=x?a?base?cn=a*b",          # substrings
    "ldap://h/cn=x?a?base?cn=\\zz",         # bad escape
    "ldap://h/cn=x?a?base?cn=\\ 1",         # not two hex digits
    "ldap://h/cn=x?a?base?cn=a\\1",         # cut short
    "ldap://h/cn=x?a?base??!bindname=x",    # critical extension
    "ldap://h:99999/cn=x?a",                # port out of range
])
def test_urls_this_client_refuses(url):
    with pytest.raises(errors.RevocationUnavailable) as info:
        ldap.parse_ldap_url(url)
    assert info.value.reason == "bad-url"


def test_complete_and_delta_crls_from_slapd(slapd, cps_pki, at, tmp_path):
    store = cps_pki.trust_store()
    fetcher = Fetcher(cache_dir=tmp_path / "cache", timeout=5, clock=lambda: at,
                      verify_crl=Validator(store, revocation="off").verify_crl)
    for delta in (False, True):
        url = slapd.crl_url(cps_pki, "FORT PERSONNES", delta=delta)
        result = fetcher.fetch_crl(url)
        assert result.der == cps_pki.crl("FORT PERSONNES", at=at, delta=delta)
        assert not result.from_cache and result.next_update is not None
        assert CrlIndex.load(result.der).is_delta is delta
        again = fetcher.fetch_crl(url)     # current: no second search
        assert again.from_cache and again.der == result.der


def test_delta_crl_over_ldap_revokes(slapd, cps_pki, at):
    """IGC-Santé's case: yesterday's complete CRL, today's delta on LDAP only.

    The card was revoked twelve hours ago: only the delta knows. The complete
    CRL's freshestCRL names the LDAP URL, and the validator fetches it there.
    """
    store = cps_pki.trust_store()
    base = cps_pki.delta_base_time
    completes = [cps_pki.crl(n, at=base, next_update=dt.timedelta(days=7),
                             freshest_crl_url=slapd.crl_url(cps_pki, n, delta=True))
                 for n in cps_pki.intermediates] + \
                [cps_pki.crl(n, at=base, next_update=dt.timedelta(days=7))
                 for n in cps_pki.roots]
    revoked = cps_pki.issue_card("cps3-revoked-recent").auth_cert
    good = cps_pki.issue_card("cps3-medecin").auth_cert

    online = Validator(store, crls=completes, fetcher=Fetcher(timeout=5))
    with pytest.raises(errors.CertificateRevoked) as info:
        online.validate(revoked, at=at)
    assert info.value.revocation_reason == "superseded"
    assert online.validate(good, at=at).revocation[0].status == "good"
    # the same complete CRLs without the LDAP delta: the revocation goes unseen
    offline = Validator(store, crls=completes)
    assert offline.validate(revoked, at=at).revocation[0].status == "good"


def test_directory_answers_that_are_errors(slapd, cps_pki, tmp_path):
    fetcher = Fetcher(timeout=5)
    dn = cps_pki.ca("FORT PERSONNES").cert.subject.rfc4514_string()
    with pytest.raises(errors.RevocationUnavailable) as info:
        fetcher.fetch_crl(slapd.url("CN=NO SUCH CA,C=FR", "certificateRevocationList;binary"))
    assert info.value.reason == "ldap-error:32"           # noSuchObject
    with pytest.raises(errors.RevocationUnavailable) as info:
        fetcher.fetch_crl(slapd.url(dn, "authorityRevocationList;binary"))
    assert info.value.reason == "not-found"
    with pytest.raises(errors.RevocationUnavailable) as info:
        fetcher.fetch_crl(slapd.url(dn, "certificateRevocationList;binary", "country"))
    assert info.value.reason == "not-found"               # the filter matches nothing
    with pytest.raises(errors.RevocationUnavailable) as info:
        Fetcher(timeout=5, max_bytes=100).fetch_crl(
            slapd.crl_url(cps_pki, "FORT PERSONNES"))
    assert info.value.reason == "too-large"
    with socket.socket() as probe:   # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(errors.RevocationUnavailable) as info:
        fetcher.fetch_crl(f"ldap://127.0.0.1:{closed}/{dn}?certificateRevocationList;binary")
    assert info.value.reason == "unreachable"


# --------------------------------------------------------------------------- hostile servers
def _server(answer):
    """A one-connection TCP server on 127.0.0.1 running ``answer(conn)``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            try:
                answer(conn)
            except OSError:
                pass
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return f"ldap://127.0.0.1:{listener.getsockname()[1]}/cn=x,c=FR?certificateRevocationList"


def _bind_ok() -> bytes:
    return bytes.fromhex("300c02010161070a010004000400")


def _notice_of_disconnection() -> bytes:
    # messageID 0, ExtendedResponse [APPLICATION 24] { unavailable (52), "", text }
    text = b"not today, sorry."
    op = b"\x0a\x01\x34\x04\x00\x04" + bytes([len(text)]) + text
    body = b"\x02\x01\x00\x78" + bytes([len(op)]) + op
    return b"\x30" + bytes([len(body)]) + body


def test_a_server_dripping_bytes_is_cut_at_the_deadline():
    def drip(conn):
        conn.recv(4096)
        for byte in _bind_ok() + b"\x30\x84\x00\x00\x10\x00":
            conn.sendall(bytes([byte]))
            time.sleep(0.3)
        time.sleep(10)

    start = time.monotonic()
    with pytest.raises(errors.RevocationUnavailable) as info:
        Fetcher(timeout=1, deadline=2).fetch_crl(_server(drip))
    assert info.value.reason == "timeout"
    assert time.monotonic() - start < 4


def test_a_server_announcing_a_huge_answer_is_not_read():
    def huge(conn):
        conn.recv(4096)
        conn.sendall(_bind_ok() + b"\x30\x84\x7f\xff\xff\xff")
        time.sleep(2)

    with pytest.raises(errors.RevocationUnavailable) as info:
        Fetcher(timeout=2, max_bytes=1_000_000).fetch_crl(_server(huge))
    assert info.value.reason == "too-large"


@pytest.mark.parametrize("answer, reason", [
    (b"HTTP/1.1 200 OK\r\n\r\n", "malformed"),
    (bytes.fromhex("3003020101"), "malformed"),                          # no operation
    (bytes.fromhex("300c02010161070a013104000400"), "ldap-error:49"),    # bind refused
    (bytes.fromhex("300c02010561070a010004000400"), "malformed"),        # unasked id
    (_bind_ok() + bytes.fromhex("3080"), "malformed"),                    # indefinite length
    (_bind_ok() + bytes.fromhex("30070201026402"), "unreachable"),       # cut short
    (_bind_ok() + _notice_of_disconnection(), "unreachable"),
])
def test_answers_that_are_not_what_was_asked(answer, reason):
    def reply(conn):
        conn.recv(4096)
        conn.sendall(answer)

    with pytest.raises(errors.RevocationUnavailable) as info:
        Fetcher(timeout=2).fetch_crl(_server(reply))
    assert info.value.reason == reason


def test_a_host_name_that_cannot_exist():
    # a 64-character label makes the IDNA codec raise UnicodeError inside the socket
    # module: still a typed error, as over HTTP
    with pytest.raises(errors.RevocationUnavailable) as info:
        Fetcher(timeout=1).fetch_crl(
            "ldap://" + "a" * 64 + ".example/cn=x?certificateRevocationList;binary")
    assert info.value.reason == "unreachable"
