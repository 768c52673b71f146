"""The test PKI's revocation timeline: revoke / hold / release over days, CRL
numbering, delta CRLs with removeFromCRL, OCSP over time, simulated leaves,
server overrides and hostile CRLs. cryptography's parsers are the oracle."""

from __future__ import annotations

import email.utils
import shutil
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps.emulator.pki import POLICY_TEST_AUTH, POLICY_TEST_SIGN, TestPKI, crl_number
from cps.testing.forge import attacker_key, forged_crl
from cps.testing.pkiserver import PkiServer

REF = datetime(2025, 1, 1, tzinfo=timezone.utc)
BASE = "http://127.0.0.1:18080"
FO_PP = "FORT PERSONNES"
ST_PP = "STANDARD PERSONNES"
R = x509.ReasonFlags


def day(n: float) -> datetime:
    """Midnight (or a fraction of a day) ``n`` days after the reference time."""
    return REF + timedelta(days=n)


@pytest.fixture(scope="module")
def key_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA, card and leaf keys derived once for the module."""
    folder = tmp_path_factory.mktemp("timeline-keys")
    TestPKI.generate(folder, seed=1, base_url=BASE, reference_time=REF).issue_leaf(FO_PP, 0)
    return folder / "keys"


@pytest.fixture
def pki(key_cache: Path, tmp_path: Path) -> TestPKI:
    """A fresh PKI (no recorded event) per test; keys come from the module's cache."""
    shutil.copytree(key_cache, tmp_path / "pki" / "keys")
    return TestPKI.generate(tmp_path / "pki", seed=1, base_url=BASE, reference_time=REF)


def parse(der: bytes) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(der)


def entries(crl: x509.CertificateRevocationList) -> dict[int, tuple[datetime, R | None]]:
    """serial -> (revocationDate, CRLReason or None when absent)."""
    out = {}
    for entry in crl:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = None
        out[entry.serial_number] = (entry.revocation_date_utc, reason)
    return out


def number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def indicator(crl: x509.CertificateRevocationList) -> int:
    ext = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert ext.critical
    return ext.value.crl_number


def crl_entries(pki: TestPKI, ca: str, at: datetime, **kw) -> dict:
    crl = parse(pki.crl(ca, at, **kw))
    assert crl.is_signature_valid(pki.ca(ca).cert.public_key())
    return entries(crl)


def profile_entries(pki: TestPKI, at: datetime) -> dict:
    """What the bundled revoked profiles put on FORT PERSONNES' complete CRL at ``at``."""
    out = {}
    for name, when, why in (("cps3-revoked", REF - timedelta(days=30), R.key_compromise),
                            ("cps3-revoked-recent", REF - timedelta(hours=12), R.superseded)):
        card = pki.issue_card(name)
        if when <= at:
            for cert in (card.auth_cert, card.sign_cert):
                out[cert.serial_number] = (when, why)
    return out


def ocsp_status(pki: TestPKI, cert: x509.Certificate, issuer: x509.Certificate,
                at: datetime) -> ocsp.OCSPResponse:
    request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
               .public_bytes(serialization.Encoding.DER))
    response = ocsp.load_der_ocsp_response(pki.ocsp_response(request, at))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return response


def revocation_time(response: ocsp.OCSPResponse) -> datetime:
    value = getattr(response, "revocation_time_utc", None)
    return value or response.revocation_time.replace(tzinfo=timezone.utc)


# -- CRL numbers -------------------------------------------------------------------


