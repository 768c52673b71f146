"""The CPS3 session: the IAS-ECC "CPx" protocol over any :class:`~cps.connection.Connection`.

One :class:`Cps3Card` per card session. It speaks only APDUs, through
:class:`~cps.apdu.ApduChannel`, so the same code runs on a reader (PC/SC), on
the in-process emulator and on a recorded script. Every multi-APDU operation
runs inside one PC/SC transaction; what the card gives once (serial number,
PKCS#15 directories, certificates) is read once and cached for the session.

Only what a real card was seen doing (docs/emulator.md, "What the library
relies on"): files are selected by their path from the MF with the FCP
(``00 A4 09 04 3F00...``, the Cryptolib's form in a real trace), read exactly
to the size the FCP gives (certificates to the length their DER header gives)
and never more than 0xE7 bytes per command, as the Cryptolib reads; PIN
counters come from GET DATA on the CHV's DOCP with the MF current; nothing
depends on a ``6Cxx`` answer, on an SFI read, or on VERIFY without data.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

from . import der, luhn, pkcs15, sha, tlv
from .apdu import ApduChannel, CommandApdu
from .atr import CardKind, require_supported
from .card import Card, KeyRole, PinStatus, check_pin_format, digest_info
from .connection import Connection
from .errors import (
    CardProtocolError,
    CardRemoved,
    CardReset,
    CpsError,
    NoCard,
    NotSupported,
    PcscServiceUnavailable,
    PinBlocked,
)
from .sw import error_for_sw, pin_error

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

__all__ = ["Cps3Card", "AID_CONTACT", "AID_CONTACTLESS", "parse_serial", "luhn_ok", "fcp_size"]

_log = logging.getLogger("cps.cps3")

AID_CONTACT = bytes.fromhex("E828BD080F8025000001FF0010")
AID_CONTACTLESS = bytes.fromhex("E828BD080F8025000001FF0020")
ISSUER = "8025000001"
MF = b"\x3f\x00"
EF_SN_ICC = MF + b"\xd0\x03"
#: The most asked of the card in one READ BINARY or GET RESPONSE: the ANS
#: Cryptolib's ``max_recv_size`` for CPS3 (card-cps3.c), what a real trace shows.
MAX_RECV = 0xE7
CHV_PIN, CHV_PUK = 1, 2
# Algorithm references (cps-domain 1.7)
ALG_HASH = {"sha1": 0x10, "sha256": 0x40}
ALG_DST = {"sha1": 0x12, "sha256": 0x42}
ALG_AT_PKCS1 = 0x02
DEFAULT_KEY_REFS = {KeyRole.SIGN: 0x81, KeyRole.AUTH: 0x82, KeyRole.TECH: 0x83}
KEY_LABELS = {KeyRole.SIGN: "CPS_PRIV_SIG", KeyRole.AUTH: "CPS_PRIV_AUT",
              KeyRole.TECH: "CPS_PRIV_TECH_AUT"}
CERT_LABEL_WORDS = {KeyRole.AUTH: "authentification", KeyRole.SIGN: "signature",
                    KeyRole.TECH: "technique"}
MAX_FILE = 16 * 1024        # no CPS3 file comes near; a larger claim is a broken card
INT_AUTH_RATIO = 0.40       # INTERNAL AUTHENTICATE input limit (ANS spec, cps-domain 1.7)


def _not_definite(message: str) -> CardProtocolError:
    return CardProtocolError(f"not a definite DER length ({message})")


#: Luhn check over a string of digits: :func:`cps.luhn.is_valid` (empty: ``False``)
luhn_ok = luhn.is_valid


def parse_serial(data: bytes) -> str:
    """EF.SN.ICC (``5A <PAN BCD>``) -> the card number, checked.

    :raises CardProtocolError: not a CPS PAN (issuer 8025000001, Luhn digit).
    """
    item = tlv.find(data, 0x5A)
    if item is None:
        raise CardProtocolError("EF.SN.ICC holds no PAN (tag 5A)")
    digits = item.value.hex().upper().rstrip("F")
    if not digits.isdigit() or not digits.startswith(ISSUER) or len(digits) < 13:
        raise CardProtocolError("EF.SN.ICC: not a CPS card number (issuer 8025000001 expected)")
    if not luhn_ok(digits):
        raise CardProtocolError("EF.SN.ICC: the card number fails its Luhn check")
    return digits[len(ISSUER):-1]


def _docp_counters(data: bytes) -> Dict[int, int]:
    """DOCP answer ``70 { BF 81 xx { A0 { 9A, 9B, [9D], A1 } } }`` -> {tag: value}."""
    out: Dict[int, int] = {}
    outer = tlv.find(data, 0x70)
    if outer is None or not outer.children():
        raise CardProtocolError("malformed DOCP answer")
    docp = next((c for c in outer.children()[0].children() if c.tag == 0xA0), None)
    if docp is None:
        raise CardProtocolError("DOCP answer without A0")
    for item in docp.children():
        if item.tag in (0x9A, 0x9B, 0x9D):
            if not 1 <= len(item.value) <= 2:
                raise CardProtocolError("malformed DOCP counter")
            out[item.tag] = int.from_bytes(item.value, "big")
    if 0x9A not in out or 0x9B not in out or out[0x9B] > out[0x9A]:
        raise CardProtocolError("DOCP counters missing or inconsistent")
    return out


def _pin_range(obj: pkcs15.PinObject) -> Tuple[int, int]:
    """The PIN lengths the card takes (host entry and keypad alike)."""
    max_len = obj.max_length or obj.stored_length
    return obj.min_length, max(obj.min_length, max_len)


def fcp_size(fcp: bytes, path: bytes = b"") -> int:
    """The size of a transparent EF from its FCP (``62 { 80 <size> ... }``).

    :raises CardProtocolError: no FCP, no size, or a size no CPS3 file has.
    """
    where = f" of {path.hex().upper()}" if path else ""
    item = tlv.find(fcp, 0x62, 0x80)
    if item is None or not 1 <= len(item.value) <= 2:
        raise CardProtocolError(f"the FCP{where} gives no file size (tag 80)")
    size = int.from_bytes(item.value, "big")
    if size > MAX_FILE:
        raise CardProtocolError(f"the FCP{where} gives {size} bytes: beyond any CPS3 file")
    return size


class Cps3Card(Card):
    """A CPS3 card over a :class:`~cps.connection.Connection` (PC/SC or in process).

    :param connection: the link to the card.
    :param owns_connection: close the connection with the card.
    :raises UnknownCard: the ATR is not a CPS card's.
    :raises UnsupportedCard: a CPS4 (recognised, not supported).
    """

    backend = "pcsc"

    def __init__(self, connection: Connection, *, owns_connection: bool = True) -> None:
        self.connection = connection
        self._owns = owns_connection
        self.atr_entry = require_supported(connection.atr)
        self.kind = self.atr_entry.kind
        # Lengths are known before each read (FCP, DER header): a 6Cxx is the
        # card's error, never a reason to ask again (issue 14).
        self.channel = ApduChannel(connection, max_response_length=MAX_RECV,
                                   follow_wrong_length=False)
        self._lock = threading.RLock()
        self._current: Optional[bytes] = None     # which DF we left current ("MF"/AID)
        self._depth = 0
        self._serial: Optional[str] = None
        self._odf: Optional[Dict[int, List[bytes]]] = None
        self._pins: Optional[List[pkcs15.PinObject]] = None
        self._keys: Optional[List[pkcs15.PrivateKeyObject]] = None
        self._certs: Optional[List[pkcs15.CertificateObject]] = None
        self._cert_cache: Dict[KeyRole, "x509.Certificate"] = {}
        self._cert_der: Dict[KeyRole, bytes] = {}
        self._presented = False   # a PIN command went to the card in this session
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    @property
    def contactless(self) -> bool:
        return self.kind is CardKind.CPS3_CONTACTLESS

    @property
    def aid(self) -> bytes:
        return AID_CONTACTLESS if self.contactless else AID_CONTACT

    @property
    def app_fid(self) -> bytes:
        """FID of the application DF under the MF (EF.DIR: 3F00 0001 contact, 0002 contactless)."""
        return b"\x00\x02" if self.contactless else b"\x00\x01"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A PC/SC transaction; the current DF is known only inside one.

        Between our transactions another program (a browser's PKCS#11 module,
        the ANS Cryptolib) may select other files: what we remember of the
        current DF is dropped when an outermost transaction begins. It costs
        nothing for file reads (one SELECT by absolute path either way).
        """
        with self.channel.transaction():
            outermost = self._depth == 0
            if outermost:
                self._current = None
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    def _send(self, ins: int, p1: int, p2: int, data: bytes = b"", ne: Optional[int] = None,
              context: str = "") -> bytes:
        try:
            return self.channel.send(0x00, ins, p1, p2, data, ne, context)
        except CpsError:
            # Whatever went wrong (a reset, a removal, a refusal), do not trust
            # our idea of the current DF any more: the next operation re-selects.
            self._current = None
            raise

    def _select_app(self) -> None:
        if self._current != self.aid:
            if self.contactless:
                # No trace of the contactless interface exists: its application
                # is chosen by AID, as the Cryptolib picks it (cps3_get_aid_pkcs15).
                self._send(0xA4, 0x04, 0x0C, self.aid, context="SELECT application")
            else:
                # The Cryptolib's form in a real trace: by path, no FCP.
                self._send(0xA4, 0x09, 0x0C, MF + self.app_fid, context="SELECT application")
            self._current = self.aid

    def _select_mf(self) -> None:
        if self._current != MF:
            # The Cryptolib's form before GET DATA on a CHV (cps3_get_pin_counter).
            self._send(0xA4, 0x09, 0x0C, MF, context="SELECT MF")
            self._current = MF

    def _absolute(self, path: bytes) -> bytes:
        """A PKCS#15 path as a path from the MF.

        A path starting with ``3F00`` is already absolute. A path starting with
        the application DF's FID (``0001 xxxx``) leaves out only the MF. Any
        other path is relative to the application DF (``3F00 0001`` + path),
        as both the Cryptolib and OpenSC resolve ODF entries.
        """
        if not 2 <= len(path) <= 16 or len(path) % 2:
            raise CardProtocolError(f"unsupported PKCS#15 path {path.hex()}")
        if path[:2] == MF:
            return path
        if len(path) > 2 and path[:2] == self.app_fid:
            return MF + path
        return MF + self.app_fid + path

    def _select_path(self, path: bytes) -> int:
        """SELECT an EF by its path from the MF, with the FCP; return the file's size.

        ``00 A4 09 04 3F00...``: the form of the Cryptolib in a real trace (the
        path from the current DF must start with 3F00 on a CPS3: OpenSC
        fc0df4e5d). The EF's DF becomes current.
        """
        fcp = self._send(0xA4, 0x09, 0x04, path, ne=256, context=f"SELECT {path.hex().upper()}")
        df = path[:-2]
        self._current = self.aid if df == MF + self.app_fid else MF if df == MF else None
        return fcp_size(fcp, path)

    def _read_binary(self, size: int, what: str, der: bool = False) -> bytes:
        """READ BINARY the current EF: exactly ``size`` bytes, at most 0xE7 per command.

        With ``der`` (one DER object, a certificate) the reads stop at the end
        its header announces, which must lie within the file. Nothing is
        learnt from a ``6Cxx`` or a short answer: the size is known before the
        first read, so a card answering otherwise is broken, not done.
        """
        out = bytearray()
        end = size
        known = not der
        while len(out) < end:
            offset = len(out)
            want = min(MAX_RECV, end - offset)
            data = self._send(0xB0, offset >> 8, offset & 0xFF, ne=want,
                              context=f"READ BINARY {what}")
            if len(data) != want:  # within the file a card gives what is asked
                raise CardProtocolError(f"READ BINARY {what}: {len(data)} bytes for {want} asked")
            out += data
            if not known:
                expected = self._der_length(bytes(out))
                if expected is None:
                    if len(out) >= 5:
                        raise CardProtocolError(f"{what} does not start with a DER header")
                    continue
                if expected > size:
                    raise CardProtocolError(f"{what}: a DER object of {expected} bytes in a "
                                            f"file of {size}")
                known, end = True, expected
        if not known:
            raise CardProtocolError(f"{what}: the file ends before a complete DER header")
        return bytes(out[:end])

    @staticmethod
    def _der_length(head: bytes) -> Optional[int]:
        if len(head) < 2:
            return None
        first = head[1]
        if first & 0x80 and 0 < first & 0x7F <= 3 and len(head) < 2 + (first & 0x7F):
            return None  # not all the length octets yet
        length, value_start = der.read_length(head, 1, len(head), 3, _not_definite)
        total = value_start + length
        if total > MAX_FILE:
            raise CardProtocolError("certificate length beyond any CPS3 file")
        return total

    def _read_file(self, path: bytes, der: bool = False) -> bytes:
        # The lock keeps other threads of this process out (a PC/SC transaction
        # only keeps other processes out); SELECT and READs belong together.
        absolute = self._absolute(path)
        with self._lock, self._transaction():
            size = self._select_path(absolute)
            return self._read_binary(size, absolute.hex().upper(), der)

    # ------------------------------------------------------------------ identity
    @property
    def card_number(self) -> str:
        if self._serial is None:
            with self._lock, self._transaction():
                # As the Cryptolib does in a real trace: SELECT 3F00 D003 by path
                # with the FCP, READ BINARY of the size the FCP gives. (An SFI read
                # resolves in the current DF only: right after a signature, with
                # DF 0001 current, a real card answers it 6A82.)
                size = self._select_path(EF_SN_ICC)
                self._serial = parse_serial(self._read_binary(size, "EF.SN.ICC"))
        return self._serial

    @property
    def pan(self) -> str:
        """The full PAN: issuer + card number + Luhn digit."""
        digits = ISSUER + self.card_number
        return digits + luhn.check_digit(digits)

    def _pkcs15_odf(self) -> Dict[int, List[bytes]]:
        with self._lock:
            if self._odf is None:
                self._odf = pkcs15.parse_odf(self._read_file(b"\x50\x31"))
            return self._odf

    def _directory(self, tag: int) -> bytes:
        paths = self._pkcs15_odf().get(tag, [])
        return b"".join(self._read_file(p) for p in paths)

    def pin_objects(self) -> List[pkcs15.PinObject]:
        """The AODF's PIN objects (empty on the contactless interface)."""
        with self._lock:
            if self._pins is None:
                self._pins = [] if self.contactless else pkcs15.parse_aodf(
                    self._directory(pkcs15.ODF_AODF))
            return self._pins

    def key_objects(self) -> List[pkcs15.PrivateKeyObject]:
        with self._lock:
            if self._keys is None:
                self._keys = pkcs15.parse_prkdf(self._directory(pkcs15.ODF_PRKDF))
            return self._keys

    def certificate_objects(self) -> List[pkcs15.CertificateObject]:
        with self._lock:
            if self._certs is None:
                self._certs = pkcs15.parse_cdf(self._directory(pkcs15.ODF_CDF))
            return self._certs

    def _key(self, role: KeyRole) -> pkcs15.PrivateKeyObject:
        if (role is KeyRole.TECH) != self.contactless:
            raise NotSupported("the technical key exists on the contactless interface only"
                               if role is KeyRole.TECH else
                               "the contactless interface has only the technical key")
        keys = self.key_objects()
        for k in keys:
            if k.label == KEY_LABELS[role]:
                return k
        # Labels are what the ANS Cryptolib relies on; fall back to usage bits.
        want = {KeyRole.SIGN: pkcs15.USAGE_NON_REPUDIATION, KeyRole.AUTH: pkcs15.USAGE_DECRYPT,
                KeyRole.TECH: pkcs15.USAGE_SIGN}[role]
        for k in keys:
            if k.usage & want:
                return k
        raise NotSupported(f"this card has no {role.value} key")

    def _certificate_entry(self, role: KeyRole) -> pkcs15.CertificateObject:
        # The CDF labels name the roles on every CPS3 (the ANS Cryptolib relies on
        # them): that spares reading the PrKDF just to pair IDs.
        for entry in self.certificate_objects():
            if CERT_LABEL_WORDS[role] in entry.label.lower():
                return entry
        key = self._key(role)
        paired = next((c for c in self.certificate_objects() if c.cert_id == key.key_id), None)
        if paired is None:
            raise NotSupported(f"no certificate for the {role.value} key")
        return paired

    def certificate_der(self, role: KeyRole = KeyRole.AUTH) -> bytes:
        """The DER bytes of a certificate, read once."""
        with self._lock:
            return self._certificate_der(role)

    def _certificate_der(self, role: KeyRole) -> bytes:
        if role not in self._cert_der:
            if (role is KeyRole.TECH) != self.contactless:
                raise NotSupported("the contactless interface has only the technical "
                                   "certificate" if self.contactless else
                                   "the technical certificate exists on the contactless "
                                   "interface only")
            entry = self._certificate_entry(role)
            der = self._read_file(entry.path, der=True)
            # Whole and well-formed before it is kept: a card answering junk
            # with 90 00 must not leave a broken certificate in the session.
            from .trust.certs import parse_cert

            parse_cert(der)  # CertificateParseError
            self._cert_der[role] = der
        return self._cert_der[role]

    def certificate(self, role: KeyRole = KeyRole.AUTH) -> "x509.Certificate":
        if role not in self._cert_cache:
            from cryptography import x509

            from .errors import CertificateParseError

            der = self.certificate_der(role)
            try:
                self._cert_cache[role] = x509.load_der_x509_certificate(der)
            except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
                raise CertificateParseError(f"the card's {role.value} certificate does not "
                                            f"decode: {exc}") from None
        return self._cert_cache[role]

    # ------------------------------------------------------------------ PIN
    def _pin_object(self, unblock: bool = False) -> pkcs15.PinObject:
        if self.contactless:
            raise NotSupported("the contactless interface has no PIN")
        pins = self.pin_objects()
        for p in pins:
            if p.is_unblocking == unblock:
                return p
        raise NotSupported("the card declares no " + ("unblock code" if unblock else "PIN"))

    def _docp(self, ref: int) -> Dict[int, int]:
        self._select_mf()  # the CHV SDOs answer only with the MF current
        data = self._send(0xCB, 0x3F, 0xFF, bytes.fromhex(f"4D087006BF81{ref:02X}02A080"),
                          ne=256, context="GET DATA DOCP")
        return _docp_counters(data)

    def _references(self) -> Tuple[int, int]:
        if self.contactless:
            raise NotSupported("the contactless interface has no PIN")
        if self._pins is None:
            # CHV 1 and 2 on every CPS3: reading the AODF only for them would cost
            # three APDUs; it is read when a PIN is actually presented.
            return CHV_PIN, CHV_PUK
        return self._pin_object().reference, self._pin_object(unblock=True).reference

    def pin_status(self) -> PinStatus:
        pin_ref, puk_ref = self._references()
        with self._lock, self._transaction():
            p = self._docp(pin_ref)
            u = self._docp(puk_ref)
            uses = u.get(0x9D)
            return self._note_status(PinStatus(
                tries_left=p[0x9B], max_tries=p[0x9A], blocked=p[0x9B] == 0,
                unblock_tries_left=u[0x9B], unblock_max_tries=u[0x9A], unblock_uses_left=uses,
                unblock_blocked=u[0x9B] == 0 or uses == 0))

    def _counters(self, what: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
        # One DOCP, the counter the rule needs (the Cryptolib's way on a CPS3;
        # it never sends VERIFY without data to a CPS3).
        ref = self._references()[0 if what == "PIN" else 1]
        with self._lock, self._transaction():
            docp = self._docp(ref)
        return docp[0x9B], docp[0x9A], docp.get(0x9D)

    def _check_code(self, obj: pkcs15.PinObject, code: str, what: str) -> bytes:
        check_pin_format(code, what, *_pin_range(obj))
        return obj.encode(code)

    @property
    def has_pinpad(self) -> bool:
        """The reader verifies PINs on its keypad (PC/SC part 10
        ``FEATURE_VERIFY_PIN_DIRECT``, asked once per connection; no APDU).
        Never on the contactless interface (no PIN there)."""
        return not self.contactless and self.connection.pinpad_features().can_verify

    def _keypad_entry(self, obj: pkcs15.PinObject, ins: int) -> Tuple[int, bytes]:
        """``(control code, structure)`` of a PIN entry on the reader's keypad for
        VERIFY (``ins`` 20) or CHANGE REFERENCE DATA (24): the PIN block the host
        would send (:meth:`cps.pkcs15.PinObject.encode`: ASCII digits padded to
        the stored length), blank, for the reader to fill. Built before anything
        is sent: a PIN the keypad cannot enter costs nothing."""
        from . import pinpad

        features = self.connection.pinpad_features()
        code = features.verify_pin_direct if ins == 0x20 else features.modify_pin_direct
        if code is None:
            raise NotSupported("this reader's keypad cannot verify a PIN: give the PIN"
                               if ins == 0x20 else "this reader's keypad cannot change a "
                               "PIN: give the old and new PINs")
        blank = obj.encode("")
        low, high = _pin_range(obj)
        if not obj.needs_padding or not blank or len(set(blank)) != 1:
            # A keypad writes digits into a fixed block; a PIN sent at its own length
            # needs a reader that sets Lc, which many do not do (OpenSC's IAS-ECC
            # warning about variable-length PINs on PIN pads).
            raise NotSupported("the card's PIN is not padded to a fixed length: it cannot "
                               "be entered on this reader's keypad")
        try:
            fmt = pinpad.PinBlockFormat(low, high, len(blank), blank[0])
        except ValueError:
            raise NotSupported(f"a PIN of {low} to {high} digits stored on {len(blank)} "
                               "bytes cannot be entered on a keypad") from None
        header = bytes((0x00, ins, 0x00, obj.reference))
        build = pinpad.verify_structure if ins == 0x20 else pinpad.modify_structure
        return code, build(header, fmt, features.properties)

    def _pin_command(self, ins: int, p1: int, p2: int, data: bytes, what: str,
                     context: str, keypad: Optional[Tuple[int, bytes]] = None) -> None:
        """Send one PIN command, once; its refusal becomes the one typed PIN error.

        With ``keypad`` (:meth:`_keypad_entry`) the reader sends it, with the
        digits the holder typed; a refusal by the reader itself (timeout,
        cancel...) reached no card and spent no try.
        """
        self._presented = True
        if keypad is None:
            # Once, and the card's own status word is the verdict: no GET RESPONSE
            # whose status could pass for it, no resend on 6Cxx.
            response = self.channel.transmit_once(CommandApdu(0x00, ins, p1, p2, data))
        else:
            from . import pinpad
            from .apdu import Response

            _log.debug("%s: the PIN is entered on the reader's keypad", context)
            answer, sw = pinpad.split_answer(self.connection.control(*keypad))
            refused = pinpad.reader_error(sw, what)
            if refused is not None:
                raise refused
            response = Response(answer, sw)
        if response.sw == 0x9000:
            return
        if response.sw1 in (0x61, 0x6C):
            raise CardProtocolError(f"{context}: the card answered {response.sw:04X} to a "
                                    "PIN command")
        error = (pin_error(response.sw, what, context)
                 or error_for_sw(response.sw, response.data, context))
        self._note_error(error, what)
        raise error

    def verify_pin(self, pin: Optional[str] = None, *, allow_last_try: bool = False) -> None:
        """VERIFY (``00 20 00 01``), once. ``pin=None``: entered on the reader's
        keypad (:attr:`has_pinpad`), after the counter check."""
        from .pinpad import keypad_entry

        self._references()  # NotSupported on the contactless interface, before all else
        keypad = keypad_entry(lambda: self.has_pinpad, pin)
        obj = self._pin_object()
        entry = self._keypad_entry(obj, 0x20) if keypad else None
        data = self._check_code(obj, pin, "PIN") if pin is not None else b""
        with self._lock, self._transaction():
            self._check_last_try("PIN", allow_last_try)
            _log.debug("verifying the PIN")
            self._pin_command(0x20, 0x00, obj.reference, data, "PIN", "VERIFY", entry)
            self._note_success("PIN")
        _log.info("PIN verified")

    def change_pin(self, old_pin: Optional[str] = None, new_pin: Optional[str] = None, *,
                   allow_last_try: bool = False) -> None:
        """CHANGE REFERENCE DATA (``00 24 00 01``, old then new PIN block), once.
        Both ``None``: both entered on the reader's keypad (``FEATURE_MODIFY_PIN_DIRECT``;
        the reader asks the new PIN twice and compares)."""
        from .pinpad import keypad_entry

        self._references()
        keypad = keypad_entry(lambda: self.has_pinpad, old_pin, new_pin)
        obj = self._pin_object()
        entry = self._keypad_entry(obj, 0x24) if keypad else None
        data = b""
        if old_pin is not None and new_pin is not None:
            data = (self._check_code(obj, old_pin, "PIN")
                    + self._check_code(obj, new_pin, "new PIN"))
        with self._lock, self._transaction():
            self._check_last_try("PIN", allow_last_try)
            self._pin_command(0x24, 0x00, obj.reference, data, "PIN",
                              "CHANGE REFERENCE DATA", entry)
            self._note_success("PIN")
        _log.info("PIN changed")

    def unblock_pin(self, puk: str, new_pin: str, *, allow_last_try: bool = False) -> None:
        """Unblock as both middlewares do on a CPS3 (docs/emulator.md, "Unblock"):
        VERIFY the unblock code (``00 20 00 02``), then RESET RETRY COUNTER with
        the new PIN only (``00 2C 02 01``), the PIN's reset rule being "unblock
        code verified". The unblock code goes to the card once: a refusal is
        final, no other form is tried (each attempt spends an unblock-code try)."""
        pin_obj = self._pin_object()
        puk_obj = self._pin_object(unblock=True)
        code = self._check_code(puk_obj, puk, "unblock code")
        new = self._check_code(pin_obj, new_pin, "new PIN")
        with self._lock, self._transaction():
            self._check_last_try("unblock code", allow_last_try)
            self._pin_command(0x20, 0x00, puk_obj.reference, code, "unblock code", "VERIFY")
            # The unblock code was right: its counter is full again, whatever follows.
            checked = self._seen
            self._note("unblock code", checked.unblock_max_tries if checked else None)
            response = self.channel.transmit_once(
                CommandApdu(0x00, 0x2C, 0x02, pin_obj.reference, new))
            if response.sw != 0x9000:
                self._reset_refused(response.sw, response.data)
            self._note_success("unblock code")
        _log.info("PIN unblocked")

    def _reset_refused(self, sw: int, data: bytes) -> None:
        """RESET RETRY COUNTER refused after the unblock code was accepted: say so,
        without blaming the unblock code's counter (the refusal is not about it)."""
        context = "RESET RETRY COUNTER (the unblock code was accepted)"
        if sw == 0x6983:  # the usage counter: no unblock left on this card
            seen = self._seen
            self._note("unblock code", seen.unblock_tries_left if seen else None, uses=0)
            raise PinBlocked(f"{context}: no unblock is left on this card", sw=sw,
                             what="unblock code")
        if sw >> 8 in (0x61, 0x6C) or sw & 0xFFF0 == 0x63C0:
            raise CardProtocolError(f"{context}: the card answered {sw:04X}")
        raise error_for_sw(sw, data, context)

    def logout(self) -> None:
        """Forget the PIN verification: the card is reset.

        No CPS3 trace shows a command that clears the security status, so the
        library resets the card (PC/SC ``SCardReconnect`` with a reset; the
        emulator's warm reset). Every program sharing the card loses its PIN
        verification too and gets ``CardReset`` on its next command.
        """
        with self._lock:
            self._current = None
            self.login_generation += 1  # before the reset: a failed reset forgets too
            self.connection.reset()
            self._presented = False
            _log.info("card reset: PIN verification forgotten")

    # ------------------------------------------------------------------ keys
    def sign(self, data: bytes, hash: str = "sha256", *, prehashed: bool = False,
             hash_on_card: bool = True, padding: str = "pkcs1v15") -> bytes:
        """Sign with CPS_PRIV_SIG (PKCS#1 v1.5).

        :param padding: ``"pkcs1v15"`` only: ``"pss"`` raises NotSupported before
            any APDU (a CPS3 signs PKCS#1 v1.5 only, cps-domain 1.7).

        :param hash_on_card: the IAS-ECC way (default), the only form seen in a
            real trace: the host hashes the full blocks, the card the last one
            (PSO HASH). ``False`` sends the whole digest (hash off card), which
            some CPS3 versions may refuse.

        The host's part of the hash is computed before the card is held (at
        C speed: :mod:`cps.sha`): a 4 MiB document holds the card no longer
        than a 1 KiB one.
        """
        self._check_padding(padding)  # a CPS3: PKCS#1 v1.5 only (cps-domain 1.7)
        if self.contactless:
            raise NotSupported("signing is not allowed on the contactless interface "
                               "(no signature key there): use the contact interface")
        if hash not in ALG_DST:
            raise NotSupported(f"hash {hash!r}: CPS3 signs sha1 and sha256")
        if prehashed and len(data) != sha.DIGEST_SIZES[hash]:
            raise ValueError(f"a {hash} digest has {sha.DIGEST_SIZES[hash]} bytes, "
                               f"not {len(data)}")
        key = self._key(KeyRole.SIGN)
        ref = key.key_reference or DEFAULT_KEY_REFS[KeyRole.SIGN]
        dst = bytes((0x80, 1, ALG_DST[hash], 0x84, 1, ref))
        digest: Optional[bytes] = None
        body = b""
        if prehashed or not hash_on_card:
            import hashlib

            digest = bytes(data) if prehashed else hashlib.new(hash, data).digest()
        else:
            part = sha.split(hash, data)
            state = part.state_and_count if part.bit_count else b""
            body = tlv.encode(0x90, state) + tlv.encode(0x80, part.tail)
        with self._lock, self._transaction():
            self._select_app()
            if digest is not None:
                self._send(0x22, 0x41, 0xB6, dst, context="MSE SET DST")
                return self._send(0x2A, 0x9E, 0x9A, digest, ne=256, context="PSO CDS")
            self._send(0x22, 0x41, 0xAA, bytes((0x80, 1, ALG_HASH[hash])), context="MSE SET HT")
            self._send(0x2A, 0x90, 0xA0, body, context="PSO HASH")
            self._send(0x22, 0x41, 0xB6, dst, context="MSE SET DST")
            return self._send(0x2A, 0x9E, 0x9A, ne=256, context="PSO CDS")

    def authenticate(self, challenge: bytes, *, hash: Optional[str] = None,
                     padding: str = "pkcs1v15") -> bytes:
        """INTERNAL AUTHENTICATE, PKCS#1 v1.5 only (``"pss"``: NotSupported, no APDU)."""
        self._check_padding(padding)  # a CPS3: PKCS#1 v1.5 only (cps-domain 1.7)
        role = KeyRole.TECH if self.contactless else KeyRole.AUTH
        key = self._key(role)
        if hash is not None:
            import hashlib

            if hash not in ALG_DST:
                raise NotSupported(f"hash {hash!r}: use sha1 or sha256")
            challenge = digest_info(hash, hashlib.new(hash, challenge).digest())
        limit = int((key.modulus_length or 2048) // 8 * INT_AUTH_RATIO)
        if not 1 <= len(challenge) <= limit:
            raise NotSupported(f"INTERNAL AUTHENTICATE takes 1 to {limit} bytes "
                               f"(40 % of the modulus); got {len(challenge)}")
        ref = key.key_reference or DEFAULT_KEY_REFS[role]
        with self._lock, self._transaction():
            self._select_app()
            self._send(0x22, 0x41, 0xA4, bytes((0x80, 1, ALG_AT_PKCS1, 0x84, 1, ref)),
                       context="MSE SET AT")
            return self._send(0x88, 0x00, 0x00, challenge, ne=256,
                              context="INTERNAL AUTHENTICATE")

    def check_present(self) -> None:
        self.connection.check_present()

    def close(self) -> None:
        """End the session; when it presented a PIN command (and
        :attr:`logout_on_close`), reset the card first so that no verified state
        outlives it.

        :raises CpsError: the reset failed while the card may still be there
            (its PIN verification may remain): the connection is closed anyway.
            A removed or already reset card took its state with it, and a stopped
            pcscd reaches nothing: no error then (a warning for the latter).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._presented and self.logout_on_close:
                    try:
                        self.logout()
                    except (CardRemoved, CardReset, NoCard) as exc:
                        _log.info("card gone at close (%s): its state went with it",
                                  type(exc).__name__)
                    except PcscServiceUnavailable:
                        # pcscd is gone: it closes its readers as it stops, and nothing
                        # can reach the card any more (this program least of all).
                        _log.warning("pcscd is gone at close: the card could not be reset "
                                     "(a reader that kept it powered keeps its PIN "
                                     "verification until it is removed)")
            finally:
                if self._owns:
                    self.connection.close()

    def __repr__(self) -> str:
        return f"<Cps3Card {self.atr_entry.name} reader={self.connection.reader!r}>"

