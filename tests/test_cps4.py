"""CPS4 through a PKCS#11 module (issue 18, item 1, card side).

A CPS4 (NXP ChipDoc) is reached only through the ANS Cryptolib's PKCS#11 module
(5.2 or later). Here the Cryptolib is SoftHSM2 holding an emulated CPS4 token
laid out as the Cryptolib shows a real CPS4v1 card (docs/emulator.md, "CPS4
token (SoftHSM2)"); signatures are checked by ``cryptography`` and by ``openssl
pkeyutl`` (a verifier we did not write); the routing of ``open_card`` is decided
by :func:`cps.cryptolib.find_cryptolib` on prepared file-system trees. The tests
marked ``pcsc`` put the emulated CPS4 in pcscd's vpcd reader.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import Attribute, Mechanism, ObjectClass

import cps
from cps import errors
from cps.atr import CardKind, card_kind
from cps.card import KeyRole, LastTryRefused, PinStatus
from cps.cryptolib import CryptolibInstall, find_cryptolib, install_advice
from cps.emulator.card import EmulatedCard
from cps.emulator.pki import TestPKI
from cps.emulator.profiles import load_profile, profile_names
from cps.emulator.softhsm import NO_PSS_MECHANISMS, SoftHsmToken, provision_softhsm
from cps.open import CryptolibRequired, open_cps4
from cps.pkcs11 import CPS3, CPS4, Pkcs11Card
from cps.testing.cryptolib import install_fake_cryptolib

PREFIX = bytes.fromhex("e828bd080f8025000001ff0010")
DOC = b"compte rendu operatoire n 7"
HASHES = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}
LINUX_MODULE = "/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.generate(tmp_path_factory.mktemp("pki"), seed=1)


@pytest.fixture(scope="module")
def cps4(pki: TestPKI) -> EmulatedCard:
    return EmulatedCard.from_profile("cps4-medecin", pki=pki)


@pytest.fixture(scope="module")
def cps3(pki: TestPKI) -> EmulatedCard:
    return EmulatedCard.from_profile("cps3-medecin", pki=pki)


@pytest.fixture(scope="module")
def token(cps4: EmulatedCard, tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    return provision_softhsm(cps4, tmp_path_factory.mktemp("hsm-cps4"))


@pytest.fixture(scope="module")
def mixed(cps3: EmulatedCard, cps4: EmulatedCard,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[SoftHsmToken, SoftHsmToken]:
    """A CPS3 token and a CPS4 token behind one module, like two readers."""
    directory = tmp_path_factory.mktemp("hsm-mixed")
    return provision_softhsm(cps3, directory), provision_softhsm(cps4, directory)


def opened(token: SoftHsmToken, **kwargs: object) -> Pkcs11Card:
    token.get_token()  # point this process's SoftHSM at the token's configuration
    return Pkcs11Card.open(module=token.module, token_label=token.token_label, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def card(token: SoftHsmToken) -> Iterator[Pkcs11Card]:
    c = opened(token)
    yield c
    c.close()


@pytest.fixture
def fresh_card(cps4: EmulatedCard, tmp_path: Path) -> Iterator[Pkcs11Card]:
    c = opened(provision_softhsm(cps4, tmp_path))
    yield c
    c.close()


def openssl_verify(tmp_path: Path, cert: x509.Certificate, signature: bytes, digest: bytes,
                   name: str, pss: bool, salt: int | None = None) -> bool:
    """``openssl pkeyutl -verify`` of a signature of ``digest`` with the certificate's key."""
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "digest").write_bytes(digest)
    (tmp_path / "sig").write_bytes(signature)
    options = ["-pkeyopt", f"digest:{name}"]
    if pss:
        options += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", f"rsa_mgf1_md:{name}",
                    "-pkeyopt", f"rsa_pss_saltlen:{salt if salt is not None else 'digest'}"]
    else:
        options += ["-pkeyopt", "rsa_padding_mode:pkcs1"]
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-certin", "-inkey",
                           str(tmp_path / "cert.pem"), "-in", str(tmp_path / "digest"),
                           "-sigfile", str(tmp_path / "sig"), *options],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0 and "Verified Successfully" in done.stdout


