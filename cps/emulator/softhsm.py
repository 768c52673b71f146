"""A SoftHSM2 token holding an emulated card's keys, with the ANS Cryptolib labels.

SoftHSM gives tests and demos a real PKCS#11 module without a card reader:
:func:`provision_softhsm` copies the keys and certificates of an emulated CPS3
into a SoftHSM2 token that looks like the one the ANS Cryptolib exposes
(cps-domain.md 2.2-2.3)::

    token label         CPS3v3-<card number>
    CPS_PRIV_AUT        Certificat d'Authentification CPS   ID E828BD080F8025000001FF0010 02
    CPS_PRIV_SIG        Certificat de Signature CPS         ID E828BD080F8025000001FF0010 01
    CPS_PRIV_TECH_AUT   Certificat Technique CPS            ID E828BD080F8025000001FF0010 03
                                              (contactless profiles, instead of the two above)

each pair with its public key ``Cle publique - <certificate label>``.

A CPS4 profile (``generation = "cps4"``) gets the layout the Cryptolib 5.2 shows
for a real CPS4v1 card (docs/emulator.md, "CPS4 token (SoftHSM2)")::

    token label         CPS4v1-<card number>
    CPS_PRIV_AUT        Certificat d'Authentification CPS   ID E828BD080F8025000001FF0010 20
    CPS_PRIV_SIG        Certificat de Signature CPS         ID E828BD080F8025000001FF0010 10
    data objects        CPS_NAME_PS (public), CPS_ACTIVITY_01_PS (private), CPS2TER_ID,
                        CPS2TER_NAME (public; values are placeholders)

and its certificates are valid six years (:meth:`cps.emulator.pki.TestPKI.card_validity`).
``mechanisms`` restricts what SoftHSM offers (its ``slots.mechanisms``), e.g. to
stand for a module without RSA-PSS.
``CKA_ID`` is the on-card PKCS#15 ID (:func:`cps.emulator.layout.key_id`). A
contactless profile gets only the technical key, as the emulated contactless
card and the Cryptolib's contactless view expose; that key is
``CKA_PRIVATE=false`` (usable without login, cps-domain 1.5). SoftHSM still
requires a user PIN: contactless tokens get :data:`CONTACTLESS_PIN` and
:attr:`SoftHsmToken.pin_is_placeholder` is true. Unlike a CPS3, SoftHSM
accepts every RSA mechanism (PSS included), has no PIN try counter, and
reports imported keys as not ``ALWAYS_SENSITIVE``/``NEVER_EXTRACTABLE`` (the
token sets those; they stay ``SENSITIVE`` and non-extractable).

Design: ``SOFTHSM2_CONF`` and processes
---------------------------------------

SoftHSM reads ``SOFTHSM2_CONF`` and scans its token directory only in
``C_Initialize``; python-pkcs11 keeps one initialised library object per
module path for the life of the process. Hence:

* Every token directory has its own ``softhsm2.conf``
  (``<directory>/softhsm2.conf``, tokens in ``<directory>/tokens/``).
  Several cards may share a directory (several tokens, like several readers).
* **Provisioning never loads SoftHSM in the calling process.** The token is
  created by ``softhsm2-util`` and filled by a child Python process
  (``python -m cps.emulator.softhsm --import-objects``), both with
  ``SOFTHSM2_CONF`` in their environment. It therefore works whatever
  configuration this process has loaded, any number of times, and leaves the
  caller's open sessions alone. Key material and PINs travel on the child's
  stdin, never on a command line: ``softhsm2-util`` only takes PINs as
  arguments, so it gets random throw-away PINs that the child replaces at
  once (``C_SetPIN`` as SO, ``C_InitPIN``).
* **In-process use** (:meth:`SoftHsmToken.open`) sets
  ``os.environ["SOFTHSM2_CONF"]`` before loading the module and, when the
  token is not visible (another configuration loaded, or the token created
  after the last ``C_Initialize``), calls ``C_Finalize``/``C_Initialize``
  again. One SoftHSM configuration is live per process at a time: switching
  invalidates sessions opened on the previous one. Subprocesses (pkcs11-tool,
  Firefox...) should get :meth:`SoftHsmToken.env` instead.
* Provisioning is idempotent: a token with the same label in the same
  directory is deleted first (``softhsm2-util --delete-token``), so a second
  call leaves one token with one copy of each object (and a new serial).

.. warning:: TEST-ONLY: the keys come from :mod:`cps.emulator.pki`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import CpsError, NotSupported
from .layout import key_id
from .pki import CardCredentials
from .security import KEY_AUTH, KEY_SIGN, KEY_TECH

if TYPE_CHECKING:  # pragma: no cover
    import pkcs11
    from pkcs11._pkcs11 import lib as Pkcs11Library  # what pkcs11.lib() returns

    from .card import EmulatedCard

__all__ = [
    "CONTACTLESS_PIN",
    "DEFAULT_SO_PIN",
    "MODULE_CANDIDATES",
    "NO_PSS_MECHANISMS",
    "ProvisioningError",
    "SoftHsmToken",
    "find_softhsm_module",
    "provision_softhsm",
]

class ProvisioningError(CpsError):
    """SoftHSM2 could not be provisioned (``softhsm2-util`` or the object import
    failed, or the token is gone); the message quotes the tool, never a PIN."""


#: Security officer PIN of provisioned tokens unless told otherwise.
DEFAULT_SO_PIN = "12345678"
#: User PIN of contactless tokens: the card has none but SoftHSM requires one.
CONTACTLESS_PIN = "0000"
#: Where distributions install the SoftHSM2 module (Debian first).
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
#: The SoftHSM mechanism list of a module that cannot sign RSA-PSS (``mechanisms=``).
#: (SoftHSM: one leading "-" makes the whole list the disabled ones; 2.6.1 then
#: ignores the first name, "-" and all, hence CKM_RSA_PKCS_PSS twice.)
NO_PSS_MECHANISMS = ("-CKM_RSA_PKCS_PSS,CKM_RSA_PKCS_PSS,CKM_SHA1_RSA_PKCS_PSS,"
                     "CKM_SHA224_RSA_PKCS_PSS,CKM_SHA256_RSA_PKCS_PSS,CKM_SHA384_RSA_PKCS_PSS,"
                     "CKM_SHA512_RSA_PKCS_PSS")
# CPS4 (ChipDoc) key numbers in CKA_ID: signature 0x10, authentication 0x20 (cps.pkcs11).
_CPS4_KEY_NUMBERS = {KEY_SIGN: 0x10, KEY_AUTH: 0x20}
# CPS4 data objects: (label, CKA_PRIVATE). CPS_NAME_PS (public) and CPS_ACTIVITY_01_PS
# (private) are found on real CPS4v1 cards by the ANS tests; CPS2TER_* come from the
# ANS PKCS#11 specification (cps-domain 2.3), not from a test report.
_CPS4_DATA = (("CPS_NAME_PS", False), ("CPS_ACTIVITY_01_PS", True), ("CPS2TER_ID", False),
              ("CPS2TER_NAME", False))
_CHILD_FLAG = "--import-objects"
_TIMEOUT = 120.0
_CONF = """\
# Written by cps.emulator.softhsm: one token directory per configuration.
directories.tokendir = {tokens}
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = {mechanisms}
library.reset_on_fork = false
"""


@dataclass(frozen=True)
class SoftHsmToken:
    """A provisioned SoftHSM2 token (see the module docstring)."""

    #: path of the SoftHSM2 PKCS#11 module
    module: str
    #: the ``softhsm2.conf`` that ``SOFTHSM2_CONF`` must name
    conf: Path
    #: ``CPS3v3-<card number>`` unless overridden
    token_label: str
    #: serial number SoftHSM gave the token (new at each provisioning)
    serial: str
    pin: str = field(repr=False)
    so_pin: str = field(repr=False)
    #: true when the card has no PIN (contactless) and :attr:`pin` only satisfies SoftHSM
    pin_is_placeholder: bool = False
    #: ``"cps3"`` or ``"cps4"``: the card generation whose layout the token has
    generation: str = "cps3"

    def env(self, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        """The environment for a subprocess using this token: ``base`` plus ``SOFTHSM2_CONF``.

        :param base: starting environment; default a copy of :data:`os.environ`.
        """
        env = dict(os.environ if base is None else base)
        env["SOFTHSM2_CONF"] = str(self.conf)
        return env

    def get_token(self) -> "pkcs11.Token":
        """The python-pkcs11 token in this process, switching SoftHSM's configuration if needed.

        :raises MissingExtra: python-pkcs11 is not installed (``cps-middleware[card]``).
        :raises ProvisioningError: the token is gone (directory deleted or re-provisioned).
        """
        return _activate(self)

    def open(self, *, login: bool = True, rw: bool = False) -> "pkcs11.Session":
        """Open a python-pkcs11 session (a context manager) on this token.

        :param login: log in with :attr:`pin` (not needed for public objects
            nor for a contactless token's technical key).
        :param rw: read-write session.
        """
        return self.get_token().open(rw=rw, user_pin=self.pin if login else None)


def find_softhsm_module(module: Optional[str] = None) -> str:
    """The SoftHSM2 PKCS#11 module path.

    :param module: explicit path; default ``$CPS_SOFTHSM2_MODULE`` or the first
        of :data:`MODULE_CANDIDATES` that exists.
    :raises NotSupported: SoftHSM2 is not installed.
    """
    candidates = [module] if module else (
        [os.environ["CPS_SOFTHSM2_MODULE"]] if os.environ.get("CPS_SOFTHSM2_MODULE")
        else list(MODULE_CANDIDATES))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise NotSupported("SoftHSM2 PKCS#11 module not found (install softhsm2); looked in "
                       + ", ".join(candidates))


def provision_softhsm(credentials_or_card: Union[CardCredentials, "EmulatedCard"],
                      directory: Union[str, os.PathLike[str]], *, pin: Optional[str] = None,
                      so_pin: str = DEFAULT_SO_PIN, label: Optional[str] = None,
                      module: Optional[str] = None, mechanisms: str = "ALL") -> SoftHsmToken:
    """Create (or re-create) the SoftHSM2 token of a card in ``directory``.

    :param credentials_or_card: :class:`~cps.emulator.pki.CardCredentials` or an
        :class:`~cps.emulator.card.EmulatedCard` (whose current PIN is used).
    :param directory: where ``softhsm2.conf`` and ``tokens/`` live; created if needed.
    :param pin: user PIN; default the card's PIN, :data:`CONTACTLESS_PIN` for contactless.
    :param so_pin: security officer PIN.
    :param label: token label; default ``CPS3v3-<card number>`` (``CPS4v1-<card number>``
        for a CPS4 profile), at most 32 bytes.
    :param module: SoftHSM2 module path (see :func:`find_softhsm_module`).
    :param mechanisms: SoftHSM's ``slots.mechanisms`` for the whole ``directory``
        (``"ALL"``, or e.g. :data:`NO_PSS_MECHANISMS`); tokens sharing a directory
        share it.
    :raises NotSupported: softhsm2 (module or ``softhsm2-util``) is not installed.
    :raises TypeError: not credentials nor an emulated card.
    :raises ValueError: a PIN or label SoftHSM cannot hold.
    :raises ProvisioningError: softhsm2-util or the object import failed.
    """
    credentials: object = getattr(credentials_or_card, "credentials", credentials_or_card)
    if not isinstance(credentials, CardCredentials):
        raise TypeError("provision_softhsm needs CardCredentials or an EmulatedCard")
    profile = credentials.profile
    if pin is None:
        pin = getattr(credentials_or_card, "pin", None) or profile.pin
        if pin is None and profile.contactless:
            pin = CONTACTLESS_PIN
    # SoftHSM's bounds; the values themselves never go into a message.
    for what, value in (("user PIN", pin), ("SO PIN", so_pin)):
        if not value or not 4 <= len(value.encode()) <= 255:
            raise ValueError(f"the {what} must have 4 to 255 bytes")
    assert pin is not None  # noqa: S101 - checked above; for type checkers
    label = label or (f"CPS4v1-{profile.card_number}" if profile.cps4
                      else f"CPS3v3-{profile.card_number}")
    if not re.fullmatch(r"ALL|-?[A-Z0-9_,]+", mechanisms):
        raise ValueError("mechanisms: ALL or a comma-separated list of CKM_ names")
    if not 0 < len(label.encode()) <= 32:
        raise ValueError(f"token label {label!r} must have 1 to 32 bytes")
    module = find_softhsm_module(module)
    util = shutil.which("softhsm2-util")
    if util is None:
        raise NotSupported("softhsm2-util not found (install softhsm2)")

    directory = Path(directory).resolve()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    text = _CONF.format(tokens=tokens, mechanisms=mechanisms)
    if not conf.is_file() or conf.read_text() != text:
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, conf)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))

    # Serialise provisioning per directory: softhsm2-util --free picks "the" free slot.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _delete_tokens(util, label, env)
        temp_so, temp_user = secrets.token_hex(8), secrets.token_hex(8)
        _run([util, "--init-token", "--free", "--label", label, "--so-pin", temp_so,
              "--pin", temp_user], env, "token initialisation")
        request = {"module": module, "label": label, "temp_so_pin": temp_so,
                   "temp_pin": temp_user, "so_pin": so_pin, "pin": pin,
                   "pairs": _pairs(credentials),
                   "data": _CPS4_DATA if profile.cps4 else ()}
        serial = _run_child(request, env)
    return SoftHsmToken(module=module, conf=conf, token_label=label, serial=serial, pin=pin,
                        so_pin=so_pin, pin_is_placeholder=profile.contactless,
                        generation=profile.generation)


# ------------------------------------------------------------------ provisioning helpers
def _pairs(credentials: CardCredentials) -> list[dict[str, Any]]:
    """What the child imports: one entry per key pair, as JSON-friendly values."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    if credentials.profile.contactless:
        assert credentials.tech_key and credentials.tech_cert  # noqa: S101
        # (label, cert label, key ref, key, cert, decrypt, CKA_PRIVATE)
        rows = [("CPS_PRIV_TECH_AUT", "Certificat Technique CPS", KEY_TECH,
                 credentials.tech_key, credentials.tech_cert, False, False)]
    else:
        rows = [("CPS_PRIV_AUT", "Certificat d'Authentification CPS", KEY_AUTH,
                 credentials.auth_key, credentials.auth_cert, True, True),
                ("CPS_PRIV_SIG", "Certificat de Signature CPS", KEY_SIGN,
                 credentials.sign_key, credentials.sign_cert, False, True)]
    def cka_id(ref: int) -> bytes:
        if credentials.profile.cps4:
            return key_id(0)[:-1] + bytes((_CPS4_KEY_NUMBERS[ref],))
        return key_id(ref)

    return [{"label": lbl, "cert_label": cert_lbl, "id": cka_id(ref).hex(),
             "key": key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()).hex(),
             "cert": cert.public_bytes(Encoding.DER).hex(), "decrypt": decrypt,
             "private": private}
            for lbl, cert_lbl, ref, key, cert, decrypt, private in rows]


