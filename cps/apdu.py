"""Command APDUs and the processor stack that carries them to the card.

Each processor does one job and hands the command to the next one down::

    ApduChannel.transmit
      └─ CommandChaining      data over 255 bytes -> several commands, CLA | 0x10
         └─ ResponseChaining  61xx -> GET RESPONSE with Le = SW2, bounded
            └─ WrongLength    6Cxx -> same command again with Le = SW2, bounded
               └─ T0Case4     on T=0, case-4 commands go without Le
                  └─ Transmitter  encode (short/extended), log at TRAFFIC, Connection

Every loop is bounded: a card answering ``61xx`` or ``6Cxx`` forever raises
:class:`~cps.errors.CardProtocolError` instead of hanging.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field, replace
from typing import ContextManager, Optional

from .connection import Connection
from .errors import CardProtocolError, NotSupported
from .logs import SECRET_INS, TRAFFIC, format_command, format_response
from .sw import SW_OK, error_for_sw

__all__ = [
    "CommandApdu", "Response", "encode", "encode_short", "encode_extended", "parse_command",
    "ApduProcessor", "Transmitter", "T0Case4", "WrongLength", "ResponseChaining",
    "CommandChaining", "ApduChannel", "INS_GET_RESPONSE",
]

INS_GET_RESPONSE = 0xC0
_traffic = logging.getLogger("cps.traffic")


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU.

    :ivar ne: the expected response length, 1..65536 (256 is encoded ``00`` in
        short form), or ``None`` for no Le field.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = field(default=b"", repr=False)
    ne: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise CardProtocolError(f"{name} out of range: {value!r}")
        if len(self.data) > 0xFFFF:
            raise CardProtocolError(f"command data too long: {len(self.data)} bytes")
        if self.ne is not None and not 1 <= self.ne <= 0x10000:
            raise CardProtocolError(f"Ne out of range: {self.ne!r}")

    def __repr__(self) -> str:
        # The data of VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER is a
        # PIN or unblock code: show only its length, for every INS, so a repr
        # in a traceback never carries a secret.
        data = f"<{len(self.data)} bytes>" if self.ins in SECRET_INS else self.data.hex()
        return (f"CommandApdu(cla=0x{self.cla:02X}, ins=0x{self.ins:02X}, p1=0x{self.p1:02X}, "
                f"p2=0x{self.p2:02X}, data={data}, ne={self.ne})")

    @property
    def is_extended(self) -> bool:
        """True when the command needs extended-length encoding."""
        return len(self.data) > 0xFF or (self.ne is not None and self.ne > 0x100)


@dataclass(frozen=True)
class Response:
    """A response APDU: data and status word."""

    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF


def encode_short(apdu: CommandApdu) -> bytes:
    """Encode in short form (Lc <= 255, Ne <= 256)."""
    if apdu.is_extended:
        raise NotSupported("command needs extended length, which this connection does not use")
    out = bytearray((apdu.cla, apdu.ins, apdu.p1, apdu.p2))
    if apdu.data:
        out.append(len(apdu.data))
        out += apdu.data
    if apdu.ne is not None:
        out.append(apdu.ne & 0xFF)  # 256 -> 00
    return bytes(out)


def encode_extended(apdu: CommandApdu) -> bytes:
    """Encode in extended form (Lc <= 65535, Ne <= 65536)."""
    out = bytearray((apdu.cla, apdu.ins, apdu.p1, apdu.p2))
    if apdu.data:
        out += b"\x00" + len(apdu.data).to_bytes(2, "big") + apdu.data
    if apdu.ne is not None:
        if not apdu.data:
            out.append(0)
        out += (apdu.ne & 0xFFFF).to_bytes(2, "big")  # 65536 -> 0000
    return bytes(out)


def encode(apdu: CommandApdu, extended: bool = False) -> bytes:
    """Encode short when possible; extended only when allowed and needed."""
    if extended and apdu.is_extended:
        return encode_extended(apdu)
    return encode_short(apdu)


def parse_command(raw: bytes) -> CommandApdu:
    """Decode a command APDU in short or extended form (ISO 7816-3 12.1).

    Used by the emulator, which receives raw bytes from the reader.

    :raises CardProtocolError: the bytes are not a well-formed APDU.
    """
    n = len(raw)
    if n < 4:
        raise CardProtocolError(f"command APDU too short ({n} bytes)")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    if n == 4:
        return CommandApdu(cla, ins, p1, p2)
    if n == 5:
        return CommandApdu(cla, ins, p1, p2, ne=raw[4] or 256)
    if raw[4] != 0:  # short Lc
        lc = raw[4]
        if n == 5 + lc:
            return CommandApdu(cla, ins, p1, p2, bytes(raw[5:]))
        if n == 6 + lc:
            return CommandApdu(cla, ins, p1, p2, bytes(raw[5:-1]), ne=raw[-1] or 256)
        raise CardProtocolError(f"Lc={lc} inconsistent with a {n}-byte command")
    if n == 7:
        return CommandApdu(cla, ins, p1, p2, ne=int.from_bytes(raw[5:7], "big") or 0x10000)
    lc = int.from_bytes(raw[5:7], "big")
    if lc == 0:
        raise CardProtocolError("extended Lc of zero")
    if n == 7 + lc:
        return CommandApdu(cla, ins, p1, p2, bytes(raw[7:]))
    if n == 9 + lc:
        return CommandApdu(cla, ins, p1, p2, bytes(raw[7:-2]),
                           ne=int.from_bytes(raw[-2:], "big") or 0x10000)
    raise CardProtocolError(f"extended Lc={lc} inconsistent with a {n}-byte command")


# --------------------------------------------------------------------------- processors
class ApduProcessor(abc.ABC):
    """One layer of the stack: takes a command, returns the card's response."""

    @abc.abstractmethod
    def send(self, apdu: CommandApdu) -> Response:
        """Carry ``apdu`` down the stack and return the response."""


