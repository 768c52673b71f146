"""One harness per parser of untrusted bytes, with the seeds it starts from.

Where the bytes come from, and who could forge them:

=====================  ==========================================  =====================
harness                parsers                                      attacker
=====================  ==========================================  =====================
apdu-command           cps.apdu.parse_command (+ encode)            a reader / host (emulator side)
apdu-response          the response pipeline: split_response,       a card
                       61xx / 6Cxx / chaining loops, cps.sw
tlv                    cps.tlv (BER-TLV: FCP, SDO, PKCS#15)         a card
atr                    cps.atr.identify / require_supported         a card
pkcs15                 cps.pkcs15.parse_odf/aodf/prkdf/cdf,         a card
                       PinObject.encode
ef-sn-icc              cps.cps3.parse_serial                        a card
docp                   cps.cps3._docp_counters                      a card
card-session           Cps3Card over a real emulated card whose     a card
                       answers the input corrupts (every parser
                       of the session, PIN-try accounting)
certificate-identity   cps.identity.Practitioner.from_certificate   a card, a token
x509-fast-parser       cps.trust.certs.parse_cert + extensions      a card, a token, a CMS
cert-validation        cps.trust.validate.Validator.validate        a card, a token, a CMS
crl                    cps.trust.crlindex.CrlIndex.load (+ lookups) the network (HTTP)
                       cps.trust.fetch.crl_update_times
ocsp                   cps.trust.ocsp.validate_response             the network (HTTP)
fetch-cache            cps.trust.fetch cache (sidecar JSON +        a local user
                       content) through Fetcher.fetch_crl
ldap-answer            cps.trust.ldap.read_search_answer (bind,     the network (LDAP)
                       entries, references, done; lengths)
auth-token             cps.auth.token.parse_token,                  a web client
                       Verifier.verify
cms                    cps.sign.verify_cms                          a document sender
=====================  ==========================================  =====================

Compact-TLV: the library decodes none (ATR historical bytes are matched by
masks in cps.atr, EF.ATR is not read), so there is no compact-TLV harness;
``atr`` covers the ATR path.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any, Dict, List, Optional

from cps import errors
from cps.errors import CpsError

from .engine import Context, Harness, Violation

__all__ = ["HARNESSES", "get", "names"]

h = bytes.fromhex


# --------------------------------------------------------------------------- APDU layer
class ApduCommand(Harness):
    name = "apdu-command"
    targets = ("cps.apdu.parse_command", "cps.apdu.encode")
    max_len = 1024

    def seeds(self) -> List[bytes]:
        return [h("00A4040C0DE828BD080F8025000001FF0010"), h("00B09C0000"), h("00200001"),
                h("002000010831323334FFFFFFFF"), h("00CB3FFF0A4D087006BF810102A08000"),
                h("002A9E9A00"), h("0088000026" + "00" * 38 + "00"),
                h("00B0000000FFFF"), h("002A90A0000102" + "AB" * 258), h("00C0000010"),
                h("00A4000C023F00"), h("0022 41 B6 06 800142840181".replace(" ", ""))]

    def one(self, data: bytes) -> None:
        from cps.apdu import encode, parse_command

        command = parse_command(data)
        # Whatever we accepted re-encodes to something that parses back the same.
        again = parse_command(encode(command, extended=True))
        if again != command:
            raise Violation(f"re-encoding changed the command: {command!r} -> {again!r}",
                            key="round-trip")


class _ScriptedCard:
    """A Connection answering from a script of raw responses; the last one repeats.

    Checks the protocol the pipeline must follow: after ``61xx`` the next command
    is GET RESPONSE with Le = xx; after ``6Cxx`` the same command comes again
    (with Le = xx when it has no data).
    """

    def __init__(self, responses: List[bytes], protocol: str) -> None:

        self.responses = responses or [b"\x90\x00"]
        self.protocol = protocol
        self.reader = "fuzz"
        self.calls = 0
        self._last: Optional[bytes] = None
        self._last_response = b""

    atr = h("3BAC00402A001225006480000310009000")

    def transaction(self):
        import contextlib

        return contextlib.nullcontext()

    def close(self) -> None:
        pass

    def send_and_receive(self, apdu: bytes):
        from cps.connection import split_response

        self._check(apdu)
        raw = self.responses[min(self.calls, len(self.responses) - 1)]
        self.calls += 1
        if self.calls > 5000:
            raise Violation("more than 5000 APDUs for one command: an unbounded loop",
                            key="unbounded-exchange")
        self._last, self._last_response = bytes(apdu), raw
        return split_response(raw)

    def _check(self, apdu: bytes) -> None:
        previous, answer = self._last, self._last_response
        if previous is None or len(answer) < 2:
            return
        sw1, sw2 = answer[-2], answer[-1]
        if sw1 == 0x61:
            if apdu[1] != 0xC0 or len(apdu) != 5 or apdu[4] != sw2:
                raise Violation(f"after {sw1:02X}{sw2:02X} the host sent {apdu.hex()}, "
                                "not GET RESPONSE with Le=SW2", key="61xx-protocol")
        elif sw1 == 0x6C and apdu[:4] != previous[:4]:
            raise Violation(f"after 6C{sw2:02X} the host sent another command {apdu.hex()}",
                            key="6cxx-protocol")
        elif sw1 == 0x6C and len(apdu) == 5 and apdu[4] != sw2:
            raise Violation(f"after 6C{sw2:02X} the host resent with Le={apdu[4]:02X}",
                            key="6cxx-protocol")


def _split_script(data: bytes) -> List[bytes]:
    out, pos = [], 0
    while pos < len(data) and len(out) < 512:
        n = data[pos]
        out.append(bytes(data[pos + 1:pos + 1 + n]))
        pos += 1 + n
    return out


class ApduResponse(Harness):
    """Byte 0 picks the protocol and the command shape; then length-prefixed responses."""

    name = "apdu-response"
    targets = ("cps.connection.split_response", "cps.apdu.ResponseChaining",
               "cps.apdu.WrongLength", "cps.apdu.CommandChaining", "cps.apdu.T0Case4",
               "cps.sw.error_for_sw", "cps.sw.describe")
    max_len = 4096

    def seeds(self) -> List[bytes]:
        def script(flags: int, *responses: str) -> bytes:
            out = bytes((flags,))
            for r in responses:
                raw = h(r)
                out += bytes((len(raw),)) + raw
            return out

        return [script(0, "9000"), script(1, "6110", "00" * 16 + "9000"),
                script(3, "6C05", "0102030405" + "9000"), script(5, "6100", "AB" * 253 + "6101",
                                                                  "CD" + "9000"),
                script(7, "9000", "9000", "6108", "00" * 8 + "9000"),
                script(2, "6110"), script(1, "6C00", "6C00", "6C00"), script(9, "63C2"),
                script(11, "6982"), script(4, "6F"), script(6, "61FF", "00" * 200 + "61FF")]

    def one(self, data: bytes) -> None:
        from cps.apdu import ApduChannel, CommandApdu
        from cps.sw import describe, error_for_sw, lookup

        if not data:
            return
        flags = data[0]
        card = _ScriptedCard(_split_script(data[1:]), "T0" if flags & 1 else "T1")
        channel = ApduChannel(card)  # type: ignore[arg-type]
        shape = (flags >> 1) & 3
        command = [CommandApdu(0x00, 0x84, 0, 0),                            # case 1
                   CommandApdu(0x00, 0xB0, 0, 0, ne=256),                    # case 2
                   CommandApdu(0x00, 0x2A, 0x90, 0xA0, b"\xAB" * 300),       # case 3, chained
                   CommandApdu(0x00, 0x88, 0, 0, b"\x01" * 38, ne=256)][shape]  # case 4
        if flags & 8:
            out = channel.send(command.cla, command.ins, command.p1, command.p2, command.data,
                               command.ne, context="fuzz")
            sw = 0x9000
        else:
            response = channel.transmit(command)
            out, sw = response.data, response.sw
        if len(out) > 0x10000 + 256:
            raise Violation(f"{len(out)} response bytes accepted: more than the 64 KiB cap",
                            key="response-cap")
        if not 0 <= sw <= 0xFFFF:
            raise Violation(f"status word {sw!r}", key="sw-range")
        lookup(sw)
        describe(sw)
        err = error_for_sw(sw, out, "fuzz")
        if not isinstance(err, errors.CardError):
            raise Violation(f"error_for_sw gave {err!r}", key="sw-error")


# --------------------------------------------------------------------------- TLV, ATR
class Tlv(Harness):
    name = "tlv"
    targets = ("cps.tlv.parse", "cps.tlv.parse_one", "cps.tlv.find", "cps.tlv.Tlv.children",
               "cps.tlv.Tlv.to_dict", "cps.tlv.encode")
    max_len = 4096

    def seeds(self) -> List[bytes]:
        from cps.emulator import layout

        return [layout.EF_ATR_CONTENT[1:], layout.ef_dir(), layout.odf(), layout.aodf(),
                layout.prkdf(), layout.cdf(), h("7016BF810112A0109A01039B0103A1088C06F3000013FF00"),
                h("5A0A80250000010012345678F0"), h("6F0E8407A0000000041010A503500141"),
                h("62178202012183022F018A01058C067B45FFFFFF4580020039"),
                h("00FF7016BF810112A0109A01039B0103A1088C06F3000013FF0000FFFF")]

    def dictionary(self) -> List[bytes]:
        return [h("BF8101"), h("7F49"), h("5F20"), h("1F8181"), h("1F80808000")]

    def one(self, data: bytes) -> None:
        from cps import tlv

        items = tlv.parse(data)
        for item in items:
            again, end = tlv.parse_one(tlv.encode(item.tag, item.value))
            if again != item or end != len(tlv.encode(item.tag, item.value)):
                raise Violation(f"encode/parse round trip changed {item!r}", key="round-trip")
        self._walk(items, 0)
        if items:
            path = [items[0].tag]
            node = items[0]
            while node.constructed and len(path) < tlv.MAX_DEPTH:
                try:
                    kids = node.children()
                except CpsError:
                    break
                if not kids:
                    break
                node = kids[-1]
                path.append(node.tag)
            tlv.find(data, *path)

    def _walk(self, items, depth: int) -> None:
        for item in items:
            if item.constructed and depth < 40:
                try:
                    self._walk(item.children(depth), depth + 1)
                    item.to_dict()
                except CpsError:
                    pass


class Atr(Harness):
    name = "atr"
    targets = ("cps.atr.identify", "cps.atr.card_kind", "cps.atr.require_supported",
               "cps.cps3.Cps3Card.__init__")
    max_len = 64

    def seeds(self) -> List[bytes]:
        from cps.atr import ATR_TABLE
        from cps.emulator import layout

        return [e.pattern for e in ATR_TABLE] + [layout.ATR_CONTACT, layout.ATR_CONTACTLESS,
                                                 h("3BAC00402A00122500648000031080821200900" "0"),
                                                 layout.EF_ATR_CONTENT]

    def one(self, data: bytes) -> None:
        from cps.atr import card_kind, identify, require_supported
        from cps.cps3 import Cps3Card

        entry = identify(data)
        kind = card_kind(data)
        if (entry is None) != (kind.value == "unknown"):
            raise Violation("identify and card_kind disagree", key="atr-kind")
        require_supported(data)
        card = _ScriptedCard([b"\x90\x00"], "T0")
        card.atr = data  # type: ignore[misc]
        Cps3Card(card, owns_connection=False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- card files
class Pkcs15(Harness):
    name = "pkcs15"
    targets = ("cps.pkcs15.parse_odf", "cps.pkcs15.parse_aodf", "cps.pkcs15.parse_prkdf",
               "cps.pkcs15.parse_cdf", "cps.pkcs15.PinObject.encode",
               "cps.cps3.Cps3Card._check_code")
    max_len = 4096

    def seeds(self) -> List[bytes]:
        from cps.emulator import layout

        return [layout.odf(), layout.odf(True), layout.aodf(), layout.prkdf(),
                layout.prkdf(True), layout.cdf(), layout.cdf(True),
                layout.aodf() + layout.prkdf() + layout.cdf()]

    def dictionary(self) -> List[bytes]:
        return [h("030108"), h("0401FF"), h("800101"), h("A1"), h("3000"), h("020104"),
                h("02087FFFFFFFFFFFFFFF"), h("0A0101"), h("030204B0"), h("0101FF")]

    def one(self, data: bytes) -> None:
        from cps import pkcs15
        from cps.cps3 import Cps3Card

        for parse in (pkcs15.parse_odf, pkcs15.parse_prkdf, pkcs15.parse_cdf):
            try:
                parse(data)
            except CpsError:
                pass
        for obj in pkcs15.parse_aodf(data):
            for code in ("1234", "12345678"):
                try:
                    encoded = Cps3Card._check_code(None, obj, code, "PIN")  # type: ignore[arg-type]
                except CpsError:
                    continue
                if len(encoded) > 64:
                    raise Violation(f"a {len(code)}-digit PIN encodes to {len(encoded)} bytes",
                                    key="pin-encoding-size")


class EfSnIcc(Harness):
    name = "ef-sn-icc"
    targets = ("cps.cps3.parse_serial",)
    max_len = 512

    def seeds(self) -> List[bytes]:
        return [h("5A0A80250000010012345678F0"), h("5A0A8025000001001234567803"),
                h("5A098025000001123456789F"), h("5A0C80250000012023119800000000")]

    def one(self, data: bytes) -> None:
        from cps.cps3 import luhn_ok, parse_serial

        number = parse_serial(data)
        if not number.isdigit() or len(number) < 2:
            raise Violation(f"accepted card number {number!r}", key="serial")
        pan = data.hex().upper()
        if "8025000001" + number not in pan:
            raise Violation(f"card number {number!r} is not in the PAN {pan}", key="serial")
        luhn_ok(number)


class Docp(Harness):
    name = "docp"
    targets = ("cps.cps3._docp_counters",)
    max_len = 512

    def seeds(self) -> List[bytes]:
        return [h("7016BF810112A0109A01039B0103A1088C06F3000013FF00"),
                h("701ABF810216A0149A010A9B010A9D020064A1088C06F3FF00FFFF00"),
                h("7016BF810112A0109A01039B0100A1088C06F3000013FF00")]

    def one(self, data: bytes) -> None:
        from cps.cps3 import _docp_counters

        counters = _docp_counters(data)
        if not 0 <= counters[0x9B] <= counters[0x9A]:
            raise Violation(f"inconsistent counters accepted: {counters}", key="docp-counters")


# --------------------------------------------------------------------------- a hostile card
class CardSession(Harness):
    """A real emulated CPS3 behind a proxy that corrupts its answers as the input says.

    The input is a stream of one-byte instructions, one per APDU (then pass-through):

    ====== =====================================================================
    00-9F  pass the card's answer through
    A0-AF  replace the status word with the next two input bytes
    B0-BF  replace the whole answer with the next N input bytes (N = next byte)
    C0-CF  flip one bit of the answer (position from the next byte)
    D0-D7  cut the answer to N bytes (N = next byte)
    D8-DF  answer ``61 xx`` without executing (xx = next byte)
    E0-E7  answer ``6C xx`` without executing
    E8-EF  the card resets before executing (security state lost)
    F0-F7  transport failure: card removed / mute / reset (typed ReaderError)
    F8-FF  the card's counters lie: set CHV tries left to the next byte (0-15)
    ====== =====================================================================

    Invariants: whatever the card answers, one ``verify_pin`` sends the PIN at
    most once, ``change_pin`` one CHANGE REFERENCE DATA and no VERIFY with
    data, ``unblock_pin`` one VERIFY (unblock code) and one RESET RETRY
    COUNTER; an operation uses a bounded number of APDUs; every read stays
    below the file-size cap.
    """

    name = "card-session"
    targets = ("cps.cps3.Cps3Card", "cps.apdu.ApduChannel", "cps.pkcs15", "cps.tlv",
               "cps.cps3.parse_serial", "cps.cps3._docp_counters")
    max_len = 512
    time_limit = 2.0
    memory_factor = 200
    memory_base = 4 << 20
    MAX_APDUS = 20000

    def setup(self, ctx: Context) -> None:
        from cps.emulator.card import EmulatedCard

        self._pki = ctx.pki
        self._factory = lambda: EmulatedCard.from_profile("cps3-medecin", pki=ctx.pki)
        self._template = self._factory()
        self.pin, self.puk = self._template.pin, self._template.puk

    def seeds(self) -> List[bytes]:
        return [b"", b"\x00" * 40, b"\x00" * 12 + b"\xf8\x01", b"\x00" * 30 + b"\xe0\x10",
                b"\x00" * 5 + b"\xa0\x63\xc1" + b"\x00" * 20, b"\x00" * 3 + b"\xb0\x02\x6c\x00",
                b"\x00" * 20 + b"\xe8" + b"\x00" * 10 + b"\xf0",
                b"\x00" * 8 + b"\xd8\x10" + b"\x00" * 30]

    def one(self, data: bytes) -> str:
        from cps.card import KeyRole
        from cps.cps3 import Cps3Card

        emu = self._factory()
        proxy = _HostileProxy(emu, data)
        card = Cps3Card(proxy, owns_connection=False)  # type: ignore[arg-type]
        results: List[str] = []

        def op(name: str, fn, limits: Dict[str, int] = {}) -> None:  # noqa: B006
            proxy.begin(name)
            try:
                fn()
                results.append("ok")
            except CpsError as exc:
                results.append(type(exc).__name__)
            finally:
                proxy.end(limits)

        op("card_number", lambda: card.card_number)
        op("pin_status", card.pin_status)
        op("certificate", lambda: card.certificate_der(KeyRole.AUTH))
        op("key_objects", card.key_objects)
        op("verify_pin", lambda: card.verify_pin(self.pin), {"verify_data": 1, "rrc": 0,
                                                              "change": 0})
        op("sign", lambda: card.sign(b"document"))
        op("authenticate", lambda: card.authenticate(b"challenge", hash="sha256"))
        op("verify_pin_wrong", lambda: card.verify_pin("0000"), {"verify_data": 1, "rrc": 0,
                                                                 "change": 0})
        op("change_pin", lambda: card.change_pin(self.pin, "2468"), {"verify_data": 0,
                                                                    "rrc": 0, "change": 1})
        op("unblock_pin", lambda: card.unblock_pin(self.puk, "1357"), {"verify_data": 1,
                                                                      "rrc": 1, "change": 0})
        op("pin_status_again", card.pin_status, {"verify_data": 0, "rrc": 0, "change": 0})
        return ",".join(results)


class _HostileProxy:
    """Connection to an emulated card, corrupting answers as the instruction stream says."""

    protocol = "T0"
    reader = "fuzz-hostile"

    def __init__(self, emu, stream: bytes) -> None:
        self.emu = emu
        self.stream = stream
        self.pos = 0
        self.counts: Dict[str, int] = {}
        self.operation = ""
        self.apdus = 0
        emu.power_up()

    @property
    def atr(self) -> bytes:
        return self.emu.atr

    def transaction(self):
        import contextlib

        return contextlib.nullcontext()

    def close(self) -> None:
        pass

    def begin(self, name: str) -> None:
        self.operation = name
        self.counts = {"verify_data": 0, "rrc": 0, "change": 0}
        self.apdus = 0

    def end(self, limits: Dict[str, int]) -> None:
        for key, limit in limits.items():
            if self.counts[key] > limit:
                raise Violation(f"{self.operation}: {self.counts[key]} {key} commands sent "
                                f"(at most {limit} allowed): a PIN try the user did not ask for",
                                key="secret-command-repeated")

    def _byte(self) -> int:
        if self.pos >= len(self.stream):
            return 0
        b = self.stream[self.pos]
        self.pos += 1
        return b

    def send_and_receive(self, apdu: bytes):
        from cps.connection import split_response
        from cps.emulator.faults import CardMuted

        self.apdus += 1
        if self.apdus > CardSession.MAX_APDUS:
            raise Violation(f"{self.operation}: more than {CardSession.MAX_APDUS} APDUs",
                            key="unbounded-exchange")
        ins = apdu[1] if len(apdu) > 1 else -1
        has_data = len(apdu) > 5
        if ins == 0x20 and has_data:
            self.counts["verify_data"] += 1
        elif ins == 0x2C:
            self.counts["rrc"] += 1
        elif ins == 0x24:
            self.counts["change"] += 1
        op = self._byte()
        if 0xD8 <= op <= 0xDF:
            return split_response(b"\x61" + bytes((self._byte(),)))
        if 0xE0 <= op <= 0xE7:
            return split_response(b"\x6C" + bytes((self._byte(),)))
        if 0xE8 <= op <= 0xEF:
            self.emu.reset()
        if 0xF0 <= op <= 0xF7:
            kind = op & 3
            if kind == 0:
                raise errors.CardRemoved("fuzz: card removed", reader=self.reader)
            if kind == 1:
                raise errors.ReaderTimeout("fuzz: mute card", reader=self.reader)
            if kind == 2:
                self.emu.reset()
                raise errors.CardReset("fuzz: card reset", reader=self.reader)
            raise errors.ReaderError("fuzz: transmission failed", reader=self.reader)
        if op >= 0xF8:
            tries = self._byte() & 0x0F
            for chv in self.emu.os.chvs.values():
                chv.tries_left = min(tries, 15)
        try:
            raw = self.emu.os.execute(bytes(apdu))
        except CardMuted:  # pragma: no cover - no mute fault here
            raise errors.ReaderTimeout("mute", reader=self.reader) from None
        if 0xA0 <= op <= 0xAF:
            raw = raw[:-2] + bytes((self._byte(), self._byte()))
        elif 0xB0 <= op <= 0xBF:
            n = self._byte()
            raw = bytes(self.stream[self.pos:self.pos + n])
            self.pos += n
        elif 0xC0 <= op <= 0xCF and raw:
            k = self._byte() % (len(raw) * 8)
            raw = bytearray(raw)
            raw[k // 8] ^= 1 << (k % 8)
            raw = bytes(raw)
        elif 0xD0 <= op <= 0xD7:
            raw = raw[:self._byte() % (len(raw) + 1)]
        return split_response(raw)


# --------------------------------------------------------------------------- certificates
def _der(cert) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def _card_certificates(ctx: Context) -> List[bytes]:
    out = []
    for profile in ("cps3-medecin", "cps3-pharmacien", "cps3-cpe", "cps3-adeli",
                    "cps3-contactless"):
        creds = ctx.pki.issue_card(profile)
        out += [_der(creds.auth_cert), _der(creds.sign_cert)]
        if creds.tech_cert is not None:
            out.append(_der(creds.tech_cert))
    out += [_der(c) for c in ctx.pki.intermediates.values()][:2]
    out += [_der(c) for c in ctx.pki.roots.values()][:1]
    return out


def _igc_sante_certificates() -> List[bytes]:
    from importlib import resources

    folder = resources.files("cps") / "igc-sante"
    return [p.read_bytes() for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".der")][:3]


class CertificateIdentity(Harness):
    name = "certificate-identity"
    targets = ("cps.identity.Practitioner.from_certificate", "cps.identity.Practitioner.to_dict")
    max_len = 8192

    def setup(self, ctx: Context) -> None:
        self._seeds = _card_certificates(ctx)

    def seeds(self) -> List[bytes]:
        pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(self._seeds[0]) + \
            b"-----END CERTIFICATE-----\n"
        return self._seeds + [pem]

    def one(self, data: bytes) -> None:
        from cps.identity import Practitioner

        source = data.decode("latin-1") if data[:5] == b"-----" else data
        who = Practitioner.from_certificate(source)
        json.dumps(who.to_dict(), default=str)
        repr(who)


def _certificate_summary(der: bytes) -> None:
    """What `cps card info` / `cps certs list` show of a card's certificate (cps_cli.view)."""
    try:
        from cps_cli.view import certificate_summary
    except ImportError:  # pragma: no cover - the CLI package not there
        return
    json.dumps(certificate_summary(der))


