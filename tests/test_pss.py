"""RSA-PSS where CPS4 cards use it (issue 18): CMS signatures, their strict
parameter checks, the login token, against openssl as the peer we did not write.

CPS4 cards sign RSASSA-PSS with MGF1 over the message's hash and a salt as long
as that hash (cps.card.PSS_PARAMETERS). ``SoftCps4`` below is a Card of
software keys issued by the test PKI that signs as such a card does; the
SoftHSM2 CPS4 token plays the same part end to end where its fixture exists.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

import cps
from cps import errors
from cps.auth import ChallengeIssuer, Verifier
from cps.card import Card, KeyRole, PinStatus
from cps.sign import (
    CmsError,
    SignatureInvalid,
    SoftwareSigner,
    sign_cms,
    verify_cms,
    verify_pkcs1,
    verify_pss,
)
from cps.token_format import TOKEN_FORMAT, TOKEN_FORMAT_2, signed_data, token_fields
from cps.trust import Validator
from cps.trust.algorithms import (
    PssParameters,
    check_rsa_padding,
    parse_pss_parameters,
    pss_max_salt,
    verify_signature,
)

DATA = b"ordonnance: amoxicilline 1 g, 3 fois par jour\n" * 50
ORIGIN = "https://dmp.example.fr"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


# ---------------------------------------------------------------- a software CPS4
class SoftCps4(Card):
    """A card of software keys (the test PKI's) signing as a CPS4 does: PKCS#1 v1.5
    and RSASSA-PSS, MGF1 over the message's hash, salt = hash length."""

    backend = "software-cps4"

    def __init__(self, creds: Any, *, salt: Optional[int] = None) -> None:
        super().__init__()
        self.creds = creds
        self.salt = salt          # None: the hash's length, as a CPS4
        self.signed: list = []    # (key role, padding) of each signature

    @property
    def card_number(self) -> str:
        return self.creds.profile.card_number

    @property
    def contactless(self) -> bool:
        return False

    @property
    def signature_paddings(self) -> frozenset:
        return frozenset({"pkcs1v15", "pss"})

    def certificate(self, role: KeyRole = KeyRole.AUTH) -> x509.Certificate:
        return self.creds.sign_cert if role == KeyRole.SIGN else self.creds.auth_cert

    def pin_status(self) -> PinStatus:  # pragma: no cover - not used here
        raise NotImplementedError

    def verify_pin(self, pin: Optional[str] = None, *, allow_last_try: bool = False) -> None:
        pass

    def change_pin(self, old_pin: Optional[str] = None, new_pin: Optional[str] = None, *,
                   allow_last_try: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    def unblock_pin(self, puk: str, new_pin: str, *,
                    allow_last_try: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    def _padding(self, name: str, algorithm: hashes.HashAlgorithm) -> Any:
        if name == "pss":
            salt = algorithm.digest_size if self.salt is None else self.salt
            return padding.PSS(padding.MGF1(algorithm), salt)
        return padding.PKCS1v15()

    def sign(self, data: bytes, hash: str = "sha256", *, prehashed: bool = False,
             padding: str = "pkcs1v15") -> bytes:
        algorithm = getattr(hashes, hash.upper())()
        self.signed.append((KeyRole.SIGN, padding))
        return self.creds.sign_key.sign(data, self._padding(padding, algorithm),
                                        Prehashed(algorithm) if prehashed else algorithm)

    def authenticate(self, challenge: bytes, *, hash: Optional[str] = None,
                     padding: str = "pkcs1v15") -> bytes:
        self.signed.append((KeyRole.AUTH, padding))
        if padding == "pss":
            name = hash or {20: "sha1", 32: "sha256"}[len(challenge)]
            algorithm = getattr(hashes, name.upper())()
            return self.creds.auth_key.sign(challenge, self._padding("pss", algorithm),
                                            algorithm if hash else Prehashed(algorithm))
        assert hash == "sha256"
        return self.creds.auth_key.sign(challenge, self._padding("pkcs1v15", hashes.SHA256()),
                                        hashes.SHA256())


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def creds(cps_pki):
    return cps_pki.issue_card("cps3-medecin")


@pytest.fixture(scope="module")
def validator(cps_pki) -> Validator:
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    return Validator(cps_pki.trust_store(intermediates=False, name="TEST"),
                     crls=cps_pki.crls(at, deltas=True), revocation="hard-fail")


@pytest.fixture(scope="module")
def pss_cms(creds) -> bytes:
    return sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), DATA, padding="pss",
                    chain=[creds.chain[0]])


def pem(*objects: Any) -> bytes:
    return b"".join(o.public_bytes(serialization.Encoding.PEM) for o in objects)


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def der_int(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)  # room for the sign bit
    return value.to_bytes(size, "big", signed=True)


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + value


OIDS = {"sha1": "06052b0e03021a", "sha256": "0609608648016503040201",
        "sha384": "0609608648016503040202", "sha512": "0609608648016503040203",
        "mgf1": "06092a864886f70d010108", "pss": "06092a864886f70d01010a",
        "md5": "06082a864886f70d0205"}


def hash_id(name: str, null: bool = True) -> bytes:
    return tlv(0x30, bytes.fromhex(OIDS[name]) + (b"\x05\x00" if null else b""))


def pss_params(hash: Optional[str] = "sha256", mgf: Optional[str] = "sha256",
               salt: Optional[int] = 32, trailer: Optional[int] = None,
               mgf_oid: str = "mgf1", raw_salt: Optional[bytes] = None,
               extra: bytes = b"") -> bytes:
    """RSASSA-PSS-params, DER, each field optional (None: left out, the DEFAULT)."""
    body = b""
    if hash is not None:
        body += tlv(0xA0, hash_id(hash))
    if mgf is not None:
        body += tlv(0xA1, tlv(0x30, bytes.fromhex(OIDS[mgf_oid]) + hash_id(mgf)))
    if raw_salt is not None:
        body += tlv(0xA2, tlv(0x02, raw_salt))
    elif salt is not None:
        body += tlv(0xA2, tlv(0x02, der_int(salt)))
    if trailer is not None:
        body += tlv(0xA3, tlv(0x02, der_int(trailer)))
    return tlv(0x30, body + extra)


def _tlvs(der: bytes, pos: int, end: int):
    while pos < end:
        tag = der[pos]
        n = der[pos + 1]
        vs = pos + 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(der[vs:vs + k], "big")
            vs += k
        yield tag, pos, vs, vs + n
        pos = vs + n


def replace_der(der: bytes, old: bytes, new: bytes) -> bytes:
    """``der`` with the last TLV equal to ``old`` (in a CMS: the SignerInfo's, after
    the certificates that may hold the same bytes) replaced by ``new``, every
    enclosing length fixed."""
    seen: list = []

    def walk(tag: int, start: int, vs: int, ve: int, target: int) -> bytes:
        whole = der[start:ve]
        if whole == old:
            seen.append(start)
            if len(seen) - 1 == target:
                return new
        if not tag & 0x20:  # primitive: nothing inside to replace
            return whole
        return tlv(tag, b"".join(walk(*child, target) for child in _tlvs(der, vs, ve)))
    (top,) = list(_tlvs(der, 0, len(der)))
    walk(*top, -1)               # count the occurrences
    count, seen[:] = len(seen), []
    assert count, "nothing to replace"
    return walk(*top, count - 1)


def signature_algorithm_of(p7s: bytes) -> bytes:
    return cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature_algorithm"].dump()


def with_pss_params(p7s: bytes, params: Optional[bytes]) -> bytes:
    """The CMS with other RSASSA-PSS parameters (None: none at all); the signature,
    which does not cover them, stays."""
    alg = tlv(0x30, bytes.fromhex(OIDS["pss"]) + (params or b""))
    return replace_der(p7s, signature_algorithm_of(p7s), alg)


# ---------------------------------------------------------------- CMS: round trip
def test_pss_cms_structure_and_round_trip(pss_cms, creds, validator):
    signer_info = cms.ContentInfo.load(pss_cms)["content"]["signer_infos"][0]
    alg = signer_info["signature_algorithm"]
    assert alg["algorithm"].dotted == "1.2.840.113549.1.1.10"
    # explicit parameters: hash and MGF1 over SHA-256, salt 32; trailerField 1 is
    # the DEFAULT, which DER leaves out
    assert alg["parameters"].dump() == pss_params(salt=32)
    assert parse_pss_parameters(alg["parameters"].dump()) == PssParameters("sha256", 32)
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha256"

    result = verify_cms(pss_cms, DATA, validator)
    assert result.signature_padding == "pss"
    assert result.practitioner is not None and result.practitioner.validated
    assert result.practitioner.idnat == creds.profile.holder.idnat
    # the signature really is PSS with a 32-byte salt over the signed attributes
    attrs = signer_info["signed_attrs"].untag().dump()
    creds.sign_cert.public_key().verify(
        signer_info["signature"].native, attrs,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(errors.CpsError):
        verify_cms(pss_cms, DATA + b"!", validator)


def test_pkcs1_stays_the_default(creds):
    p7s = sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), DATA, chain=[])
    assert cms.ContentInfo.load(p7s)["content"]["signer_infos"][0][
        "signature_algorithm"]["algorithm"].native == "sha256_rsa"
    assert verify_cms(p7s, DATA).signature_padding == "pkcs1v15"


