"""cps.trust online: CRLs fetched from the certificates' URLs, OCSP, over real HTTP."""

from __future__ import annotations

import pytest

from cps import errors
from cps.card import KeyRole
from cps.trust.anchors import TrustStore
from cps.trust.fetch import Fetcher
from cps.trust.ocsp import OcspClient
from cps.trust.validate import Validator


@pytest.fixture
def online(cps_pki_server, tmp_path):
    pki, server = cps_pki_server
    server.faults.down = False
    store = pki.trust_store()
    return pki, server, store, Fetcher(cache_dir=tmp_path / "cache", timeout=5)


def test_crls_are_fetched_from_the_certificate_urls(online):
    pki, server, store, fetcher = online
    server.clear_requests()
    v = Validator(store, fetcher=fetcher)
    result = v.validate(pki.issue_card("cps3-medecin").auth_cert, purpose=KeyRole.AUTH)
    assert [s.status for s in result.revocation[:2]] == ["good", "good"]
    assert result.revocation[0].source.startswith(server.base_url)
    paths = [r.path for r in server.requests]
    assert any(p.endswith("ACI-FO-PP-TEST.crl") for p in paths)
    assert any(p.endswith("-delta.crl") for p in paths)
    # a second validation uses what was fetched: no new request
    before = len(server.requests)
    v.validate(pki.issue_card("cps3-pharmacien").auth_cert)
    assert len(server.requests) == before


def test_revoked_online_with_delta(online):
    pki, server, store, fetcher = online
    v = Validator(store, fetcher=fetcher)
    with pytest.raises(errors.CertificateRevoked) as info:
        v.validate(pki.issue_card("cps3-revoked").auth_cert)
    assert info.value.revocation_reason == "keyCompromise"


def test_server_down_hard_fail_and_soft_fail(online, tmp_path):
    pki, server, store, _ = online
    server.faults.down = True
    try:
        fetcher = Fetcher(cache_dir=tmp_path / "empty-cache", timeout=2)
        with pytest.raises(errors.RevocationUnavailable) as info:
            Validator(store, fetcher=fetcher).validate(pki.issue_card("cps3-medecin").auth_cert)
        assert info.value.failures and server.base_url in info.value.source
        result = Validator(store, fetcher=fetcher, revocation="soft-fail").validate(
            pki.issue_card("cps3-medecin").auth_cert)
        assert result.revocation[0].status == "unknown" and result.revocation[0].failures
    finally:
        server.faults.down = False


def test_ocsp_when_no_crl(online):
    pki, server, store, fetcher = online
    # Root CRLs offline for the intermediates; the leaves only have OCSP.
    v = Validator(store, crls=[pki.crl(name) for name in pki.roots], ocsp=OcspClient(fetcher))
    result = v.validate(pki.issue_card("cps3-medecin").auth_cert)
    assert result.revocation[0].status == "good"
    assert result.revocation[0].source.startswith("OCSP")
    with pytest.raises(errors.CertificateRevoked) as info:
        v.validate(pki.issue_card("cps3-revoked").auth_cert)
    assert "OCSP" in str(info.value)


def test_garbage_from_the_server_is_not_accepted(online, tmp_path):
    pki, server, store, _ = online
    server.faults.garbage = True
    try:
        fetcher = Fetcher(cache_dir=tmp_path / "garbage-cache", timeout=2)
        with pytest.raises(errors.RevocationUnavailable):
            Validator(store, fetcher=fetcher).validate(pki.issue_card("cps3-revoked").auth_cert)
    finally:
        server.faults.garbage = False


# --------------------------------------------------------------------------- AIA caIssuers
def test_missing_intermediate_fetched_from_ca_issuers(online):
    """A store with the roots only: the issuing CA comes from the leaf's caIssuers URL."""
    pki, server, _, fetcher = online
    roots_only = pki.trust_store(intermediates=False)
    leaf = pki.issue_card("cps3-medecin").auth_cert
    with pytest.raises(errors.UntrustedCertificate):
        Validator(roots_only).validate(leaf)             # offline: no way to find it
    with pytest.raises(errors.UntrustedCertificate):    # no host allowed: nothing fetched
        Validator(roots_only, fetcher=fetcher).validate(leaf)
    with pytest.raises(errors.UntrustedCertificate) as info:   # another host allowed
        Validator(roots_only, fetcher=fetcher, issuer_hosts=["igc-sante.esante.gouv.fr"]
                  ).validate(leaf)
    assert "host not in issuer_hosts" in str(info.value)
    server.clear_requests()
    v = Validator(roots_only, fetcher=fetcher, issuer_hosts=["127.0.0.1"])
    result = v.validate(leaf, purpose=KeyRole.AUTH)
    assert len(result.path) == 3 and result.revocation[0].status == "good"
    assert [r.path for r in server.requests if r.path.startswith("/ca/")] == \
        ["/ca/ACI-FO-PP-TEST.cer"]
    before = len(server.requests)
    v.validate(pki.issue_card("cps3-pharmacien").auth_cert)  # same CA: nothing fetched again
    assert not [r for r in server.requests[before:] if r.path.startswith("/ca/")]