def test_crl_numbers_share_one_sequence_with_deltas_after_completes(pki: TestPKI):
    at = day(3) + timedelta(hours=5, seconds=7)
    t = int(at.timestamp())
    assert crl_number(at) == 2 * t and crl_number(at, delta=True) == 2 * t + 1
    complete = parse(pki.crl(FO_PP, at))
    delta = parse(pki.crl(FO_PP, at, delta=True))
    assert number(complete) == 2 * t
    assert number(delta) == 2 * t + 1 > number(complete)     # RFC 5280 5.2.4
    # Default base: delta_base_time, and its complete CRL has the indicated number.
    assert indicator(delta) == 2 * int(pki.delta_base_time.timestamp())
    assert number(parse(pki.crl(FO_PP, pki.delta_base_time))) == indicator(delta)
    # An explicit base; the base may be the delta's own instant.
    based = parse(pki.crl(FO_PP, at, delta=True, base=day(2)))
    assert indicator(based) == number(parse(pki.crl(FO_PP, day(2)))) == 2 * int(day(2).timestamp())
    assert number(based) == 2 * t + 1
    same = parse(pki.crl(FO_PP, at, delta=True, base=at))
    assert indicator(same) == number(complete) and len(same) == 0
    # Microseconds are dropped, as in thisUpdate.
    assert number(parse(pki.crl(FO_PP, at + timedelta(microseconds=999_999)))) == 2 * t
    # Later CRLs, complete or delta, always have higher numbers.
    sequence = []
    for n in range(3):
        for delta_flag in (False, True):
            sequence.append(number(parse(pki.crl(FO_PP, day(10 + n), delta=delta_flag))))
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)


def test_delta_base_is_checked(pki: TestPKI):
    with pytest.raises(ValueError, match="after"):
        pki.crl(FO_PP, day(2), delta=True, base=day(3))
    with pytest.raises(ValueError, match="delta=True"):
        pki.crl(FO_PP, day(2), base=day(1))
    with pytest.raises(ValueError, match="naive"):
        pki.crl(FO_PP, day(2), delta=True, base=datetime(2025, 1, 1))


# -- leaves ----------------------------------------------------------------------------


def test_leaves_are_card_like_distinct_and_deterministic(pki: TestPKI, key_cache: Path,
                                                         tmp_path: Path):
    card = pki.issue_card("cps3-medecin").auth_cert
    leaves = [pki.issue_leaf(FO_PP, i)[0] for i in range(10)]
    leaves += [pki.issue_leaf(ST_PP, i)[0] for i in range(10)]
    assert len({c.serial_number for c in leaves}) == 20
    assert len({c.subject for c in leaves}) == 20
    assert card.serial_number not in {c.serial_number for c in leaves}
    fo_ca, st_ca = pki.ca(FO_PP), pki.ca(ST_PP)
    for cert in leaves:
        issuer = fo_ca if cert.issuer == fo_ca.cert.subject else st_ca
        cert.verify_directly_issued_by(issuer.cert)
        # Same extensions as a card authentication certificate, same criticality
        # (staff leaves, under STANDARD, have no profession extension 1.2.250.1.71.1.2.7).
        profession = x509.ObjectIdentifier("1.2.250.1.71.1.2.7")
        assert [(e.oid, e.critical) for e in cert.extensions] == \
            [(e.oid, e.critical) for e in card.extensions
             if issuer is fo_ca or e.oid != profession]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH,
                             x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")]
        [policy] = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        assert policy.policy_identifier == POLICY_TEST_AUTH
        [point] = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert point.full_name[0].value == issuer.crl_url
        assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == \
            (card.not_valid_before_utc, card.not_valid_after_utc)
        assert len(cert.serial_number.to_bytes(16, "big")) == 16
    assert leaves[0].subject.get_attributes_for_oid(NameOID.TITLE)[0].value == "Médecin"
    cn = leaves[10].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn.startswith("3") and "/" in cn                       # staff idNat under STANDARD
    # Shared key (documented), memoized, deterministic across PKI instances.
    cert, key = pki.issue_leaf(FO_PP, 3)
    assert pki.issue_leaf(FO_PP, 3)[0] is cert
    assert key.public_key().public_numbers() == leaves[5].public_key().public_numbers()
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    shutil.copytree(key_cache, tmp_path / "again" / "keys")
    again = TestPKI.generate(tmp_path / "again", seed=1, base_url=BASE, reference_time=REF)
    assert again.issue_leaf(FO_PP, 3)[0].public_bytes(serialization.Encoding.DER) == \
        cert.public_bytes(serialization.Encoding.DER)
    # Roles give distinct certificates of the same holder.
    sign, _ = pki.issue_leaf(FO_PP, 3, role="sign")
    assert sign.serial_number != cert.serial_number and sign.subject == cert.subject
    [policy] = sign.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert policy.policy_identifier == POLICY_TEST_SIGN
    for bad in (lambda: pki.issue_leaf("FORT", 1), lambda: pki.issue_leaf(FO_PP, -1),
                lambda: pki.issue_leaf(FO_PP, 10 ** 8), lambda: pki.issue_leaf(FO_PP, 1, "x")):
        with pytest.raises(ValueError):
            bad()