def test_soft_cps4_card_signs_pss_cms(creds, validator):
    card = SoftCps4(creds)
    p7s = sign_cms(card, DATA, padding="pss", chain=[creds.chain[0]])
    assert card.signed == [(KeyRole.SIGN, "pss")]
    assert verify_cms(p7s, DATA, validator).signature_padding == "pss"


def test_a_card_salting_otherwise_is_caught_before_the_cms_is_returned(creds):
    with pytest.raises(SignatureInvalid):
        sign_cms(SoftCps4(creds, salt=20), DATA, padding="pss", chain=[])


def test_pss_needs_a_card_that_signs_it(cps_card_factory):
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        emu.journal = []
        assert "pss" not in card.signature_paddings
        with pytest.raises(errors.NotSupported):
            sign_cms(card, DATA, padding="pss")
        assert emu.journal == [], "refused before any APDU"
        with pytest.raises(ValueError):
            sign_cms(card, DATA, padding="oaep")


def test_pss_cades_t(creds, cps_tsa, validator):
    p7s = sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), DATA, padding="pss",
                   chain=[creds.chain[0]], timestamp=cps_tsa.url)
    result = verify_cms(p7s, DATA, validator)
    assert result.signature_padding == "pss"
    assert result.timestamp is not None
    assert result.validation_time_source == "timestamp"
    signature = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature"].native
    assert result.timestamp.message_imprint == hashlib.sha256(signature).digest()