def public(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# ------------------------------------------------------------------ the emulated CPS4
def test_cps4_profile_and_atr(cps4: EmulatedCard) -> None:
    assert cps4.profile.generation == "cps4" and not cps4.profile.contactless
    assert card_kind(cps4.atr) is CardKind.CPS4
    assert profile_names("cps4") == ["cps4-medecin"]
    assert "cps4-medecin" not in profile_names()  # the CPS3 lists stay CPS3 lists
    assert set(profile_names(None)) == set(profile_names()) | {"cps4-medecin"}


def test_cps4_certificates_six_years_same_extensions(cps4: EmulatedCard,
                                                     cps3: EmulatedCard) -> None:
    for cert, twin in ((cps4.credentials.auth_cert, cps3.credentials.auth_cert),
                       (cps4.credentials.sign_cert, cps3.credentials.sign_cert)):
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        assert (end.year - start.year, end.month, end.day) == (6, start.month, start.day)
        assert cert.issuer == twin.issuer  # TEST AC IGC-SANTE FORT PERSONNES
        assert [e.oid for e in cert.extensions] == [e.oid for e in twin.extensions]
        assert public(cert).key_size == 2048
    tw = cps3.credentials.auth_cert
    assert (tw.not_valid_after_utc.year - tw.not_valid_before_utc.year) == 4  # CPS3 unchanged


def test_cps4_refuses_ias_ecc_apdus(cps4: EmulatedCard) -> None:
    cps4.journal = []
    try:
        with cps4.connection() as conn:
            # SELECT of the CPS3's IAS-ECC application, then a READ BINARY
            select = bytes.fromhex("00A404000DE828BD080F8025000001FF001000")
            assert cps4.transmit(select)[-2:] == b"\x6a\x82"
            assert cps4.transmit(bytes.fromhex("00B0000010"))[-2:] == b"\x6d\x00"
            with pytest.raises(errors.UnsupportedCard, match="CPS4"):
                cps.open_card(connection=conn)
        assert len(cps4.journal) == 2  # open_card sent nothing
    finally:
        cps4.journal = None


def test_open_card_over_a_connection_refuses_a_cps4(cps4: EmulatedCard) -> None:
    cps4.journal = []
    try:
        with cps4.connection() as conn, pytest.raises(CryptolibRequired) as refused:
            cps.open_card(connection=conn)
        assert isinstance(refused.value, errors.UnsupportedCard)
        assert "5.2" in refused.value.install_advice
        assert cps4.journal == []
    finally:
        cps4.journal = None


# ------------------------------------------------------------------ the token layout
def test_token_layout_as_the_cryptolib_shows_it(token: SoftHsmToken, cps4: EmulatedCard) -> None:
    """Read with python-pkcs11 directly: what another PKCS#11 application would see."""
    assert token.token_label == f"CPS4v1-{cps4.profile.card_number}"
    with token.open(login=False) as session:
        certs = {o[Attribute.LABEL]: bytes(o[Attribute.ID])
                 for o in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})}
        assert certs == {"Certificat d'Authentification CPS": PREFIX + b"\x20",
                         "Certificat de Signature CPS": PREFIX + b"\x10"}
        publics = {bytes(o[Attribute.ID]): o[Attribute.LABEL]
                   for o in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})}
        assert publics == {PREFIX + b"\x20": "Cle publique - Certificat d'Authentification CPS",
                           PREFIX + b"\x10": "Cle publique - Certificat de Signature CPS"}
        assert not list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        data = {o[Attribute.LABEL] for o in session.get_objects({Attribute.CLASS:
                                                                ObjectClass.DATA})}
        assert data == {"CPS_NAME_PS", "CPS2TER_ID", "CPS2TER_NAME"}  # activity: private
        mechanisms = token.get_token().slot.get_mechanisms()
        for mechanism in (Mechanism.RSA_PKCS, Mechanism.SHA256_RSA_PKCS, Mechanism.RSA_PKCS_PSS,
                          Mechanism.SHA1_RSA_PKCS_PSS, Mechanism.SHA256_RSA_PKCS_PSS):
            assert mechanism in mechanisms
            info = token.get_token().slot.get_mechanism_info(mechanism)
            assert info.min_key_length <= 2048 <= info.max_key_length
    with token.open() as session:
        keys = {o[Attribute.LABEL]: (bytes(o[Attribute.ID]), o[Attribute.PRIVATE],
                                     o[Attribute.SIGN])
                for o in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})}
        assert keys == {"CPS_PRIV_AUT": (PREFIX + b"\x20", True, True),
                        "CPS_PRIV_SIG": (PREFIX + b"\x10", True, True)}
        assert {o[Attribute.LABEL] for o in session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.PRIVATE: True})} == \
            {"CPS_ACTIVITY_01_PS"}