class X509FastParser(Harness):
    name = "x509-fast-parser"
    targets = ("cps.trust.certs.parse_cert", "cps.trust.certs.ParsedCert.*",
               "cps.trust.certs.names_match", "cps.trust.certs.name_str",
               "cps_cli.view.certificate_summary", "cps.trust.validate._certificates_in")
    max_len = 8192

    def setup(self, ctx: Context) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

        self._seeds = _card_certificates(ctx) + _igc_sante_certificates()
        pair = [x509.load_der_x509_certificate(d) for d in self._seeds[:2]]
        # what a caIssuers URL may serve besides DER: a PKCS#7 bundle, PEM
        self._seeds += [pkcs7.serialize_certificates(pair, Encoding.DER),
                        b"".join(c.public_bytes(Encoding.PEM) for c in pair)]

    def seeds(self) -> List[bytes]:
        return self._seeds

    def one(self, data: bytes) -> None:
        from cps.trust import certs
        from cps.trust.validate import _certificates_in

        _certificates_in(data)  # the same bytes as a caIssuers answer: never raises
        parsed = certs.parse_cert(data)
        for accessor in (parsed.key_usage, parsed.basic_constraints, parsed.ext_key_usage,
                         parsed.policies, parsed.policy_mappings, parsed.policy_constraints,
                         parsed.inhibit_any_policy, lambda: parsed.ski, lambda: parsed.aki,
                         parsed.distribution_points,
                         lambda: parsed.distribution_points(certs.OID.FRESHEST_CRL),
                         lambda: [dp.urls for dp in parsed.distribution_points()],
                         lambda: parsed.access_urls(certs.OID.AD_OCSP),
                         lambda: parsed.access_urls(certs.OID.AD_CA_ISSUERS),
                         parsed.critical_unknown, parsed.subject_str, parsed.public_key,
                         lambda: parsed.self_issued, lambda: parsed.fingerprint,
                         lambda: certs.time_from_key(parsed.not_before),
                         lambda: certs.name_is_empty(parsed.subject),
                         lambda: certs.general_names_match(certs.directory_name(parsed.subject),
                                                           certs.directory_name(parsed.issuer)),
                         lambda: _certificate_summary(data)):
            try:
                accessor()
            except CpsError:
                pass


