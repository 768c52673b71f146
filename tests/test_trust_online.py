"""cps.trust online: CRLs fetched from the certificates' URLs, OCSP, over real HTTP."""

from __future__ import annotations

import datetime as dt

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
    store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
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
