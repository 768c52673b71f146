"""Hostile and faulty cards: every fault at every APDU of every operation.

For each operation (reading the certificate, the PIN counters, verifying the
PIN, signing, authenticating, changing and unblocking the PIN) and each fault
of the emulator (card pulled out, warm reset, mute card, garbage, a response
cut short, endless ``61xx``, ``6Cxx`` forever), the fault is injected just
before each APDU the operation sends. Every case must:

* end with the right answer or a typed :class:`cps.errors.CpsError`, in
  bounded time;
* leave the same session usable: once the fault is gone, the next operations
  on the same ``Card`` object succeed and give correct results (signatures
  verify, the certificate is the card's);
* spend no PIN try the user did not ask for: at most one presentation of a
  code per call, and the counters after recovery are what the user's own
  attempts made them.

Then a few cases through the real stack (pcscd + vsmartcard-vpcd), and cards
whose PIN counters lie.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Tuple

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from reliability_helpers import TappedConnection, open_when_ready, vpcd_port, wait_reader_free

from cps import errors, tlv
from cps.card import KeyRole, LastTryRefused
from cps.cps3 import Cps3Card

PIN, PUK = "7391", "58204613"
MUTE_TIMEOUT = 0.05
FAULTS = ("remove", "reset", "silent_reset", "mute", "garbage", "truncate", "endless_61xx",
          "always_6cxx")


def _verify(cert, signature: bytes, data: bytes, digest=None) -> None:
    cert.public_key().verify(signature, data, padding.PKCS1v15(), digest or hashes.SHA256())


# --------------------------------------------------------------------------- operations
def _op_certificate(card, emu) -> None:
    card._cert_der.clear()  # noqa: SLF001 - force the read again (what a new session does)
    der = card.certificate_der(KeyRole.AUTH)
    assert der == emu.credentials.auth_cert.public_bytes(Encoding.DER)


def _op_pin_status(card, emu) -> None:
    status = card.pin_status()
    assert status.tries_left == emu.os.chvs[1].tries_left


def _op_verify(card, emu) -> None:
    card.verify_pin(PIN)


def _op_verify_wrong(card, emu) -> None:
    card.verify_pin("0000")


def _op_sign(card, emu) -> None:
    _verify(emu.credentials.sign_cert, card.sign(b"ordonnance"), b"ordonnance")


def _op_sign_off_card(card, emu) -> None:
    _verify(emu.credentials.sign_cert, card.sign(b"compte rendu", hash_on_card=False),
            b"compte rendu")


def _op_authenticate(card, emu) -> None:
    _verify(emu.credentials.auth_cert, card.authenticate(b"challenge", hash="sha256"),
            b"challenge")


def _op_change(card, emu) -> None:
    card.change_pin(PIN, PIN)      # same value: the session stays comparable


def _op_unblock(card, emu) -> None:
    card.unblock_pin(PUK, PIN)


# name -> (operation, needs the PIN verified first, codes the user presents in it)
OPERATIONS: Dict[str, Tuple[Callable, bool, int]] = {
    "certificate": (_op_certificate, False, 0),
    "pin_status": (_op_pin_status, False, 0),
    "verify": (_op_verify, False, 1),
    "verify_wrong": (_op_verify_wrong, False, 1),
    "sign": (_op_sign, True, 0),
    "sign_off_card": (_op_sign_off_card, True, 0),
    "authenticate": (_op_authenticate, True, 0),
    "change": (_op_change, False, 1),
    "unblock": (_op_unblock, False, 2),
}


def _fault(kind: str) -> Callable:
    def action(emu):
        if kind == "remove":
            emu.remove()
        elif kind == "reset":            # reset by another application: PC/SC tells us
            emu.reset()
            return errors.CardReset("the card was reset", reader="emulator")
        elif kind == "silent_reset":     # a reset nobody reports (brown-out, glitch)
            emu.faults.reset_next = True
        elif kind == "mute":
            emu.faults.mute = True
        elif kind == "garbage":
            emu.faults.garbage = 1
        elif kind == "truncate":
            emu.faults.truncate = 1
        elif kind == "endless_61xx":
            emu.faults.endless_61xx = True
        elif kind == "always_6cxx":
            emu.faults.force_6cxx = 10_000
        return None
    return action


def _heal(emu) -> None:
    emu.faults.clear()
    emu.insert()


def _session(factory):
    emu = factory("cps3-medecin", pin=PIN, puk=PUK)
    emu.mute_timeout = MUTE_TIMEOUT
    conn = TappedConnection(emu)
    card = Cps3Card(conn)
    card.card_number, card.certificate_der(KeyRole.AUTH), card.key_objects()  # noqa: B018
    card.pin_objects()
    return emu, conn, card


def _apdu_count(factory, name: str) -> int:
    """How many APDUs the operation sends on a healthy card (the positions to break)."""
    operation, needs_pin, _ = OPERATIONS[name]
    emu, conn, card = _session(factory)
    if needs_pin:
        card.verify_pin(PIN)
    mark = conn.mark()
    try:
        operation(card, emu)
    except errors.PinError:
        pass
    return conn.mark() - mark


def _one_case(factory, name: str, kind: str, k: int) -> str:
    """Break operation ``name`` with fault ``kind`` before its APDU #k; check everything."""
    operation, needs_pin, presented = OPERATIONS[name]
    emu, conn, card = _session(factory)
    if needs_pin:
        card.verify_pin(PIN)
    mark = conn.mark()
    conn.arm(k, _fault(kind))
    start = time.monotonic()
    outcome = "ok"
    try:
        operation(card, emu)
    except errors.CpsError as exc:
        outcome = type(exc).__name__
    elapsed = time.monotonic() - start
    where = f"{name}: {kind} before APDU #{k} -> {outcome}"
    # Bounded time: a mute card costs its timeout, nothing waits for ever.
    assert elapsed < 2.0 + MUTE_TIMEOUT * 4, f"{where} took {elapsed:.2f} s"
    # No code presented more often than the user asked.
    assert conn.secrets_since(mark) <= presented, f"{where}: a code was sent again"
    if kind in ("remove", "mute", "truncate", "endless_61xx"):
        assert outcome != "ok", f"{where}: the fault went unnoticed"
    if kind == "remove":
        assert outcome == "CardRemoved", where
    if kind == "mute":
        assert outcome == "ReaderTimeout", where
    conn.disarm()
    _heal(emu)
    # The same session is usable: each operation right away, and correct. (After a
    # reset nobody reported, the session cannot know the card forgot its state:
    # one failed operation is allowed there, never a wrong result.)
    retries = 1 if kind == "silent_reset" else 0
    for step in (_op_verify, _op_sign, _op_authenticate, _op_certificate, _op_pin_status):
        for attempt in range(retries + 1):
            try:
                step(card, emu)
                break
            except errors.CpsError as exc:
                if attempt == retries:
                    raise AssertionError(
                        f"{where}; then {step.__name__[4:]} on the same session: "
                        f"{type(exc).__name__}: {exc}") from None
    # ...and no PIN try was spent behind the user's back.
    assert emu.os.chvs[1].tries_left == 3, f"{where}: tries left {emu.os.chvs[1].tries_left}"
    return where


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_fault_at_every_apdu(name, cps_card_factory):
    positions = _apdu_count(cps_card_factory, name)
    assert positions >= 1
    failures = []
    cases = 0
    for kind in FAULTS:
        for k in range(positions):
            cases += 1
            try:
                _one_case(cps_card_factory, name, kind, k)
            except AssertionError as exc:
                failures.append(str(exc).splitlines()[0])
    print(f"{name}: {cases} fault cases ({positions} APDUs x {len(FAULTS)} faults), "
          f"{len(failures)} failed")
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n".join(failures)