class CertValidation(Harness):
    """Validator.validate on hostile leaves (the test hierarchy as trust store, CRLs loaded)."""

    name = "cert-validation"
    targets = ("cps.trust.validate.Validator.validate", "cps.trust.policy", "cps.trust.names")
    max_len = 8192

    def setup(self, ctx: Context) -> None:
        from cps.trust.anchors import TrustStore
        from cps.trust.validate import Validator

        pki = ctx.pki
        self._at = pki.reference_time + dt.timedelta(days=10)
        store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
        crls = [pki.crl(name, at=self._at - dt.timedelta(hours=1)) for name in
                list(pki.roots) + list(pki.intermediates)]
        self._validator = Validator(store, crls=crls, revocation="hard-fail")
        self._soft = Validator(store, crls=crls, revocation="soft-fail")
        self._seeds = _card_certificates(ctx)[:6]
        # the known-good leaf validates before any fuzzing
        self._validator.validate(self._seeds[0], at=self._at)

    def seeds(self) -> List[bytes]:
        return self._seeds

    def one(self, data: bytes) -> None:
        from cps.card import KeyRole

        result = self._validator.validate(data, at=self._at)
        if result.revocation and result.revocation[0].status not in ("good",):
            raise Violation(f"hard-fail accepted a leaf with status {result.revocation[0].status}",
                            key="hard-fail")
        try:
            self._soft.validate(data, at=self._at, purpose=KeyRole.SIGN)
        except CpsError:
            pass