# ------------------------------------------------------------------ Pkcs11Card on a CPS4
def test_identity(card: Pkcs11Card, cps4: EmulatedCard) -> None:
    assert card.generation == CPS4
    assert card.card_number == cps4.profile.card_number
    assert card.token_label == f"CPS4v1-{cps4.profile.card_number}"
    assert card.certificate(KeyRole.AUTH) == cps4.credentials.auth_cert
    assert card.certificate(KeyRole.SIGN) == cps4.credentials.sign_cert
    assert card.practitioner.idnat == cps4.profile.holder.idnat
    cert = card.certificate(KeyRole.SIGN)
    assert cert.not_valid_after_utc.year - cert.not_valid_before_utc.year == 6
    assert card.signature_paddings == frozenset({"pkcs1v15", "pss"})
    assert not card.contactless
    with pytest.raises(errors.NotSupported):
        card.certificate(KeyRole.TECH)  # no contactless key on a CPS4 token


def test_generation_from_the_key_ids_when_the_label_says_nothing(cps4: EmulatedCard,
                                                                 tmp_path: Path) -> None:
    token = provision_softhsm(cps4, tmp_path, label="Code porteur")
    with opened(token) as c:
        assert c.generation == CPS4
        assert c.card_number == cps4.profile.card_number  # from the certificate


def test_pin_status_and_verify(fresh_card: Pkcs11Card, cps4: EmulatedCard) -> None:
    assert fresh_card.pin_status() == PinStatus(tries_left=3, max_tries=3, blocked=False)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        fresh_card.sign(DOC)
    fresh_card.verify_pin(cps4.profile.pin or "")
    assert fresh_card.logged_in


def test_wrong_pin_and_last_try(fresh_card: Pkcs11Card, cps4: EmulatedCard,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.WrongPin) as wrong:
        fresh_card.verify_pin("9999")
    assert wrong.value.tries_left == 2 and not fresh_card.logged_in
    assert "9999" not in str(wrong.value) + repr(wrong.value)
    # SoftHSM never reaches its final try: the flags the Cryptolib sets then are
    # given through pin_status, as in tests/test_pkcs11_softhsm.py.
    monkeypatch.setattr(fresh_card, "pin_status",
                        lambda: PinStatus(tries_left=1, max_tries=3, blocked=False))
    with pytest.raises(LastTryRefused):
        fresh_card.verify_pin(cps4.profile.pin or "")
    assert not fresh_card.logged_in  # refused before the module saw a PIN
    monkeypatch.undo()
    fresh_card.verify_pin(cps4.profile.pin or "")
    assert fresh_card.logged_in and fresh_card.pin_status().tries_left == 3


