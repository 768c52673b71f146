"""Issue 14: the library does only what a real CPS3 was seen doing, and works
with every card behaviour no trace settles (the emulator's profile variants).

Real-card evidence (docs/emulator.md, "What the library relies on"): the ANS
Cryptolib trace in OpenSC issue #2275 (SELECT 3F00 D003 with the FCP, READ of
EF.SN.ICC, GET DATA DOCP, PSO HASH, PSO CDS answered ``61 00`` then GET
RESPONSE ``E7`` and ``19``), the Cryptolib 5.2 source, OpenSC's CPx driver.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from dataclasses import replace
from typing import Iterator, List, Tuple

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import cps
from cps import errors, sha
from cps.card import KeyRole, LastTryRefused
from cps.cps3 import Cps3Card
from cps.emulator import EmulatedCard
from cps.emulator.card import EmulatedConnection
from cps.emulator.profiles import OVER_LONG_LE, PKCS15_PATHS, Behaviour, load_profile

h = bytes.fromhex


def _card(cps_pki, profile: str = "cps3-medecin", **behaviour: object) -> EmulatedCard:
    base = load_profile(profile)
    return EmulatedCard(replace(base, behaviour=Behaviour(**behaviour)),  # type: ignore[arg-type]
                        cps_pki.issue_card(base))


def _sent(emu: EmulatedCard) -> List[bytes]:
    assert emu.journal is not None
    return [command for command, _ in emu.journal]


def _verify_sig(cert, signature: bytes, data: bytes) -> None:
    cert.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------- the traced sequences
def test_ef_sn_icc_is_read_as_the_cryptolib_trace_does(cps_pki):
    emu = _card(cps_pki)
    emu.journal = []
    with cps.open_card(connection=emu.connection()) as card:
        assert card.card_number == emu.profile.card_number
    size = len(emu.os.mf.children[0xD003].data)
    # 00 A4 09 04 04 3F00D003 -> 61 27; GET RESPONSE 27 (the FCP); READ BINARY of its size
    assert _sent(emu) == [h("00A40904043F00D003"), h("00C0000027"),
                          h("00B00000") + bytes((size,))]
    assert emu.journal[0][1] == h("6127")


def test_ef_sn_icc_is_found_after_a_signature_left_df_0001_current(cps_pki):
    # The bug a real card shows: an SFI read from DF 0001 answers 6A82, so a
    # program that reads the serial after `cps sign` (or after a browser used
    # the card) must not depend on where the card was left.
    emu = _card(cps_pki)
    with cps.open_card(connection=emu.connection()) as signer:
        signer.logout_on_close = False
        signer.verify_pin(emu.pin)
        signer.sign(b"doc")
    assert emu.os.current_df.fid == 0x0001
    with cps.open_card(connection=emu.connection()) as card:
        assert card.card_number == emu.profile.card_number


def test_pin_counter_verify_and_signature_follow_the_trace(cps_pki):
    emu = _card(cps_pki)
    with cps.open_card(connection=emu.connection()) as card:
        card.pin_objects()
        card.key_objects()
        emu.journal = []
        card.verify_pin(emu.pin)
        pin_part = _sent(emu)
        assert pin_part == [h("00A4090C023F00"), h("00CB3FFF0A4D087006BF810102A080"),
                            h("00C0000018"), h("0020000108") + emu.pin.encode() + b"\xff" * 4]
        emu.journal = []
        message = b"x" * 19 + b"\n"        # the trace's message: 19 'x' and a line feed
        signature = card.sign(message)
        _verify_sig(emu.credentials.sign_cert, signature, message)
    sent = _sent(emu)
    assert sent[0] == h("00A4090C043F000001")                      # the application, by path
    assert sent[1] == h("002241AA03800140")                        # MSE SET HT, SHA-256
    assert sent[2] == h("002A90A018900080") + bytes((len(message),)) + message  # PSO HASH
    assert sent[3] == h("002241B606800142840181")                  # MSE SET DST
    assert sent[4:] == [h("002A9E9A00"), h("00C00000E7"), h("00C0000019")]
    answers = [response[-2:] for _, response in emu.journal[4:]]
    assert answers == [h("6100"), h("6119"), h("9000")]


def test_no_verify_without_data_is_ever_sent(cps_pki):
    emu = _card(cps_pki)
    emu.journal = []
    with cps.open_card(connection=emu.connection()) as card:
        card.pin_status()
        card.verify_pin(emu.pin)
        card.change_pin(emu.pin, "4321")
        with pytest.raises(errors.WrongPin):
            card.verify_pin("0000")
    assert not [c for c in _sent(emu) if c[1] == 0x20 and len(c) == 4]


def test_reads_never_ask_more_than_e7_nor_past_the_end(cps_pki):
    emu = _card(cps_pki)
    emu.journal = []
    with cps.open_card(connection=emu.connection()) as card:
        card.certificate(KeyRole.AUTH)
        card.certificate(KeyRole.SIGN)
        card.pin_objects()
    for command, response in emu.journal:
        if command[1] in (0xB0, 0xC0):
            le = command[4] or 256
            assert le <= 0xE7, command.hex()
            assert response[-2:] == h("9000") or response[-2] == 0x61, command.hex()


# ---------------------------------------------------------------- every variant
VARIANTS = list(itertools.product(OVER_LONG_LE, (0xE7, 256), PKCS15_PATHS))


def _sweep(card: cps.Card, emu: EmulatedCard) -> None:
    """Every Card API operation once, checked against the emulated card's facts."""
    assert card.card_number == emu.profile.card_number
    assert card.certificate(KeyRole.AUTH) == emu.credentials.auth_cert
    assert card.certificate(KeyRole.SIGN) == emu.credentials.sign_cert
    assert card.practitioner.idnat == emu.profile.holder.idnat
    status = card.pin_status()
    assert (status.tries_left, status.unblock_tries_left) == (3, 10)
    with pytest.raises(errors.WrongPin):
        card.verify_pin("0000")
    card.verify_pin(emu.pin)
    _verify_sig(emu.credentials.sign_cert, card.sign(b"document" * 100), b"document" * 100)
    challenge = b"challenge"
    _verify_sig(emu.credentials.auth_cert, card.authenticate(challenge, hash="sha256"),
                challenge)
    card.change_pin(emu.pin, "2468")
    with pytest.raises(errors.WrongPin):
        card.verify_pin("1357")
    card.unblock_pin(emu.puk, "9753")
    card.verify_pin("9753")
    assert card.pin_status().unblock_uses_left == emu.profile.unblock_uses_left - 1