def test_leaves_are_known_to_ocsp(pki: TestPKI):
    leaf, _ = pki.issue_leaf(ST_PP, 4)
    response = ocsp_status(pki, leaf, pki.ca(ST_PP).cert, day(1))
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD


# -- revoke ----------------------------------------------------------------------------


def test_revocation_takes_effect_at_its_time_and_never_rewrites_the_past(pki: TestPKI):
    a, _ = pki.issue_leaf(FO_PP, 1)
    b, _ = pki.issue_leaf(FO_PP, 2)
    before = pki.crl(FO_PP, day(5) - timedelta(seconds=1))
    delta_before = pki.crl(FO_PP, day(5) - timedelta(seconds=1), delta=True, base=day(4))
    pki.revoke(FO_PP, a.serial_number, day(5), R.key_compromise)
    pki.revoke(FO_PP, b.serial_number, day(7))   # reason unspecified: no CRLReason
    # CRLs issued earlier are unchanged, byte for byte.
    assert pki.crl(FO_PP, day(5) - timedelta(seconds=1)) == before
    assert pki.crl(FO_PP, day(5) - timedelta(seconds=1), delta=True, base=day(4)) == \
        delta_before
    assert crl_entries(pki, FO_PP, day(5) - timedelta(seconds=1)) == profile_entries(pki, REF)
    assert crl_entries(pki, FO_PP, day(5)) == {
        **profile_entries(pki, REF), a.serial_number: (day(5), R.key_compromise)}
    assert crl_entries(pki, FO_PP, day(60)) == {
        **profile_entries(pki, REF), a.serial_number: (day(5), R.key_compromise),
        b.serial_number: (day(7), None)}
    # Deltas list what changed since their base.
    assert crl_entries(pki, FO_PP, day(8), delta=True, base=day(6)) == \
        {b.serial_number: (day(7), None)}
    assert crl_entries(pki, FO_PP, day(8), delta=True, base=day(4)) == {
        a.serial_number: (day(5), R.key_compromise), b.serial_number: (day(7), None)}
    assert crl_entries(pki, FO_PP, day(8), delta=True, base=day(7)) == {}
    # Other CAs are not concerned.
    assert crl_entries(pki, ST_PP, day(8)) == {}
    assert pki.revocation_status(FO_PP, a.serial_number, day(6)) == (day(5), R.key_compromise)
    assert pki.revocation_status(FO_PP, a.serial_number, day(4)) is None


def test_profile_revocations_are_unchanged_and_coexist(pki: TestPKI):
    revoked = pki.issue_card("cps3-revoked")
    assert crl_entries(pki, FO_PP, REF) == profile_entries(pki, REF)
    assert crl_entries(pki, FO_PP, REF - timedelta(days=1)) == \
        profile_entries(pki, REF - timedelta(days=1))
    recent = pki.issue_card("cps3-revoked-recent")
    assert crl_entries(pki, FO_PP, REF, delta=True) == {
        c.serial_number: (REF - timedelta(hours=12), R.superseded)
        for c in (recent.auth_cert, recent.sign_cert)}
    # Revocation is permanent: a revoked profile cannot be revoked or held again.
    with pytest.raises(ValueError, match="already revoked"):
        pki.revoke(FO_PP, revoked.auth_cert.serial_number, day(3))
    with pytest.raises(ValueError, match="already revoked"):
        pki.hold(FO_PP, revoked.auth_cert.serial_number, day(3))
    # A valid profile's card can be revoked through the timeline.
    good = pki.issue_card("cps3-medecin")
    pki.revoke(FO_PP, good.sign_cert.serial_number, day(2), R.affiliation_changed)
    assert crl_entries(pki, FO_PP, day(2)) == {
        **profile_entries(pki, REF), good.sign_cert.serial_number: (day(2), R.affiliation_changed)}
    ocsp_answer = ocsp_status(pki, revoked.auth_cert, revoked.chain[0], day(1))
    assert ocsp_answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revocation_time(ocsp_answer) == REF - timedelta(days=30)


