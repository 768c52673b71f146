"""No PIN or PUK in any log, error text, repr or output -- at TRAFFIC level, CLI included.

The codes are distinctive (PIN 7391, PUK 58204613, new PIN 6047, wrong codes
8152, 2950, 31415926, malformed 739105), so that finding one by chance in a
hex dump is out of the question. Every PIN path runs: in process, through
pcscd, through PKCS#11 (SoftHSM2), and the ``cps`` command in subprocesses
with ``CPS_DEBUG=traffic`` and ``-l traffic``: status, verify (right, wrong,
malformed), change, unblock (right and wrong unblock code), the last-try
refusal, signature, authentication, and ``cps apdu`` given a raw VERIFY.
Everything captured -- every log record of every logger, the formatted
TRAFFIC stream, stdout/stderr, exception messages, reprs and args (with their
causes) -- is searched for each code as text, as ASCII hex (any spacing,
any case), as F-padded BCD and as base64.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import subprocess
import sys
from typing import List

import pytest
from reliability_helpers import open_when_ready, vpcd_port, wait_reader_free

import cps
from cps import errors
from cps.card import LastTryRefused
from cps.logs import TRAFFIC

PIN, PUK, NEW_PIN = "7391", "58204613", "6047"
WRONG_PIN, LAST_TRY_PIN, WRONG_PUK, MALFORMED = "8152", "2950", "31415926", "739105"
SECRETS = (PIN, PUK, NEW_PIN, WRONG_PIN, LAST_TRY_PIN, WRONG_PUK, MALFORMED)


def _patterns(code: str) -> List[re.Pattern]:
    sep = r"[\s:.-]?"
    ascii_hex = sep.join(f"{b:02x}" for b in code.encode())
    bcd = code + "f" * (len(code) % 2)
    bcd_hex = sep.join(bcd[i:i + 2] for i in range(0, len(bcd), 2))
    out = [
        # the digits, not inside a longer hex or decimal run
        re.compile(rf"(?<![0-9a-f]){code}(?![0-9a-f])", re.I),
        re.compile(ascii_hex, re.I),                         # ASCII, as a hex dump
        re.compile(re.escape(base64.b64encode(code.encode()).decode().rstrip("="))),
    ]
    if len(code) >= 8:
        out.append(re.compile(bcd_hex, re.I))                # packed BCD
    else:
        out.append(re.compile(bcd_hex + sep + "ff", re.I))  # BCD, F-padded
    return out


def assert_no_secret(text: str, where: str) -> None:
    for code in SECRETS:
        for pattern in _patterns(code):
            found = pattern.search(text)
            if found is not None:
                context = text[max(0, found.start() - 80):found.end() + 80]
                raise AssertionError(f"{where}: a code ({len(code)} digits) appears as "
                                     f"{pattern.pattern!r}: ...{context}...")


@pytest.mark.parametrize("text", [
    f"pin={PIN}", "37 33 39 31", "37333931ffffffff", "37:33:39:31", "NzM5MQ==", "7391FFFF",
    "73 91 FF FF", f"puk {PUK}", "3538323034363133", "58 20 46 13", "NTgyMDQ2MTM=",
])
def test_the_detector_finds_every_form(text):
    with pytest.raises(AssertionError):
        assert_no_secret(text, "self-test")


def test_the_detector_ignores_chance_hex():
    assert_no_secret("A4 73 91 0C 07391A 7391F0 0a7391 port 37391", "innocent hex")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
        if record.exc_info and record.exc_info[1] is not None:
            self.lines.append(_exception_text(record.exc_info[1]))


def _exception_text(exc: BaseException) -> str:
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [type(exc).__name__, str(exc), repr(exc), repr(exc.args),
                  repr({k: v for k, v in vars(exc).items() if not k.startswith("__")})]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


class Captured(list):
    """Texts to search (exception texts, reprs); ``apdus``: expect PIN APDUs in the log."""

    apdus = True


@pytest.fixture
def captured():
    """Every record of every logger at every level, and the TRAFFIC stream of cps.logs."""
    root = logging.getLogger()
    handler = _Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(1)
    stream = io.StringIO()
    from cps.logs import enable

    traffic = enable(TRAFFIC, stream=stream)
    texts = Captured()
    try:
        yield texts
    finally:
        logging.getLogger("cps").removeHandler(traffic)
        root.removeHandler(handler)
        root.setLevel(old_level)
    everything = "\n".join(handler.lines) + "\n" + stream.getvalue() + "\n" + "\n".join(texts)
    if texts.apdus:
        assert "redacted" in stream.getvalue()        # PIN commands were logged, redacted
        assert "> 00 20 00 01" in stream.getvalue()     # and TRAFFIC was really on
    assert_no_secret(everything, "library logs, errors and reprs")


def _pin_paths(card, emu, texts: List[str], unblock: bool = True) -> None:
    """Every PIN path of the Card API; errors and reprs go into ``texts``."""
    def attempt(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.CpsError as exc:
            texts.append(_exception_text(exc))
            return exc

    texts.append(repr(card))
    texts.append(repr(card.pin_status()))
    card.verify_pin(PIN)
    assert isinstance(attempt(card.verify_pin, WRONG_PIN), errors.WrongPin)
    assert isinstance(attempt(card.verify_pin, MALFORMED), errors.PinError)
    assert isinstance(attempt(card.verify_pin, "73a1"), errors.PinError)
    card.change_pin(PIN, NEW_PIN)
    card.verify_pin(NEW_PIN)
    card.change_pin(NEW_PIN, PIN)
    card.verify_pin(PIN)
    texts.append(repr(card.sign(b"ordonnance")))
    texts.append(repr(card.authenticate(b"challenge", hash="sha256")))
    if unblock:
        assert isinstance(attempt(card.verify_pin, WRONG_PIN), errors.WrongPin)   # 2 left
        assert isinstance(attempt(card.verify_pin, WRONG_PIN), errors.WrongPin)   # 1 left
        assert isinstance(attempt(card.verify_pin, LAST_TRY_PIN), LastTryRefused)
        assert isinstance(attempt(card.unblock_pin, WRONG_PUK, NEW_PIN), errors.WrongPin)
        card.unblock_pin(PUK, PIN)
        card.verify_pin(PIN)
    texts.append(repr(card.pin_status()))
    texts.append(repr(getattr(card, "pin_objects", lambda: [])()))


def test_library_in_process(captured, cps_card_factory):
    from cps.auth.token import make_token
    from cps.sign import sign_cms

    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    captured.append(repr(emu))
    with cps.open_card(connection=emu.connection()) as card:
        _pin_paths(card, emu, captured)
        captured.append(repr(sign_cms(card, b"ordonnance")))
        captured.append(repr(make_token(card, "nonce-1", "https://app.example")))
    from cps.apdu import CommandApdu

    captured.append(repr(CommandApdu(0, 0x20, 0, 1, PIN.encode() + b"\xff" * 4)))
    captured.append(repr(CommandApdu(0, 0x2C, 0, 1, PUK.encode() + PIN.encode())))


@pytest.mark.pcsc
def test_library_through_pcscd(captured, cps_pcscd, cps_card_factory):
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    wait_reader_free()
    with emu.serve_vpcd(port=vpcd_port()) as attachment:
        with open_when_ready(attachment.reader_name, emu) as card:
            _pin_paths(card, emu, captured)


def test_library_through_pkcs11(captured, cps_card_factory, tmp_path):
    from cps.emulator.softhsm import provision_softhsm
    from cps.pkcs11 import Pkcs11Card

    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    token = provision_softhsm(emu, tmp_path / "hsm")
    token.get_token()
    captured.apdus = False   # PKCS#11: no APDUs of ours, the module talks to the token
    with Pkcs11Card.open(module=token.module, token_label=token.token_label) as card:
        captured.append(repr(card))
        card.verify_pin(PIN)
        try:
            card.verify_pin(WRONG_PIN)
        except errors.CpsError as exc:
            captured.append(_exception_text(exc))
        card.verify_pin(PIN)
        captured.append(repr(card.sign(b"ordonnance")))
        try:
            card.change_pin(PIN, NEW_PIN)
            card.change_pin(NEW_PIN, PIN)
        except errors.CpsError as exc:
            captured.append(_exception_text(exc))


# --------------------------------------------------------------------------- the command
@pytest.mark.pcsc
def test_cli_at_traffic_level(cps_pcscd, cps_card_factory, cps_pki, tmp_path):
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    document = tmp_path / "ordonnance.txt"
    document.write_bytes(b"1 boite")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTHSM2")}
    env.update(CPS_DEBUG="traffic", CPS_TEST_PKI_DIR=str(cps_pki.directory),
               CPS_CRL_CACHE_DIR=str(tmp_path / "crl-cache"), PYTHONIOENCODING="utf-8",
               T_PIN=PIN, T_NEW=NEW_PIN, T_PUK=PUK, T_WRONG=WRONG_PIN, T_BADPUK=WRONG_PUK)
    verify_apdu = "00200001 08 " + (PIN.encode() + b"\xff" * 4).hex()
    wait_reader_free()
    with emu.serve_vpcd(port=vpcd_port()) as attachment:
        open_when_ready(attachment.reader_name, emu).close()
        r = ["-r", attachment.reader_name]
        runs = [  # (arguments, stdin, expected exit code)
            (["pin", "status", *r], None, 0),
            (["pin", "verify", *r, "--pin", "env:T_PIN"], None, 0),
            (["pin", "verify", *r], WRONG_PIN + "\n", 7),
            (["pin", "verify", *r, "--json"], MALFORMED + "\n", None),
            (["pin", "verify", *r, "--pin", PIN], None, 2),      # a code on the command line
            (["pin", "change", *r, "--pin", "env:T_PIN", "--new-pin", "env:T_NEW", "-f"],
             None, 0),
            (["pin", "change", *r, "-f"], f"{NEW_PIN}\n{PIN}\n", 0),
            (["pin", "verify", *r, "--pin", "env:T_WRONG"], None, 7),
            (["pin", "verify", *r, "--pin", "env:T_WRONG"], None, 7),
            (["pin", "verify", *r, "--pin", "env:T_WRONG"], None, 15),  # last try refused
            (["pin", "unblock", *r, "--puk", "env:T_BADPUK", "--new-pin", "env:T_PIN", "-f"],
             None, 7),
            (["pin", "unblock", *r, "--puk", "env:T_PUK", "--new-pin", "env:T_PIN", "-f"],
             None, 0),
            (["sign", str(document), *r, "--pin", "env:T_PIN", "-f", "-o",
              str(tmp_path / "out.p7s")], None, 0),
            (["auth", "test", *r, "--pin", "env:T_PIN", "--anchors", "test",
              "--revocation", "off"], None, None),
            (["apdu", *r, verify_apdu], None, None),
            (["card", "info", *r], None, None),
        ]
        for args, stdin, expected in runs:
            proc = subprocess.run([sys.executable, "-m", "cps_cli", "-l", "traffic", *args],
                                  input=stdin, env=env, capture_output=True, text=True,
                                  timeout=60)
            output = proc.stdout + "\n" + proc.stderr
            where = f"cps {' '.join(args)}"
            if expected is not None:
                assert proc.returncode == expected, f"{where}: exit {proc.returncode}\n{output}"
            assert_no_secret(output, where)
            if args[:2] == ["pin", "verify"] and proc.returncode in (0, 7):
                assert "redacted" in proc.stderr, f"{where}: TRAFFIC was not on"
    assert emu.os.chvs[1].tries_left == 3