@pytest.mark.parametrize("over_long,gr_max,paths", VARIANTS)
def test_every_operation_in_every_variant_in_process(cps_pki, over_long, gr_max, paths):
    emu = _card(cps_pki, over_long_le=over_long, get_response_max=gr_max, pkcs15_paths=paths)
    with cps.open_card(connection=emu.connection()) as card:
        _sweep(card, emu)


@pytest.mark.pcsc
@pytest.mark.parametrize("over_long,gr_max,paths", [("6700", 0xE7, "fid"),
                                                    ("6Cxx", 256, "app-path"),
                                                    ("6282", 0xE7, "absolute")])
def test_every_operation_through_pcscd(cps_pcscd, cps_pki, over_long, gr_max, paths):
    emu = _card(cps_pki, over_long_le=over_long, get_response_max=gr_max, pkcs15_paths=paths)
    with emu.serve_vpcd() as attachment, cps.open_card(reader=attachment.reader_name) as card:
        _sweep(card, emu)


# ---------------------------------------------------------------- unblock: one form, once
def test_unblock_is_verify_then_reset_retry_counter_p1_02(cps_pki):
    emu = _card(cps_pki, "cps3-pin-blocked")
    with cps.open_card(connection=emu.connection()) as card:
        card.pin_objects()
        emu.journal = []
        card.unblock_pin(emu.puk, "2468")
    secret = [c for c in _sent(emu) if c[1] in (0x20, 0x2C)]
    assert secret == [h("0020000208") + emu.puk.encode(),
                      h("002C020108") + b"2468" + b"\xff" * 4]
    assert emu.pin == "2468"


def test_a_refused_unblock_code_is_never_followed_by_another_form(cps_pki):
    emu = _card(cps_pki, "cps3-pin-blocked")
    with cps.open_card(connection=emu.connection()) as card:
        card.pin_objects()
        emu.journal = []
        with pytest.raises(errors.WrongPin) as info:
            card.unblock_pin("00000000", "2468")
    assert info.value.what == "unblock code" and info.value.tries_left == 9
    assert [c[:4] for c in _sent(emu) if c[1] in (0x20, 0x2C)] == [h("00200002")]
    assert emu.os.chvs[2].tries_left == 9