class Transmitter(ApduProcessor):
    """The bottom of the stack: encodes, logs at TRAFFIC, calls the connection."""

    def __init__(self, connection: Connection, extended: bool = False) -> None:
        self.connection = connection
        self.extended = extended

    def send(self, apdu: CommandApdu) -> Response:
        raw = encode(apdu, self.extended)
        if _traffic.isEnabledFor(TRAFFIC):
            _traffic.log(TRAFFIC, "> %s", format_command(raw))
        data, sw = self.connection.send_and_receive(raw)
        if _traffic.isEnabledFor(TRAFFIC):
            _traffic.log(TRAFFIC, "< %s", format_response(data, sw))
        return Response(data, sw)


class _Layer(ApduProcessor):
    def __init__(self, delegate: ApduProcessor) -> None:
        self.delegate = delegate


class T0Case4(_Layer):
    """T=0 cannot carry Le in a case-4 command: send it as case 3.

    The card then answers ``61xx`` (or ``9000`` with no data), and
    :class:`ResponseChaining` fetches the data with GET RESPONSE.
    """

    def send(self, apdu: CommandApdu) -> Response:
        if apdu.data and apdu.ne is not None:
            apdu = replace(apdu, ne=None)
        return self.delegate.send(apdu)


class WrongLength(_Layer):
    """``6Cxx``: the card wants Le = xx. Resend with it, at most ``max_retries`` times."""

    def __init__(self, delegate: ApduProcessor, max_retries: int = 2) -> None:
        super().__init__(delegate)
        self.max_retries = max_retries

    def send(self, apdu: CommandApdu) -> Response:
        response = self.delegate.send(apdu)
        if apdu.data or apdu.ins in SECRET_INS:
            # 6Cxx corrects Le, which only a command without data (case 2) has.
            # Never resend anything else: a VERIFY sent again is a PIN try spent.
            return response
        for _ in range(self.max_retries):
            if response.sw1 != 0x6C:
                return response
            apdu = replace(apdu, ne=response.sw2 or 256)
            response = self.delegate.send(apdu)
        if response.sw1 == 0x6C:
            raise CardProtocolError(
                f"card keeps answering 6Cxx after {self.max_retries} corrected resends")
        return response


