"""SoftHSM2 tokens provisioned from emulated cards (cps.emulator.softhsm)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pkcs11  # a runtime dependency: its absence is a failure, not a skip
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, Mechanism, ObjectClass

from cps.emulator.card import EmulatedCard
from cps.emulator.layout import key_id
from cps.emulator.pki import CardCredentials, TestPKI
from cps.emulator.security import KEY_AUTH, KEY_SIGN, KEY_TECH
from cps.emulator.softhsm import (
    CONTACTLESS_PIN,
    SoftHsmToken,
    find_softhsm_module,
    provision_softhsm,
)
from cps.errors import CpsError, NotSupported

try:
    MODULE = find_softhsm_module()
except NotSupported:  # pragma: no cover - softhsm2 is installed in CI: these tests run there
    pytest.skip("softhsm2 is not installed", allow_module_level=True)

AUT_CERT = "Certificat d'Authentification CPS"
SIG_CERT = "Certificat de Signature CPS"
TECH_CERT = "Certificat Technique CPS"
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
DATA = b"challenge Pro Sante Connect"


def contact_objects() -> set[tuple[ObjectClass, str, bytes]]:
    aut, sig = key_id(KEY_AUTH), key_id(KEY_SIGN)
    return {
        (ObjectClass.PRIVATE_KEY, "CPS_PRIV_AUT", aut),
        (ObjectClass.PRIVATE_KEY, "CPS_PRIV_SIG", sig),
        (ObjectClass.CERTIFICATE, AUT_CERT, aut),
        (ObjectClass.CERTIFICATE, SIG_CERT, sig),
        (ObjectClass.PUBLIC_KEY, f"Cle publique - {AUT_CERT}", aut),
        (ObjectClass.PUBLIC_KEY, f"Cle publique - {SIG_CERT}", sig),
    }


def listing(session: "pkcs11.Session") -> set[tuple[ObjectClass, str, bytes]]:
    return {(o[Attribute.CLASS], o[Attribute.LABEL], o[Attribute.ID])
            for o in session.get_objects()}


def by_label(session: "pkcs11.Session", cls: ObjectClass, label: str) -> "pkcs11.Object":
    return session.get_key(object_class=cls, label=label) if cls != ObjectClass.CERTIFICATE \
        else next(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))


def pkcs11_tool(token: SoftHsmToken, *args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("pkcs11-tool")
    if tool is None:  # pragma: no cover - OpenSC is installed with the project's tools
        pytest.fail("pkcs11-tool (OpenSC) is not installed: run `make test`, which installs it")
    return subprocess.run([tool, "--module", token.module, *args], env=token.env(),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.generate(tmp_path_factory.mktemp("pki"), seed=1)


@pytest.fixture(scope="session")
def medecin(pki: TestPKI) -> CardCredentials:
    return pki.issue_card("cps3-medecin")


@pytest.fixture(scope="session")
def contactless(pki: TestPKI) -> CardCredentials:
    return pki.issue_card("cps3-contactless")


@pytest.fixture(scope="session")
def hsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("softhsm")


@pytest.fixture(scope="session")
def token(medecin: CardCredentials, hsm_dir: Path) -> SoftHsmToken:
    return provision_softhsm(medecin, hsm_dir)


@pytest.fixture(scope="session")
def cl_token(contactless: CardCredentials, hsm_dir: Path, token: SoftHsmToken) -> SoftHsmToken:
    # Same directory as `token`: one configuration, two tokens (two "readers").
    return provision_softhsm(contactless, hsm_dir)


# ------------------------------------------------------------------ identity and objects
def test_token_identity(token: SoftHsmToken, medecin: CardCredentials, hsm_dir: Path) -> None:
    assert token.token_label == "CPS3v3-2990000101" == f"CPS3v3-{medecin.profile.card_number}"
    assert token.module == MODULE and os.path.isfile(token.module)
    assert token.conf == hsm_dir.resolve() / "softhsm2.conf"
    assert token.env()["SOFTHSM2_CONF"] == str(token.conf)
    assert token.pin == medecin.profile.pin and not token.pin_is_placeholder
    assert re.fullmatch(r"[0-9a-f]{16}", token.serial)
    assert token.get_token().label == token.token_label


def test_objects_labels_ids_and_attributes(token: SoftHsmToken,
                                           medecin: CardCredentials) -> None:
    with token.open() as session:
        assert listing(session) == contact_objects()
        for label, decrypt, cert in (("CPS_PRIV_AUT", True, medecin.auth_cert),
                                     ("CPS_PRIV_SIG", False, medecin.sign_cert)):
            key = by_label(session, ObjectClass.PRIVATE_KEY, label)
            assert key[Attribute.PRIVATE] and key[Attribute.SENSITIVE]
            assert not key[Attribute.EXTRACTABLE]
            assert key[Attribute.SIGN] and key[Attribute.DECRYPT] is decrypt
            n = cert.public_key().public_numbers().n
            assert int.from_bytes(key[Attribute.MODULUS], "big") == n
        for label, cert in ((AUT_CERT, medecin.auth_cert), (SIG_CERT, medecin.sign_cert)):
            obj = by_label(session, ObjectClass.CERTIFICATE, label)
            assert obj[Attribute.VALUE] == cert.public_bytes(Encoding.DER)
            assert obj[Attribute.SUBJECT] == cert.subject.public_bytes()
            assert not obj[Attribute.PRIVATE]


def test_public_objects_visible_without_login(token: SoftHsmToken) -> None:
    with token.open(login=False) as session:
        public = {o for o in contact_objects() if o[0] != ObjectClass.PRIVATE_KEY}
        assert listing(session) == public


def test_pkcs11_tool_sees_the_token(token: SoftHsmToken, cl_token: SoftHsmToken) -> None:
    slots = pkcs11_tool(token, "--list-token-slots")
    assert slots.returncode == 0, slots.stderr
    assert re.search(r"token label\s*:\s*CPS3v3-2990000101\b", slots.stdout)
    assert re.search(r"token label\s*:\s*CPS3v3-2990000109\b", slots.stdout)
    assert re.search(rf"serial num\s*:\s*{token.serial}\b", slots.stdout)

    done = pkcs11_tool(token, "--token-label", token.token_label, "--list-objects",
                       "--login", "--pin", token.pin)
    assert done.returncode == 0, done.stderr
    found = set(re.findall(r"label:\s+(.+?)\s*\n\s+(?:subject:.*\n\s+serial:.*\n\s+)?"
                           r"ID:\s+([0-9a-f]+)", done.stdout))
    assert found == {(label, oid.hex()) for _, label, oid in contact_objects()}


# ------------------------------------------------------------------ cryptography
def test_auth_key_signs_digest_info_with_rsa_pkcs(token: SoftHsmToken,
                                                  medecin: CardCredentials) -> None:
    digest_info = SHA256_DIGEST_INFO + hashlib.sha256(DATA).digest()
    with token.open() as session:
        key = by_label(session, ObjectClass.PRIVATE_KEY, "CPS_PRIV_AUT")
        signature = key.sign(digest_info, mechanism=Mechanism.RSA_PKCS)
    medecin.auth_cert.public_key().verify(signature, DATA, padding.PKCS1v15(), hashes.SHA256())


def test_sign_key_signs_with_sha256_rsa_pkcs(token: SoftHsmToken,
                                             medecin: CardCredentials) -> None:
    with token.open() as session:
        key = by_label(session, ObjectClass.PRIVATE_KEY, "CPS_PRIV_SIG")
        signature = key.sign(DATA, mechanism=Mechanism.SHA256_RSA_PKCS)
        raw = key.sign(SHA256_DIGEST_INFO + hashlib.sha256(DATA).digest(),
                       mechanism=Mechanism.RSA_PKCS)
    assert raw == signature  # PKCS#1 v1.5 is deterministic
    medecin.sign_cert.public_key().verify(signature, DATA, padding.PKCS1v15(), hashes.SHA256())


def test_auth_key_decrypts(token: SoftHsmToken, medecin: CardCredentials) -> None:
    secret = os.urandom(32)
    wrapped = medecin.auth_cert.public_key().encrypt(secret, padding.PKCS1v15())
    with token.open() as session:
        key = by_label(session, ObjectClass.PRIVATE_KEY, "CPS_PRIV_AUT")
        assert key.decrypt(wrapped, mechanism=Mechanism.RSA_PKCS) == secret


def test_wrong_pin_fails(token: SoftHsmToken) -> None:
    with pytest.raises(pkcs11.exceptions.PinIncorrect):
        token.get_token().open(user_pin="9999")
    done = pkcs11_tool(token, "--token-label", token.token_label, "--list-objects",
                       "--login", "--pin", "9999")
    assert done.returncode != 0
    assert "CKR_PIN_INCORRECT" in done.stdout + done.stderr
    with token.open():  # a wrong try does not block SoftHSM
        pass


# ------------------------------------------------------------------ design guarantees
def test_idempotent(medecin: CardCredentials, tmp_path: Path) -> None:
    first = provision_softhsm(medecin, tmp_path)
    second = provision_softhsm(medecin, tmp_path)
    assert len(list((tmp_path / "tokens").iterdir())) == 1
    assert second.serial != first.serial and second.conf == first.conf
    with second.open() as session:
        assert listing(session) == contact_objects()
    tokens = list(pkcs11.lib(MODULE).get_tokens(token_label=second.token_label))
    assert len(tokens) == 1
    with pytest.raises(CpsError, match="not found"):
        first.get_token()  # the old token is gone, and says so


def test_provisioning_leaves_open_sessions_alone(token: SoftHsmToken,
                                                 medecin: CardCredentials,
                                                 tmp_path: Path) -> None:
    # Provisioning happens in child processes: this process keeps its SoftHSM
    # state, and switching back and forth between configurations works.
    with token.open() as session:
        other = provision_softhsm(medecin, tmp_path, pin="5678")
        key = by_label(session, ObjectClass.PRIVATE_KEY, "CPS_PRIV_SIG")
        assert key.sign(DATA, mechanism=Mechanism.SHA256_RSA_PKCS)
    with other.open() as session:
        assert listing(session) == contact_objects()
    with token.open() as session:
        assert listing(session) == contact_objects()


def test_contactless_profile(cl_token: SoftHsmToken, contactless: CardCredentials) -> None:
    assert cl_token.token_label == "CPS3v3-2990000109"
    assert cl_token.pin == CONTACTLESS_PIN and cl_token.pin_is_placeholder
    tech = key_id(KEY_TECH)
    assert tech.hex() == "e828bd080f8025000001ff001003"
    with cl_token.open() as session:
        assert listing(session) == {
            (ObjectClass.PRIVATE_KEY, "CPS_PRIV_TECH_AUT", tech),
            (ObjectClass.CERTIFICATE, TECH_CERT, tech),
            (ObjectClass.PUBLIC_KEY, f"Cle publique - {TECH_CERT}", tech),
        }
    # No cardholder PIN on the contactless side: the key works without login.
    digest_info = SHA256_DIGEST_INFO + hashlib.sha256(DATA).digest()
    with cl_token.open(login=False) as session:
        key = by_label(session, ObjectClass.PRIVATE_KEY, "CPS_PRIV_TECH_AUT")
        assert not key[Attribute.PRIVATE] and key[Attribute.SENSITIVE]
        signature = key.sign(digest_info, mechanism=Mechanism.RSA_PKCS)
    assert contactless.tech_cert is not None
    contactless.tech_cert.public_key().verify(signature, DATA, padding.PKCS1v15(),
                                              hashes.SHA256())


def test_emulated_card_with_changed_pin(pki: TestPKI, tmp_path: Path) -> None:
    card = EmulatedCard.from_profile("cps3-medecin", pki=pki, pin="4826")
    token = provision_softhsm(card, tmp_path, so_pin="73914682", label="my token")
    assert token.pin == "4826" and token.so_pin == "73914682"
    assert token.token_label == "my token"
    with token.open() as session:
        cert = by_label(session, ObjectClass.CERTIFICATE, AUT_CERT)
        assert x509.load_der_x509_certificate(cert[Attribute.VALUE]) == card.credentials.auth_cert


# ------------------------------------------------------------------ secrets and errors
def test_pins_never_in_repr_or_errors(medecin: CardCredentials, tmp_path: Path) -> None:
    token = SoftHsmToken(module=MODULE, conf=tmp_path / "c", token_label="t", serial="s",
                         pin="4826", so_pin="73914682")
    assert "4826" not in repr(token) and "73914682" not in repr(token)
    with pytest.raises(ValueError) as bad_pin:          # a caller's mistake
        provision_softhsm(medecin, tmp_path, pin="zq")
    with pytest.raises(ValueError) as bad_so_pin:
        provision_softhsm(medecin, tmp_path, so_pin="qz" * 200)
    assert "zq" not in str(bad_pin.value) and "qz" not in str(bad_so_pin.value)


def test_errors(medecin: CardCredentials, tmp_path: Path) -> None:
    with pytest.raises(NotSupported, match="SoftHSM2"):
        provision_softhsm(medecin, tmp_path, module=str(tmp_path / "libsofthsm2.so"))
    with pytest.raises(ValueError, match="32 bytes"):
        provision_softhsm(medecin, tmp_path, label="x" * 33)
    with pytest.raises(TypeError):
        provision_softhsm(object(), tmp_path)  # type: ignore[arg-type]