@pytest.mark.parametrize("name", ["sha256", "sha1"])
@pytest.mark.parametrize("pad", ["pkcs1v15", "pss"])
def test_sign(card: Pkcs11Card, cps4: EmulatedCard, tmp_path: Path, name: str,
              pad: str) -> None:
    card.verify_pin(cps4.profile.pin or "")
    cert = cps4.credentials.sign_cert
    digest = hashlib.new(name, DOC).digest()
    scheme = (padding.PSS(padding.MGF1(HASHES[name]), len(digest)) if pad == "pss"
              else padding.PKCS1v15())
    for signature in (card.sign(DOC, hash=name, padding=pad),
                      card.sign(digest, hash=name, prehashed=True, padding=pad)):
        public(cert).verify(signature, DOC, scheme, HASHES[name])
        assert openssl_verify(tmp_path, cert, signature, digest, name, pad == "pss")
        if pad == "pss":  # the salt is exactly the hash's length
            assert not openssl_verify(tmp_path, cert, signature, digest, name, True,
                                      salt=len(digest) + 1)
    with pytest.raises(InvalidSignature):  # and the signing key, not the other one
        public(cps4.credentials.auth_cert).verify(signature, DOC, scheme, HASHES[name])


def test_pss_signatures_are_randomised(card: Pkcs11Card, cps4: EmulatedCard) -> None:
    card.verify_pin(cps4.profile.pin or "")
    assert card.sign(DOC, padding="pss") != card.sign(DOC, padding="pss")
    assert card.sign(DOC) == card.sign(DOC)


def test_authenticate(card: Pkcs11Card, cps4: EmulatedCard, tmp_path: Path) -> None:
    card.verify_pin(cps4.profile.pin or "")
    cert = cps4.credentials.auth_cert
    challenge = b"nonce-5b1d" * 3
    digest = hashlib.sha256(challenge).digest()
    # PSS over a digest (a TLS 1.3 CertificateVerify hands the digest over)
    sig = card.authenticate(digest, padding="pss")
    public(cert).verify(sig, challenge, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                        hashes.SHA256())
    assert openssl_verify(tmp_path, cert, sig, digest, "sha256", True)
    # PSS over a message, hashed first
    sig = card.authenticate(challenge, hash="sha1", padding="pss")
    public(cert).verify(sig, challenge, padding.PSS(padding.MGF1(hashes.SHA1()), 20),
                        hashes.SHA1())
    assert openssl_verify(tmp_path, cert, sig, hashlib.sha1(challenge).digest(), "sha1", True)
    # PKCS#1 v1.5 with hash=: a standard signature
    sig = card.authenticate(challenge, hash="sha256")
    public(cert).verify(sig, challenge, padding.PKCS1v15(), hashes.SHA256())
    assert openssl_verify(tmp_path, cert, sig, digest, "sha256", False)
    # a CPS4 has no 40 % INTERNAL AUTHENTICATE limit: the module pads, the card computes
    raw = b"\x42" * 200
    sig = card.authenticate(raw)
    assert public(cert).recover_data_from_signature(sig, padding.PKCS1v15(), None) == raw
    with pytest.raises(errors.NotSupported):
        card.authenticate(b"\x42" * 246)  # more than the type-1 padding leaves room for
    with pytest.raises(ValueError, match="32 bytes"):
        card.authenticate(b"\x00" * 48, padding="pss")  # a SHA-384 digest: not a CPS hash