def test_root_revokes_an_intermediate(pki: TestPKI):
    inter = pki.ca(FO_PP).cert
    root = pki.ca("FORT")
    pki.revoke("FORT", inter.serial_number, day(20), R.ca_compromise)
    assert crl_entries(pki, "FORT", day(19)) == {}
    assert crl_entries(pki, "FORT", day(20)) == {inter.serial_number: (day(20), R.ca_compromise)}
    assert crl_entries(pki, "FORT", day(21), delta=True, base=day(19)) == \
        {inter.serial_number: (day(20), R.ca_compromise)}
    assert parse(pki.crl("FORT", day(20))).is_signature_valid(root.cert.public_key())
    # The sibling and the other roots' CRLs are untouched.
    assert crl_entries(pki, "STANDARD", day(21)) == {}
    assert inter.serial_number not in entries(parse(pki.crl(FO_PP, day(21))))
    good = ocsp_status(pki, inter, root.cert, day(19))
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD
    bad = ocsp_status(pki, inter, root.cert, day(20))
    assert bad.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert bad.revocation_reason == R.ca_compromise and revocation_time(bad) == day(20)
    sibling = pki.ca("FORT ORGANISATIONS").cert
    assert ocsp_status(pki, sibling, root.cert, day(20)).certificate_status == \
        ocsp.OCSPCertStatus.GOOD


# -- hold and release ----------------------------------------------------------------------


def test_hold_and_release_in_complete_and_delta_crls(pki: TestPKI):
    leaf, _ = pki.issue_leaf(ST_PP, 1)
    serial = leaf.serial_number
    pki.hold(ST_PP, serial, day(2))
    pki.release(ST_PP, serial, day(6))
    held = {serial: (day(2), R.certificate_hold)}
    assert crl_entries(pki, ST_PP, day(2) - timedelta(seconds=1)) == {}
    for n in (2, 3, 5):
        assert crl_entries(pki, ST_PP, day(n)) == held
    assert crl_entries(pki, ST_PP, day(6)) == {}
    assert crl_entries(pki, ST_PP, day(30)) == {}
    # Base listed the hold, the delta comes after the release: removeFromCRL.
    assert crl_entries(pki, ST_PP, day(7), delta=True, base=day(4)) == \
        {serial: (day(6), R.remove_from_crl)}
    assert crl_entries(pki, ST_PP, day(6), delta=True, base=day(5)) == \
        {serial: (day(6), R.remove_from_crl)}
    # Base after the release, or base before the hold: nothing to remove.
    assert crl_entries(pki, ST_PP, day(7), delta=True, base=day(6)) == {}
    assert crl_entries(pki, ST_PP, day(7), delta=True, base=day(1)) == {}
    # Delta during the hold, base before it: the hold is listed.
    assert crl_entries(pki, ST_PP, day(4), delta=True, base=day(1)) == held
    # Delta before the release: nothing yet.
    assert crl_entries(pki, ST_PP, day(5), delta=True, base=day(4)) == {}
    # Held again later, then revoked for good.
    pki.hold(ST_PP, serial, day(10))
    pki.revoke(ST_PP, serial, day(12), R.key_compromise)
    assert crl_entries(pki, ST_PP, day(11)) == {serial: (day(10), R.certificate_hold)}
    assert crl_entries(pki, ST_PP, day(12)) == {serial: (day(12), R.key_compromise)}
    # The delta over the conversion carries the new entry.
    assert crl_entries(pki, ST_PP, day(13), delta=True, base=day(11)) == \
        {serial: (day(12), R.key_compromise)}
    with pytest.raises(ValueError, match="revoked for good"):
        pki.release(ST_PP, serial, day(14))