# --------------------------------------------------------------------------- revocation
class Crl(Harness):
    name = "crl"
    targets = ("cps.trust.crlindex.CrlIndex.load", "cps.trust.crlindex.CrlIndex.lookup",
               "cps.trust.crlindex.CrlIndex.iter_entries", "cps.trust.fetch.crl_update_times")
    max_len = 16384
    memory_factor = 60

    def setup(self, ctx: Context) -> None:
        pki = ctx.pki
        at = pki.reference_time + dt.timedelta(days=10)
        self._issuer = next(iter(pki.intermediates.values()))
        self._seeds = [pki.crl(name, at=at) for name in pki.intermediates][:3]
        self._seeds += [pki.crl(name, at=at, delta=True) for name in pki.intermediates][:1]
        self._seeds += [pki.crl(next(iter(pki.roots)), at=at)]

    def seeds(self) -> List[bytes]:
        return self._seeds

    def one(self, data: bytes) -> None:
        from cps.trust.crlindex import CrlIndex
        from cps.trust.fetch import crl_update_times

        this_update, next_update = crl_update_times(data)
        if this_update is not None and this_update.tzinfo is None:
            raise Violation("naive thisUpdate", key="naive-time")
        index = CrlIndex.load(data, source="fuzz")
        entries = 0
        for entry in index.iter_entries():
            entries += 1
            if index.lookup(entry.serial) is None:
                raise Violation(f"serial {entry.serial} listed but not found by lookup",
                                key="crl-lookup")
            if entries > 64:
                break
        for serial in (0, 1, -1, 2 ** 64, 2 ** 159):
            index.lookup(serial)
        len(index)
        repr(index)
        _ = index.is_delta
        try:
            _ = index.issuer
        except CpsError:
            pass
        try:
            index.verify_signature(self._issuer.public_key())
        except CpsError:
            pass


