"""The PKCS#11 backend (cps.pkcs11) against SoftHSM2 tokens mirroring emulated cards.

OpenSC's module against the emulated card through pcscd is covered by the
shared OpenSC suite; here only SoftHSM2 (no reader, no daemon) and the parts
that need no module at all (find_module, the error table).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkcs11  # a runtime dependency: its absence is a failure, not a skip
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps import errors
from cps import pkcs11 as backend
from cps.card import KeyRole, LastTryRefused, PinStatus
from cps.emulator.card import EmulatedCard
from cps.emulator.pki import TestPKI
from cps.emulator.softhsm import SoftHsmToken, find_softhsm_module, provision_softhsm
from cps.pkcs11 import ERRORS, Pkcs11Card, find_module, map_error

try:
    MODULE = find_softhsm_module()
except errors.NotSupported as exc:  # pragma: no cover - make test installs softhsm2
    # Integration tests may not skip: a missing SoftHSM2 is a broken set-up.
    raise RuntimeError("softhsm2 is not installed: run `make test`, which installs it") from exc

DOC = b"ordonnance n 42"
SECRETS = ("1234", "9999", "4321", "12345678", "87654321")


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.generate(tmp_path_factory.mktemp("pki"), seed=1)


@pytest.fixture(scope="session")
def medecin(pki: TestPKI) -> EmulatedCard:
    return EmulatedCard.from_profile("cps3-medecin", pki=pki)


@pytest.fixture(scope="session")
def sans_contact(pki: TestPKI) -> EmulatedCard:
    return EmulatedCard.from_profile("cps3-contactless", pki=pki)


@pytest.fixture(scope="session")
def hsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("p11-softhsm")


@pytest.fixture(scope="session")
def token(medecin: EmulatedCard, hsm_dir: Path) -> SoftHsmToken:
    """Read-only tests share it; tests that move PIN state get :func:`fresh`."""
    return provision_softhsm(medecin, hsm_dir)


@pytest.fixture(scope="session")
def cl_token(sans_contact: EmulatedCard, hsm_dir: Path, token: SoftHsmToken) -> SoftHsmToken:
    return provision_softhsm(sans_contact, hsm_dir)  # same conf as `token`: two "readers"


@pytest.fixture
def fresh(medecin: EmulatedCard, tmp_path: Path) -> SoftHsmToken:
    return provision_softhsm(medecin, tmp_path)


def rsa_key(cert: x509.Certificate | None) -> rsa.RSAPublicKey:
    assert cert is not None
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def opened(token: SoftHsmToken) -> Pkcs11Card:
    # get_token() points SOFTHSM2_CONF at the token's conf and re-initialises
    # SoftHSM when needed (cps.emulator.softhsm docstring); then open as users do.
    token.get_token()
    return Pkcs11Card.open(module=token.module, token_label=token.token_label)


@pytest.fixture
def card(token: SoftHsmToken) -> Iterator[Pkcs11Card]:
    c = opened(token)
    yield c
    c.close()


@pytest.fixture
def fresh_card(fresh: SoftHsmToken) -> Iterator[Pkcs11Card]:
    c = opened(fresh)
    yield c
    c.close()


def no_secret_in(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked in {text!r}"


# ------------------------------------------------------------------ identity
def test_open_by_objects(card: Pkcs11Card, token: SoftHsmToken, medecin: EmulatedCard) -> None:
    assert card.backend == "pkcs11" and card.module == token.module
    assert card.token_label == "CPS3v3-2990000101"
    assert card.card_number == medecin.profile.card_number == "2990000101"
    assert not card.contactless and not card.logged_in
    assert "CPS3v3-2990000101" in repr(card)
    no_secret_in(repr(card))


def test_certificates_are_the_cards(card: Pkcs11Card, medecin: EmulatedCard) -> None:
    assert card.certificate(KeyRole.AUTH) == medecin.credentials.auth_cert
    assert card.certificate(KeyRole.SIGN) == medecin.credentials.sign_cert
    assert card.certificate() is card.certificate(KeyRole.AUTH)  # cached
    with pytest.raises(errors.NotSupported, match="tech"):
        card.certificate(KeyRole.TECH)


def test_practitioner(card: Pkcs11Card, medecin: EmulatedCard) -> None:
    who = card.practitioner
    assert who.idnat == medecin.profile.holder.idnat
    assert who.last_name == medecin.profile.holder.last_name
    assert who.card_number == card.card_number


def test_no_card_or_reader(token: SoftHsmToken) -> None:
    token.get_token()
    with pytest.raises(errors.NoCard, match="nope"):
        Pkcs11Card.open(module=token.module, token_label="nope")
    with pytest.raises(errors.ReaderNotFound):
        Pkcs11Card.open(module=token.module, reader="no such reader anywhere")


def test_module_without_cps_token(fresh: SoftHsmToken) -> None:
    util = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "other",
                           "--so-pin", "11112222", "--pin", "5555"], env=fresh.env(),
                          capture_output=True, check=False)
    assert util.returncode == 0, util.stderr
    fresh.get_token()  # loads fresh's conf
    backend._load(fresh.module).reinitialize()  # SoftHSM scans its tokens only there
    with pytest.raises(errors.UnknownCard, match="CPS_PRIV_AUT"):
        Pkcs11Card.open(module=fresh.module, token_label="other")


# ------------------------------------------------------------------ PIN
def test_pin_status_from_flags(card: Pkcs11Card) -> None:
    status = card.pin_status()
    assert status == PinStatus(tries_left=3, max_tries=3, blocked=False)
    assert status.unblock_tries_left is None  # SoftHSM sets no SO flag: unknown


def test_wrong_pin(fresh_card: Pkcs11Card, medecin: EmulatedCard) -> None:
    with pytest.raises(errors.WrongPin) as wrong:
        fresh_card.verify_pin("9999")
    # SoftHSM raises USER_PIN_COUNT_LOW after a failure: 3 - 1, as a CPS3 through OpenSC
    assert wrong.value.tries_left == 2 and fresh_card.pin_status().tries_left == 2
    assert not fresh_card.logged_in
    no_secret_in(wrong.value, repr(wrong.value))
    fresh_card.verify_pin(medecin.profile.pin or "")
    assert fresh_card.logged_in and fresh_card.pin_status().tries_left == 3


def test_verify_checks_the_pin_even_when_logged_in(fresh_card: Pkcs11Card,
                                                   medecin: EmulatedCard) -> None:
    fresh_card.verify_pin(medecin.profile.pin or "")
    with pytest.raises(errors.WrongPin):
        fresh_card.verify_pin("9999")
    assert not fresh_card.logged_in


def test_pin_format_checked_before_the_module(fresh_card: Pkcs11Card) -> None:
    for bad in ("12a4", "123", "123456789", ""):
        with pytest.raises(errors.PinError) as refused:
            fresh_card.verify_pin(bad)
        assert not isinstance(refused.value, errors.WrongPin)
    assert fresh_card.pin_status().tries_left == 3  # no try spent


def test_last_try_and_blocked_guards(fresh_card: Pkcs11Card,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fresh_card, "pin_status",
                        lambda: PinStatus(tries_left=1, max_tries=3, blocked=False))
    with pytest.raises(LastTryRefused):
        fresh_card.verify_pin("9999")
    with pytest.raises(LastTryRefused):
        fresh_card.change_pin("9999", "4321")
    monkeypatch.setattr(fresh_card, "pin_status",
                        lambda: PinStatus(tries_left=0, max_tries=3, blocked=True))
    with pytest.raises(errors.PinBlocked):
        fresh_card.verify_pin("9999")
    monkeypatch.undo()
    assert fresh_card.pin_status().tries_left == 3  # the module never saw a PIN


def test_change_pin(fresh_card: Pkcs11Card, medecin: EmulatedCard) -> None:
    with pytest.raises(errors.WrongPin):
        fresh_card.change_pin("9999", "4321")
    fresh_card.change_pin(medecin.profile.pin or "", "4321")
    fresh_card.verify_pin("4321")
    with pytest.raises(errors.WrongPin):
        fresh_card.verify_pin(medecin.profile.pin or "")


def test_unblock_pin(fresh_card: Pkcs11Card, fresh: SoftHsmToken) -> None:
    with pytest.raises(errors.PinError, match="8 to 8 digits"):
        fresh_card.unblock_pin("1234", "4321")  # format: no try spent
    with pytest.raises(errors.WrongPin) as wrong:
        fresh_card.unblock_pin("87654321", "4321")
    assert wrong.value.what == "unblock code" and wrong.value.tries_left == 9
    assert fresh_card.pin_status().unblock_tries_left == 9  # SO_PIN_COUNT_LOW
    no_secret_in(wrong.value)
    fresh_card.unblock_pin(fresh.so_pin, "4321")
    assert not fresh_card.logged_in
    fresh_card.verify_pin("4321")
    assert fresh_card.logged_in


# ------------------------------------------------------------------ keys
def test_login_required(card: Pkcs11Card) -> None:
    with pytest.raises(errors.SecurityStatusNotSatisfied, match="verify_pin"):
        card.sign(DOC)
    with pytest.raises(errors.SecurityStatusNotSatisfied, match="verify_pin"):
        card.authenticate(b"challenge")


@pytest.mark.parametrize("name, algorithm", [("sha256", hashes.SHA256()),
                                             ("sha1", hashes.SHA1())])  # noqa: S303
def test_sign(card: Pkcs11Card, medecin: EmulatedCard, name: str,
              algorithm: hashes.HashAlgorithm) -> None:
    card.verify_pin(medecin.profile.pin or "")
    signature = card.sign(DOC, hash=name)
    rsa_key(medecin.credentials.sign_cert).verify(signature, DOC, padding.PKCS1v15(), algorithm)
    digest = hashlib.new(name, DOC).digest()
    assert card.sign(digest, hash=name, prehashed=True) == signature  # PKCS#1 v1.5


def test_sign_refusals(card: Pkcs11Card, medecin: EmulatedCard) -> None:
    card.verify_pin(medecin.profile.pin or "")
    with pytest.raises(errors.NotSupported, match="sha1 and sha256"):
        card.sign(DOC, hash="sha512")
    with pytest.raises(ValueError, match="32 bytes"):     # the caller's mistake
        card.sign(b"short", prehashed=True)


def test_authenticate(card: Pkcs11Card, medecin: EmulatedCard) -> None:
    card.verify_pin(medecin.profile.pin or "")
    public = rsa_key(medecin.credentials.auth_cert)
    challenge = os.urandom(32)
    raw = card.authenticate(challenge)  # the card pads, the caller's bytes are signed as is
    assert public.recover_data_from_signature(raw, padding.PKCS1v15(), None) == challenge
    hashed = card.authenticate(challenge, hash="sha256")
    public.verify(hashed, challenge, padding.PKCS1v15(), hashes.SHA256())
    assert len(card.authenticate(b"x" * 102)) == 256


def test_challenge_limit(card: Pkcs11Card, medecin: EmulatedCard) -> None:
    card.verify_pin(medecin.profile.pin or "")
    for size in (103, 0):
        with pytest.raises(errors.NotSupported, match="1 to 102 bytes"):
            card.authenticate(b"x" * size)
    card.authenticate(b"x" * 1000, hash="sha256")  # the digest goes to the card


def test_contactless(cl_token: SoftHsmToken, sans_contact: EmulatedCard) -> None:
    with opened(cl_token) as card:
        assert card.contactless and card.card_number == "2990000109"
        assert card.certificate(KeyRole.TECH) == sans_contact.credentials.tech_cert
        with pytest.raises(errors.NotSupported):
            card.certificate(KeyRole.AUTH)
        signature = card.authenticate(DOC, hash="sha256")  # technical key, no PIN
        rsa_key(sans_contact.credentials.tech_cert).verify(signature, DOC, padding.PKCS1v15(),
                                                           hashes.SHA256())
        for refused in (lambda: card.sign(DOC), card.pin_status,
                        lambda: card.verify_pin(cl_token.pin),
                        lambda: card.unblock_pin("12345678", "1234")):
            with pytest.raises(errors.NotSupported):
                refused()


def test_close(fresh: SoftHsmToken, medecin: EmulatedCard) -> None:
    card = opened(fresh)
    card.verify_pin(medecin.profile.pin or "")
    card.close()
    card.close()  # idempotent
    assert not card.logged_in and "closed" in repr(card)
    with pytest.raises(errors.CpsError):
        card.sign(DOC)
    with opened(fresh) as again:
        assert not again.logged_in  # close() logged out


# ------------------------------------------------------------------ find_module
def test_find_module_explicit_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert find_module(MODULE) == MODULE
    monkeypatch.setenv("CPS_PKCS11_MODULE", MODULE)
    assert find_module() == MODULE
    missing = str(tmp_path / "libcps3_pkcs11_lux.so")
    with pytest.raises(errors.NotSupported, match="libcps3_pkcs11_lux.so"):
        find_module(missing)
    with pytest.raises(errors.NotSupported):
        Pkcs11Card.open(module=missing)


def test_find_module_nothing_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the platform search itself is tested in tests/test_module_discovery.py
    monkeypatch.delenv("CPS_PKCS11_MODULE", raising=False)
    with pytest.raises(errors.NotSupported) as nothing:
        find_module(platform="linux", environ={}, root=tmp_path)
    assert "libcps3_pkcs11_lux.so" in str(nothing.value)
    assert "opensc-pkcs11.so" in str(nothing.value)
    opensc = tmp_path / "usr" / "lib" / "opensc-pkcs11.so"
    opensc.parent.mkdir(parents=True)
    opensc.touch()
    assert find_module(platform="linux", environ={}, root=tmp_path) == str(opensc)


def test_default_paths() -> None:
    # the running platform's (CI: Linux); others in tests/test_module_discovery.py
    assert backend.CRYPTOLIB_PATHS[0] == "/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so"
    assert "/usr/lib64/libcps3_pkcs11_lux.so" in backend.CRYPTOLIB_PATHS
    assert any(p.endswith("-linux-gnu/opensc-pkcs11.so") for p in backend.OPENSC_PATHS)


# ------------------------------------------------------------------ the error table
def fake(name: str, message: str = "") -> Exception:
    """An exception shaped like python-pkcs11's, without needing a module to raise it."""
    return type(name, (RuntimeError,), {})(message)