def test_delta_on_base_reconstructs_the_complete_crl_over_60_days(pki: TestPKI):
    """RFC 5280 5.2.4: base complete CRL + delta = complete CRL issued with the delta."""
    leaves = {(ca, i): pki.issue_leaf(ca, i)[0].serial_number
              for ca in (FO_PP, ST_PP) for i in range(8)}
    pki.revoke(FO_PP, leaves[FO_PP, 0], day(3) + timedelta(hours=10), R.key_compromise)
    pki.hold(FO_PP, leaves[FO_PP, 1], day(5))
    pki.release(FO_PP, leaves[FO_PP, 1], day(9) + timedelta(hours=1))
    pki.hold(FO_PP, leaves[FO_PP, 2], day(12))
    pki.revoke(FO_PP, leaves[FO_PP, 2], day(15), R.superseded)
    # A hold lifted between two publications (06:00 each day).
    pki.hold(ST_PP, leaves[ST_PP, 3], day(20) + timedelta(hours=8))
    pki.release(ST_PP, leaves[ST_PP, 3], day(20) + timedelta(hours=20))
    pki.hold(ST_PP, leaves[ST_PP, 3], day(33))
    pki.release(ST_PP, leaves[ST_PP, 3], day(40))
    pki.revoke(ST_PP, leaves[ST_PP, 4], day(44), R.cessation_of_operation)
    pki.revoke("FORT", pki.ca(FO_PP).cert.serial_number, day(50), R.ca_compromise)
    removals = 0
    numbers: list[int] = []
    for ca in (FO_PP, ST_PP, "FORT"):
        previous = None
        for n in range(62):
            at = day(n) + timedelta(hours=6)
            complete = parse(pki.crl(ca, at))
            numbers.append(number(complete))
            if previous is not None:
                delta = parse(pki.crl(ca, at, delta=True, base=previous[0]))
                assert indicator(delta) == number(previous[1])
                assert number(delta) == number(complete) + 1
                rebuilt = dict(entries(previous[1]))
                for serial, (date, reason) in entries(delta).items():
                    if reason == R.remove_from_crl:
                        removals += 1
                        assert rebuilt.pop(serial)[1] == R.certificate_hold
                    else:
                        rebuilt[serial] = (date, reason)
                assert rebuilt == entries(complete), (ca, n)
            previous = (at, complete)
    # The one-day hold fell between two publications: never seen, never removed.
    assert removals == 2
    assert leaves[FO_PP, 1] not in entries(parse(pki.crl(FO_PP, day(61))))
    assert entries(parse(pki.crl(ST_PP, day(61)))) == {
        leaves[ST_PP, 4]: (day(44), R.cessation_of_operation)}


def test_events_that_cannot_happen_are_refused_and_change_nothing(pki: TestPKI):
    leaf, _ = pki.issue_leaf(FO_PP, 5)
    serial = leaf.serial_number
    pki.hold(FO_PP, serial, day(10))
    snapshot = [pki.crl(FO_PP, day(n)) for n in (4, 8, 12)]
    with pytest.raises(ValueError, match="already on hold"):
        pki.hold(FO_PP, serial, day(11))
    with pytest.raises(ValueError, match="not on hold"):
        pki.release(FO_PP, serial, day(9))
    # Revoking before a recorded hold would make that hold impossible.
    with pytest.raises(ValueError, match="cannot hold"):
        pki.revoke(FO_PP, serial, day(4))
    with pytest.raises(ValueError, match="hold"):
        pki.revoke(FO_PP, serial, day(11), R.certificate_hold)
    with pytest.raises(ValueError):
        pki.revoke(FO_PP, serial, day(11), R.remove_from_crl)
    with pytest.raises(ValueError, match="naive"):
        pki.revoke(FO_PP, serial, datetime(2025, 2, 1))
    # Serials the CA did not issue: a stranger, a card of another CA, a root itself.
    with pytest.raises(KeyError):
        pki.revoke(FO_PP, 12345, day(3))
    with pytest.raises(KeyError):
        pki.revoke("FORT", serial, day(3))  # the card's issuer is FORT PERSONNES
    with pytest.raises(KeyError):
        pki.revoke("FORT", pki.ca("FORT").cert.serial_number, day(3))
    with pytest.raises(KeyError):
        pki.hold("STANDARD", pki.ca(FO_PP).cert.serial_number, day(3))
    assert [pki.crl(FO_PP, day(n)) for n in (4, 8, 12)] == snapshot
    # Events may be recorded out of time order when every step fits the timeline.
    pki.release(FO_PP, serial, day(13))
    later, _ = pki.issue_leaf(FO_PP, 7)
    pki.revoke(FO_PP, later.serial_number, day(30), R.superseded)
    pki.hold(FO_PP, later.serial_number, day(20))
    pki.release(FO_PP, later.serial_number, day(25))
    assert crl_entries(pki, FO_PP, day(21))[later.serial_number] == (day(20), R.certificate_hold)
    assert later.serial_number not in crl_entries(pki, FO_PP, day(26))
    assert crl_entries(pki, FO_PP, day(31))[later.serial_number] == (day(30), R.superseded)
    assert serial not in crl_entries(pki, FO_PP, day(13))
    # Same instant: recording order decides.
    other, _ = pki.issue_leaf(FO_PP, 6)
    pki.hold(FO_PP, other.serial_number, day(20))
    pki.release(FO_PP, other.serial_number, day(20))
    assert other.serial_number not in crl_entries(pki, FO_PP, day(20))