def test_padding_names_checked(card: Pkcs11Card) -> None:
    for call in (lambda: card.sign(DOC, padding="PSS"), lambda: card.authenticate(
            DOC, hash="sha256", padding="oaep")):
        with pytest.raises(ValueError, match="unknown padding"):
            call()
    with pytest.raises(TypeError):
        card.sign(DOC, padding=None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ PSS refused
def test_module_without_pss(cps4: EmulatedCard, tmp_path: Path) -> None:
    token = provision_softhsm(cps4, tmp_path, mechanisms=NO_PSS_MECHANISMS)
    assert Mechanism.RSA_PKCS_PSS not in token.get_token().slot.get_mechanisms()
    with opened(token) as c:
        assert c.generation == CPS4 and c.signature_paddings == frozenset({"pkcs1v15"})
        # refused before the login is even asked for: no PIN, no signature
        with pytest.raises(errors.NotSupported, match="PKCS#1 v1.5 only"):
            c.sign(DOC, padding="pss")
        with pytest.raises(errors.NotSupported):
            c.authenticate(hashlib.sha256(DOC).digest(), padding="pss")
        assert not c.logged_in and c.pin_status().tries_left == 3
        c.verify_pin(cps4.profile.pin or "")
        with pytest.raises(errors.NotSupported):
            c.sign(DOC, padding="pss")
        public(cps4.credentials.sign_cert).verify(c.sign(DOC), DOC, padding.PKCS1v15(),
                                                  hashes.SHA256())


def test_pss_refused_on_a_cps3_token(mixed: tuple[SoftHsmToken, SoftHsmToken],
                                     cps3: EmulatedCard) -> None:
    """SoftHSM would sign PSS with any key; a real CPS3 cannot: refused all the same."""
    with opened(mixed[0]) as c:
        assert c.generation == CPS3 and c.signature_paddings == frozenset({"pkcs1v15"})
        c.verify_pin(cps3.profile.pin or "")
        with pytest.raises(errors.NotSupported, match="PKCS#1 v1.5 only"):
            c.sign(DOC, padding="pss")
        with pytest.raises(errors.NotSupported):
            c.authenticate(hashlib.sha256(DOC).digest(), padding="pss")
        with pytest.raises(ValueError):
            c.sign(DOC, padding="raw")


def test_pss_refused_on_the_cps3_emulator_without_an_apdu(cps3: EmulatedCard) -> None:
    with cps.open_card(connection=cps3.connection()) as card:
        assert card.signature_paddings == frozenset({"pkcs1v15"})
        card.verify_pin(cps3.profile.pin or "")
        cps3.journal = []
        try:
            with pytest.raises(errors.NotSupported, match="PKCS#1 v1.5 only"):
                card.sign(DOC, padding="pss")
            with pytest.raises(errors.NotSupported, match="PKCS#1 v1.5 only"):
                card.authenticate(hashlib.sha256(DOC).digest(), padding="pss")
            with pytest.raises(ValueError, match="unknown padding"):
                card.sign(DOC, padding="pss-sha256")
            assert cps3.journal == []  # not one APDU
            signature = card.sign(DOC, padding="pkcs1v15")
            assert cps3.journal  # the v1.5 signature did reach the card
        finally:
            cps3.journal = None
        public(cps3.credentials.sign_cert).verify(signature, DOC, padding.PKCS1v15(),
                                                  hashes.SHA256())


# ------------------------------------------------------------------ open_card routing
def test_generation_filter_never_takes_a_cps3(mixed: tuple[SoftHsmToken, SoftHsmToken]) -> None:
    t3, t4 = mixed
    t3.get_token()
    for wanted, token in ((CPS4, t4), (CPS3, t3)):
        with Pkcs11Card.open(module=t3.module, generation=wanted) as c:
            assert c.generation == wanted and c.token_label == token.token_label
    with pytest.raises(ValueError):
        Pkcs11Card.open(module=t3.module, generation="cps5")


def test_open_cps4_through_the_cryptolib(mixed: tuple[SoftHsmToken, SoftHsmToken],
                                         cps4: EmulatedCard, tmp_path: Path) -> None:
    t3, t4 = mixed
    install = find_cryptolib(platform="linux", bits=64,
                             root=install_fake_cryptolib(tmp_path / "root", t4.module, "5.2.2"))
    assert install is not None and install.supports_cps4 and install.version == "5.2.2"
    t4.get_token()
    # The slots are SoftHSM's, not named after the reader: the only CPS4 token is taken,
    # the CPS3 token beside it never.
    with open_cps4("Virtual PCD 00 00", install=install) as c:
        assert isinstance(c, Pkcs11Card) and c.generation == CPS4
        assert c.token_label == t4.token_label
        assert c.card_number == cps4.profile.card_number


def test_open_cps4_matches_the_slot_named_after_the_reader(
        mixed: tuple[SoftHsmToken, SoftHsmToken], tmp_path: Path) -> None:
    t3, t4 = mixed
    t4.get_token()
    description = t4.get_token().slot.slot_description
    install = CryptolibInstall(t4.module, "5.2.2", "adm")
    with open_cps4(description, install=install) as c:
        assert c.generation == CPS4 and c.reader == description


def test_slot_descriptions_cut_at_64_bytes_still_match_their_reader() -> None:
    from cps.pkcs11 import slot_matches_reader

    long = ("Identiv uTrust 4701 F Dual Interface Reader [uTrust 4701 F CL Reader] "
            "(55041234567890) 01 00")
    assert slot_matches_reader(long[:64].rstrip(), long)          # the module cut the name
    assert not slot_matches_reader(long[:30], long)                # a short name is not cut
    assert slot_matches_reader("Cherry ST-2100 00 00", "cherry")   # open_card's substring
    assert not slot_matches_reader("Virtual PCD 00 01", "Virtual PCD 00 00")
    assert not slot_matches_reader("", "Virtual PCD 00 00")
    assert not slot_matches_reader("Virtual PCD 00 00", "")


def test_open_cps4_never_takes_another_readers_cps4(mixed: tuple[SoftHsmToken, SoftHsmToken],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that names its slots after the PC/SC readers (the Cryptolib) and shows
    no token in the reader asked: its one CPS4 token is in another reader, and is not
    taken (the fallback is for modules naming slots their own way)."""
    from cps.readers import ReaderInfo

    t3, t4 = mixed
    named = t4.get_token().slot.slot_description     # the reader the module names
    monkeypatch.setattr("cps.readers.list_readers", lambda: [
        ReaderInfo(named, True, bytes.fromhex("3B9B1880010012250064800401000090" "44"),
                   CardKind.CPS4),
        ReaderInfo("Another Reader 00 00", True, b"", None)])
    install = CryptolibInstall(t4.module, "5.2.2", "adm")
    with pytest.raises(errors.NoCard, match="shows no token in Another Reader"):
        open_cps4("Another Reader 00 00", install=install)
    with open_cps4(named, install=install) as card:   # its own reader: found by name
        assert card.generation == CPS4


def test_open_cps4_several_cps4_tokens_unnamed(cps4: EmulatedCard, tmp_path: Path) -> None:
    directory = tmp_path / "two"
    a = provision_softhsm(cps4, directory)
    provision_softhsm(cps4, directory, label="CPS4v1-0000000000")
    a.get_token()
    with pytest.raises(errors.ReaderNotFound, match="several"):
        open_cps4("Virtual PCD 00 00", install=CryptolibInstall(a.module, "5.2.2", "adm"))


def test_open_cps4_without_cryptolib(tmp_path: Path) -> None:
    atr = bytes.fromhex("3B9B188001001225006480040100009044")
    assert find_cryptolib(platform="linux", bits=64, root=tmp_path) is None
    with pytest.raises(CryptolibRequired) as refused:
        open_cps4("Virtual PCD 00 00", install=None, atr=atr)
    err = refused.value
    assert isinstance(err, errors.UnsupportedCard) and err.atr == atr
    assert err.installed is None and "not installed" in str(err)
    assert err.install_advice in str(err)


def test_open_cps4_with_an_old_cryptolib(token: SoftHsmToken, tmp_path: Path) -> None:
    install = find_cryptolib(platform="linux", bits=64,
                             root=install_fake_cryptolib(tmp_path / "root", token.module, "5.1.4"))
    assert install is not None and install.supports_cps4 is False
    with pytest.raises(CryptolibRequired, match=r"5\.1\.4.*predates") as refused:
        open_cps4("Virtual PCD 00 00", install=install)
    assert refused.value.installed == install


def test_open_cps4_unknown_version_sees_no_cps4(mixed: tuple[SoftHsmToken, SoftHsmToken],
                                                cps3: EmulatedCard, tmp_path: Path) -> None:
    only3 = provision_softhsm(cps3, tmp_path / "only3")
    install = find_cryptolib(platform="linux", bits=64,
                             root=install_fake_cryptolib(tmp_path / "root", only3.module, None))
    assert install is not None and install.version is None and install.supports_cps4 is None
    only3.get_token()
    with pytest.raises(CryptolibRequired, match=r"shows no CPS4 token.*5\.2 or later"):
        open_cps4("Virtual PCD 00 00", install=install)
    # the same unknown version, with a CPS4 token to see: it is tried, and works
    mixed[1].get_token()
    with open_cps4("Virtual PCD 00 00", install=install) as c:
        assert c.generation == CPS4


def test_open_cps4_explicit_module(token: SoftHsmToken) -> None:
    token.get_token()
    with open_cps4("Virtual PCD 00 00", module=token.module, install=None) as c:
        assert c.generation == CPS4


@pytest.mark.parametrize(("platform", "bits", "module"), [
    ("linux", 64, LINUX_MODULE),
    ("darwin", 64, "/usr/local/lib/libcps3_pkcs11_osx.dylib"),
    ("win32", 64, "cps3_pkcs11_w64.dll"),
    ("win32", 32, "cps3_pkcs11_w32.dll"),
])
def test_install_advice_per_platform(platform: str, bits: int, module: str) -> None:
    advice = install_advice(platform=platform, bits=bits)
    assert "Cryptolib CPS 5.2 or later" in advice and module in advice
    assert "github.com/ansforge/dops-cryptolib" in advice
    assert "5.2" in install_advice(platform="freebsd14")


# ------------------------------------------------------------------ through pcscd (vpcd)
@pytest.fixture
def vpcd_cps4(cps_pcscd: None, cps4: EmulatedCard) -> Iterator[EmulatedCard]:
    port = int(os.environ.get("CPS_VPCD_PORT", "35963"))
    cps4.journal = []
    try:
        with cps4.serve_vpcd(port=port) as attachment:
            cps4.attachment = attachment
            yield cps4
    finally:
        cps4.journal = None
        cps4.attachment = None


@pytest.mark.pcsc
def test_open_card_routes_a_cps4_to_the_cryptolib(vpcd_cps4: EmulatedCard, token: SoftHsmToken,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The ATR read by pcscd decides; find_cryptolib (on a prepared tree) picks the module."""
    root = install_fake_cryptolib(tmp_path / "root", token.module, "5.2.2")
    monkeypatch.setattr("cps.cryptolib.find_cryptolib",
                        functools.partial(find_cryptolib, platform="linux", bits=64, root=root))
    token.get_token()
    reader = vpcd_cps4.attachment.reader_name  # type: ignore[union-attr]
    with cps.open_card(reader=reader) as card:
        assert isinstance(card, Pkcs11Card) and card.generation == CPS4
        assert card.card_number == vpcd_cps4.profile.card_number
    assert vpcd_cps4.journal == []  # not one APDU of ours reached the CPS4


@pytest.mark.pcsc
def test_open_card_cps4_without_cryptolib(vpcd_cps4: EmulatedCard, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cps.cryptolib.find_cryptolib",
                        functools.partial(find_cryptolib, platform="linux", bits=64,
                                          root=tmp_path))
    reader = vpcd_cps4.attachment.reader_name  # type: ignore[union-attr]
    with pytest.raises(errors.UnsupportedCard) as refused:
        cps.open_card(reader=reader)
    assert isinstance(refused.value, CryptolibRequired)
    assert "Cryptolib CPS 5.2 or later" in refused.value.install_advice
    assert vpcd_cps4.journal == []


@pytest.mark.pcsc
def test_open_card_cps4_with_an_explicit_module(vpcd_cps4: EmulatedCard,
                                                token: SoftHsmToken) -> None:
    token.get_token()
    reader = vpcd_cps4.attachment.reader_name  # type: ignore[union-attr]
    with cps.open_card(reader=reader, module=token.module) as card:
        assert isinstance(card, Pkcs11Card) and card.generation == CPS4
    assert vpcd_cps4.journal == []


def test_profile_schema(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "cps/emulator/card-profiles/cps4-medecin.toml"
            ).read_text(encoding="utf-8")
    from cps.emulator.profiles import ProfileError, parse_profile

    with pytest.raises(ProfileError, match="generation"):
        parse_profile(text.replace('generation = "cps4"', 'generation = "cps5"'), "x")
    contactless = text.replace('interface = "contact"', 'interface = "contactless"')
    with pytest.raises(ProfileError):
        parse_profile(contactless, "x")
    assert load_profile("cps3-medecin").generation == "cps3"