def _run(args: list[str], env: Mapping[str, str], what: str) -> subprocess.CompletedProcess[str]:
    """Run softhsm2-util; errors quote its output, never ``args`` (they hold PINs)."""
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisioningError(f"softhsm2-util {what} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise ProvisioningError(f"softhsm2-util {what} failed: "
                       f"{(done.stderr or done.stdout).strip() or done.returncode}")
    return done


def _delete_tokens(util: str, label: str, env: Mapping[str, str]) -> None:
    # --delete-token removes one token per call; loop in case of leftovers.
    for _ in range(16):
        try:
            _run([util, "--delete-token", "--token", label], env, "token deletion")
        except CpsError as exc:
            if "could not find" in str(exc).lower():
                return
            raise
    raise ProvisioningError(f"too many tokens labelled {label!r}")


def _run_child(request: dict[str, Any], env: Mapping[str, str]) -> str:
    """Import the objects in a child process (see the module docstring); return the serial."""
    root = str(Path(__file__).resolve().parents[2])  # makes `cps` importable in the child
    child_env = dict(env, PYTHONPATH=os.pathsep.join(
        p for p in (root, env.get("PYTHONPATH", "")) if p))
    try:
        done = subprocess.run([sys.executable, "-m", "cps.emulator.softhsm", _CHILD_FLAG],
                              input=json.dumps(request), env=child_env, capture_output=True,
                              text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisioningError(f"SoftHSM object import failed: {type(exc).__name__}") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if done.returncode != 0 or "serial" not in answer:
        reason = answer.get("error") or done.stderr.strip()[-500:] or f"exit {done.returncode}"
        raise ProvisioningError(f"SoftHSM object import failed: {reason}")
    return str(answer["serial"])


# ------------------------------------------------------------------ child process
def _templates(pair: Mapping[str, Any]) -> list[dict[Any, Any]]:
    """PKCS#11 templates of one pair: private key, public key, certificate."""
    from asn1crypto.core import Integer
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_der_private_key
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass

    key = load_der_private_key(bytes.fromhex(pair["key"]), None)
    cert = x509.load_der_x509_certificate(bytes.fromhex(pair["cert"]))
    assert isinstance(key, RSAPrivateKey)  # noqa: S101 - _pairs exports the card's RSA keys
    numbers = key.private_numbers()
    pub = numbers.public_numbers

    def big(n: int) -> bytes:
        return n.to_bytes((n.bit_length() + 7) // 8, "big")

    common = {Attribute.TOKEN: True, Attribute.ID: bytes.fromhex(pair["id"]),
              Attribute.SUBJECT: cert.subject.public_bytes()}
    rsa = {Attribute.KEY_TYPE: KeyType.RSA, Attribute.MODULUS: big(pub.n),
           Attribute.PUBLIC_EXPONENT: big(pub.e)}
    private = {
        **common, **rsa, Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.LABEL: pair["label"], Attribute.PRIVATE: pair["private"],
        Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True, Attribute.DECRYPT: pair["decrypt"],
        Attribute.SIGN_RECOVER: False, Attribute.UNWRAP: False, Attribute.DERIVE: False,
        Attribute.PRIVATE_EXPONENT: big(numbers.d), Attribute.PRIME_1: big(numbers.p),
        Attribute.PRIME_2: big(numbers.q), Attribute.EXPONENT_1: big(numbers.dmp1),
        Attribute.EXPONENT_2: big(numbers.dmq1), Attribute.COEFFICIENT: big(numbers.iqmp)}
    public = {
        **common, **rsa, Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.LABEL: f"Cle publique - {pair['cert_label']}", Attribute.PRIVATE: False,
        Attribute.VERIFY: True, Attribute.ENCRYPT: pair["decrypt"], Attribute.WRAP: False}
    certificate = {
        **common, Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509, Attribute.LABEL: pair["cert_label"],
        Attribute.PRIVATE: False, Attribute.ISSUER: cert.issuer.public_bytes(),
        Attribute.SERIAL_NUMBER: Integer(cert.serial_number).dump(),
        Attribute.VALUE: bytes.fromhex(pair["cert"])}
    return [private, public, certificate]


def _import_objects(request: Mapping[str, Any]) -> str:
    """Child side: set the real PINs, create the objects, return the token serial."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    lib = pkcs11.lib(request["module"])  # SOFTHSM2_CONF comes from our environment
    found = list(lib.get_tokens(token_label=request["label"]))
    if len(found) != 1:
        raise ProvisioningError(
            f"expected one token labelled {request['label']!r}, found {len(found)}")
    token = found[0]
    with token.open(rw=True, so_pin=request["temp_so_pin"]) as session:
        session.set_pin(request["temp_so_pin"], request["so_pin"])  # SO session: SO PIN
        session.init_pin(request["pin"])
    with token.open(rw=True, user_pin=request["pin"]) as session:
        for pair in request["pairs"]:
            for template in _templates(pair):
                session.create_object(template)
        for label, private in request.get("data", ()):
            # Placeholder values: the data objects' content (ANS "Données-métier") is not
            # public; their labels and CKA_PRIVATE are what the evidence shows.
            session.create_object({
                Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                Attribute.PRIVATE: private, Attribute.MODIFIABLE: False,
                Attribute.LABEL: label, Attribute.APPLICATION: label,
                Attribute.VALUE: b"\x04\x00"})  # an empty DER OCTET STRING
    return token.serial.decode("ascii", "replace").strip()


# ------------------------------------------------------------------ in-process library
_LIB_LOCK = threading.Lock()


def _library(module: str) -> Pkcs11Library:
    """python-pkcs11's library object for ``module``.

    python-pkcs11 caches libraries by path string, but dlopen() shares one
    SoftHSM instance between a symlink and its target: a second ``pkcs11.lib``
    on the other path would fail with CKR_CRYPTOKI_ALREADY_INITIALIZED, so reuse
    whichever path was loaded first.
    """
    from .._extras import require

    require("pkcs11", "card", "python-pkcs11")  # MissingExtra when it is not installed
    import pkcs11

    real = os.path.realpath(module)
    for path in list(getattr(pkcs11, "_loaded", {})):
        if os.path.realpath(path) == real:
            return pkcs11.lib(path)
    return pkcs11.lib(module)


def _find(lib: Pkcs11Library, token: SoftHsmToken) -> Optional["pkcs11.Token"]:
    for candidate in lib.get_tokens(token_label=token.token_label):
        if candidate.serial.decode("ascii", "replace").strip() == token.serial:
            return candidate
    return None


def _activate(token: SoftHsmToken) -> "pkcs11.Token":
    with _LIB_LOCK:
        # Set before any C_Initialize: SoftHSM reads the variable only then.
        os.environ["SOFTHSM2_CONF"] = str(token.conf)
        lib = _library(token.module)
        found = _find(lib, token)
        if found is None:
            # Another configuration is loaded, or the token was created after the
            # last C_Initialize: re-initialise so that SoftHSM reads it afresh.
            lib.reinitialize()
            found = _find(lib, token)
        if found is None:
            raise ProvisioningError(f"SoftHSM token {token.token_label!r} (serial {token.serial}) "
                           f"not found with {token.conf}")
        return found


# ------------------------------------------------------------------ command line
def _main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [_CHILD_FLAG]:
        try:
            serial = _import_objects(json.load(sys.stdin))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
            return 1
        print(json.dumps({"serial": serial}))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m cps.emulator.softhsm",
        description="Provision a SoftHSM2 token from a bundled card profile (TEST keys).")
    parser.add_argument("profile", help='profile name, e.g. "cps3-medecin"')
    parser.add_argument("directory", help="where softhsm2.conf and tokens/ go")
    args = parser.parse_args(argv)
    from .card import default_pki

    try:
        token = provision_softhsm(default_pki().issue_card(args.profile), args.directory)
    except CpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"export SOFTHSM2_CONF={token.conf}\n# module {token.module}\n"
          f"# token {token.token_label} serial {token.serial}"
          + (" (contactless: placeholder PIN)" if token.pin_is_placeholder else ""))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