def test_last_unblock_try_is_refused_unless_asked(cps_pki):
    emu = _card(cps_pki, "cps3-pin-blocked")
    emu.os.chvs[2].tries_left = 1
    with cps.open_card(connection=emu.connection()) as card:
        with pytest.raises(LastTryRefused) as info:
            card.unblock_pin(emu.puk, "2468")
        assert info.value.what == "unblock code" and emu.os.chvs[2].tries_left == 1
        card.unblock_pin(emu.puk, "2468", allow_last_try=True)
    assert emu.pin == "2468"


def test_no_unblock_left_is_refused_before_anything_is_sent(cps_pki):
    emu = _card(cps_pki, "cps3-pin-blocked")
    emu.os.chvs[2].usage_left = 0
    with cps.open_card(connection=emu.connection()) as card:
        card.pin_objects()
        emu.journal = []
        with pytest.raises(errors.PinBlocked) as info:
            card.unblock_pin(emu.puk, "2468")
    assert info.value.what == "unblock code"
    assert not [c for c in _sent(emu) if c[1] in (0x20, 0x2C)]


# ---------------------------------------------------------------- connections and sessions
def test_a_second_connection_keeps_the_first_ones_pin_verification(cps_pki):
    emu = _card(cps_pki)
    first = cps.open_card(connection=emu.connection())
    first.verify_pin(emu.pin)
    with cps.open_card(connection=emu.connection()) as second:
        # opening a connection resets nothing (only a power cycle or a reset does)
        _verify_sig(emu.credentials.sign_cert, second.sign(b"doc"), b"doc")
    # the second session presented no PIN: closing it left the card as it was
    _verify_sig(emu.credentials.sign_cert, first.sign(b"doc"), b"doc")
    first.close()
    with cps.open_card(connection=emu.connection()) as third:
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            third.sign(b"doc")              # no verified state outlives the session


def test_logout_on_close_can_be_declined(cps_pki):
    emu = _card(cps_pki)
    with cps.open_card(connection=emu.connection()) as first:
        first.logout_on_close = False
        first.verify_pin(emu.pin)
    with cps.open_card(connection=emu.connection()) as second:
        second.sign(b"doc")                 # the PIN verification was left on purpose
        second.logout()
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            second.sign(b"doc")


def test_a_failed_verification_also_ends_with_a_reset(cps_pki):
    # Whatever the outcome, a session that sent a code resets at close: a
    # verification may have succeeded on the card even if the answer was lost.
    emu = _card(cps_pki)
    resets = []
    original = emu.reset
    emu.reset = lambda: resets.append(1) or original()  # type: ignore[method-assign]
    with cps.open_card(connection=emu.connection()) as card:
        with pytest.raises(errors.WrongPin):
            card.verify_pin("0000")
    assert resets == [1]
    with cps.open_card(connection=emu.connection()) as card:
        card.card_number                    # noqa: B018 - a reader only: no reset
    assert resets == [1]


@pytest.mark.pcsc
def test_second_pcsc_connection_keeps_then_loses_the_verification(cps_pcscd, cps_pki):
    emu = _card(cps_pki)
    with emu.serve_vpcd() as attachment:
        first = cps.open_card(reader=attachment.reader_name)
        try:
            first.verify_pin(emu.pin)
            with cps.open_card(reader=attachment.reader_name) as second:
                _verify_sig(emu.credentials.sign_cert, second.sign(b"doc"), b"doc")
        finally:
            first.close()                   # resets the card: pcscd tells the others
        with cps.open_card(reader=attachment.reader_name) as third:
            with pytest.raises(errors.SecurityStatusNotSatisfied):
                third.sign(b"doc")


# ---------------------------------------------------------------- signing holds the card briefly
class _TimedConnection(EmulatedConnection):
    """Records whether the card is held (a transaction is open) at any moment."""

    def __init__(self, card: EmulatedCard) -> None:
        super().__init__(card)
        self.held = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:  # type: ignore[override]
        with super().transaction():
            self.held = True
            try:
                yield
            finally:
                self.held = False