class Ocsp(Harness):
    name = "ocsp"
    targets = ("cps.trust.ocsp.validate_response",)
    max_len = 8192

    def setup(self, ctx: Context) -> None:
        from cps.trust.ocsp import build_request

        pki = ctx.pki
        self._at = pki.reference_time + dt.timedelta(days=10)
        creds = pki.issue_card("cps3-medecin")
        revoked = pki.issue_card("cps3-revoked")
        self._cert, self._issuer = creds.auth_cert, creds.chain[0]
        self._nonce = b"\x42" * 16
        self._seeds = []
        for c in (creds.auth_cert, revoked.auth_cert):
            request = build_request(c, self._issuer, nonce=self._nonce)
            self._seeds.append(pki.ocsp_response(request, at=self._at - dt.timedelta(hours=1)))
        request = build_request(creds.auth_cert, self._issuer, nonce=None)
        self._seeds.append(pki.ocsp_response(request, at=self._at - dt.timedelta(hours=1)))
        self._seeds.append(pki.ocsp_response(b"garbage"))

    def seeds(self) -> List[bytes]:
        return self._seeds

    def one(self, data: bytes) -> None:
        from cps.trust.ocsp import validate_response

        status = validate_response(data, self._cert, self._issuer, at=self._at, source="fuzz",
                                   nonce=self._nonce)
        if status.status not in ("good", "revoked", "unknown"):
            raise Violation(f"status {status.status!r}", key="ocsp-status")
        if status.status == "good" and data not in self._seeds:
            # a forged "good" would need the responder's key: any other bytes are suspect
            raise Violation("a mutated answer was accepted as good", key="forged-ocsp")


