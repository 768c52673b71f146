"""The CPS3 session: the IAS-ECC "CPx" protocol over any :class:`~cps.connection.Connection`.

One :class:`Cps3Card` per card session. It speaks only APDUs, through
:class:`~cps.apdu.ApduChannel`, so the same code runs on a reader (PC/SC), on
the in-process emulator and on a recorded script. Every multi-APDU operation
runs inside one PC/SC transaction; what the card gives once (serial number,
PKCS#15 directories, certificates) is read once and cached for the session.

APDU economy: files are selected without FCP (``P2=0C``), relative to the
application DF, which is selected once; certificates are read 256 bytes at a
time with the length taken from their DER header, so no read is wasted on a
``6Cxx`` correction. See docs/performance.md for the count against OpenSC.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional

from . import pkcs15, sha, tlv
from .apdu import ApduChannel, CommandApdu
from .atr import CardKind, require_supported
from .card import Card, KeyRole, LastTryRefused, PinStatus, check_pin_format, digest_info
from .connection import Connection
from .errors import (CardProtocolError, CpsError, NotSupported, PinBlocked,
                     WrongPin)
from .sw import error_for_sw

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

__all__ = ["Cps3Card", "AID_CONTACT", "AID_CONTACTLESS", "parse_serial", "luhn_ok"]

_log = logging.getLogger("cps.cps3")

AID_CONTACT = bytes.fromhex("E828BD080F8025000001FF0010")
AID_CONTACTLESS = bytes.fromhex("E828BD080F8025000001FF0020")
ISSUER = "8025000001"
MF = b"\x3f\x00"
SFI_SN_ICC = 0x1C
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


def luhn_ok(digits: str) -> bool:
    """Luhn check over a string of digits."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


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
        self.channel = ApduChannel(connection)
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
            self._send(0xA4, 0x04, 0x0C, self.aid, context="SELECT application")
            self._current = self.aid

    def _select_mf(self) -> None:
        if self._current != MF:
            self._send(0xA4, 0x00, 0x0C, MF, context="SELECT MF")
            self._current = MF

    def _select_file(self, path: bytes) -> None:
        """Select an EF from a PKCS#15 path: relative FID (under the app) or absolute."""
        if len(path) == 2:
            if self._current == self.aid:
                self._send(0xA4, 0x02, 0x0C, path, context=f"SELECT {path.hex().upper()}")
            else:
                # One APDU instead of two: the app DF and the EF by an absolute path
                # (with 3F00 first, as CPS3 requires: OpenSC fc0df4e5d).
                self._send(0xA4, 0x09, 0x0C, MF + self.app_fid + path,
                           context=f"SELECT {path.hex().upper()}")
                self._current = self.aid
        elif path[:2] == MF:
            self._send(0xA4, 0x09, 0x0C, path, context=f"SELECT {path.hex().upper()}")
            self._current = None  # we may have moved to another DF
        else:
            raise CardProtocolError(f"unsupported PKCS#15 path {path.hex()}")

    def _read_current(self, der: bool = False) -> bytes:
        """READ BINARY the current EF to its end.

        With ``der`` (one DER object, a certificate) the length comes from the
        object's header after the first read, and every later read asks exactly
        what is left. Otherwise the end is found by a short answer (T=0 cards
        answer ``6Cxx``, which the channel follows).

        A short answer, ``62 82`` or ``6B 00`` says the file ends there (``6Cxx``
        too: "only xx bytes"). For a DER object that ends before the length its
        header announces, that is an error, never a shorter certificate.
        """
        expected: Optional[int] = None
        out = bytearray()
        while len(out) < MAX_FILE:
            want = 256 if expected is None else min(256, expected - len(out))
            if want <= 0:
                break
            offset = len(out)
            response = self.channel.transmit(CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF,
                                                         ne=want))
            if response.sw == 0x6B00 and offset:   # read exactly to the end: offset past EOF
                break
            if response.sw not in (0x9000, 0x6282):
                raise error_for_sw(response.sw, response.data, "READ BINARY")
            out += response.data
            if der and expected is None:
                expected = self._der_length(bytes(out))
            if len(response.data) < want or response.sw == 0x6282:
                break
        else:
            raise CardProtocolError(f"file longer than {MAX_FILE} bytes")
        if der and (expected is None or len(out) < expected):
            raise CardProtocolError(
                f"the file ends after {len(out)} bytes"
                + (f", before the {expected} its DER header announces" if expected else
                   ", before a complete DER header"))
        return bytes(out[:expected] if expected is not None else out)

    @staticmethod
    def _der_length(head: bytes) -> Optional[int]:
        if len(head) < 2:
            return None
        first = head[1]
        if first < 0x80:
            return 2 + first
        n = first & 0x7F
        if n == 0 or n > 3 or len(head) < 2 + n:
            return None
        total = 2 + n + int.from_bytes(head[2:2 + n], "big")
        if total > MAX_FILE:
            raise CardProtocolError("certificate length beyond any CPS3 file")
        return total

    def _read_file(self, path: bytes, der: bool = False) -> bytes:
        # The lock keeps other threads of this process out (a PC/SC transaction
        # only keeps other processes out); SELECT and READs belong together.
        with self._lock, self._transaction():
            self._select_file(path)
            return self._read_current(der)

    # ------------------------------------------------------------------ identity
    @property
    def card_number(self) -> str:
        if self._serial is None:
            with self._lock, self._transaction():
                # READ BINARY by SFI: the MF is current right after reset, and the
                # SFI read makes EF.SN.ICC current wherever we are (cps-domain 1.8 f).
                data = self._send(0xB0, 0x80 | SFI_SN_ICC, 0, ne=256, context="READ EF.SN.ICC")
                self._serial = parse_serial(data)
        return self._serial

    @property
    def pan(self) -> str:
        """The full PAN: issuer + card number + Luhn digit."""
        digits = ISSUER + self.card_number
        for d in "0123456789":
            if luhn_ok(digits + d):
                return digits + d
        raise CardProtocolError("no Luhn digit")  # pragma: no cover

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
        entry = next((c for c in self.certificate_objects() if c.cert_id == key.key_id), None)
        if entry is None:
            raise NotSupported(f"no certificate for the {role.value} key")
        return entry

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

    def _references(self) -> tuple:
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
        return PinStatus(tries_left=p[0x9B], max_tries=p[0x9A], blocked=p[0x9B] == 0,
                         unblock_tries_left=u[0x9B], unblock_max_tries=u[0x9A],
                         unblock_uses_left=uses,
                         unblock_blocked=u[0x9B] == 0 or uses == 0)

    def _tries(self, ref: int) -> Optional[int]:
        """VERIFY without data: tries left (None = already verified). Spends nothing."""
        response = self.channel.transmit(CommandApdu(0x00, 0x20, 0x00, ref))
        if response.sw == 0x9000:
            return None
        if response.sw & 0xFFF0 == 0x63C0:
            return response.sw & 0x0F
        if response.sw == 0x6983:
            return 0
        raise error_for_sw(response.sw, response.data, "VERIFY status")

    def _check_code(self, obj: pkcs15.PinObject, code: str, what: str) -> bytes:
        max_len = obj.max_length or obj.stored_length
        check_pin_format(code, what, obj.min_length, max(obj.min_length, max_len))
        return obj.encode(code)

    def _guard(self, obj: pkcs15.PinObject, allow_last_try: bool, what: str) -> None:
        tries = self._tries(obj.reference)
        if tries == 0:
            raise PinBlocked(f"{what} blocked", sw=0x6983, what=what)
        if tries == 1 and not allow_last_try:
            raise LastTryRefused(what)

    def _present(self, obj: pkcs15.PinObject, data: bytes, what: str) -> None:
        response = self.channel.transmit(CommandApdu(0x00, 0x20, 0x00, obj.reference, data))
        self._raise_pin_sw(response.sw, what)

    @staticmethod
    def _raise_pin_sw(sw: int, what: str) -> None:
        if sw == 0x9000:
            return
        if sw & 0xFFF0 == 0x63C0:
            left = sw & 0x0F
            if left == 0:
                raise PinBlocked(f"wrong {what}: now blocked", sw=sw, what=what)
            raise WrongPin(left, sw=sw, what=what)
        if sw == 0x6983:
            raise PinBlocked(f"{what} blocked", sw=sw, what=what)
        raise error_for_sw(sw, b"", what)

    def verify_pin(self, pin: str, *, allow_last_try: bool = False) -> None:
        obj = self._pin_object()
        data = self._check_code(obj, pin, "PIN")
        with self._lock, self._transaction():
            self._guard(obj, allow_last_try, "PIN")
            _log.debug("verifying the PIN")
            self._present(obj, data, "PIN")
        _log.info("PIN verified")

    def change_pin(self, old_pin: str, new_pin: str, *, allow_last_try: bool = False) -> None:
        obj = self._pin_object()
        old = self._check_code(obj, old_pin, "PIN")
        new = self._check_code(obj, new_pin, "new PIN")
        with self._lock, self._transaction():
            self._guard(obj, allow_last_try, "PIN")
            response = self.channel.transmit(
                CommandApdu(0x00, 0x24, 0x00, obj.reference, old + new))
            self._raise_pin_sw(response.sw, "PIN")
        _log.info("PIN changed")

    def unblock_pin(self, puk: str, new_pin: str, *, allow_last_try: bool = False) -> None:
        pin_obj = self._pin_object()
        puk_obj = self._pin_object(unblock=True)
        code = self._check_code(puk_obj, puk, "unblock code")
        new = self._check_code(pin_obj, new_pin, "new PIN")
        with self._lock, self._transaction():
            self._guard(puk_obj, allow_last_try, "unblock code")
            # IAS-ECC: present the unblock code (CHV 2), then RESET RETRY COUNTER
            # with the new PIN (P1=02), the reset rule of CHV 1 being "CHV 2 verified".
            self._present(puk_obj, code, "unblock code")
            response = self.channel.transmit(
                CommandApdu(0x00, 0x2C, 0x02, pin_obj.reference, new))
            if response.sw == 0x6983:
                raise PinBlocked("no unblock left on this card", sw=response.sw,
                                 what="unblock code")
            if response.sw != 0x9000:
                raise error_for_sw(response.sw, response.data, "RESET RETRY COUNTER")
        _log.info("PIN unblocked")

    # ------------------------------------------------------------------ keys
    def sign(self, data: bytes, hash: str = "sha256", *, prehashed: bool = False,
             hash_on_card: bool = True) -> bytes:
        """Sign with CPS_PRIV_SIG (PKCS#1 v1.5).

        :param hash_on_card: the IAS-ECC way (default): the host hashes the full
            blocks, the card the last one (PSO HASH). ``False`` sends the whole
            digest (hash off card), which some CPS3 versions may refuse.
        """
        if self.contactless:
            raise NotSupported("signing is not allowed on the contactless interface "
                               "(no signature key there): use the contact interface")
        if hash not in ALG_DST:
            raise NotSupported(f"hash {hash!r}: CPS3 signs sha1 and sha256")
        if prehashed and len(data) != sha.DIGEST_SIZES[hash]:
            raise NotSupported(f"a {hash} digest has {sha.DIGEST_SIZES[hash]} bytes, "
                               f"not {len(data)}")
        key = self._key(KeyRole.SIGN)
        ref = key.key_reference or DEFAULT_KEY_REFS[KeyRole.SIGN]
        with self._lock, self._transaction():
            self._select_app()
            if prehashed or not hash_on_card:
                import hashlib

                digest = data if prehashed else hashlib.new(hash, data).digest()
                self._send(0x22, 0x41, 0xB6, bytes((0x80, 1, ALG_DST[hash], 0x84, 1, ref)),
                           context="MSE SET DST")
                return self._send(0x2A, 0x9E, 0x9A, digest, ne=256, context="PSO CDS")
            part = sha.split(hash, data)
            state = part.state_and_count if part.bit_count else b""
            body = tlv.encode(0x90, state) + tlv.encode(0x80, part.tail)
            self._send(0x22, 0x41, 0xAA, bytes((0x80, 1, ALG_HASH[hash])), context="MSE SET HT")
            self._send(0x2A, 0x90, 0xA0, body, context="PSO HASH")
            self._send(0x22, 0x41, 0xB6, bytes((0x80, 1, ALG_DST[hash], 0x84, 1, ref)),
                       context="MSE SET DST")
            return self._send(0x2A, 0x9E, 0x9A, ne=256, context="PSO CDS")

    def authenticate(self, challenge: bytes, *, hash: Optional[str] = None) -> bytes:
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

    def close(self) -> None:
        if self._owns:
            self.connection.close()

    def __repr__(self) -> str:
        return f"<Cps3Card {self.atr_entry.name} reader={self.connection.reader!r}>"