def test_the_document_is_hashed_before_the_card_is_held(cps_pki, monkeypatch):
    emu = _card(cps_pki)
    conn = _TimedConnection(emu)
    calls: List[Tuple[int, bool]] = []
    real_split = sha.split

    def split(name: str, data: bytes) -> sha.PartialHash:
        calls.append((len(data), conn.held))
        return real_split(name, data)

    monkeypatch.setattr(sha, "split", split)
    document = bytes(1 << 20)
    with Cps3Card(conn, owns_connection=False) as card:
        card.verify_pin(emu.pin)
        signature = card.sign(document)
    _verify_sig(emu.credentials.sign_cert, signature, document)
    assert calls == [(len(document), False)]


def test_hash_off_card_only_on_request(cps_pki):
    emu = _card(cps_pki)
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        emu.journal = []
        card.sign(b"doc")
        assert h("002A90A0") in {c[:4] for c in _sent(emu)}          # PSO HASH by default
        emu.journal = []
        _verify_sig(emu.credentials.sign_cert, card.sign(b"doc", hash_on_card=False), b"doc")
        sent = _sent(emu)
    assert h("002A90A0") not in {c[:4] for c in sent}
    assert sent[-3][:5] == h("002A9E9A20") and sent[-3][5:37] == hashlib.sha256(b"doc").digest()


# ---------------------------------------------------------------- broken FCPs
@pytest.mark.parametrize("fcp", ["", "6200", "620482020101", "6204800240FF"])
def test_an_fcp_without_a_usable_size_is_a_protocol_error(fcp):
    from cps.cps3 import fcp_size

    with pytest.raises(errors.CardProtocolError):
        fcp_size(h(fcp))


# ---------------------------------------------------------------- found by the review
class _Answer(EmulatedConnection):
    """The emulated card, but commands whose first four bytes match get ``answer``."""

    def __init__(self, card: EmulatedCard, header: bytes, answer: bytes) -> None:
        super().__init__(card)
        self.header, self.answer = header, answer

    def send_and_receive(self, apdu: bytes) -> Tuple[bytes, int]:
        if apdu[:4] == self.header:
            return self.answer[:-2], int.from_bytes(self.answer[-2:], "big")
        return super().send_and_receive(apdu)


def test_a_buffer_of_wide_items_is_signed_as_its_bytes(cps_pki):
    from array import array

    emu = _card(cps_pki)
    document = array("H", range(70))       # 140 bytes, 70 items
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        _verify_sig(emu.credentials.sign_cert, card.sign(document), document.tobytes())
        with pytest.raises(TypeError):
            card.sign("text is not bytes")  # type: ignore[arg-type]


def test_a_pin_command_answered_61xx_is_not_a_success(cps_pki):
    emu = _card(cps_pki)
    conn = _Answer(emu, h("00200001"), h("6100"))
    with Cps3Card(conn, owns_connection=False) as card:
        card.logout_on_close = False
        with pytest.raises(errors.CardProtocolError):
            card.verify_pin(emu.pin)
    assert not emu.os.chvs[1].verified and emu.os.chvs[1].tries_left == 3


def test_a_refused_reset_after_an_accepted_unblock_code_is_told_as_such(cps_pki):
    emu = _card(cps_pki, "cps3-pin-blocked")
    conn = _Answer(emu, h("002C0201"), h("6A80"))
    with Cps3Card(conn, owns_connection=False) as card:
        card.pin_status()
        with pytest.raises(errors.CardError) as info:
            card.unblock_pin(emu.puk, "2468")
        assert not isinstance(info.value, errors.PinError)
        assert "unblock code was accepted" in str(info.value)
        seen = card.pin_status_seen
        assert seen is not None and seen.unblock_tries_left == 10   # the code was right
    assert emu.os.chvs[2].tries_left == 10


class _NoReset(EmulatedConnection):
    def reset(self) -> None:
        raise errors.ReaderTimeout("the reader did not answer", reader=self.reader)


def test_close_says_when_the_pin_verification_may_remain(cps_pki):
    emu = _card(cps_pki)
    card = Cps3Card(_NoReset(emu), owns_connection=False)
    card.verify_pin(emu.pin)
    with pytest.raises(errors.ReaderTimeout):
        card.close()
    card.close()                            # closed once: a second close is quiet


def test_caller_mistakes_are_type_and_value_errors(cps_pki):
    emu = _card(cps_pki)
    with cps.open_card(connection=emu.connection()) as card:
        with pytest.raises(TypeError):
            card.verify_pin(1234)  # type: ignore[arg-type]
        card.verify_pin(emu.pin)
        with pytest.raises(ValueError):
            card.sign(b"not a digest", prehashed=True)
    assert emu.os.chvs[1].tries_left == 3