def test_a_tsa_signing_pss_is_read_by_the_same_code(creds, cps_pki, cps_tsa, validator):
    # the TSA's token, its SignerInfo re-signed RSASSA-PSS with the TSA's own key
    from cps.timestamp import request_timestamp, verify_timestamp

    tsa_cert, tsa_key = cps_pki.issue_tsa()
    signer = SoftwareSigner(creds.sign_key, creds.sign_cert)
    made: list = []

    def pss_tsa(digest: bytes) -> bytes:
        token = request_timestamp(cps_tsa.url, digest, hash="sha256")
        info = cms.ContentInfo.load(token)
        signer_info = info["content"]["signer_infos"][0]
        attrs = signer_info["signed_attrs"].untag().dump()
        signature = tsa_key.sign(attrs, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                                 hashes.SHA256())
        old = signer_info["signature"].dump()
        resigned = replace_der(token, old, tlv(0x04, signature))
        resigned = with_pss_params(resigned, pss_params())
        made.append(resigned)
        return resigned

    p7s = sign_cms(signer, DATA, padding="pss", chain=[creds.chain[0]], timestamp=pss_tsa)
    result = verify_cms(p7s, DATA, validator)
    assert result.timestamp is not None and result.timestamp.tsa_certificate == tsa_cert
    # and the token's PSS parameters are checked as strictly as a signature's
    bad = with_pss_params(made[0], pss_params(salt=20))
    with pytest.raises(errors.CpsError) as info:
        verify_timestamp(bad, data=cms.ContentInfo.load(p7s)["content"]["signer_infos"][0][
            "signature"].native)
    assert info.value.reason == "signature"


# ---------------------------------------------------------------- CMS: openssl as the peer
@needs_openssl
def test_openssl_verifies_our_pss_cms(pss_cms, creds, tmp_path):
    (tmp_path / "sig.p7s").write_bytes(pss_cms)
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "root.pem").write_bytes(pem(creds.chain[1]))
    (tmp_path / "inter.pem").write_bytes(pem(creds.chain[0]))

    def verify(data: str) -> subprocess.CompletedProcess:
        return openssl("cms", "-verify", "-binary", "-inform", "DER",
                       "-in", str(tmp_path / "sig.p7s"), "-content", str(tmp_path / data),
                       "-CAfile", str(tmp_path / "root.pem"),
                       "-certfile", str(tmp_path / "inter.pem"), "-purpose", "any",
                       "-out", str(tmp_path / "out.bin"), "-cades")

    done = verify("data.bin")
    assert done.returncode == 0 and "CAdES Verification successful" in done.stderr, done.stderr
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER",
                      "-in", str(tmp_path / "sig.p7s")).stdout
    assert "rsassaPss" in printed
    (tmp_path / "other.bin").write_bytes(DATA + b"!")
    done = verify("other.bin")
    assert done.returncode != 0 and "failure" in done.stderr