@pytest.mark.parametrize("kind", ["remove", "reset"])
def test_the_session_reselects_after_a_removal_or_reset(cps_card_factory, kind):
    """A removal or reset reported on the VERIFY status query: the card is back at the
    MF; the next file read must not SELECT relative to the DF we had left current.
    (Found by the sweep above, fixed by forgetting the current DF between transactions.)"""
    emu, conn, card = _session(cps_card_factory)
    conn.arm(0, _fault(kind))                  # on the VERIFY status query
    with pytest.raises((errors.CardRemoved, errors.CardReset)):
        card.verify_pin(PIN)
    _heal(emu)
    _op_certificate(card, emu)


def test_bounded_exchanges_on_an_endless_61xx_card(cps_card_factory):
    """Endless 61xx: a CardProtocolError after a bounded number of GET RESPONSE."""
    emu, conn, card = _session(cps_card_factory)
    emu.faults.endless_61xx = True
    mark = conn.mark()
    start = time.monotonic()
    with pytest.raises(errors.CardProtocolError):
        card.pin_status()
    assert time.monotonic() - start < 2
    assert conn.mark() - mark <= 260


def test_6cxx_to_an_exact_read_is_the_cards_error(cps_card_factory):
    # The session knows every length before it reads (FCP, DER header), as the
    # Cryptolib: a 6Cxx is a broken answer, never a reason to ask again (issue 14).
    emu, conn, card = _session(cps_card_factory)
    emu.faults.force_6cxx = 1
    card._serial = None  # noqa: SLF001 - read EF.SN.ICC again
    mark = conn.mark()
    with pytest.raises(errors.CardError) as info:
        _ = card.card_number
    assert info.value.sw is not None and info.value.sw >> 8 == 0x6C
    reads = [a for a in conn.sent[mark:] if a[1] == 0xB0]
    assert len(reads) == 1          # not resent with the card's Le
    assert card.card_number == emu.profile.card_number   # the next read is fine