@pytest.mark.parametrize("name, expected", [
    ("PinLocked", errors.PinBlocked),
    ("PinLenRange", errors.PinError),
    ("TokenNotPresent", errors.CardRemoved),
    ("DeviceRemoved", errors.CardRemoved),
    ("DeviceError", errors.CardError),
    ("FunctionFailed", errors.CardError),
    ("NoSuchToken", errors.ReaderNotFound),
    ("SlotIDInvalid", errors.ReaderNotFound),
    ("MechanismInvalid", errors.NotSupported),
    ("FunctionNotSupported", errors.NotSupported),
    ("UserNotLoggedIn", errors.SecurityStatusNotSatisfied),
    ("SessionHandleInvalid", errors.CardRemoved),
    ("TokenNotRecognised", errors.UnknownCard),
])
def test_error_table(name: str, expected: type) -> None:
    error = map_error(fake(name), "signing")
    assert type(error) is expected and str(error).startswith("signing: ")
    real = getattr(pkcs11.exceptions, name)()
    assert type(map_error(real, "signing")) is expected


def test_error_table_pin_incorrect() -> None:
    wrong = map_error(fake("PinIncorrect"), "PIN verification", tries_left=lambda: 2)
    assert isinstance(wrong, errors.WrongPin) and wrong.tries_left == 2
    puk = map_error(fake("PinIncorrect"), "unblock", what="unblock code", tries_left=lambda: 9)
    assert isinstance(puk, errors.WrongPin) and puk.what == "unblock code"
    blocked = map_error(fake("PinIncorrect"), "PIN verification", tries_left=lambda: 0)
    assert isinstance(blocked, errors.PinBlocked)
    unknown = map_error(fake("PinIncorrect"), "unblock", what="unblock code")
    assert type(unknown) is errors.PinError and "unblock code" in str(unknown)
    assert map_error(fake("UserAlreadyLoggedIn"), "PIN verification") is None  # success