@needs_openssl
@pytest.mark.parametrize("saltlen", [None, "32", "max"])
def test_we_verify_openssl_pss_cms(creds, validator, tmp_path, saltlen):
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "signer.pem").write_bytes(pem(creds.sign_cert))
    (tmp_path / "inter.pem").write_bytes(pem(creds.chain[0]))
    (tmp_path / "key.pem").write_bytes(creds.sign_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    extra = [] if saltlen is None else ["-keyopt", f"rsa_pss_saltlen:{saltlen}"]
    done = openssl("cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER",
                   "-signer", str(tmp_path / "signer.pem"), "-inkey", str(tmp_path / "key.pem"),
                   "-certfile", str(tmp_path / "inter.pem"), "-in", str(tmp_path / "data.bin"),
                   "-out", str(tmp_path / "sig.p7s"), "-keyopt", "rsa_padding_mode:pss", *extra)
    assert done.returncode == 0, done.stderr
    p7s = (tmp_path / "sig.p7s").read_bytes()
    declared = parse_pss_parameters(
        cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature_algorithm"][
            "parameters"].dump())
    assert declared.hash == "sha256"
    if saltlen == "32":
        assert declared.salt_length == 32
    elif saltlen == "max":
        assert declared.salt_length == pss_max_salt(2048, "sha256") == 222
    result = verify_cms(p7s, DATA, validator)
    assert result.signature_padding == "pss"
    assert result.practitioner.idnat == creds.profile.holder.idnat
    with pytest.raises(errors.CpsError):
        verify_cms(p7s, DATA[:-1], validator)


# ---------------------------------------------------------------- CMS: hostile parameters
BAD_PARAMETERS = {
    "missing": None,
    "null": b"\x05\x00",
    "mgf-hash-differs": pss_params(mgf="sha384"),
    "mgf-hash-default-sha1": pss_params(mgf=None),
    "mgf-not-mgf1": pss_params(mgf_oid="md5"),
    "hash-differs-from-digest": pss_params(hash="sha384", mgf="sha384"),
    "hash-default-sha1": pss_params(hash=None, mgf=None),
    "hash-sha1": pss_params(hash="sha1", mgf="sha1", salt=20),
    "hash-unknown": pss_params(hash="md5", mgf="md5"),
    "salt-too-long-for-the-key": pss_params(salt=223),
    "salt-negative": pss_params(salt=-1),
    "salt-huge": pss_params(salt=2 ** 70),
    "salt-over-the-parser-bound": pss_params(salt=4096),
    "salt-not-minimal": pss_params(raw_salt=b"\x00\x20"),
    "salt-empty": pss_params(raw_salt=b""),
    "trailer-2": pss_params(trailer=2),
    "trailer-0": pss_params(trailer=0),
    "field-repeated": pss_params(extra=tlv(0xA2, tlv(0x02, b"\x20"))),
    "fields-out-of-order": tlv(0x30, tlv(0xA2, tlv(0x02, b"\x20")) + tlv(0xA0, hash_id("sha256"))
                               + tlv(0xA1, tlv(0x30, bytes.fromhex(OIDS["mgf1"])
                                               + hash_id("sha256")))),
    "unknown-field": pss_params(extra=tlv(0xA4, b"")),
    "garbage-after-hash-oid": pss_params().replace(hash_id("sha256"), tlv(
        0x30, bytes.fromhex(OIDS["sha256"]) + b"\x04\x00"), 1),
    "truncated": pss_params()[:-3],
    "not-a-sequence": tlv(0x31, b""),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMETERS))
def test_bad_pss_parameters_are_refused_typed(pss_cms, case):
    p7s = with_pss_params(pss_cms, BAD_PARAMETERS[case])
    with pytest.raises(CmsError) as info:
        verify_cms(p7s, DATA)
    expected = "weak-algorithm" if case in ("hash-sha1", "hash-default-sha1") else "malformed"
    assert info.value.reason == expected, info.value


def test_a_parameter_other_than_the_signers_fails_the_signature(pss_cms):
    # well-formed, allowed, but not what was signed with: exactly the declared salt
    for salt in (0, 20, 64, 222):
        with pytest.raises(SignatureInvalid) as info:
            verify_cms(with_pss_params(pss_cms, pss_params(salt=salt)), DATA)
        assert info.value.reason == "signature"
    # the same parameters spelt with absent hash parameters and an explicit
    # trailerField 1 are the same parameters: accepted
    same = tlv(0x30, tlv(0xA0, hash_id("sha256", null=False))
               + tlv(0xA1, tlv(0x30, bytes.fromhex(OIDS["mgf1"]) + hash_id("sha256", False)))
               + tlv(0xA2, tlv(0x02, b"\x20")) + tlv(0xA3, tlv(0x02, b"\x01")))
    assert verify_cms(with_pss_params(pss_cms, same), DATA).signature_padding == "pss"