class FetchCache(Harness):
    """A corrupted cache (sidecar JSON + content): Fetcher.fetch_crl must refuse or refetch,
    never crash; the network is down (nothing listens on the URL's port)."""

    name = "fetch-cache"
    targets = ("cps.trust.fetch._DiskCache.load", "cps.trust.fetch.Fetcher.fetch_crl")
    max_len = 8192
    time_limit = 2.0

    def setup(self, ctx: Context) -> None:
        import hashlib

        from cps.trust.fetch import _CACHE_FORMAT, Fetcher

        self._dir = ctx.workdir / "fetch-cache"
        self._dir.mkdir(parents=True, exist_ok=True)
        at = ctx.pki.reference_time + dt.timedelta(days=10)
        self._url = "http://127.0.0.1:9/crl/fuzz.crl"  # discard port: nothing listens
        self._now = at
        self._fetcher = Fetcher(cache_dir=self._dir, timeout=0.5, deadline=1.0,
                                clock=lambda: self._now)
        crl = ctx.pki.crl(next(iter(ctx.pki.intermediates)), at=at - dt.timedelta(hours=2))
        meta = {"format": _CACHE_FORMAT, "url": self._url, "kind": "crl",
                "sha256": hashlib.sha256(crl).hexdigest(), "size": len(crl), "etag": '"x"',
                "last_modified": None, "fetched_at": (at - dt.timedelta(hours=1)).isoformat(),
                "this_update": (at - dt.timedelta(hours=2)).isoformat(),
                "next_update": (at + dt.timedelta(days=5)).isoformat()}
        sidecar = json.dumps(meta).encode()
        self._seeds = [len(sidecar).to_bytes(2, "big") + sidecar + crl]
        self._paths = self._fetcher.cache_paths(self._url)

    def seeds(self) -> List[bytes]:
        return self._seeds

    def dictionary(self) -> List[bytes]:
        return [b'"format": 1', b"null", b"[[[[[[[[", b"{}", b'"sha256": ', b"1e999",
                b'"\\ud800"', b"NaN", b"-0001-01-01T00:00:00+00:00"]

    def one(self, data: bytes) -> None:
        if len(data) < 2:
            return
        n = int.from_bytes(data[:2], "big")
        content_path, sidecar_path = self._paths
        sidecar_path.write_bytes(data[2:2 + n])
        content_path.write_bytes(data[2 + n:])
        try:
            result = self._fetcher.fetch_crl(self._url)
        except CpsError as exc:
            return f"{type(exc).__name__}/{getattr(exc, 'reason', '')}"
        if not result.from_cache:
            raise Violation("a download happened with nothing listening", key="no-network")
        import hashlib

        # Whatever is returned is what the sidecar vouches for, byte for byte.
        meta = json.loads(data[2:2 + n])
        if hashlib.sha256(result.der).hexdigest() != meta["sha256"]:
            raise Violation("cache returned bytes that do not match their recorded SHA-256",
                            key="cache-integrity")
        return "from-cache"