def test_error_table_codes_and_unknowns() -> None:
    for code, (ckr, exception, cls, _) in ERRORS.items():
        # every python-pkcs11 name in the table exists, and maps like its code
        assert not exception or hasattr(pkcs11.exceptions, exception), exception
        for error in (map_error(code, "x", tries_left=lambda: 2),
                      map_error(fake(exception or "PKCS11Error", f"error code {code:#x}"), "x",
                                tries_left=lambda: 2)):
            if code == 0x100:
                assert error is None
                continue
            assert isinstance(error, cls)
            assert ckr in str(error) or isinstance(error, errors.WrongPin)
    # python-pkcs11 has no class for CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)
    assert isinstance(map_error(fake("PKCS11Error", "Unmapped error code 0x68"), "x"),
                      errors.NotSupported)
    vendor = map_error(0x80000001, "opening")
    assert isinstance(vendor, errors.CardError) and "EF_ACTUA" in str(vendor)
    other = map_error(fake("SomethingNew"), "x")
    assert type(other) is errors.CardError and "SomethingNew" in str(other)   # typed, never bare
    assert "0x12345" in str(map_error(0x12345, "x")).lower()
    assert not any(issubclass(row[2], ValueError) for row in ERRORS.values())


def test_lazy_imports() -> None:
    probe = ("import sys, cps; assert 'cps.pkcs11' not in sys.modules; "
             "import cps.pkcs11; assert 'pkcs11' not in sys.modules, 'eager python-pkcs11'")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
