"""Issue 13 item 3: one signature-algorithm policy for certificates, CRLs and OCSP.

SHA-1 is accepted everywhere by default and refused everywhere with
``allow_sha1=False`` (reason ``"weak-algorithm"``); RSASSA-PSS only with MGF1 over
the content hash.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps.errors import CertificateInvalid, CertificateRevoked, OcspError, RevocationUnavailable
from cps.trust import TrustStore, Validator
from cps.trust.ocsp import validate_response

# OCSP answers carry the real producedAt: the objects are dated around the real time
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
SHA256 = hashes.SHA256()  # the default signing hash (one immutable instance)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def keys():
    return [rsa.generate_private_key(65537, 2048) for _ in range(4)]


def _sha1(der: bytes, kind: str, signer) -> bytes:
    """Re-sign ``der`` with sha1WithRSAEncryption (cryptography's builders refuse SHA-1,
    but a relying party still meets such objects)."""
    from asn1crypto import crl as a_crl
    from asn1crypto import ocsp as a_ocsp
    from asn1crypto import x509 as a_x509

    def resign(obj, tbs_name, inner_alg):
        tbs = obj[tbs_name]
        if inner_alg:
            tbs[inner_alg] = {"algorithm": "sha1_rsa"}
        obj["signature_algorithm"] = {"algorithm": "sha1_rsa"}
        signature = signer.sign(tbs.dump(force=True), padding.PKCS1v15(), hashes.SHA1())
        obj["signature_value" if kind == "cert" else "signature"] = signature
        return obj

    if kind == "cert":
        return resign(a_x509.Certificate.load(der), "tbs_certificate", "signature").dump(True)
    if kind == "crl":
        return resign(a_crl.CertificateList.load(der), "tbs_cert_list", "signature").dump(True)
    response = a_ocsp.OCSPResponse.load(der)
    basic = response["response_bytes"]["response"].parsed
    basic = resign(a_ocsp.BasicOCSPResponse.load(basic.dump()), "tbs_response_data", None)
    return a_ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
    }).dump(True)


def _cert(subject, issuer, key, signer, serial, algorithm=SHA256, ca=True,
          eku=None, rsa_padding=None):
    if isinstance(algorithm, hashes.SHA1):
        der = _cert(subject, issuer, key, signer, serial, ca=ca, eku=eku).public_bytes(
            serialization.Encoding.DER)
        return x509.load_der_x509_certificate(_sha1(der, "cert", signer))
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOW - dt.timedelta(days=10))
               .not_valid_after(NOW + dt.timedelta(days=300))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signer, algorithm, rsa_padding=rsa_padding)


def _crl(issuer, signer, algorithm=SHA256, rsa_padding=None):
    if isinstance(algorithm, hashes.SHA1):
        return _sha1(_crl(issuer, signer), "crl", signer)
    return (x509.CertificateRevocationListBuilder().issuer_name(_name(issuer))
            .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=1))
            .add_extension(x509.CRLNumber(1), critical=False)
            .sign(signer, algorithm, rsa_padding=rsa_padding)
            .public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def pki(keys):
    root = _cert("root", "root", keys[0], keys[0], 1)
    ca = _cert("ca", "root", keys[1], keys[0], 2, algorithm=hashes.SHA1())   # SHA-1 signed
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    return root, ca, leaf


def test_sha1_in_the_path(pki):
    root, ca, leaf = pki
    store = TrustStore.from_certificates([root])
    assert Validator(store, revocation="off").validate(leaf, intermediates=[ca], at=NOW)
    with pytest.raises(CertificateInvalid) as info:
        Validator(store, revocation="off", allow_sha1=False).validate(
            leaf, intermediates=[ca], at=NOW)
    assert info.value.reason == "weak-algorithm" and info.value.position == 1


def test_sha1_in_crls(pki, keys):
    root, _, _ = pki
    ca = _cert("ca", "root", keys[1], keys[0], 2)
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    store = TrustStore.from_certificates([root])
    crls = [_crl("root", keys[0], hashes.SHA1()), _crl("ca", keys[1], hashes.SHA1())]
    assert Validator(store, crls=crls).validate(leaf, intermediates=[ca], at=NOW)
    with pytest.raises(RevocationUnavailable) as info:
        Validator(store, crls=crls, allow_sha1=False).validate(leaf, intermediates=[ca], at=NOW)
    assert info.value.reason == "weak-algorithm"


def test_pss_crl_only_with_mgf1_over_the_content_hash(pki, keys):
    root, _, _ = pki
    ca = _cert("ca", "root", keys[1], keys[0], 2)
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    store = TrustStore.from_certificates([root])
    good = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    odd = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=32)  # MGF1 != SHA-256
    root_crl = _crl("root", keys[0])
    ok = Validator(store, crls=[root_crl, _crl("ca", keys[1], rsa_padding=good)])
    assert ok.validate(leaf, intermediates=[ca], at=NOW)
    mixed = Validator(store, crls=[root_crl, _crl("ca", keys[1], rsa_padding=odd)])
    with pytest.raises(RevocationUnavailable):
        mixed.validate(leaf, intermediates=[ca], at=NOW)


def _delegated_answer(pki, keys, responder_algorithm, answer_algorithm=SHA256):
    root, ca, leaf = pki
    responder = _cert("responder", "ca", keys[3], keys[1], 9, algorithm=responder_algorithm,
                      ca=False, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    der = (ocsp.OCSPResponseBuilder()
           .add_response(cert=leaf, issuer=ca, algorithm=hashes.SHA1(),
                         cert_status=ocsp.OCSPCertStatus.GOOD,
                         this_update=NOW - dt.timedelta(hours=1),
                         next_update=NOW + dt.timedelta(hours=5),
                         revocation_time=None, revocation_reason=None)
           .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
           .certificates([responder])
           .sign(keys[3], hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    if isinstance(answer_algorithm, hashes.SHA1):
        der = _sha1(der, "ocsp", keys[3])
    return der, ca, leaf


def test_a_sha1_signed_delegated_responder_is_judged_by_the_policy(pki, keys):
    """It used to be refused as "not issued directly by the certificate's issuer"."""
    der, ca, leaf = _delegated_answer(pki, keys, hashes.SHA1())
    assert validate_response(der, leaf, ca, at=NOW).status == "good"
    with pytest.raises(OcspError) as info:
        validate_response(der, leaf, ca, at=NOW, allow_sha1=False)
    assert info.value.reason == "weak-algorithm"


def test_a_sha1_signed_answer_follows_the_policy(pki, keys):
    root = pki[0]
    ca = _cert("ca", "root", keys[1], keys[0], 2)              # SHA-256 this time
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    der, ca, leaf = _delegated_answer((root, ca, leaf), keys, hashes.SHA256(), hashes.SHA1())
    assert validate_response(der, leaf, ca, at=NOW).status == "good"
    with pytest.raises(OcspError) as info:
        validate_response(der, leaf, ca, at=NOW, allow_sha1=False)
    assert info.value.reason == "weak-algorithm"
    store = TrustStore.from_certificates([root])
    crl = _crl("root", keys[0])
    strict = Validator(store, crls=[crl], ocsp_responses=[der], allow_sha1=False)
    with pytest.raises(RevocationUnavailable) as refused:
        strict.validate(leaf, intermediates=[ca], at=NOW)
    assert refused.value.reason == "weak-algorithm"


def test_a_sha1_delta_never_lifts_a_remembered_hold(pki, keys):
    """Second review: deltas consulted for an expired complete CRL follow the policy too."""
    root = pki[0]
    ca = _cert("ca", "root", keys[1], keys[0], 2)
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    hold = (x509.RevokedCertificateBuilder().serial_number(3)
            .revocation_date(NOW - dt.timedelta(days=4))
            .add_extension(x509.CRLReason(x509.ReasonFlags.certificate_hold), critical=False)
            .build())
    complete = (x509.CertificateRevocationListBuilder().issuer_name(_name("ca"))
                .last_update(NOW - dt.timedelta(days=3)).next_update(NOW - dt.timedelta(days=2))
                .add_extension(x509.CRLNumber(10), critical=False)
                .add_revoked_certificate(hold).sign(keys[1], hashes.SHA256())
                .public_bytes(serialization.Encoding.DER))       # expired, lists the hold
    lift = (x509.RevokedCertificateBuilder().serial_number(3)
            .revocation_date(NOW - dt.timedelta(days=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.remove_from_crl), critical=False)
            .build())
    delta = _sha1((x509.CertificateRevocationListBuilder().issuer_name(_name("ca"))
                   .last_update(NOW - dt.timedelta(hours=1))
                   .next_update(NOW + dt.timedelta(days=1))
                   .add_extension(x509.CRLNumber(12), critical=False)
                   .add_extension(x509.DeltaCRLIndicator(10), critical=True)
                   .add_revoked_certificate(lift).sign(keys[1], hashes.SHA256())
                   .public_bytes(serialization.Encoding.DER)), "crl", keys[1])
    store = TrustStore.from_certificates([root])
    crls = [_crl("root", keys[0]), complete, delta]
    lax = Validator(store, crls=crls, revocation="soft-fail")
    assert lax.validate(leaf, intermediates=[ca], at=NOW)          # the delta lifts the hold
    strict = Validator(store, crls=crls, revocation="soft-fail", allow_sha1=False)
    with pytest.raises(CertificateRevoked):
        strict.validate(leaf, intermediates=[ca], at=NOW)