class LdapAnswer(Harness):
    """What an LDAP server sends back for the CRL search: bind response, entries, done.

    The bytes are served by ``recv_exact`` as a socket would; the answer must be
    the value of the requested attribute found in the bytes, or a typed error,
    and nothing may be allocated from a length before it is checked.
    """

    name = "ldap-answer"
    targets = ("cps.trust.ldap.read_search_answer", "cps.trust.ldap.parse_ldap_url")
    max_len = 8192
    _URL = "ldap://127.0.0.1:389/CN=TEST%20AC,O=ASIP-SANTE,C=FR?deltaRevocationList;binary" \
           "?base?objectClass=pkiCA"

    def setup(self, ctx: Context) -> None:
        from cps.trust import ldap

        pki = ctx.pki
        at = pki.reference_time + dt.timedelta(days=10)
        name = next(iter(pki.intermediates))
        crl = pki.crl(name, at=at, delta=True)

        def tlv(tag: int, value: bytes) -> bytes:
            return ldap._tlv(tag, value)  # noqa: SLF001 - the module's own encoder

        bind = tlv(0x30, h("020101") + tlv(0x61, h("0a01000400 0400".replace(" ", ""))))
        value = tlv(0x30, tlv(0x04, b"deltaRevocationList;binary") + tlv(0x31, tlv(0x04, crl)))
        entry = tlv(0x30, h("020102") + tlv(0x64, tlv(0x04, b"cn=TEST AC,o=ASIP-SANTE,c=FR")
                                          + tlv(0x30, value)))
        done = tlv(0x30, h("020102") + tlv(0x65, h("0a0100 0400 0400".replace(" ", ""))))
        self._crl = crl
        self._seeds = [bind + entry + done, bind + done,
                       bind + tlv(0x30, h("020102") + tlv(0x73, tlv(0x04, b"ldap://x/")))
                       + entry + done]
        ldap.parse_ldap_url(self._URL)

    def seeds(self) -> List[bytes]:
        return self._seeds

    def dictionary(self) -> List[bytes]:
        return [h("3084"), h("020101"), h("020102"), h("020100"), h("61"), h("64"), h("65"),
                h("73"), h("78"), h("0a0120"), b"deltaRevocationList;binary", h("3184ffffffff")]

    def one(self, data: bytes) -> str:
        from cps.trust import ldap

        position = [0]

        def recv_exact(n: int) -> bytes:
            if n > len(data) - position[0]:  # what a closed connection looks like
                raise errors.RevocationUnavailable("connection closed", source="fuzz",
                                            reason="unreachable")
            chunk = data[position[0]:position[0] + n]
            position[0] += n
            return chunk

        value = ldap.read_search_answer(recv_exact, "deltaRevocationList;binary", self._URL,
                                        max_bytes=len(self._crl) * 2)
        if value not in data:
            raise Violation("a value that is not in the server's bytes", key="invented")
        return "value"


# --------------------------------------------------------------------------- services
class AuthToken(Harness):
    name = "auth-token"
    targets = ("cps.auth.token.parse_token", "cps.auth.server.Verifier.verify")
    max_len = 20000

    def setup(self, ctx: Context) -> None:
        from cps.auth import ChallengeIssuer, MemoryNonceStore, Verifier
        from cps.auth.token import make_token, parse_token
        from cps.emulator.card import EmulatedCard
        from cps.trust.anchors import TrustStore
        from cps.trust.validate import Validator

        pki = ctx.pki
        store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
        self._issuer = ChallengeIssuer(MemoryNonceStore())
        # Every nonce is fresh to this store: mutated tokens get past the nonce check
        # to the origin, signature, purpose and chain checks.
        self._verifier = Verifier(Validator(store, revocation="off"), _FreshNonces(),
                                  allowed_origins=["https://app.example"])
        self._at = pki.reference_time + dt.timedelta(days=10)
        self._seeds = []
        import cps

        for profile in ("cps3-medecin", "cps3-contactless"):
            emu = EmulatedCard.from_profile(profile, pki=pki)
            with cps.open_card(connection=emu.connection()) as card:
                if not card.contactless:
                    card.verify_pin(emu.pin)
                nonce = self._issuer.issue().nonce
                token = make_token(card, nonce, "https://app.example")
            self._seeds.append(json.dumps(token).encode())
        self._seeds.append(b'{"format": "cps-auth-token/1"}')
        # Lone surrogates (issue 13 item 7): in every string field, as JSON escapes.
        base = json.loads(self._seeds[0])
        for field in ("nonce", "origin", "certificate", "signature", "algorithm"):
            hostile = dict(base)
            hostile[field] = base[field][:8] + "\ud800" + base[field][8:]
            self._seeds.append(json.dumps(hostile).encode())
        # The oracle for an accepted token: made with one of these cards' keys,
        # checked by cryptography alone. Not "one of this process's seeds": a
        # corpus kept from an earlier run holds tokens signed for other nonces,
        # genuine all the same (and every nonce is fresh to _FreshNonces).
        self._card_certificates = {parse_token(seed).certificate for seed in self._seeds[:2]}

    def seeds(self) -> List[bytes]:
        return self._seeds

    def dictionary(self) -> List[bytes]:
        return [b'"format"', b'"algorithm"', b'"RS256"', b'"none"', b'"certificate"',
                b'"signature"', b'"nonce"', b'"origin"', b"null", b"[", b"{", b"1e999",
                b'"\\u0000"', b"==", b"NaN", b'"\\ud800"', b'"\\udfff"']

    def one(self, data: bytes) -> str:
        from cps.auth.token import parse_token, signed_data

        try:
            parse_token(data)
        except CpsError:
            pass
        try:
            parse_token(data.decode("utf-8", "replace"))
        except CpsError:
            pass
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return "not-json"
        if isinstance(value, dict):
            try:
                parse_token(value)
            except CpsError:
                pass
        try:
            self._verifier.verify(data, origin="https://app.example", at=self._at)
        except CpsError as exc:
            return f"{type(exc).__name__}/{getattr(exc, 'reason', '')}"
        # Accepted: then a card signed this origin and nonce, whatever the JSON around it.
        token = parse_token(data)
        if token.certificate not in self._card_certificates or \
                not _card_signed(token.certificate, token.signature,
                                 signed_data(token.origin, token.nonce)):
            raise Violation("a token no card signed was accepted", key="forged-token")
        return "accepted"


