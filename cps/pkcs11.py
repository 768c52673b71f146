"""PKCS#11 backend: a CPS card through the ANS Cryptolib, OpenSC or a SoftHSM2 test token.

::

    from cps.pkcs11 import Pkcs11Card
    with Pkcs11Card.open() as card:     # $CPS_PKCS11_MODULE, else the Cryptolib, else OpenSC
        card.verify_pin("1234")
        card.authenticate(challenge)

``import cps`` never imports this module, and this module imports
python-pkcs11 only when it loads a PKCS#11 module. The token is recognised by
its objects (ANS Cryptolib labels, cps-domain 2.3), not by its label: the
Cryptolib names it ``CPS3v3-<card number>`` (a CPS4: ``CPS4v1-<card number>``),
OpenSC ``Code porteur de la carte CPX`` (its PIN label), SoftHSM whatever it was
given. :attr:`Pkcs11Card.generation` tells a CPS3 from a CPS4 (model, label, key
IDs); a CPS4 signs RSASSA-PSS too (:attr:`Pkcs11Card.signature_paddings`).

PKCS#11 can only approximate
----------------------------

* **PIN counters**: PKCS#11 has token flags, not counters. :meth:`Pkcs11Card.pin_status`
  reads them afresh (no try spent): ``USER_PIN_LOCKED`` -> 0, ``USER_PIN_FINAL_TRY``
  -> 1, ``USER_PIN_COUNT_LOW`` -> 2 (3 - 1), none -> 3. The unblock code likewise from
  the ``SO_PIN_*`` flags (max 10), but as a module may set none of those at all,
  no flag means unknown (``None``). The unblock *usage* counter is never visible.
* **Status words** do not cross PKCS#11: :attr:`cps.errors.CardError.sw` is ``None``.
* **Login**: python-pkcs11 logs in only while opening a session, and leaks that
  session when the login fails. C_Login, C_Logout and C_GetSessionInfo are
  therefore called through ctypes on our own session (:class:`_Raw`): one
  session, the true login state, and no stray read-only session to make the SO
  login of :meth:`Pkcs11Card.unblock_pin` fail.

===============  =========================================================================
ANS Cryptolib    everything (signature hashed on card; unblock = SO login + C_InitPIN);
                 5.2 and later: CPS4 cards too, PKCS#1 v1.5 and PSS
OpenSC 0.23      certificates, PIN, authentication (RSA-PKCS); **not** the signature key on
                 OpenSSL 3 builds, **not** unblock (AODF authId mismatch): NotSupported
SoftHSM2         test tokens of :mod:`cps.emulator.softhsm` (no real try counter)
===============  =========================================================================

One table, :data:`ERRORS`, maps PKCS#11 failures to :mod:`cps.errors` (:func:`map_error`).
No PIN or unblock code reaches a log line, an error message or a ``repr``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors
from ._extras import require
from .card import PKCS1V15, PSS, Card, KeyRole, PinStatus, check_pin_format, digest_info
from .errors import CpsError, NotSupported, SecurityStatusNotSatisfied
from .pkcs11_modules import CRYPTOLIB, OPENSC, candidate_paths, find_module

if TYPE_CHECKING:  # pragma: no cover
    import pkcs11
    from cryptography import x509
    from pkcs11._pkcs11 import lib as Pkcs11Lib
    from typing_extensions import Self

__all__ = ["CPS3", "CPS4", "CRYPTOLIB_PATHS", "ERRORS", "OPENSC_PATHS", "Pkcs11Card",
           "find_module", "map_error"]

log = logging.getLogger("cps.pkcs11")

#: Where the ANS Cryptolib CPS and OpenSC install their modules on this platform,
#: in search order (kept for callers of earlier versions; the search itself is
#: :mod:`cps.pkcs11_modules`, parameterised by platform).
CRYPTOLIB_PATHS: tuple[str, ...] = candidate_paths(CRYPTOLIB)
OPENSC_PATHS: tuple[str, ...] = candidate_paths(OPENSC)

# Labels and CKA_IDs of the ANS Cryptolib (cps-domain 1.5, 2.3): key, certificate, ID.
_ID_PREFIX = bytes.fromhex("e828bd080f8025000001ff0010")
_OBJECTS: dict[KeyRole, tuple[str, str, bytes]] = {
    KeyRole.AUTH: ("CPS_PRIV_AUT", "Certificat d'Authentification CPS", _ID_PREFIX + b"\x02"),
    KeyRole.SIGN: ("CPS_PRIV_SIG", "Certificat de Signature CPS", _ID_PREFIX + b"\x01"),
    KeyRole.TECH: ("CPS_PRIV_TECH_AUT", "Certificat Technique CPS", _ID_PREFIX + b"\x03"),
}
# CPS4 (NXP ChipDoc) key ids: signature 0x10, authentication 0x20 (the Cryptolib 5.2's
# card-cps4.c/internal.h CPS4_AUTH_PRIV_KEY_ID, its test tool's CPS4_SIGN_KEY_ID and
# CPS4_AUTH_KEY_ID, whose public-key lookups by these CKA_IDs pass on real CPS4v1 cards).
_CPS4_IDS: dict[KeyRole, bytes] = {KeyRole.SIGN: _ID_PREFIX + b"\x10",
                                   KeyRole.AUTH: _ID_PREFIX + b"\x20"}
#: :attr:`Pkcs11Card.generation` values.
CPS3, CPS4 = "cps3", "cps4"
# CK_TOKEN_INFO.model as the Cryptolib sets it (card-cps.h CPS3_MODEL / CPS4_MODEL).
_MODELS = {"IAS ECC": CPS3, "ChipDoc": CPS4}
# Token label as the Cryptolib shows it (the card's PKCS#15 label): CPS3v3-<n>, CPS4v1-<n>.
_TOKEN_LABEL = re.compile(r"CPS(\d)v\d+-(\d+)")
_OID_CARD_ID = "1.2.250.1.71.1.2.3"     # PrintableString "8025000001/<card number>"
_ISSUER_ID = "8025000001"
_PIN_MAX, _PUK_MAX = 3, 10              # CPS3 counters (cps-domain 1.6)
_HASHES = {"sha1": 20, "sha256": 32}
_CKU_SO, _CKU_USER = 0, 1
_CKS_USER = (1, 3)                      # CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS

# --------------------------------------------------------------------------- errors
#: CKR code -> (CKR name, python-pkcs11 exception, cps error, message); ``{what}`` is
#: "PIN" or "unblock code". CKR_PIN_INCORRECT gives WrongPin with the tries left
#: read afresh (a PinError when the module does not tell them);
#: CKR_USER_ALREADY_LOGGED_IN is success (the login state is shared in a process).
ERRORS: dict[int, tuple[str, str, type[CpsError], str]] = {
    0x03: ("CKR_SLOT_ID_INVALID", "SlotIDInvalid", errors.ReaderNotFound, "no such slot or token"),
    0x05: ("CKR_GENERAL_ERROR", "GeneralError", errors.CardError, "the module failed"),
    0x06: ("CKR_FUNCTION_FAILED", "FunctionFailed", errors.CardError,
           "the card refused the operation"),
    0x20: ("CKR_DATA_INVALID", "DataInvalid", errors.CardError, "the key refuses this data"),
    0x21: ("CKR_DATA_LEN_RANGE", "DataLenRange", errors.CardError,
           "the key refuses this data length"),
    0x30: ("CKR_DEVICE_ERROR", "DeviceError", errors.CardError, "the card or reader failed"),
    0x32: ("CKR_DEVICE_REMOVED", "DeviceRemoved", errors.CardRemoved,
           "the card or reader was removed"),
    0x50: ("CKR_FUNCTION_CANCELED", "FunctionCancelled", errors.CardError, "cancelled"),
    0x54: ("CKR_FUNCTION_NOT_SUPPORTED", "FunctionNotSupported", NotSupported,
           "the module does not support this"),
    0x63: ("CKR_KEY_TYPE_INCONSISTENT", "KeyTypeInconsistent", NotSupported,
           "the key cannot use this mechanism"),
    0x68: ("CKR_KEY_FUNCTION_NOT_PERMITTED", "", NotSupported, "the key may not do this"),
    0x70: ("CKR_MECHANISM_INVALID", "MechanismInvalid", NotSupported,
           "the module does not offer this mechanism for this key"),
    0xA0: ("CKR_PIN_INCORRECT", "PinIncorrect", errors.WrongPin, "wrong {what}"),
    0xA1: ("CKR_PIN_INVALID", "PinInvalid", errors.PinError,
           "the token refuses the characters of the {what}"),
    0xA2: ("CKR_PIN_LEN_RANGE", "PinLenRange", errors.PinError,
           "the token refuses the length of the {what}"),
    0xA3: ("CKR_PIN_EXPIRED", "PinExpired", errors.PinError, "the {what} has expired"),
    0xA4: ("CKR_PIN_LOCKED", "PinLocked", errors.PinBlocked, "{what} blocked"),
    0xB0: ("CKR_SESSION_CLOSED", "SessionClosed", errors.CardRemoved,
           "the session was closed (card removed?)"),
    0xB3: ("CKR_SESSION_HANDLE_INVALID", "SessionHandleInvalid", errors.CardRemoved,
           "the session is gone (card removed, or the module re-initialised)"),
    0xB7: ("CKR_SESSION_READ_ONLY_EXISTS", "SessionReadOnlyExists", errors.SharingViolation,
           "other read-only sessions of this process are open on the token"),
    0xE0: ("CKR_TOKEN_NOT_PRESENT", "TokenNotPresent", errors.CardRemoved,
           "the card was removed"),
    0xE1: ("CKR_TOKEN_NOT_RECOGNIZED", "TokenNotRecognised", errors.UnknownCard,
           "the module does not know this card"),
    0x100: ("CKR_USER_ALREADY_LOGGED_IN", "UserAlreadyLoggedIn", CpsError, "logged in"),
    0x101: ("CKR_USER_NOT_LOGGED_IN", "UserNotLoggedIn", SecurityStatusNotSatisfied,
            "the PIN must be verified first (verify_pin)"),
    0x102: ("CKR_USER_PIN_NOT_INITIALIZED", "UserPinNotInitialized", errors.PinError,
            "the token has no user PIN"),
    0x104: ("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", "AnotherUserAlreadyLoggedIn",
            errors.SharingViolation, "another user type is logged in on this token"),
    0x80000001: ("CKR_ASIP_BAD_EF_ACTUA", "", errors.CardError,
                 "the card's EF_ACTUA is empty or incomplete (ANS Cryptolib): update the card"),
}
# python-pkcs11 raises one class per CKR code (NoSuchToken: its own "no token" error).
_EXCEPTIONS = {row[1]: code for code, row in ERRORS.items() if row[1]}
_EXCEPTIONS["NoSuchToken"] = 0x03


def _code(exc: BaseException) -> int | None:
    """The CKR code of a python-pkcs11 exception (class name, or 'Unmapped error code 0x..')."""
    for klass in type(exc).__mro__:
        if klass.__name__ in _EXCEPTIONS:
            return _EXCEPTIONS[klass.__name__]
    found = re.search(r"error code (0x[0-9a-fA-F]+)", str(exc))
    return int(found.group(1), 16) if found else None


def map_error(error: BaseException | int, action: str, *, what: str = "PIN",
              tries_left: Callable[[], int | None] | None = None) -> CpsError | None:
    """The :mod:`cps.errors` error for a PKCS#11 failure (see :data:`ERRORS`).

    :param error: a python-pkcs11 exception, or a raw ``CKR_*`` code.
    :param action: what was being done, for the message (``"signature"``...).
    :param what: ``"PIN"`` or ``"unblock code"``, for PIN errors.
    :param tries_left: called after ``CKR_PIN_INCORRECT`` to read the tries left afresh.
    :returns: the error to raise, or ``None`` for ``CKR_USER_ALREADY_LOGGED_IN`` (success).
    """
    code = error if isinstance(error, int) else _code(error)
    if code is None or code not in ERRORS:
        name = f"CKR 0x{code:X}" if code is not None else type(error).__name__
        return errors.CardError(f"{action} failed: PKCS#11 error {name}")
    ckr, _, cls, text = ERRORS[code]
    message = f"{action}: {text.format(what=what)} ({ckr})"
    if cls is errors.WrongPin:
        try:
            left = tries_left() if tries_left else None
        except CpsError:  # e.g. the card went away: the wrong PIN is still the news
            left = None
        if left is None:
            return errors.PinError(f"{action}: wrong {what}; the module does not say how many "
                                   f"tries are left ({ckr})")
        if left == 0:
            return errors.PinBlocked(f"wrong {what}: it is now blocked", what=what)
        return errors.WrongPin(left, what=what)
    if code == 0x100:
        return None
    if cls is errors.PinBlocked:
        return errors.PinBlocked(message, what=what)
    return cls(message)


# --------------------------------------------------------------------------- module
_LOCK = threading.Lock()


def _require_pkcs11() -> None:
    """Import python-pkcs11 through the extras guard, before any ``import pkcs11`` here.

    :raises MissingExtra: python-pkcs11 is not installed (``extra == "card"``).
    """
    require("pkcs11", "card", "python-pkcs11")


def _load(path: str) -> Pkcs11Lib:
    """python-pkcs11's library for ``path``, loaded once per process.

    A module can be initialised only once per process, and python-pkcs11 keys
    its cache by path string: a symlink to an already loaded module would fail
    with CKR_CRYPTOKI_ALREADY_INITIALIZED, so reuse the path loaded first.
    """
    _require_pkcs11()
    import pkcs11

    with _LOCK:
        real = os.path.realpath(path)
        for loaded in list(getattr(pkcs11, "_loaded", {})):
            if os.path.realpath(loaded) == real:
                return pkcs11.lib(loaded)
        try:
            return pkcs11.lib(path)
        except Exception as exc:  # dlopen and C_Initialize failures alike
            raise NotSupported(f"cannot load the PKCS#11 module {path}: {exc}") from exc


class _SessionInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_ulong) for name in ("slot", "state", "flags", "device_error")]


class _Raw:
    """C_Login, C_Logout, C_GetSessionInfo on python-pkcs11's session handles (one per path).

    dlopen() of the path python-pkcs11 loaded returns the same, initialised,
    module. Only the head of CK_FUNCTION_LIST, up to C_Logout, is declared.
    """

    _HEAD = ("C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
             "C_GetSlotInfo", "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo",
             "C_InitToken", "C_InitPIN", "C_SetPIN", "C_OpenSession", "C_CloseSession",
             "C_CloseAllSessions", "C_GetSessionInfo", "C_GetOperationState",
             "C_SetOperationState", "C_Login", "C_Logout")

    def __init__(self, path: str) -> None:
        class FunctionList(ctypes.Structure):
            if sys.platform == "win32":  # pragma: no cover - cryptoki packs its structures
                _pack_ = 1
            _fields_ = ([("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]
                        + [(name, ctypes.c_void_p) for name in self._HEAD])

        functions = ctypes.POINTER(FunctionList)()
        rv = ctypes.CDLL(path).C_GetFunctionList(ctypes.byref(functions))
        if rv:
            raise NotSupported(f"C_GetFunctionList of {path} failed (CKR 0x{rv:X})")
        table, ulong = functions.contents, ctypes.c_ulong
        # CFUNCTYPE releases the GIL during the call: a PIN check takes a while on a card.
        self.login = ctypes.CFUNCTYPE(ulong, ulong, ulong, ctypes.c_char_p, ulong)(table.C_Login)
        self.logout = ctypes.CFUNCTYPE(ulong, ulong)(table.C_Logout)
        self._info = ctypes.CFUNCTYPE(ulong, ulong, ctypes.POINTER(_SessionInfo))(
            table.C_GetSessionInfo)

    def state(self, handle: int) -> int:
        """CKS_* state of a session; -1 when the session is gone."""
        info = _SessionInfo()
        return -1 if self._info(handle, ctypes.byref(info)) else int(info.state)


@functools.cache
def _raw(path: str) -> _Raw:
    return _Raw(path)


#: CK_SLOT_INFO.slotDescription is 64 bytes: a longer PC/SC reader name is cut there.
_SLOT_DESCRIPTION_SIZE = 64


def slot_matches_reader(description: str, reader: str) -> bool:
    """Whether a slot described so is the PC/SC reader ``reader`` (a name, or a part
    of one, as ``open_card``'s ``reader`` takes it).

    Modules that name slots after their PC/SC reader (the Cryptolib, OpenSC) cut
    names longer than the 64 bytes of ``slotDescription``: a description that
    fills it and begins the reader's name matches too.
    """
    d, r = description.strip().lower(), reader.strip().lower()
    if not d or not r:
        return False
    cut = len(description.encode("utf-8", "replace")) >= _SLOT_DESCRIPTION_SIZE - 4
    return r in d or (cut and r.startswith(d))


def slot_descriptions(module: str | None = None) -> list[str]:
    """The descriptions of the module's slots (``module``: as :func:`find_module`).

    :raises MissingExtra: python-pkcs11 is not installed.
    """
    _require_pkcs11()
    import pkcs11

    lib = _load(find_module(module))
    try:
        return [str(s.slot_description) for s in lib.get_slots()]
    except pkcs11.PKCS11Error as exc:
        raise _mapped(exc, "listing the slots") from exc


def _attr(obj: Any, attribute: Any, default: Any = None) -> Any:
    try:
        return obj[attribute]
    except Exception:  # noqa: BLE001 - absent or sensitive: the caller's default
        return default


# --------------------------------------------------------------------------- the card
class Pkcs11Card(Card):
    """A CPS card seen through a PKCS#11 module. Open it with :meth:`open`."""

    backend = "pkcs11"

    def __init__(self, lib: Pkcs11Lib, token: pkcs11.Token, session: Any,
                 labels: set[str], generation: str = CPS3) -> None:
        """Use :meth:`open`. ``labels``: the CPS object labels seen without login;
        ``generation``: :data:`CPS3` or :data:`CPS4` (see :attr:`generation`)."""
        self.module: str = lib.so
        self._lib, self._token, self._session, self._labels = lib, token, session, labels
        self._generation = generation
        self._mechs: frozenset[int] | None = None
        self._raw = _raw(lib.so)
        self._certs: dict[KeyRole, x509.Certificate] = {}
        self._card_number: str | None = None
        self._closed = False

    @classmethod
    def open(cls, module: str | None = None, token_label: str | None = None,
             slot: int | None = None, reader: str | None = None, *,
             generation: str | None = None, unique: bool = False) -> Pkcs11Card:
        """Load the module and open the first token holding CPS objects.

        :param module: module path (see :func:`find_module`).
        :param token_label: only the token with exactly this label.
        :param slot: only this slot ID.
        :param reader: only slots whose description (the PC/SC reader name) contains this.
        :param generation: only a token of this card generation (:data:`CPS3`,
            :data:`CPS4`, see :attr:`generation`): a CPS3 is never taken for a CPS4.
        :param unique: refuse to choose: the token must be the only one that qualifies.
        :raises NotSupported: no module.
        :raises MissingExtra: python-pkcs11 is not installed (the ``card`` extra).
        :raises ReaderNotFound: no slot matches ``slot``/``reader``; with ``unique``,
            several tokens qualify.
        :raises NoCard: no token present (with that label, of that generation).
        :raises UnknownCard: tokens present, but none holds CPS objects.
        """
        if generation not in (None, CPS3, CPS4):
            raise ValueError(f"generation must be {CPS3!r} or {CPS4!r}, not {generation!r}")
        _require_pkcs11()
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        lib = _load(find_module(module))
        try:
            slots = [s for s in lib.get_slots()
                     if (slot is None or s.slot_id == slot)
                     and (reader is None or slot_matches_reader(s.slot_description, reader))]
        except pkcs11.PKCS11Error as exc:
            raise _mapped(exc, "listing the slots") from exc
        if not slots:
            raise errors.ReaderNotFound(f"no slot matches slot={slot} reader={reader!r} "
                                        f"({lib.so})", reader=reader)
        wanted = {name for names in _OBJECTS.values() for name in names[:2]}
        tokens = others = 0
        chosen: tuple[Any, Any, set[str], str] | None = None
        try:
            for candidate in slots:
                session = None
                try:
                    token = candidate.get_token()
                    if token_label is not None and token.label != token_label:
                        continue
                    tokens += 1
                    session = token.open()
                    # Public objects only: a contact card's private keys appear after login.
                    objects = [o for klass in (ObjectClass.PRIVATE_KEY, ObjectClass.CERTIFICATE)
                               for o in session.get_objects({Attribute.CLASS: klass})]
                    labels = {_attr(o, Attribute.LABEL) for o in objects} & wanted
                    ids = {bytes(_attr(o, Attribute.ID) or b"") for o in objects}
                    kind = _generation_of(token, ids)
                except pkcs11.PKCS11Error as exc:  # empty reader, mute or foreign card...
                    log.debug("slot %s skipped: %s", candidate.slot_id, type(exc).__name__)
                    if session is not None:
                        _close_quietly(session)
                    continue
                except BaseException:
                    if session is not None:
                        _close_quietly(session)
                    raise
                if not labels:
                    _close_quietly(session)
                    continue
                if generation is not None and kind != generation:
                    log.debug("%s token %r skipped: a %s is wanted", kind, token.label,
                              generation)
                    others += 1
                    _close_quietly(session)
                    continue
                if chosen is not None:  # unique: a second candidate
                    _close_quietly(session)
                    raise errors.ReaderNotFound(
                        f"several {generation or 'CPS'} tokens ({chosen[0].label!r}, "
                        f"{token.label!r}) and nothing says which one is meant ({lib.so})",
                        reader=reader)
                log.debug("%s token %r in %r", kind, token.label, candidate.slot_description)
                chosen = (token, session, labels, kind)
                if not unique:
                    break
        except BaseException:
            if chosen is not None:  # a later slot failed: the session kept is closed too
                _close_quietly(chosen[1])
            raise
        if chosen is not None:
            return cls(lib, *chosen)
        if others:
            raise errors.NoCard(f"no {generation.upper() if generation else 'CPS'} token "
                                f"present: {others} token(s) of another card generation "
                                f"({lib.so})", reader=reader)
        if not tokens:
            where = f"labelled {token_label!r} " if token_label is not None else ""
            raise errors.NoCard(f"no token {where}present ({lib.so})", reader=reader)
        keys = ", ".join(names[0] for names in _OBJECTS.values())
        raise errors.UnknownCard(f"no token holds CPS objects ({keys}...) in {lib.so}")

    # ---------------------------------------------------------------- identity
    @property
    def token_label(self) -> str:
        """The token label (``CPS3v3-<n>`` with the Cryptolib)."""
        return str(self._token.label)

    @property
    def generation(self) -> str:
        """The card generation behind the token: :data:`CPS3` (``"cps3"``, IAS-ECC) or
        :data:`CPS4` (``"cps4"``, NXP ChipDoc).

        Told, in this order, by the token model the Cryptolib sets (``"IAS ECC"`` /
        ``"ChipDoc"``), the token label (``CPS3v3-<n>`` / ``CPS4v1-<n>``), then the
        CKA_IDs of the public objects (a CPS4's keys are ``...10 10``/``...10 20``,
        a CPS3's ``...10 01``/``...10 02``); ``"cps3"`` when nothing tells (OpenSC,
        which speaks to CPS3 cards only). Read when the card was opened: no call.
        """
        return self._generation

    @property
    def reader(self) -> str:
        """The slot description (the PC/SC reader name with OpenSC and the Cryptolib)."""
        return str(self._token.slot.slot_description)

    @property
    def contactless(self) -> bool:
        """True when the token has the technical key and no authentication key."""
        return (not self._labels.isdisjoint(_OBJECTS[KeyRole.TECH][:2])
                and self._labels.isdisjoint(_OBJECTS[KeyRole.AUTH][:2]))

    @property
    def card_number(self) -> str:
        """From certificate extension 1.2.250.1.71.1.2.3 (any module), else the
        Cryptolib's token label ``CPS3v3-<n>`` or serial."""
        if self._card_number is None:
            self._card_number = self._find_card_number()
        return self._card_number

    def _find_card_number(self) -> str:
        from cryptography import x509

        try:
            cert = self.certificate(KeyRole.TECH if self.contactless else KeyRole.AUTH)
            oid = x509.ObjectIdentifier(_OID_CARD_ID)
            der = getattr(cert.extensions.get_extension_for_oid(oid).value, "value", b"")
            # PrintableString (or UTF8String), short length: "8025000001/<n>"
            if len(der) >= 2 and der[0] in (0x13, 0x0C) and der[1] == len(der) - 2:
                number = der[2:].decode("ascii").partition("/")[2]
                if number.isdigit():
                    return number
        except (CpsError, x509.ExtensionNotFound, UnicodeDecodeError):
            pass
        found = re.fullmatch(r"CPS\dv\d+-(\d+)", self.token_label.strip())
        serial = self._token.serial.decode("ascii", "replace").strip()
        if found:
            return found.group(1)
        if serial.isdigit():  # the Cryptolib's, maybe with the issuer id and the Luhn digit
            full = len(serial) == 21 and serial.startswith(_ISSUER_ID)
            return serial[len(_ISSUER_ID):-1] if full else serial
        raise NotSupported("no card number in the certificate, token label or serial")

    def certificate(self, role: KeyRole = KeyRole.AUTH) -> x509.Certificate:
        """The certificate of one key, by label, else by CKA_ID (read once, then cached).

        :raises NotSupported: the token has no such certificate.
        """
        from cryptography import x509
        from pkcs11 import Attribute, ObjectClass

        role = KeyRole(role)
        if role in self._certs:
            return self._certs[role]
        if self.contactless != (role == KeyRole.TECH):
            mode = "contactless" if self.contactless else "contact"
            raise NotSupported(f"no {role.value} key on the {mode} interface")
        label = _OBJECTS[role][1]
        found = self._find(ObjectClass.CERTIFICATE, label, role, "reading the certificate")
        if found is None:
            raise NotSupported(f"the token has no certificate {label!r}")
        try:
            cert = x509.load_der_x509_certificate(bytes(found[Attribute.VALUE]))
        except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
            raise errors.CertificateParseError(f"{label}: {exc}") from exc
        self._certs[role] = cert
        return cert

    # ---------------------------------------------------------------- PIN
    def pin_status(self) -> PinStatus:
        """Approximated from fresh token flags (see the module docstring); no try spent."""
        from pkcs11 import TokenFlag as F

        self._no_pin("reading the PIN counters")
        flags = self._call(lambda: self._token.slot.get_token().flags, "reading the token")
        tries = (0 if flags & F.USER_PIN_LOCKED else 1 if flags & F.USER_PIN_FINAL_TRY
                 else _PIN_MAX - 1 if flags & F.USER_PIN_COUNT_LOW else _PIN_MAX)
        unblock: int | None = None
        if flags & (F.SO_PIN_LOCKED | F.SO_PIN_FINAL_TRY | F.SO_PIN_COUNT_LOW):
            unblock = (0 if flags & F.SO_PIN_LOCKED else 1 if flags & F.SO_PIN_FINAL_TRY
                       else _PUK_MAX - 1)
        return self._note_status(PinStatus(
            tries_left=tries, max_tries=_PIN_MAX, blocked=tries == 0,
            unblock_tries_left=unblock, unblock_max_tries=None if unblock is None else _PUK_MAX,
            unblock_blocked=unblock == 0))

    @property
    def has_pinpad(self) -> bool:
        """The token has a protected authentication path
        (``CKF_PROTECTED_AUTHENTICATION_PATH``): the module asks the PIN itself,
        on the reader's keypad or a dialog of its own, when C_Login gets none."""
        from pkcs11 import TokenFlag

        if self.contactless:
            return False
        # The flags C_GetTokenInfo gave when the token was listed: a fixed property.
        return bool(self._token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH)

    def verify_pin(self, pin: str | None = None, *, allow_last_try: bool = False) -> None:
        """C_Login as user, once; a login in force is dropped first, so the PIN is checked.

        ``pin=None`` on a token with a protected authentication path
        (:attr:`has_pinpad`): C_Login with a NULL PIN, after the counter check;
        the module asks the holder.

        :raises WrongPin: refused; ``tries_left`` read afresh from the token flags.
        :raises PinBlocked: no try left.
        :raises LastTryRefused: one try left and ``allow_last_try`` is false.
        :raises PinEntryCancelled: the module says the entry was cancelled
            (``CKR_FUNCTION_CANCELED``).
        :raises NotSupported: contactless (no cardholder PIN).
        :raises ValueError: ``None`` on a token without a protected path.
        """
        from .pinpad import keypad_entry

        self._no_pin("PIN verification")
        keypad_entry(lambda: self.has_pinpad, pin)
        secret = check_pin_format(pin) if pin is not None else None
        self._check_last_try("PIN", allow_last_try)
        if self.logged_in:
            self.logout()
        log.debug("C_Login (user) on %r", self.token_label)
        self._login(self._session.handle, _CKU_USER, secret, "PIN verification", "PIN")
        self._note_success("PIN")

    def change_pin(self, old_pin: str | None = None, new_pin: str | None = None, *,
                   allow_last_try: bool = False) -> None:
        """C_SetPIN in a read-write session (the module checks the old PIN).

        :raises WrongPin: the old PIN was refused.
        :raises NotSupported: no PINs given: python-pkcs11 cannot pass C_SetPIN the
            NULL PINs of a protected authentication path.
        """
        from .pinpad import keypad_entry

        self._no_pin("PIN change")
        if keypad_entry(lambda: self.has_pinpad, old_pin, new_pin) or old_pin is None \
                or new_pin is None:
            raise NotSupported("PIN change on the token's protected authentication path is "
                               "not available (python-pkcs11 passes no NULL PIN to "
                               "C_SetPIN): give the PINs")
        check_pin_format(old_pin)
        check_pin_format(new_pin, "new PIN")
        self._check_last_try("PIN", allow_last_try)
        log.debug("C_SetPIN on %r", self.token_label)
        session = self._call(lambda: self._token.open(rw=True), "PIN change")
        try:
            session.set_pin(old_pin, new_pin)
        except _pkcs11_error() as exc:
            error = _mapped(exc, "PIN change", tries_left=self._tries)
            self._note_error(error, "PIN")
            raise error from exc
        finally:
            _close_quietly(session)
        self._note_success("PIN")

    def unblock_pin(self, puk: str, new_pin: str, *, allow_last_try: bool = False) -> None:
        """C_Login as SO with the unblock code, then C_InitPIN: how the Cryptolib unblocks.

        Ends logged out. OpenSC cannot unblock a CPx (the card's PIN object names
        an unblock code that does not exist, docs/emulator.md "What OpenSC showed
        us"): NotSupported is raised before any unblock-code try is spent.

        :param allow_last_try: risk the last unblock-code try (when the module tells).
        :raises WrongPin: the unblock code was refused (``what == "unblock code"``).
        :raises PinBlocked: the unblock code is blocked.
        """
        self._no_pin("PIN unblock")
        secret = check_pin_format(puk, "unblock code", min_len=8, max_len=8)
        check_pin_format(new_pin, "new PIN")
        if self._opensc:
            raise NotSupported("OpenSC cannot unblock a CPS3 PIN: the card's PIN object points "
                               "to an unblock code that does not exist (authId mismatch); use "
                               "the pcsc backend or the ANS Cryptolib")
        self._check_last_try("unblock code", allow_last_try)
        if self.logged_in:
            self.logout()
        # C_Login(SO) fails while a read-only session exists: close ours meanwhile.
        _close_quietly(self._session)
        try:
            rw = self._call(lambda: self._token.open(rw=True), "PIN unblock")
            try:
                log.debug("C_Login (SO) + C_InitPIN on %r", self.token_label)
                self._login(rw.handle, _CKU_SO, secret, "PIN unblock", "unblock code")
                try:
                    self._call(lambda: rw.init_pin(new_pin), "PIN unblock (C_InitPIN)")
                finally:
                    self._raw.logout(rw.handle)
            finally:
                _close_quietly(rw)
        finally:
            self._session = self._call(lambda: self._token.open(), "reopening the session")
        self._note_success("unblock code")

    @property
    def logged_in(self) -> bool:
        """The module says the user is logged in (C_GetSessionInfo)."""
        return self._raw.state(self._session.handle) in _CKS_USER

    def check_present(self) -> None:
        """C_GetSessionInfo: a removed token closes its sessions (CardRemoved)."""
        if self._closed:
            raise errors.ReaderError("session closed")
        if self._raw.state(self._session.handle) < 0:
            raise errors.CardRemoved("the token is gone (its PKCS#11 session ended)")

    def logout(self) -> None:
        """C_Logout: forget the PIN verification (for every session of this process)."""
        self.login_generation += 1
        rv = self._raw.logout(self._session.handle)
        if rv and rv != 0x101:  # CKR_USER_NOT_LOGGED_IN: nothing to forget
            raise _mapped(rv, "logout")

    # ---------------------------------------------------------------- keys
    @property
    def signature_paddings(self) -> frozenset[str]:
        """``{"pkcs1v15"}``, plus ``"pss"`` on a CPS4 whose module lists a PSS
        mechanism (CKM_RSA_PKCS_PSS or CKM_SHA1/SHA256_RSA_PKCS_PSS; the Cryptolib
        5.2 registers them for CPS4 cards only). Never ``"pss"`` on a CPS3, even
        through a module that would sign PSS with any key (SoftHSM): the real card
        cannot. The mechanism list is read once (C_GetMechanismList, no login)."""
        if self._generation == CPS4 and self._mechanisms() & _PSS_MECHANISMS:
            return frozenset({PKCS1V15, PSS})
        return frozenset({PKCS1V15})

    def sign(self, data: bytes, hash: str = "sha256", *, prehashed: bool = False,
             padding: str = PKCS1V15) -> bytes:
        """Sign with CPS_PRIV_SIG.

        PKCS#1 v1.5: CKM_SHA256/SHA1_RSA_PKCS, or CKM_RSA_PKCS over a DigestInfo
        when ``prehashed``. PSS (:data:`cps.card.PSS_PARAMETERS`):
        CKM_SHA256/SHA1_RSA_PKCS_PSS when the module lists it, else CKM_RSA_PKCS_PSS
        over the digest computed here (always so when ``prehashed``).

        :raises SecurityStatusNotSatisfied: the PIN was not verified.
        :raises NotSupported: contactless; bad hash or digest length; a padding
            the card or module does not offer (before any call on the key); or the
            module cannot use the key (OpenSC on OpenSSL 3 builds, whatever the mechanism).
        :raises ValueError: unknown padding name; a digest of the wrong length.
        """
        from pkcs11 import Mechanism

        padding = self._check_padding(padding)
        if self.contactless:
            raise NotSupported("no signature on the contactless interface (technical key only)")
        name = _hash_name(hash)
        data = bytes(data)
        if prehashed and len(data) != _HASHES[name]:
            raise ValueError(f"a {name} digest has {_HASHES[name]} bytes, not {len(data)}")
        param: Any = None
        if padding == PSS:
            mechanism, payload, param = self._pss(name, data if prehashed else None,
                                                  None if prehashed else data)
        else:
            mechanism = (Mechanism.RSA_PKCS if prehashed else Mechanism.SHA256_RSA_PKCS
                         if name == "sha256" else Mechanism.SHA1_RSA_PKCS)
            payload = digest_info(name, data) if prehashed else data
        key = self._private_key(KeyRole.SIGN, "signing")
        try:
            return bytes(key.sign(payload, mechanism=mechanism, mechanism_param=param))
        except _pkcs11_error() as exc:
            code = _code(exc)
            if code not in (0x54, 0x63, 0x68, 0x70):
                raise _mapped(exc, "signing") from exc
            why = (" OpenSC builds on OpenSSL 3 (Debian 12 and later) cannot use a CPS3 "
                   "signature key: it signs only what the card hashed itself (PSO HASH), "
                   "which OpenSC does with SHA internals that OpenSSL 3 hides;"
                   if self._opensc else "")
            raise NotSupported(f"{os.path.basename(self.module)} cannot sign with CPS_PRIV_SIG "
                               f"using {mechanism.name} ({ERRORS[code][0]}).{why} use the ANS "
                               f"Cryptolib or the pcsc backend") from exc

    def authenticate(self, challenge: bytes, *, hash: str | None = None,
                     padding: str = PKCS1V15) -> bytes:
        """Sign a challenge with the authentication key (the technical key when contactless).

        PKCS#1 v1.5: CKM_RSA_PKCS over the challenge as is, or with ``hash`` over
        its DigestInfo (a standard PKCS#1 v1.5 signature of the challenge). PSS: the
        challenge is the digest (20 or 32 bytes) without ``hash``, the message with
        it; mechanisms as in :meth:`sign`.

        :raises NotSupported: PKCS#1 v1.5 on a CPS3 with more than 40 % of the modulus
            (102 bytes for 2048 bits), the card's INTERNAL AUTHENTICATE limit, checked
            here because OpenSC and SoftHSM would sign what a real CPS3 refuses (a
            CPS4 has no such limit: the Cryptolib pads on the host and the card does
            a raw RSA operation, card-cps4.c); an empty challenge; a padding the card
            or module does not offer (before any call on the key).
        :raises SecurityStatusNotSatisfied: contact card and the PIN was not verified.
        :raises ValueError: unknown padding name; a PSS digest of neither 20 nor 32 bytes.
        """
        from pkcs11 import Mechanism

        padding = self._check_padding(padding)
        role = KeyRole.TECH if self.contactless else KeyRole.AUTH
        payload = bytes(challenge)
        param: Any = None
        if padding == PSS:
            if hash is not None:
                mechanism, payload, param = self._pss(_hash_name(hash), None, payload)
            else:
                by_size = {size: name for name, size in _HASHES.items()}
                if len(payload) not in by_size:
                    raise ValueError(f"a PSS challenge without hash= is a SHA-256 (32 bytes) "
                                     f"or SHA-1 (20 bytes) digest, not {len(payload)} bytes")
                mechanism, payload, param = self._pss(by_size[len(payload)], payload, None)
        else:
            mechanism = Mechanism.RSA_PKCS
            if hash is not None:
                name = _hash_name(hash)
                payload = digest_info(name, hashlib.new(name, payload).digest())
            bits = self.certificate(role).public_key().key_size  # type: ignore[union-attr]
            limit = ((bits + 7) // 8 * 2 // 5 if self._generation == CPS3
                     else (bits + 7) // 8 - 11)  # RFC 8017 9.2: room for the type-1 padding
            if not 1 <= len(payload) <= limit:
                what = ("INTERNAL AUTHENTICATE takes 1 to {} bytes (40 % of the {}-bit "
                        "modulus)" if self._generation == CPS3 else
                        "the key signs 1 to {} bytes with a {}-bit modulus").format(limit, bits)
                raise NotSupported(f"challenge of {len(payload)} bytes: {what}; pass "
                                   f"hash='sha256' to sign a digest of a longer challenge")
        key = self._private_key(role, "authentication")
        try:
            return bytes(key.sign(payload, mechanism=mechanism, mechanism_param=param))
        except _pkcs11_error() as exc:
            raise _mapped(exc, "authentication") from exc

    def _mechanisms(self) -> frozenset[int]:
        """The mechanisms the module lists for this token's slot (read once)."""
        if self._mechs is None:
            listed = self._call(lambda: self._token.slot.get_mechanisms(), "listing mechanisms")
            self._mechs = frozenset(int(m) for m in listed)
        return self._mechs

    def _pss(self, name: str, digest: bytes | None, data: bytes | None
             ) -> tuple[Any, bytes, tuple[Any, Any, int]]:
        """``(mechanism, payload, CK_RSA_PKCS_PSS_PARAMS)`` for RSASSA-PSS with ``name``
        over ``data`` (hashed by the module when it can) or ``digest``.

        :raises NotSupported: the module lists no mechanism that can (no card call).
        """
        from pkcs11 import MGF, Mechanism

        hashed, hash_mech, mgf = ((Mechanism.SHA256_RSA_PKCS_PSS, Mechanism.SHA256, MGF.SHA256)
                                  if name == "sha256" else
                                  (Mechanism.SHA1_RSA_PKCS_PSS, Mechanism.SHA_1, MGF.SHA1))
        param = (hash_mech, mgf, _HASHES[name])  # salt length = hash length
        listed = self._mechanisms()
        if data is not None and int(hashed) in listed:
            return hashed, data, param
        if int(Mechanism.RSA_PKCS_PSS) in listed:
            return (Mechanism.RSA_PKCS_PSS,
                    digest if digest is not None else hashlib.new(name, data or b"").digest(),
                    param)
        raise NotSupported(f"{os.path.basename(self.module)} offers no PSS mechanism for a "
                           f"{name} {'digest' if data is None else 'message'} "
                           f"(CKM_RSA_PKCS_PSS{'' if data is None else ' or ' + hashed.name})")

    def close(self) -> None:
        """Log out if logged in, close the session."""
        if not self._closed:
            self._closed = True
            if self.logout_on_close and self.logged_in:
                self._raw.logout(self._session.handle)
            _close_quietly(self._session)

    def __enter__(self) -> Self:
        return self

    def __repr__(self) -> str:
        return (f"<Pkcs11Card module={os.path.basename(self.module)} "
                f"token={self.token_label!r}{' closed' if self._closed else ''}>")

    # ---------------------------------------------------------------- helpers
    @property
    def _opensc(self) -> bool:
        return "opensc" in str(self._lib.manufacturer_id).lower()

    def _call(self, function: Callable[[], Any], action: str) -> Any:
        if self._closed:
            raise errors.ReaderError("the card is closed")
        try:
            return function()
        except _pkcs11_error() as exc:
            raise _mapped(exc, action) from exc

    def _no_pin(self, action: str) -> None:
        if self.contactless:
            raise NotSupported(f"{action}: the contactless interface has no cardholder PIN")

    def _tries(self, unblock: bool = False) -> int | None:
        status = self.pin_status()
        return status.unblock_tries_left if unblock else status.tries_left

    def _login(self, handle: int, user: int, secret: bytes | None, action: str,
               what: str) -> None:
        """C_Login, once (never retried). ``secret=None``: a NULL PIN of length 0, the
        protected authentication path (as python-pkcs11's ``PROTECTED_AUTH`` does)."""
        if self._closed:
            raise errors.ReaderError("the card is closed")
        rv = self._raw.login(handle, user, secret, len(secret or b""))  # once: never retried
        if rv == 0x50 and secret is None:  # CKR_FUNCTION_CANCELED: the holder cancelled
            raise errors.PinEntryCancelled(f"{action}: the PIN entry was cancelled (no try "
                                           "spent)", what=what)
        error = map_error(rv, action, what=what,
                          tries_left=lambda: self._tries(unblock=user == _CKU_SO)) if rv else None
        if error is not None:  # None: success, or CKR_USER_ALREADY_LOGGED_IN
            self._note_error(error, what)
            raise error

    def _find(self, klass: Any, label: str, role: KeyRole, action: str) -> Any:
        """The object of a role, by label, else by the Cryptolib's CKA_ID; ``None``."""
        from pkcs11 import Attribute

        ids = [_OBJECTS[role][2]] + ([_CPS4_IDS[role]] if role in _CPS4_IDS else [])
        if self._generation == CPS4:
            ids.reverse()
        templates: list[dict[Any, Any]] = [{Attribute.LABEL: label}]
        templates += [{Attribute.ID: i} for i in ids]
        for attrs in templates:
            attrs[Attribute.CLASS] = klass
            found = self._call(lambda: list(self._session.get_objects(attrs)),  # noqa: B023
                               action)  # (called at once: the loop variable is current)
            if found:
                return found[0]
        return None

    def _private_key(self, role: KeyRole, action: str) -> Any:
        from pkcs11 import Attribute, ObjectClass

        label = _OBJECTS[role][0]
        key = self._find(ObjectClass.PRIVATE_KEY, label, role, action)
        logged_in = self.logged_in
        if key is not None and (logged_in or not _attr(key, Attribute.PRIVATE, True)):
            return key
        if not logged_in:  # hidden (SoftHSM) or visible but unusable (OpenSC) before login
            raise SecurityStatusNotSatisfied(f"{action} with {label} needs the PIN: call "
                                             f"verify_pin() first")
        raise NotSupported(f"the token has no private key {label!r}")


_PSS_MECHANISMS = frozenset((0x0D, 0x0E, 0x43))  # CKM_RSA_PKCS_PSS, CKM_SHA1/SHA256_RSA_PKCS_PSS


def _hash_name(hash: str) -> str:
    name = str(hash).lower().replace("-", "")
    if name not in _HASHES:
        raise NotSupported(f"hash {hash!r}: CPS cards sign sha1 and sha256")
    return name


def _generation_of(token: Any, ids: set[bytes]) -> str:
    """:data:`CPS3` or :data:`CPS4` (see :attr:`Pkcs11Card.generation`)."""
    model = str(token.model).strip()
    if model in _MODELS:
        return _MODELS[model]
    found = _TOKEN_LABEL.fullmatch(str(token.label).strip())
    if found:
        return CPS4 if found.group(1) == "4" else CPS3
    return CPS4 if ids & set(_CPS4_IDS.values()) else CPS3


def _pkcs11_error() -> type[Exception]:
    _require_pkcs11()
    import pkcs11

    return pkcs11.PKCS11Error


def _mapped(error: BaseException | int, action: str, **kwargs: Any) -> CpsError:
    return map_error(error, action, **kwargs) or errors.CardError(f"{action}: unexpected answer")


def _close_quietly(session: Any) -> None:
    """Close a session; a removed card or a finalised module must not mask the real error."""
    try:
        session.close()
    except Exception as exc:  # noqa: BLE001 - the caller's error matters more
        log.debug("closing a PKCS#11 session failed: %s", type(exc).__name__)