def test_pss_oid_inside_pkcs1_cms_and_back(creds):
    # a PKCS#1 v1.5 signature relabelled PSS, and a PSS one relabelled PKCS#1: refused
    signer = SoftwareSigner(creds.sign_key, creds.sign_cert)
    pkcs1 = sign_cms(signer, DATA, chain=[])
    with pytest.raises(SignatureInvalid) as info:
        verify_cms(with_pss_params(pkcs1, pss_params()), DATA)
    assert info.value.reason == "signature"
    pss = sign_cms(signer, DATA, padding="pss", chain=[])
    relabelled = replace_der(pss, signature_algorithm_of(pss),
                             tlv(0x30, bytes.fromhex("06092a864886f70d01010b0500")))
    with pytest.raises(SignatureInvalid) as info:
        verify_cms(relabelled, DATA)
    assert info.value.reason == "signature"


def test_the_shared_reader_refuses_what_certificates_would_too():
    # cps.trust.algorithms is the one PSS reader: certificates, CRLs, OCSP and CMS
    for case in ("mgf-hash-differs", "salt-negative", "trailer-2", "field-repeated",
                 "garbage-after-hash-oid", "salt-huge"):
        with pytest.raises(ValueError):
            parse_pss_parameters(BAD_PARAMETERS[case])
    # a salt longer than the key can carry verifies nothing (not an exception)
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - a short key: a shorter bound
    signature = key.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    oid = "1.2.840.113549.1.1.10"
    assert verify_signature(key.public_key(), signature, b"x", oid, pss_params(salt=32))
    assert not verify_signature(key.public_key(), signature, b"x", oid,
                                pss_params(salt=pss_max_salt(1024, "sha256") + 1))


# ---------------------------------------------------------------- raw PSS, restricted keys
def test_verify_pss(creds):
    card = SoftCps4(creds)
    signature = card.sign(DATA, padding="pss")
    verify_pss(creds.sign_cert, signature, DATA)
    verify_pss(creds.sign_cert.public_bytes(serialization.Encoding.DER), signature, DATA,
               salt_length=32)
    with pytest.raises(SignatureInvalid):
        verify_pss(creds.sign_cert, signature, DATA, salt_length=20)
    with pytest.raises(SignatureInvalid):
        verify_pss(creds.sign_cert, signature, DATA + b"x")
    with pytest.raises(SignatureInvalid):
        verify_pkcs1(creds.sign_cert, signature, DATA)      # PSS is not PKCS#1
    with pytest.raises(ValueError):
        verify_pss(creds.sign_cert, signature, DATA, salt_length=-1)
    with pytest.raises(errors.NotSupported):
        verify_pss(creds.sign_cert, signature, DATA, hash="md5")