def _card_signed(certificate: bytes, signature: bytes, data: bytes) -> bool:
    """The token's signature checked by cryptography alone, not by the code under test."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        x509.load_der_x509_certificate(certificate).public_key().verify(
            signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


class _FreshNonces:
    """A nonce store for which every nonce is fresh (the fuzzer forges nonces)."""

    def put(self, nonce: str, issuer: str, expires_at: float) -> None:
        pass

    def take(self, nonce: str, issuer: str, now: float):
        from cps.auth.nonces import TakeResult

        return TakeResult.OK


class Cms(Harness):
    name = "cms"
    targets = ("cps.sign.verify_cms",)
    max_len = 40000

    def setup(self, ctx: Context) -> None:
        from cps.sign import SoftwareSigner, sign_cms

        creds = ctx.pki.issue_card("cps3-medecin")
        signer = SoftwareSigner(creds.sign_key, creds.sign_cert)
        self._document = b"ordonnance: 1 boite"
        when = ctx.pki.reference_time + dt.timedelta(days=10)
        self._seeds = [sign_cms(signer, self._document, signing_time=when),
                       sign_cms(signer, self._document, signing_time=when, detached=False),
                       sign_cms(signer, self._document, signing_time=when,
                                chain=[creds.chain[0]])]
        # Issue 13 item 1: an attacker signs with his own key and embeds 31 useless
        # helper certificates sharing one subject (path building once took minutes).
        self._seeds.append(sign_cms(_attacker_signer(), self._document, signing_time=when,
                                    chain=_useless_helpers(31)))
        from cps.trust.anchors import TrustStore
        from cps.trust.validate import Validator

        self._validator = Validator(TrustStore.from_certificates(
            ctx.pki.anchors(), ctx.pki.intermediates.values()), revocation="off")

    def seeds(self) -> List[bytes]:
        return self._seeds

    def one(self, data: bytes) -> str:
        from cps.sign import verify_cms

        seen = []
        for document in (self._document, None):
            try:
                result = verify_cms(data, document)
            except CpsError as exc:
                seen.append(f"{type(exc).__name__}/{getattr(exc, 'reason', '')}")
                continue
            if result.signer is None:
                raise Violation("verified without a signer", key="cms-signer")
            seen.append("verified")
        try:  # with a validator: the embedded certificates feed path building
            verify_cms(data, self._document, self._validator)
            seen.append("validated")
        except CpsError as exc:
            seen.append(f"{type(exc).__name__}/{getattr(exc, 'reason', '')}")
        return ",".join(seen)


_ATTACKER: List[Any] = []


def _attacker_signer() -> Any:
    """A signer whose certificate names an issuer only useless helpers claim to be."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from cps.sign import SoftwareSigner

    if not _ATTACKER:
        key = rsa.generate_private_key(65537, 2048)
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "X")]))
                .public_key(key.public_key()).serial_number(7)
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.KeyUsage(True, True, False, False, False, False, False,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        _ATTACKER.extend([key, cert])
    return SoftwareSigner(_ATTACKER[0], _ATTACKER[1])


def _useless_helpers(n: int) -> List[Any]:
    """n self-issued CA certificates with one subject and no key identifiers."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    _attacker_signer()
    key, now = _ATTACKER[0], dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "X")])
    return [x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(100 + i)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()) for i in range(n)]


HARNESSES: Dict[str, type] = {cls.name: cls for cls in (
    ApduCommand, ApduResponse, Tlv, Atr, Pkcs15, EfSnIcc, Docp, CardSession,
    CertificateIdentity, X509FastParser, CertValidation, Crl, Ocsp, FetchCache, LdapAnswer,
    AuthToken, Cms)}


def names() -> List[str]:
    return list(HARNESSES)


def get(name: str, ctx: Optional[Context] = None) -> Harness:
    """A harness by name, set up (seeds built) with ``ctx``."""
    harness = HARNESSES[name]()
    harness.setup(ctx or Context())
    return harness