# -- OCSP ------------------------------------------------------------------------------------


def test_ocsp_follows_the_timeline(pki: TestPKI):
    leaf, _ = pki.issue_leaf(FO_PP, 9)
    issuer = pki.ca(FO_PP).cert
    pki.hold(FO_PP, leaf.serial_number, day(2))
    pki.release(FO_PP, leaf.serial_number, day(4))
    pki.revoke(FO_PP, leaf.serial_number, day(6), R.superseded)
    expected = [(1, ocsp.OCSPCertStatus.GOOD, None, None),
                (2, ocsp.OCSPCertStatus.REVOKED, day(2), R.certificate_hold),
                (3, ocsp.OCSPCertStatus.REVOKED, day(2), R.certificate_hold),
                (4, ocsp.OCSPCertStatus.GOOD, None, None),
                (5.9, ocsp.OCSPCertStatus.GOOD, None, None),
                (6, ocsp.OCSPCertStatus.REVOKED, day(6), R.superseded),
                (60, ocsp.OCSPCertStatus.REVOKED, day(6), R.superseded)]
    for n, status, when, why in expected:
        response = ocsp_status(pki, leaf, issuer, day(n))
        assert response.certificate_status == status, n
        if status == ocsp.OCSPCertStatus.REVOKED:
            assert revocation_time(response) == when and response.revocation_reason == why, n
    # Unspecified: revoked, no reason.
    other, _ = pki.issue_leaf(FO_PP, 10)
    pki.revoke(FO_PP, other.serial_number, day(3))
    response = ocsp_status(pki, other, issuer, day(3))
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None


def test_revoked_ocsp_responder_certificate(pki: TestPKI):
    leaf, _ = pki.issue_leaf(FO_PP, 11)
    [responder] = ocsp_status(pki, leaf, pki.ca(FO_PP).cert, day(1)).certificates
    pki.revoke(FO_PP, responder.serial_number, day(5), R.key_compromise)
    assert crl_entries(pki, FO_PP, day(5))[responder.serial_number] == \
        (day(5), R.key_compromise)


# -- hostile CRLs ----------------------------------------------------------------------------


def test_forged_crl_looks_genuine_but_for_its_signature(pki: TestPKI):
    ca = pki.ca(FO_PP)
    at = day(4)
    leaf, _ = pki.issue_leaf(FO_PP, 1)
    forged = parse(forged_crl(pki, FO_PP, at))
    genuine = parse(pki.crl(FO_PP, at))
    assert forged.issuer == genuine.issuer == ca.cert.subject
    aki = x509.AuthorityKeyIdentifier
    assert forged.extensions.get_extension_for_class(aki).value == \
        genuine.extensions.get_extension_for_class(aki).value
    assert number(forged) == number(genuine)
    assert forged.last_update_utc == at and forged.next_update_utc == at + timedelta(days=1)
    assert len(forged) == 0 and len(genuine) > 0              # hides the revocations
    assert not forged.is_signature_valid(ca.cert.public_key())
    assert forged.is_signature_valid(attacker_key(pki).public_key())
    assert forged_crl(pki, FO_PP, at) == forged.public_bytes(serialization.Encoding.DER)
    # Invented entries, copied entries, a delta, a chosen number, another CA's key.
    invented = entries(parse(forged_crl(pki, FO_PP, at, revoked=[
        leaf.serial_number, (7, day(1)), (8, day(2), R.key_compromise)])))
    assert invented == {leaf.serial_number: (at, None), 7: (day(1), None),
                        8: (day(2), R.key_compromise)}
    assert entries(parse(forged_crl(pki, FO_PP, at, revoked=list(genuine)))) == entries(genuine)
    delta = parse(forged_crl(pki, FO_PP, at, delta_base=day(3), number=10 ** 15))
    assert indicator(delta) == crl_number(day(3)) and number(delta) == 10 ** 15
    other_key = pki.ca(ST_PP).key
    by_other = parse(forged_crl(pki, FO_PP, at, signing_key=other_key))
    assert by_other.is_signature_valid(other_key.public_key())
    assert not by_other.is_signature_valid(ca.cert.public_key())
    assert attacker_key(pki).public_key().public_numbers() not in \
        [pki.ca(n).cert.public_key().public_numbers() for n in [*pki.roots, *pki.intermediates]]
    # Future-dated: genuine (only the dates are wrong) or forged.
    future = parse(pki.crl(FO_PP, day(400)))
    assert future.last_update_utc == day(400) and future.is_signature_valid(ca.cert.public_key())
    assert parse(forged_crl(pki, FO_PP, day(400))).last_update_utc == day(400)


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def served(key_cache: Path, tmp_path: Path):
    """A fresh PKI behind a fresh PkiServer on 127.0.0.1."""
    port = PkiServer.reserve()
    shutil.copytree(key_cache, tmp_path / "online" / "keys")
    try:
        pki = TestPKI.generate(tmp_path / "online", seed=1,
                               base_url=f"http://127.0.0.1:{port}", reference_time=REF)
        server = PkiServer(pki, port=port, clock=lambda: day(10))
    except BaseException:
        PkiServer.release(port)
        raise
    with server:
        yield pki, server


