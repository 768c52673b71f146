"""`cps apdu` (hidden): send raw APDUs to the card in a reader, for experts.

::

    cps apdu -r 1 --select E828BD080F8025000001FF0010 00CA010000 "00 B0 00 00 10=9000"

Each APDU is hex (spaces and colons allowed), optionally followed by
``=SW`` (e.g. ``=9000``): a different status word then stops with exit code
12. The card is not required to be a CPS card. By default the library's
APDU stack carries the commands (``61xx`` GET RESPONSE, ``6Cxx`` resend,
command chaining, T=0 case 4); ``--raw`` sends the bytes exactly as given.
The data of VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER is never
printed (nor logged), even here; an error about an argument (not hex, odd
length, malformed, bad ``=SW``) gives its position and length, never its bytes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from . import exitcodes
from .util import CliFail, emit, json_option

__all__ = ["apdu"]


def _hex(text: str, what: str) -> bytes:
    """The bytes of ``text`` (hex, spaces and colons allowed).

    An error names ``what`` and the problem, never the text: an APDU may be a
    VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER holding a PIN.
    """
    compact = "".join(text.replace(":", " ").split())
    bad = next((i for i, c in enumerate(compact) if c not in _HEX_DIGITS), None)
    if bad is not None:
        raise CliFail(f"{what} is not hexadecimal (hex digit {bad + 1} is not one; the value "
                      "is not repeated: it may hold a PIN)", exitcodes.USAGE)
    if len(compact) % 2:
        raise CliFail(f"{what} has an odd number of hex digits ({len(compact)}; the value is "
                      "not repeated: it may hold a PIN)", exitcodes.USAGE)
    return bytes.fromhex(compact)


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _parse(argument: str, number: int) -> Tuple[bytes, Optional[int]]:
    """``"00 A4 04 00 02 3F 00=9000"`` -> (command bytes, expected SW or None)."""
    body, _, expected = argument.partition("=")
    raw = _hex(body, f"APDU {number}")
    sw = None
    if expected:
        sw_bytes = _hex(expected, f"the expected status word of APDU {number}")
        if len(sw_bytes) != 2:
            raise CliFail(f"the expected status word of APDU {number} must have 2 bytes, "
                          f"not {len(sw_bytes)} (the value is not repeated: it may hold a PIN)",
                          exitcodes.USAGE)
        sw = int.from_bytes(sw_bytes, "big")
    return raw, sw


@click.command(hidden=True)
@click.argument("apdus", nargs=-1, required=True, metavar="APDU[=SW]...")
@click.option("-r", "--reader", metavar="READER",
              help="Reader index, name substring or ATR (default: the first reader holding "
                   "a CPS card, else any card).")
@click.option("-s", "--select", "select_aid", metavar="AID",
              help="SELECT this application (by name) first; a refusal is an error.")
@click.option("--raw", is_flag=True,
              help="Send the bytes as given: no GET RESPONSE, no 6Cxx resend, no chaining.")
@json_option
def apdu(apdus: Sequence[str], reader: Optional[str], select_aid: Optional[str], raw: bool,
         as_json: bool) -> None:
    """send raw APDUs and print the answers (experts only)"""
    import cps
    from cps import errors
    from cps.apdu import ApduChannel, parse_command
    from cps.logs import format_command
    from cps.pcsc import PcscConnection
    from cps.readers import select_reader
    from cps.sw import describe

    commands = [_parse(a, n) for n, a in enumerate(apdus, 1)]
    if select_aid:
        aid = _hex(select_aid, "--select AID")
        if not 1 <= len(aid) <= 16:
            raise CliFail("an AID has 1 to 16 bytes", exitcodes.USAGE)
        commands.insert(0, (bytes((0x00, 0xA4, 0x04, 0x0C, len(aid))) + aid, 0x9000))
    parsed = []
    for number, (command, expected) in enumerate(commands, 0 if select_aid else 1):
        try:
            parsed.append((command, parse_command(command), expected))
        except errors.CardProtocolError as exc:
            # Not a byte of it: a malformed APDU has no reliable INS, and its body
            # may be a PIN (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER).
            # The library's message gives lengths only.
            raise CliFail(f"malformed APDU {number} ({len(command)} bytes, not repeated: it "
                          f"may hold a PIN): {exc}", exitcodes.USAGE) from None

    info = select_reader(cps.list_readers(), reader)
    if not info.card_present:
        raise errors.NoCard(f"no card in {info.name}", reader=info.name)
    exchanges: List[Dict[str, Any]] = []
    failure: Optional[errors.CardError] = None
    with PcscConnection(info.name) as connection:
        channel = ApduChannel(connection)
        if not as_json:
            click.echo(f"Reader: {info.name}, ATR {connection.atr.hex(' ').upper()}")
        with connection.transaction():
            for command, parsed_command, expected in parsed:
                if raw:
                    data, sw = _send_raw(connection, command)
                else:
                    response = channel.transmit(parsed_command)
                    data, sw = response.data, response.sw
                sent = format_command(command)
                exchanges.append({"command": sent, "response": data.hex().upper(),
                                  "sw": f"{sw:04X}", "sw_text": describe(sw),
                                  "expected_sw": f"{expected:04X}" if expected is not None
                                  else None})
                if not as_json:
                    click.echo(f"SEND: {sent}")
                    shown = data.hex(" ").upper()
                    click.echo(f"RECV: {shown + '  ' if shown else ''}(SW={describe(sw)})")
                if expected is not None and sw != expected:
                    failure = errors.CardError(f"expected SW {expected:04X}, got "
                                               f"{describe(sw)}", sw=sw, data=data)
                    break
    if as_json:
        emit({"reader": info.name, "atr": info.atr.hex().upper(), "exchanges": exchanges},
             True, "")
    if failure is not None:
        raise failure


def _send_raw(connection: Any, command: bytes) -> Tuple[bytes, int]:
    """The bytes exactly as given, logged at TRAFFIC like the APDU stack does (redacted)."""
    import logging

    from cps.logs import TRAFFIC, format_command, format_response

    log = logging.getLogger("cps.traffic")
    log.log(TRAFFIC, "> %s", format_command(command))
    data, sw = connection.send_and_receive(command)
    log.log(TRAFFIC, "< %s", format_response(data, sw))
    return data, sw