@pytest.fixture(scope="module")
def pss_only_cert(tmp_path_factory) -> tuple:
    """A certificate whose key is an id-RSASSA-PSS key (SHA-256, salt >= 32), by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pss-key")
    done = openssl("genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                   "-pkeyopt", "rsa_pss_keygen_md:sha256",
                   "-pkeyopt", "rsa_pss_keygen_mgf1_md:sha256",
                   "-pkeyopt", "rsa_pss_keygen_saltlen:32", "-out", str(d / "key.pem"))
    assert done.returncode == 0, done.stderr
    done = openssl("req", "-new", "-x509", "-key", str(d / "key.pem"), "-subj", "/CN=pss only",
                   "-days", "2", "-out", str(d / "cert.pem"))
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate((d / "cert.pem").read_bytes())
    key = serialization.load_pem_private_key((d / "key.pem").read_bytes(), None)
    return cert, key


def spki_of(cert: x509.Certificate) -> bytes:
    from cps.trust.certs import parse_cert

    return parse_cert(cert.public_bytes(serialization.Encoding.DER)).spki


def test_an_rsassa_pss_key_signs_pss_only(pss_only_cert, creds):
    cert, key = pss_only_cert
    spki = spki_of(cert)
    check_rsa_padding(spki, "pss", PssParameters("sha256", 32))
    check_rsa_padding(spki, "pss", PssParameters("sha256", 64))     # longer salt: allowed
    for padding_name, params in (("pkcs1v15", None), ("pss", PssParameters("sha256", 20)),
                                 ("pss", PssParameters("sha384", 48))):
        with pytest.raises(ValueError):
            check_rsa_padding(spki, padding_name, params)
    check_rsa_padding(spki_of(creds.sign_cert), "pkcs1v15")        # rsaEncryption: both
    check_rsa_padding(spki_of(creds.sign_cert), "pss", PssParameters("sha256", 32))
    # raw verification honours the restriction
    pkcs1 = key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(SignatureInvalid):
        verify_pkcs1(cert, pkcs1, DATA)
    verify_pss(cert, key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                              hashes.SHA256()), DATA)


# ---------------------------------------------------------------- the login token
@pytest.fixture
def issuer() -> ChallengeIssuer:
    return ChallengeIssuer()


def verifier_for(validator: Validator, issuer: ChallengeIssuer, **options: Any) -> Verifier:
    return Verifier(validator, issuer.store, [ORIGIN], **options)


def relabel(token: Dict[str, str], **fields: str) -> Dict[str, str]:
    return {**token, **fields}


def test_a_cps4_pss_token_verifies(creds, cps_pki, issuer):
    card = SoftCps4(creds)
    nonce = issuer.issue().nonce
    token = card.auth_token(nonce, ORIGIN, padding="pss")
    assert (token["format"], token["algorithm"]) == (TOKEN_FORMAT_2, "PS256")
    assert card.signed == [(KeyRole.AUTH, "pss")]
    # what was signed: the format and the algorithm first, then origin and nonce
    signature = base64.b64decode(token["signature"])
    creds.auth_cert.public_key().verify(
        signature, signed_data(ORIGIN, nonce, TOKEN_FORMAT_2, "PS256"),
        padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert len(signed_data(ORIGIN, nonce, TOKEN_FORMAT_2, "PS256")) == 96
    result = verifier_for(cps_pki.validator(), issuer).verify(json.dumps(token), ORIGIN)
    assert result.practitioner.idnat == creds.profile.holder.idnat
    assert result.practitioner.validated


def test_old_format_tokens_still_verify(creds, cps_pki, issuer, cps_card_factory):
    verifier = verifier_for(cps_pki.validator(), issuer)
    # a CPS3 (the emulated card) makes format 1, RS256, as before format 2 existed
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        token = card.auth_token(issuer.issue().nonce, ORIGIN)
        with pytest.raises(errors.NotSupported):
            card.auth_token(issuer.issue().nonce, ORIGIN, padding="pss")
    assert (token["format"], token["algorithm"]) == (TOKEN_FORMAT, "RS256")
    assert verifier.verify(token, ORIGIN).practitioner.idnat == emu.profile.holder.idnat
    # a CPS4 asked for PKCS#1 v1.5 answers format 1 too: any server takes it
    token = SoftCps4(creds).auth_token(issuer.issue().nonce, ORIGIN)
    assert token["format"] == TOKEN_FORMAT
    assert verifier.verify(token, ORIGIN).practitioner.validated
    # format 2 may carry RS256 as well (its algorithm signed)
    nonce = issuer.issue().nonce
    data = signed_data(ORIGIN, nonce, TOKEN_FORMAT_2, "RS256")
    token = token_fields(creds.auth_cert.public_bytes(serialization.Encoding.DER),
                         creds.auth_key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
                         nonce, ORIGIN, TOKEN_FORMAT_2, "RS256")
    assert verifier.verify(token, ORIGIN).practitioner.validated


def test_padding_swaps_and_downgrades_are_refused(creds, cps_pki, issuer):
    verifier = verifier_for(cps_pki.validator(), issuer)
    card = SoftCps4(creds)
    swaps = [
        ({"algorithm": "RS256"}, errors.InvalidSignature),               # PSS sold as PKCS#1
        ({"format": TOKEN_FORMAT, "algorithm": "RS256"}, errors.InvalidSignature),  # as format 1
        ({"format": TOKEN_FORMAT}, errors.UnsupportedAlgorithm),          # PS256 unsigned: no
    ]
    for fields, error in swaps:
        token = card.auth_token(issuer.issue().nonce, ORIGIN, padding="pss")
        with pytest.raises(error):
            verifier.verify(relabel(token, **fields), ORIGIN)
    # the other way: a PKCS#1 v1.5 signature labelled PS256
    nonce = issuer.issue().nonce
    pkcs1 = creds.auth_key.sign(signed_data(ORIGIN, nonce, TOKEN_FORMAT_2, "PS256"),
                                padding.PKCS1v15(), hashes.SHA256())
    token = token_fields(creds.auth_cert.public_bytes(serialization.Encoding.DER), pkcs1,
                         nonce, ORIGIN, TOKEN_FORMAT_2, "PS256")
    with pytest.raises(errors.InvalidSignature):
        verifier.verify(token, ORIGIN)
    # a PSS signature with another salt than PS256's 32 bytes
    token = SoftCps4(creds, salt=20).auth_token(issuer.issue().nonce, ORIGIN, padding="pss")
    with pytest.raises(errors.InvalidSignature):
        verifier.verify(token, ORIGIN)
    # unknown algorithms and formats stay refused
    token = card.auth_token(issuer.issue().nonce, ORIGIN, padding="pss")
    with pytest.raises(errors.UnsupportedAlgorithm):
        verifier.verify(relabel(token, algorithm="PS384"), ORIGIN)
    with pytest.raises(errors.UnsupportedTokenFormat):
        verifier.verify(relabel(token, format="cps-auth-token/3"), ORIGIN)


def test_paddings_policy(creds, cps_pki, issuer):
    card = SoftCps4(creds)
    pss_only = verifier_for(cps_pki.validator(), issuer, paddings={"pss"})
    nonce = issuer.issue().nonce
    with pytest.raises(errors.UnsupportedAlgorithm):
        pss_only.verify(card.auth_token(nonce, ORIGIN), ORIGIN)
    # refused before the nonce was consumed: the PSS answer to it still works
    assert pss_only.verify(card.auth_token(nonce, ORIGIN, padding="pss"), ORIGIN).practitioner
    pkcs1_only = verifier_for(cps_pki.validator(), issuer, paddings=("pkcs1v15",))
    with pytest.raises(errors.UnsupportedAlgorithm):
        pkcs1_only.verify(card.auth_token(issuer.issue().nonce, ORIGIN, padding="pss"), ORIGIN)
    assert pkcs1_only.verify(card.auth_token(issuer.issue().nonce, ORIGIN), ORIGIN)
    assert verifier_for(cps_pki.validator(), issuer).paddings == {"pkcs1v15", "pss"}
    with pytest.raises(TypeError):
        verifier_for(cps_pki.validator(), issuer, paddings="pss")
    for bad in (set(), {"pss", "oaep"}):
        with pytest.raises(ValueError):
            verifier_for(cps_pki.validator(), issuer, paddings=bad)
    with pytest.raises(ValueError):
        card.auth_token(issuer.issue().nonce, ORIGIN, padding="oaep")


def test_a_pss_only_key_cannot_log_in_with_pkcs1(pss_only_cert, cps_pki, issuer):
    cert, key = pss_only_cert
    der = cert.public_bytes(serialization.Encoding.DER)
    verifier = verifier_for(cps_pki.validator(), issuer)
    nonce = issuer.issue().nonce
    pkcs1 = key.sign(signed_data(ORIGIN, nonce), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(errors.InvalidSignature, match="RSASSA-PSS key"):
        verifier.verify(token_fields(der, pkcs1, nonce, ORIGIN), ORIGIN)
    # PS256 passes the key's restriction and the signature; the certificate is
    # then judged (self-signed: not an IGC-Santé one), never InvalidSignature
    nonce = issuer.issue().nonce
    pss = key.sign(signed_data(ORIGIN, nonce, TOKEN_FORMAT_2, "PS256"),
                   padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(errors.CpsError) as info:
        verifier.verify(token_fields(der, pss, nonce, ORIGIN, TOKEN_FORMAT_2, "PS256"), ORIGIN)
    assert not isinstance(info.value, errors.InvalidSignature)


# ---------------------------------------------------------------- end to end: the CPS4 token
@pytest.fixture
def cps4_card(cps_softhsm_cps4: Any, cps_cps4_card: Any) -> Any:
    """The emulated CPS4 as SoftHSM2 holds it (RSA-PSS offered), through cps.pkcs11,
    its PIN verified."""
    from cps.pkcs11 import Pkcs11Card

    cps_softhsm_cps4.get_token()    # point this process's SoftHSM at the token
    card = Pkcs11Card.open(module=cps_softhsm_cps4.module,
                           token_label=cps_softhsm_cps4.token_label)
    try:
        assert card.signature_paddings == {"pkcs1v15", "pss"}
        card.verify_pin(cps_cps4_card.pin)
        yield card
    finally:
        card.close()


@needs_openssl
def test_cps4_token_pss_cms_end_to_end(cps4_card, cps_cps4_card, cps_pki, validator, tmp_path):
    creds = cps_cps4_card.credentials
    p7s = sign_cms(cps4_card, DATA, padding="pss", chain=[creds.chain[0]])
    assert parse_pss_parameters(cms.ContentInfo.load(p7s)["content"]["signer_infos"][0][
        "signature_algorithm"]["parameters"].dump()) == PssParameters("sha256", 32)
    result = verify_cms(p7s, DATA, validator)
    assert result.signature_padding == "pss"
    assert result.practitioner.idnat == cps_cps4_card.profile.holder.idnat
    (tmp_path / "sig.p7s").write_bytes(p7s)
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "root.pem").write_bytes(pem(creds.chain[1]))
    done = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.p7s"),
                   "-content", str(tmp_path / "data.bin"), "-CAfile", str(tmp_path / "root.pem"),
                   "-purpose", "any", "-cades", "-out", str(tmp_path / "out.bin"))
    assert done.returncode == 0 and "CAdES Verification successful" in done.stderr, done.stderr


def test_cps4_token_pss_login_end_to_end(cps4_card, cps_cps4_card, cps_pki, issuer):
    token = cps4_card.auth_token(issuer.issue().nonce, ORIGIN, padding="pss")
    assert (token["format"], token["algorithm"]) == (TOKEN_FORMAT_2, "PS256")
    verifier = verifier_for(cps_pki.validator(), issuer, paddings={"pss"})
    result = verifier.verify(token, ORIGIN)
    assert result.practitioner.idnat == cps_cps4_card.profile.holder.idnat
    # relabelled as PKCS#1 v1.5: refused
    token = cps4_card.auth_token(issuer.issue().nonce, ORIGIN, padding="pss")
    with pytest.raises(errors.InvalidSignature):
        verifier_for(cps_pki.validator(), issuer).verify(relabel(token, algorithm="RS256"),
                                                         ORIGIN)


# ---------------------------------------------------------------- the CLI, in process
def test_cli_sign_and_verify_pss_with_the_cps4_token(cps_softhsm_cps4, cps_cps4_card, cps_pki,
                                                     tmp_path, capsys, monkeypatch):
    """``cps sign --padding pss`` on the SoftHSM2 CPS4 (no pcscd), ``cps verify``
    of the CMS and of the raw signature; PSS where it has no form is a usage error."""
    from cps_cli.__main__ import main

    cps_softhsm_cps4.get_token()   # SOFTHSM2_CONF for this process
    doc = tmp_path / "doc.txt"
    doc.write_bytes(DATA)
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(pem(*cps_pki.anchors(), *cps_pki.intermediates.values()))
    crls = []
    for i, crl in enumerate(cps_pki.crls()):
        path = tmp_path / f"crl{i}.der"
        path.write_bytes(crl)
        crls += ["--crl", str(path)]
    monkeypatch.setenv("P", cps_cps4_card.pin)
    card_args = ["--backend", "pkcs11", "--module", cps_softhsm_cps4.module]

    def run(*args: str) -> tuple:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = run("sign", *card_args, str(doc), "--padding", "pss", "--pin", "env:P",
                         "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["padding"] == "pss" and report["format"] == "cades"
    assert cps_cps4_card.pin not in out + err
    p7s = Path(report["output"]).read_bytes()
    assert verify_cms(p7s, DATA).signature_padding == "pss"
    code, out, err = run("verify", str(doc), report["output"], "--anchors", str(anchors),
                         *crls, "--json")
    assert code == 0, err
    assert json.loads(out)["signature_padding"] == "pss"

    raw = tmp_path / "doc.sig"
    code, out, err = run("sign", *card_args, str(doc), "--raw", "--padding", "pss",
                         "-o", str(raw), "--pin", "env:P")
    assert code == 0, err
    cert = tmp_path / "sign.pem"
    cert.write_bytes(pem(cps_cps4_card.credentials.sign_cert))
    verify_pss(cps_cps4_card.credentials.sign_cert, raw.read_bytes(), DATA)
    code, out, err = run("verify", str(doc), str(raw), "--raw", "--cert", str(cert),
                         "--padding", "pss", "--anchors", str(anchors), *crls, "--json")
    assert code == 0, err
    assert json.loads(out)["signature_padding"] == "pss"
    # the same signature read as PKCS#1 v1.5: a bad signature (exit 17)
    code, out, err = run("verify", str(doc), str(raw), "--raw", "--cert", str(cert),
                         "--anchors", str(anchors), *crls)
    assert code == 17, err
    # PSS has no XAdES or PAdES form here: a usage error, no card touched
    code, out, err = run("sign", *card_args, str(doc), "--format", "xades", "--padding", "pss",
                         "--pin", "env:P")
    assert code == 2 and "--padding pss" in err