def get(url: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {},  # noqa: S310 - our server
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - our server
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def test_publish_with_a_delta_base(served):
    pki, server = served
    leaf, _ = pki.issue_leaf(FO_PP, 2)
    pki.revoke(FO_PP, leaf.serial_number, day(8), R.key_compromise)
    stem = pki.ca(FO_PP).stem
    server.publish(at=day(9), delta_base=day(8) - timedelta(seconds=1))
    status, body, _ = get(f"{server.base_url}/crl/{stem}-delta.crl")
    delta = parse(body)
    assert status == 200 and indicator(delta) == crl_number(day(8) - timedelta(seconds=1))
    assert number(delta) == crl_number(day(9), delta=True)
    assert entries(delta) == {leaf.serial_number: (day(8), R.key_compromise)}
    server.publish(at=day(9), delta_base=day(8))
    assert len(parse(get(f"{server.base_url}/crl/{stem}-delta.crl")[1])) == 0
    server.publish(at=day(9))                                 # default base: delta_base_time
    assert indicator(parse(server.resource(f"/crl/{stem}-delta.crl"))) == \
        crl_number(pki.delta_base_time)


def test_override_serves_exact_bytes_until_cleared(served):
    pki, server = served
    path = f"/crl/{pki.ca(FO_PP).stem}.crl"
    url = server.base_url + path
    server.publish(at=day(9))
    status, genuine, headers = get(url)
    assert status == 200 and genuine == pki.crl(FO_PP, day(9))
    genuine_etag = headers["ETag"]
    planted = pki.crl(ST_PP, day(9))                  # another CA's genuine CRL
    server.override(path, planted)
    status, body, headers = get(url)
    assert status == 200 and body == planted and headers["ETag"] != genuine_etag
    assert headers["Content-Type"] == "application/pkix-crl"
    assert int(headers["Content-Length"]) == len(planted)
    assert server.resource(path) == planted and server.published_resource(path) == genuine
    assert server.overrides == {path: planted}
    # Conditional requests: the old validator gets the new bytes, the new one a 304.
    assert get(url, {"If-None-Match": genuine_etag})[:2] == (200, planted)
    status, body, again = get(url, {"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b"" and again["ETag"] == headers["ETag"]
    # Clients that only know If-Modified-Since see the change too.
    server.send_etag = False
    genuine_modified = email_date(server.published_at)
    assert get(url, {"If-Modified-Since": genuine_modified})[:2] == (200, planted)
    status, _, head = get(url, method="HEAD")
    assert status == 200 and int(head["Content-Length"]) == len(planted)
    assert get(url, {"If-Modified-Since": head["Last-Modified"]})[0] == 304
    server.send_etag = True
    # Overrides survive publications.
    server.publish(at=day(10))
    assert get(url)[1] == planted
    assert get(server.base_url + f"/crl/{pki.ca(ST_PP).stem}.crl")[1] == pki.crl(ST_PP, day(10))
    # Same bytes, same ETag as a published resource would have.
    server.override(path, pki.crl(FO_PP, day(10)))
    status, body, headers = get(url)
    assert body == pki.crl(FO_PP, day(10))
    server.override(path, None)
    status, body, published_headers = get(url)
    assert body == pki.crl(FO_PP, day(10)) and published_headers["ETag"] == headers["ETag"]
    # Set in the second of the publication, an override still looks newer to
    # If-Modified-Since; an explicit Last-Modified is sent as given.
    server.send_etag = False
    server.override(path, b"changed")
    status, body, head = get(url, {"If-Modified-Since": email_date(day(10))})
    assert (status, body) == (200, b"changed")
    assert head["Last-Modified"] == email_date(day(10) + timedelta(seconds=1))
    server.override(path, b"dated", last_modified=day(3))
    assert get(url)[2]["Last-Modified"] == email_date(day(3))
    server.send_etag = True
    # Paths that are not published can be served; clear_overrides clears them all.
    assert get(server.base_url + "/crl/elsewhere.crl")[0] == 404
    server.override("/crl/elsewhere.crl", b"junk")
    server.override(path, b"more junk")
    assert get(server.base_url + "/crl/elsewhere.crl")[:2] == (200, b"junk")
    server.clear_overrides()
    assert get(server.base_url + "/crl/elsewhere.crl")[0] == 404
    assert get(url)[1] == pki.crl(FO_PP, day(10))
    with pytest.raises(ValueError):
        server.override("/ocsp", b"x")
    with pytest.raises(ValueError):
        server.override("crl/x.crl", b"x")


def test_forged_and_future_crls_at_the_real_urls_over_a_simulated_week(served):
    """The long-running scenario in small: publish daily, attack on some days."""
    pki, server = served
    leaf, _ = pki.issue_leaf(FO_PP, 4)
    pki.revoke(FO_PP, leaf.serial_number, day(3), R.key_compromise)
    path = f"/crl/{pki.ca(FO_PP).stem}.crl"
    delta_path = f"/crl/{pki.ca(FO_PP).stem}-delta.crl"
    seen = []
    for n in range(7):
        server.publish(at=day(n), delta_base=day(n - 1))
        if n == 4:    # forged "all clear" at both URLs
            server.override(path, forged_crl(pki, FO_PP, day(n)))
            server.override(delta_path, forged_crl(pki, FO_PP, day(n), delta_base=day(n - 1)))
        elif n == 5:  # a future-dated genuine CRL
            server.clear_overrides()
            server.override(path, pki.crl(FO_PP, day(n + 30)))
        elif n == 6:
            server.clear_overrides()
        crl = parse(get(server.base_url + path)[1])
        delta = parse(get(server.base_url + delta_path)[1])
        key = pki.ca(FO_PP).cert.public_key()
        seen.append((n, crl.is_signature_valid(key), crl.last_update_utc,
                     leaf.serial_number in entries(crl), leaf.serial_number in entries(delta)))
    assert seen == [
        (0, True, day(0), False, False), (1, True, day(1), False, False),
        (2, True, day(2), False, False), (3, True, day(3), True, True),
        (4, False, day(4), False, False), (5, True, day(35), True, False),
        (6, True, day(6), True, False)]


def email_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


# -- big CA keys --------------------------------------------------------------------------------


@pytest.mark.slow
def test_timeline_with_4096_bit_ca_keys(tmp_path: Path):
    pki = TestPKI.generate(None, seed=7, base_url=BASE, reference_time=REF, ca_key_bits=4096,
                           profiles=[])
    ca = pki.ca(FO_PP)
    assert ca.cert.public_key().key_size == 4096
    leaf, _ = pki.issue_leaf(FO_PP, 0)
    leaf.verify_directly_issued_by(ca.cert)
    pki.hold(FO_PP, leaf.serial_number, day(1))
    pki.release(FO_PP, leaf.serial_number, day(2))
    delta = parse(pki.crl(FO_PP, day(3), delta=True, base=day(1)))
    assert delta.is_signature_valid(ca.cert.public_key())
    assert entries(delta) == {leaf.serial_number: (day(2), R.remove_from_crl)}
    assert number(delta) == crl_number(day(3), delta=True)