class ResponseChaining(_Layer):
    """``61xx``: fetch the rest with GET RESPONSE, Le = SW2 (``00`` = 256).

    :param max_rounds: GET RESPONSE commands allowed for one command.
    :param max_bytes: response bytes allowed for one command.
    :param max_le: the largest Le asked in one GET RESPONSE: a card announcing
        more (``61 00``) gives the rest in further rounds. The ANS Cryptolib reads
        a CPS3 0xE7 bytes at a time (a real trace: ``61 00``, then GET RESPONSE
        ``E7`` and ``19``), and no trace shows a CPS3 answering a larger Le.
    """

    def __init__(self, delegate: ApduProcessor, ins: int = INS_GET_RESPONSE,
                 max_rounds: int = 256, max_bytes: int = 0x10000 + 256,
                 max_le: int = 256) -> None:
        super().__init__(delegate)
        self.ins = ins
        self.max_rounds = max_rounds
        self.max_bytes = max_bytes
        self.max_le = max_le

    def send(self, apdu: CommandApdu) -> Response:
        response = self.delegate.send(apdu)
        if response.sw1 != 0x61:
            return response
        chunks = [response.data]
        total = len(response.data)
        # GET RESPONSE keeps the command's class (00, or A0 on the CPS2ter side)
        # without the chaining bit.
        cla = apdu.cla & 0xEF
        for _ in range(self.max_rounds):
            response = self.delegate.send(
                CommandApdu(cla, self.ins, 0, 0, ne=min(response.sw2 or 256, self.max_le)))
            if not response.data and response.sw1 == 0x61:
                # A GET RESPONSE that gives nothing but asks to be called again
                # would make one command cost hundreds of APDUs: a broken card.
                raise CardProtocolError("GET RESPONSE returned no data but announced more")
            chunks.append(response.data)
            total += len(response.data)
            if total > self.max_bytes:
                raise CardProtocolError(
                    f"response longer than {self.max_bytes} bytes: refusing to read more")
            if response.sw1 != 0x61:
                return Response(b"".join(chunks), response.sw)
        raise CardProtocolError(
            f"card still answers 61xx after {self.max_rounds} GET RESPONSE commands")


class CommandChaining(_Layer):
    """Data longer than ``max_chunk`` goes as a chain: every part but the last has CLA | 0x10."""

    def __init__(self, delegate: ApduProcessor, max_chunk: int = 0xFF) -> None:
        super().__init__(delegate)
        self.max_chunk = max_chunk

    def send(self, apdu: CommandApdu) -> Response:
        if len(apdu.data) <= self.max_chunk:
            return self.delegate.send(apdu)
        data = apdu.data
        offset = 0
        while len(data) - offset > self.max_chunk:
            part = data[offset:offset + self.max_chunk]
            response = self.delegate.send(replace(apdu, cla=apdu.cla | 0x10, data=part, ne=None))
            if not response.ok:
                return response  # the card refused the chain: stop at once
            offset += self.max_chunk
        return self.delegate.send(replace(apdu, data=data[offset:]))


class ApduChannel:
    """The assembled stack over a connection, with an error-raising ``send``.

    :param connection: the card link.
    :param extended: use extended-length encoding when a command needs it
        (CPS3 does not support it; command chaining is used instead).
    :param max_response_length: the largest Le of a GET RESPONSE (see
        :class:`ResponseChaining`); callers cap their own reads to the same.
    :param follow_wrong_length: resend a case-2 command answered ``6Cxx`` with the
        Le the card names (:class:`WrongLength`). ``False`` for a card session that
        knows its lengths beforehand: a ``6Cxx`` is then the card's error, and no
        command asks more than the caller did.
    """

    def __init__(self, connection: Connection, *, extended: bool = False,
                 max_response_rounds: int = 256, max_response_length: int = 256,
                 follow_wrong_length: bool = True) -> None:
        self.connection = connection
        bottom: ApduProcessor = Transmitter(connection, extended=extended)
        if connection.protocol == "T0":
            bottom = T0Case4(bottom)
        self._bottom = bottom
        stack: ApduProcessor = WrongLength(bottom) if follow_wrong_length else bottom
        self.max_response_length = max_response_length
        stack = ResponseChaining(stack, max_rounds=max_response_rounds,
                                 max_le=max_response_length)
        if not extended:
            stack = CommandChaining(stack)
        self._stack = stack

    def transmit(self, apdu: CommandApdu) -> Response:
        """Send a command through the stack; return the response whatever its SW."""
        return self._stack.send(apdu)

    def transmit_once(self, apdu: CommandApdu) -> Response:
        """Send one command and return the card's own answer: no GET RESPONSE,
        no resend, no chaining (for PIN commands, whose verdict is their status
        word and which must reach the card exactly once)."""
        return self._bottom.send(apdu)

    def send(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"",
             ne: Optional[int] = None, context: str = "") -> bytes:
        """Send a command; return its data, or raise the SW table's error unless SW is 9000."""
        response = self.transmit(CommandApdu(cla, ins, p1, p2, data, ne))
        if response.sw != SW_OK:
            raise error_for_sw(response.sw, response.data, context)
        return response.data

    def transaction(self) -> ContextManager[None]:
        """The connection's transaction: hold the card across several commands."""
        return self.connection.transaction()