def test_ca_issuers_answers_that_do_not_help(online, tmp_path):
    pki, server, _, _ = online
    roots_only = pki.trust_store(intermediates=False)
    leaf = pki.issue_card("cps3-medecin").auth_cert
    try:
        server.faults.match = "/ca/"
        server.faults.garbage = True                    # not a certificate
        fetcher = Fetcher(cache_dir=tmp_path / "garbage", timeout=2)
        validator = Validator(roots_only, fetcher=fetcher, issuer_hosts=["127.0.0.1"])
        with pytest.raises(errors.UntrustedCertificate) as info:
            validator.validate(leaf)
        assert "caIssuers" in str(info.value) and "no certificate" in str(info.value)
        before = len(server.requests)                   # a failure is remembered a while
        with pytest.raises(errors.UntrustedCertificate) as info:
            validator.validate(leaf)
        assert "no certificate" in str(info.value) and len(server.requests) == before
        server.faults.garbage = False
        server.faults.status = 404                      # not there
        fetcher = Fetcher(cache_dir=tmp_path / "missing", timeout=2)
        with pytest.raises(errors.UntrustedCertificate) as info:
            Validator(roots_only, fetcher=fetcher, issuer_hosts=["127.0.0.1"]).validate(leaf)
        assert "404" in str(info.value)
    finally:
        server.faults.match = None
        server.faults.garbage = False
        server.faults.status = None
    # another CA's certificate at the URL: not the issuer, not used
    other = TrustStore.from_certificates([pki.ca("STANDARD").cert], [])
    with pytest.raises(errors.UntrustedCertificate):
        Validator(other, fetcher=Fetcher(timeout=2), issuer_hosts=["127.0.0.1"]).validate(leaf)


def test_issuer_hosts_hold_on_every_redirect_hop(online, tmp_path):
    """Issue 13 item 5: an allowed host redirecting elsewhere is not followed."""
    pki, server, _, _ = online
    roots_only = pki.trust_store(intermediates=False)
    leaf = pki.issue_card("cps3-medecin").auth_cert
    try:
        server.override("/moved/ACI-FO-PP-TEST.cer",
                        server.published_resource("/ca/ACI-FO-PP-TEST.cer"))
        server.faults.match = "/ca/ACI-FO"
        server.faults.redirect = f"http://localhost:{server.port}/moved/ACI-FO-PP-TEST.cer"
        fetcher = Fetcher(cache_dir=tmp_path / "redirect", timeout=2)
        with pytest.raises(errors.UntrustedCertificate) as info:
            Validator(roots_only, fetcher=fetcher, issuer_hosts=["127.0.0.1"]).validate(leaf)
        assert "not allowed" in str(info.value) and "localhost" in str(info.value)
        assert not server.requests_for("/moved/")     # the redirect was not followed
        with pytest.raises(errors.RevocationUnavailable) as refused:
            fetcher.fetch_bytes(f"{server.base_url}/ca/ACI-FO-PP-TEST.cer",
                                hosts=frozenset({"127.0.0.1"}))
        assert refused.value.reason == "forbidden-host"
        # an unrestricted fetch through the redirect is cached; a restricted one later
        # does not take it from the cache (second review)
        url = f"{server.base_url}/ca/ACI-FO-PP-TEST.cer"
        assert fetcher.fetch_bytes(url).der == server.published_resource(
            "/ca/ACI-FO-PP-TEST.cer")
        with pytest.raises(errors.RevocationUnavailable) as refused:
            Fetcher(cache_dir=tmp_path / "redirect", timeout=2).fetch_bytes(
                url, hosts=frozenset({"127.0.0.1"}))
        assert refused.value.reason == "forbidden-host"
        # both hosts allowed: followed
        allowed = Validator(roots_only, fetcher=Fetcher(cache_dir=tmp_path / "ok", timeout=2),
                            issuer_hosts=["127.0.0.1", "localhost"])
        assert allowed.validate(leaf).revocation[0].status == "good"
    finally:
        server.faults.match = None
        server.faults.redirect = None
        server.override("/moved/ACI-FO-PP-TEST.cer", None)


def test_ca_issuers_answer_formats(cps_pki):
    """DER (IGC-Santé's .cer), PEM, a PKCS#7 certs-only bundle (RFC 5280 4.2.2.1)."""
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    from cps.trust.validate import _certificates_in

    ca = cps_pki.ca("FORT PERSONNES").cert
    root = cps_pki.ca("FORT").cert
    der = ca.public_bytes(Encoding.DER)
    assert [c.der for c in _certificates_in(der)] == [der]
    pem = ca.public_bytes(Encoding.PEM) + root.public_bytes(Encoding.PEM)
    assert [c.der for c in _certificates_in(pem)] == [der, root.public_bytes(Encoding.DER)]
    bundle = pkcs7.serialize_certificates([ca, root], Encoding.DER)
    assert {c.der for c in _certificates_in(bundle)} == {der, root.public_bytes(Encoding.DER)}
    data_content = bytes.fromhex("3012" "06092a864886f70d010701" "a0030401" "78")  # PKCS#7 data
    for junk in (b"", b"\x30\x03\x02\x01\x01", b"-----BEGIN CERTIFICATE-----\n!!\n"
                 b"-----END CERTIFICATE-----", bundle[:-5], data_content,
                 b"-----BEGIN CERTIFICATE-----" * 20000):   # unterminated: linear, not quadratic
        assert _certificates_in(junk) == []