# --------------------------------------------------------------------------- wrong lengths
def _replace_file(emu, fid: int, content: bytes) -> None:
    from cps.emulator.filesystem import EF

    files = [node for node in emu.os.mf.walk() if isinstance(node, EF) and node.fid == fid]
    assert files, f"no file {fid:04X}"
    for ef in files:
        ef.data = bytearray(content)


@pytest.mark.parametrize("content,what", [
    (b"\x30\x83\xff\xff\xff" + b"\x00" * 300, "a certificate claiming 16 MB"),
    (b"\x30\x84\xff\xff\xff\xff" + b"\x00" * 300, "a 4-byte length"),
    (b"\x30\x80" + b"\x00" * 300, "an indefinite length"),
    (b"\x30\x82\x10\x00" + b"\x01" * 100, "a certificate longer than the file"),
    (b"", "an empty file"),
])
def test_lying_certificate_lengths(cps_card_factory, content, what):
    import tracemalloc

    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    _replace_file(emu, 0xC002, content)
    conn = TappedConnection(emu)
    card = Cps3Card(conn)
    mark = conn.mark()
    tracemalloc.start()
    try:
        with pytest.raises(errors.CpsError):
            card.certificate(KeyRole.AUTH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, what
    assert conn.mark() - mark < 80, what
    # the other certificate and the keys still work in the same session
    card.verify_pin(PIN)
    _op_sign(card, emu)


@pytest.mark.parametrize("content", [
    bytes.fromhex("5A"), bytes.fromhex("5A0A8025"), bytes.fromhex("5A84FFFFFFFF00"),
    bytes.fromhex("5A0A80250000010012345678F1"),          # Luhn fails
    bytes.fromhex("5A0A99990000010012345678F0"),          # not the CPS issuer
])
def test_lying_serial_numbers(cps_card_factory, content):
    emu = cps_card_factory("cps3-medecin")
    _replace_file(emu, 0xD003, content)
    card = Cps3Card(TappedConnection(emu))
    with pytest.raises(errors.CardProtocolError):
        card.card_number  # noqa: B018


# --------------------------------------------------------------------------- lying PIN counters
def _lie_in_docp(emu, ref: int, max_tries: int, tries_left: int) -> None:
    """The CHV's DOCP (what pin_status reads) reports other counters than VERIFY does."""
    chv = emu.os.chvs[ref]

    def docp() -> bytes:
        body = tlv.encode(0x9A, bytes((max_tries,))) + tlv.encode(0x9B, bytes((tries_left,)))
        if chv.usage_left is not None:
            body += tlv.encode(0x9D, chv.usage_left.to_bytes(2, "big"))
        body += tlv.encode(0xA1, tlv.encode(0x8C, chv.acl))
        return tlv.encode(0x70, tlv.encode(0xBF8100 | ref, tlv.encode(0xA0, body)))

    chv.docp = docp  # an instance attribute shadows the method


def test_docp_is_the_one_counter_and_verify_without_data_is_never_sent(cps_card_factory):
    # The Cryptolib reads a CPS3's counters from the DOCP only; so does the library.
    # A card whose DOCP claims 3 tries while its counter holds 1 is believed, and
    # the PIN goes once: the card's answer is final, never retried.
    emu, conn, card = _session(cps_card_factory)
    emu.os.chvs[1].tries_left = 1
    _lie_in_docp(emu, 1, 3, 3)
    assert card.pin_status().tries_left == 3
    mark = conn.mark()
    with pytest.raises(errors.PinBlocked):
        card.verify_pin("0000")
    assert conn.secrets_since(mark) == 1
    assert not [a for a in conn.sent if len(a) == 4 and a[1] == 0x20]  # no status VERIFY


@pytest.mark.parametrize("left,error", [(1, LastTryRefused), (0, errors.PinBlocked)])
def test_docp_saying_last_try_or_blocked_keeps_the_pin_home(cps_card_factory, left, error):
    emu, conn, card = _session(cps_card_factory)
    _lie_in_docp(emu, 1, 3, left)
    mark = conn.mark()
    with pytest.raises(error):
        card.verify_pin(PIN)
    assert conn.secrets_since(mark) == 0 and emu.os.chvs[1].tries_left == 3
    if left:
        card.verify_pin(PIN, allow_last_try=True)       # the user's explicit decision
        assert conn.secrets_since(mark) == 1


@pytest.mark.parametrize("max_tries,tries_left", [(3, 9), (0, 0), (255, 255)])
def test_inconsistent_docp_counters(cps_card_factory, max_tries, tries_left):
    emu, conn, card = _session(cps_card_factory)
    _lie_in_docp(emu, 1, max_tries, tries_left)
    try:
        status = card.pin_status()
    except errors.CardProtocolError:
        return
    assert 0 <= status.tries_left <= status.max_tries


def test_garbage_docp(cps_card_factory):
    emu, conn, card = _session(cps_card_factory)
    emu.os.chvs[1].docp = lambda: bytes.fromhex("7003BF8101")
    with pytest.raises(errors.CardProtocolError):
        card.pin_status()
    mark = conn.mark()
    with pytest.raises(errors.CardProtocolError):      # no counter: the PIN stays home
        card.verify_pin(PIN)
    assert conn.secrets_since(mark) == 0 and emu.os.chvs[1].tries_left == 3


# --------------------------------------------------------------------------- through pcscd
@pytest.fixture
def served(cps_pcscd, cps_card_factory):
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    wait_reader_free()
    with emu.serve_vpcd(port=vpcd_port()) as attachment:
        yield emu, attachment


def _hook(emu, after: Callable[[bytes], None]) -> None:
    """Call ``after(command)`` once the card has answered each command (the vpcd
    attachment calls ``emu.transmit``; pulling the card out *inside* it would kill
    the attachment's thread, see docs/security.md)."""
    original = emu.transmit

    def transmit(raw: bytes) -> bytes:
        response = original(raw)
        after(raw)
        return response

    emu.transmit = transmit


@pytest.mark.pcsc
def test_card_pulled_out_in_the_middle_of_a_signature_through_pcscd(served):
    emu, attachment = served
    with open_when_ready(attachment.reader_name, emu) as card:
        card.verify_pin(PIN)

        def after(raw: bytes) -> None:
            if raw[1:3] == b"\x2a\x90":   # out right after PSO HASH, before MSE SET DST / PSO CDS
                emu.remove()

        _hook(emu, after)
        start = time.monotonic()
        with pytest.raises(errors.ReaderError):
            # CardRemoved, or ReaderTimeout when the link drops inside a command
            card.sign(b"ordonnance")
        assert time.monotonic() - start < 10
        with pytest.raises(errors.ReaderError):       # the old session keeps saying so
            card.pin_status()
    # (closing tried to reset the card, to forget the PIN: it is gone, which did it)
    emu.transmit = type(emu).transmit.__get__(emu)
    # A hand pulls a card out for longer than pcscd's polling period: let pcscd see
    # the removal, or it would take the reinserted card for the one it failed to reset.
    attachment.wait_present(present=False)
    time.sleep(1.0)   # out for a few of pcscd's polls of vpcd, as a card in a hand is
    emu.insert()
    with open_when_ready(attachment.reader_name, emu) as card:   # a new session works
        assert card.pin_status().tries_left == 3           # nothing spent
        card.verify_pin(PIN)
        _verify(emu.credentials.sign_cert, card.sign(b"ordonnance"), b"ordonnance")


@pytest.mark.pcsc
@pytest.mark.parametrize("kind", ["endless_61xx", "garbage", "truncate", "reset"])
def test_faults_through_pcscd(served, kind):
    emu, attachment = served
    with open_when_ready(attachment.reader_name, emu) as card:
        card.verify_pin(PIN)
        start = time.monotonic()
        _fault(kind)(emu)
        try:
            _verify(emu.credentials.sign_cert, card.sign(b"doc"), b"doc")
            outcome = "ok"
        except errors.CpsError as exc:
            outcome = type(exc).__name__
        assert time.monotonic() - start < 10
        if kind != "reset":
            assert outcome != "ok", f"{kind}: the fault went unnoticed"
        emu.faults.clear()
        card.verify_pin(PIN)
        _verify(emu.credentials.sign_cert, card.sign(b"doc"), b"doc")
        assert card.pin_status().tries_left == 3


# --------------------------------------------------------------------------- slow-drip card
class _SlowDrip(TappedConnection):
    """A card that never errs but answers every READ BINARY through 255 empty ``61 01``
    rounds before the data, and claims a 16 KiB certificate: the most APDUs one read
    can be stretched to without any error being raised."""

    def __init__(self, emu) -> None:
        super().__init__(emu)
        self.rounds = 0
        self.file = b""

    def send_and_receive(self, apdu: bytes):
        ins = apdu[1]
        if ins == 0xA4:
            self.file = apdu[-2:]
        if ins == 0xB0 and self.file == b"\xc0\x02":
            self.sent.append(bytes(apdu))
            self.rounds, self.want = 0, apdu[4] or 256
            return b"", 0x6101
        if ins == 0xC0 and self.file == b"\xc0\x02":
            self.sent.append(bytes(apdu))
            self.rounds += 1
            if self.rounds < 255:
                return b"", 0x6101
            head = b"\x30\x82\x3f\xfb" if not getattr(self, "started", False) else b""
            self.started = True
            return (head + b"\x00" * self.want)[:self.want], 0x9000
        return super().send_and_receive(apdu)


def test_bug12_a_slow_drip_card_cannot_hold_a_read_for_minutes(cps_card_factory):
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    conn = _SlowDrip(emu)
    card = Cps3Card(conn)
    card.certificate_objects()
    mark = conn.mark()
    try:
        card.certificate_der(KeyRole.AUTH)
    except errors.CpsError:
        pass
    used = conn.mark() - mark
    print(f"one certificate read from a slow-drip card: {used} APDUs")
    assert used <= 2000   # a real CPS3 certificate takes about 10


# --------------------------------------------------------------------------- BUG-15
# Found by this file's sweep (a random garbage answer ended in 6Cxx once in a few
# dozen runs): a READ BINARY answered short -- a shorter 90 00 answer, 62 82,
# 6B 00, or a 6Cxx that makes the channel ask again for fewer bytes -- ended the
# certificate there, and certificate_der() returned a truncated certificate.
@pytest.mark.parametrize("ending", ["9000", "6282", "6b00", "6cff", "6c10", "6110"])
def test_certificate_is_read_whole_or_not_at_all(cps_card_factory, monkeypatch, ending):
    from cps.emulator import faults

    answer = bytes(range(7)) + bytes.fromhex(ending)   # 7 bytes where 256 were asked
    monkeypatch.setattr(faults.Faults, "garbage_bytes", staticmethod(lambda max_len=300: answer))
    right = None
    for k in range(_apdu_count(cps_card_factory, "certificate")):
        emu, conn, card = _session(cps_card_factory)
        right = emu.credentials.auth_cert.public_bytes(Encoding.DER)
        card._cert_der.clear()  # noqa: SLF001 - read it again, as a new session does
        conn.arm(k, _fault("garbage"))
        try:
            der = card.certificate_der(KeyRole.AUTH)
        except errors.CpsError:
            continue
        finally:
            conn.disarm()
        assert der == right, f"garbage ending {ending} before READ #{k}: {len(der)} bytes"
    assert right is not None
