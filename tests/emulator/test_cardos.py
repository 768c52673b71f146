"""The emulated CPS3 card, in process, through the library's own APDU stack."""

from __future__ import annotations

import hashlib
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from cps import errors
from cps.apdu import ApduChannel, CommandApdu
from cps.emulator.layout import AID_CONTACT, EF_ATR_CONTENT
from cps.emulator.profiles import luhn_valid
from cps.sha import split

h = bytes.fromhex
DOCP_CHV1 = h("4D087006BF810102A080")
DOCP_CHV2 = h("4D087006BF810202A080")
SHA256_DI = h("3031300d060960864801650304020105000420")


@pytest.fixture
def card(cps_emulated_card):
    return cps_emulated_card


@pytest.fixture
def ch(card):
    # GET RESPONSE asks at most 0xE7, as the Cryptolib (the emulator's default refuses more)
    return ApduChannel(card.connection(), max_response_length=0xE7)


def raw(card, hexstr: str) -> bytes:
    """One raw APDU straight to the card OS (no pipeline): the wire view."""
    return card.transmit(h(hexstr.replace(" ", "")))


def select_mf(ch):
    ch.send(0, 0xA4, 0x00, 0x0C, h("3F00"))


def verify(ch, pin: str):
    return ch.transmit(CommandApdu(0, 0x20, 0, 1, pin.encode().ljust(8, b"\xff")))


def tries(ch, ref=1) -> int:
    select_mf(ch)
    docp = ch.send(0, 0xCB, 0x3F, 0xFF, h(f"4D087006BF81{ref:02X}02A080"), ne=256)
    i = docp.index(b"\x9b\x01")
    return docp[i + 2]


# ---------------------------------------------------------------- identity and files
def test_contact_atr_and_t0(card):
    assert card.atr == h("3BAC00402A001225006480000310009000")
    assert card.protocol == "T0"


def test_ef_atr_keeps_the_stray_leading_80(ch):
    ch.send(0, 0xA4, 0x09, 0x0C, h("3F002F01"))
    assert ch.send(0, 0xB0, 0, 0, ne=len(EF_ATR_CONTENT)) == EF_ATR_CONTENT
    assert EF_ATR_CONTENT[0] == 0x80


def test_ef_sn_icc_holds_issuer_card_number_and_luhn(ch, card):
    size = len(card.os.mf.children[0xD003].data)
    data = ch.send(0, 0xB0, 0x9C, 0, ne=size)  # READ BINARY by SFI 1C, the MF current
    assert data[0] == 0x5A and data[2:7] == h("8025000001")
    digits = data[2:2 + data[1]].hex().rstrip("f")
    assert digits == card.profile.pan and luhn_valid(digits)
    assert digits[10:-1] == card.profile.card_number


def test_select_quirks(card, ch):
    # a path from the current DF must include 3F00 (OpenSC fc0df4e5d)
    assert raw(card, "00A4090C022F00") == h("6A82")
    assert raw(card, "00A4090C043F002F00") == h("9000")
    # P2=00 is refused for FIDs and DF names alike
    assert raw(card, "00A40000023F00") == h("6A86")
    assert raw(card, "00A40400 0D" + AID_CONTACT.hex()) == h("6A86")
    # by name with P2=04: the FCP (through 61xx on T=0), naming the AID
    fcp = ch.send(0, 0xA4, 0x04, 0x04, AID_CONTACT, ne=256)
    assert fcp[0] == 0x62 and AID_CONTACT in fcp
    assert raw(card, "00A4090C043F00DEAD") == h("6A82")
    # OpenSC selects the MF as "EF 3F00 under the current DF" before PIN operations
    ch.send(0, 0xA4, 0x04, 0x0C, AID_CONTACT)
    assert ch.send(0, 0xA4, 0x02, 0x04, h("3F00"), ne=256)[:2] == h("621E")[:1] + \
        ch.send(0, 0xA4, 0x00, 0x04, h("3F00"), ne=256)[1:2]


def test_t0_case4_answers_61xx_and_get_response_obeys_le(card):
    assert raw(card, "00A40904043F00D003") == h("6127")
    first = raw(card, "00C0000010")
    assert len(first) == 0x12 and first[-2:] == h("6117")   # 16 bytes now, 0x17 waiting
    assert raw(card, "00C0000020") == h("6C17")             # Le too long: 6C + exact
    rest = raw(card, "00C0000017")
    assert rest[-2:] == h("9000") and len(rest) == 0x19
    assert raw(card, "00C0000001") == h("6985")             # nothing left


def test_read_binary_past_the_end_is_refused_by_default(card):
    raw(card, "00A4090C043F00D003")
    assert raw(card, "00B0000000") == h("6700")      # the strictest: no trace settles it
    size = len(card.os.mf.children[0xD003].data)
    assert len(raw(card, f"00B00000{size:02X}")) == size + 2


@pytest.mark.parametrize("answer", ["6Cxx", "6282"])
def test_read_binary_past_the_end_variants(cps_card_factory, answer):
    from dataclasses import replace

    from cps.emulator import EmulatedCard
    from cps.emulator.profiles import Behaviour, load_profile

    profile = replace(load_profile("cps3-medecin"), behaviour=Behaviour(over_long_le=answer))
    card = EmulatedCard.from_profile(profile)
    raw(card, "00A4090C043F00D003")
    size = len(card.os.mf.children[0xD003].data)
    reply = raw(card, "00B0000000")
    if answer == "6Cxx":
        assert reply == bytes((0x6C, size))
    else:
        assert len(reply) == size + 2 and reply[-2:] == h("6282")


def test_get_response_is_capped_at_e7_by_default(card):
    assert raw(card, "00A40904043F00D003") == h("6127")
    assert raw(card, "00C0000000") == h("6700")         # Le 256 > 0xE7: refused
    assert raw(card, "00C0000027")[-2:] == h("9000")    # the data still waited


def test_sfi_read_resolves_in_the_current_df_only(card):
    assert raw(card, "00B09C000D")[-2:] == h("9000")      # MF current: EF.SN.ICC
    assert raw(card, "00A4090C043F000001") == h("9000")   # DF 0001 current (after a signature)
    assert raw(card, "00B09C000D") == h("6A82")           # a real card: not found


def test_a_computed_answer_comes_through_get_response_on_t0(card, ch):
    # A real trace: PSO CDS (case 2, Le 00) answered 61 00, then GET RESPONSE E7 and 19.
    assert verify(ch, card.pin).sw == 0x9000
    ch.send(0, 0xA4, 0x09, 0x0C, h("3F000001"))
    ch.send(0, 0x22, 0x41, 0xB6, h("800142840181"))
    assert raw(card, "002A9E9A20" + "00" * 32) == h("6100")
    first = raw(card, "00C00000E7")
    assert len(first) == 0xE7 + 2 and first[-2:] == h("6119")
    assert len(raw(card, "00C0000019")) == 0x19 + 2


def test_sdo_public_part_is_refused_with_incorrect_parameters(card, ch):
    select_mf(ch)
    for request in ("4D097007BF8101037F4180", "4D097007BF9002037F4880"):
        assert ch.transmit(CommandApdu(0, 0xCB, 0x3F, 0xFF, h(request), 256)).sw == 0x6A80


def test_key_sdo_gives_size_and_rules(card, ch):
    ch.send(0, 0xA4, 0x04, 0x0C, AID_CONTACT)
    docp = ch.send(0, 0xCB, 0x3F, 0xFF, h("4D087006BF900202A080"), ne=256)
    assert docp.startswith(h("7018BF900214A012")) and h("80020100") in docp
    assert h("8C077BFF1212FFFF00") in docp       # int auth and decipher under the PIN


def test_sdo_get_data_needs_the_mf(card, ch):
    ch.send(0, 0xA4, 0x04, 0x0C, AID_CONTACT)
    assert ch.transmit(CommandApdu(0, 0xCB, 0x3F, 0xFF, DOCP_CHV1, 256)).sw == 0x6A88
    select_mf(ch)
    # the exact bytes of the real card's answer (ANS trace, OpenSC #2275)
    assert ch.send(0, 0xCB, 0x3F, 0xFF, DOCP_CHV1, ne=256) == \
        h("7016BF810112A0109A01039B0103A1088C06F3000013FF00")
    docp2 = ch.send(0, 0xCB, 0x3F, 0xFF, DOCP_CHV2, ne=256)
    assert h("9A010A") in docp2 and h("9B010A") in docp2 and h("9D020064") in docp2


# ---------------------------------------------------------------- PIN
def test_status_query_spends_no_try(card, ch):
    for _ in range(5):
        assert ch.transmit(CommandApdu(0, 0x20, 0, 1)).sw == 0x63C3
    assert tries(ch) == 3


def test_wrong_pin_counts_down_then_blocks(card, ch):
    assert verify(ch, "0000").sw == 0x63C2
    assert verify(ch, "0000").sw == 0x63C1
    assert verify(ch, "0000").sw == 0x63C0
    assert verify(ch, card.pin).sw == 0x6983      # blocked: even the right PIN fails
    assert tries(ch) == 0


def test_right_pin_resets_the_counter_and_unlocks(card, ch):
    verify(ch, "0000")
    assert verify(ch, card.pin).sw == 0x9000
    assert ch.transmit(CommandApdu(0, 0x20, 0, 1)).sw == 0x9000
    assert tries(ch) == 3


def test_unpadded_pin_is_accepted(card, ch):
    assert ch.transmit(CommandApdu(0, 0x20, 0, 1, card.pin.encode())).sw == 0x9000


@pytest.mark.cps_profile("cps3-pin-blocked")
def test_blocked_profile(card, ch):
    assert ch.transmit(CommandApdu(0, 0x20, 0, 1)).sw == 0x6983
    assert tries(ch) == 0


def test_change_reference_data(card, ch):
    old = card.pin
    data = old.encode().ljust(8, b"\xff") + b"9876".ljust(8, b"\xff")
    ch.send(0, 0x24, 0, 1, data)
    assert card.pin == "9876"
    assert verify(ch, old).sw == 0x63C2
    assert verify(ch, "9876").sw == 0x9000


def test_change_with_wrong_old_pin_counts(card, ch):
    data = b"0000".ljust(8, b"\xff") + b"9876".ljust(8, b"\xff")
    with pytest.raises(errors.WrongPin) as info:
        ch.send(0, 0x24, 0, 1, data)
    assert info.value.tries_left == 2 and card.pin != "9876"


@pytest.mark.cps_profile("cps3-pin-blocked")
def test_unblock_with_puk_sets_new_pin_and_uses_one_unblock(card, ch):
    # both middlewares: VERIFY the unblock code (CHV 2), then RESET RETRY COUNTER P1=02
    assert raw(card, "002C020108" + b"4321".ljust(8, b"\xff").hex()) == h("6982")
    ch.send(0, 0x20, 0, 2, card.puk.encode())
    ch.send(0, 0x2C, 0x02, 1, b"4321".ljust(8, b"\xff"))
    assert card.pin == "4321" and tries(ch) == 3
    docp2 = ch.send(0, 0xCB, 0x3F, 0xFF, DOCP_CHV2, ne=256)
    uses = card.profile.unblock_uses_left - 1
    assert h("9D02") + uses.to_bytes(2, "big") in docp2


def test_wrong_puk_counts_down(card, ch):
    with pytest.raises(errors.WrongPin) as info:
        ch.send(0, 0x20, 0, 2, b"00000000")
    assert info.value.tries_left == 9
    assert tries(ch, ref=2) == 9


@pytest.mark.parametrize("p1", ["00", "01", "03"])
def test_unblock_forms_no_trace_shows_are_refused(card, p1):
    # PUK || new PIN in one command (P1=00), PUK alone (01), no new PIN (03)
    data = card.puk.encode() + b"4321".ljust(8, b"\xff")
    assert raw(card, f"002C{p1}01{len(data):02X}{data.hex()}") == h("6A86")
    assert card.os.chvs[2].tries_left == 10 and card.pin != "4321"


def test_reset_loses_the_security_state(card, ch):
    assert verify(ch, card.pin).sw == 0x9000
    card.reset()
    assert ch.transmit(CommandApdu(0, 0x20, 0, 1)).sw == 0x63C3


# ---------------------------------------------------------------- signatures
def _sign_on_card(ch, message: bytes, alg: str) -> bytes:
    ht, dst = {"sha1": (0x10, 0x12), "sha256": (0x40, 0x42)}[alg]
    part = split(alg, message)
    ch.send(0, 0x22, 0x41, 0xAA, bytes((0x80, 1, ht)))
    state = part.state_and_count if part.bit_count else b""
    body = bytes((0x90, len(state))) + state + bytes((0x80, len(part.tail))) + part.tail
    ch.send(0, 0x2A, 0x90, 0xA0, body)
    ch.send(0, 0x22, 0x41, 0xB6, bytes((0x80, 1, dst, 0x84, 1, 0x81)))
    return ch.send(0, 0x2A, 0x9E, 0x9A, ne=256)


@pytest.mark.parametrize("alg", ["sha1", "sha256"])
@pytest.mark.parametrize("size", [0, 19, 63, 64, 65, 128, 1000])
def test_pso_hash_last_step_on_card_signature_verifies(card, ch, alg, size):
    verify(ch, card.pin)
    message = bytes(range(256)) * 4
    message = message[:size]
    signature = _sign_on_card(ch, message, alg)
    assert len(signature) == 256
    card.credentials.sign_cert.public_key().verify(
        signature, message, padding.PKCS1v15(),
        {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[alg])


def test_hash_off_card_signature_verifies(card, ch):
    verify(ch, card.pin)
    digest = hashlib.sha256(b"ordonnance").digest()
    ch.send(0, 0x22, 0x41, 0xB6, h("800142840181"))
    signature = ch.send(0, 0x2A, 0x9E, 0x9A, digest, ne=256)
    card.credentials.sign_cert.public_key().verify(
        signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_signing_needs_the_pin(card, ch):
    ch.send(0, 0x22, 0x41, 0xB6, h("800142840181"))
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        ch.send(0, 0x2A, 0x9E, 0x9A, bytes(32), ne=256)


def test_auth_key_cannot_sign_and_sign_key_cannot_authenticate(card, ch):
    verify(ch, card.pin)
    ch.send(0, 0x22, 0x41, 0xB6, h("800142840182"))
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        ch.send(0, 0x2A, 0x9E, 0x9A, bytes(32), ne=256)
    ch.send(0, 0x22, 0x41, 0xA4, h("800102840181"))
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        ch.send(0, 0x88, 0, 0, bytes(51), ne=256)


def test_internal_authenticate_signature_verifies(card, ch):
    verify(ch, card.pin)
    digest = hashlib.sha256(b"challenge").digest()
    ch.send(0, 0x22, 0x41, 0xA4, h("800102840182"))
    signature = ch.send(0, 0x88, 0, 0, SHA256_DI + digest, ne=256)
    card.credentials.auth_cert.public_key().verify(
        signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_internal_authenticate_input_limit_is_40_percent_of_the_modulus(card, ch):
    verify(ch, card.pin)
    ch.send(0, 0x22, 0x41, 0xA4, h("800102840182"))
    assert len(ch.send(0, 0x88, 0, 0, bytes(102), ne=256)) == 256
    with pytest.raises(errors.CardError) as info:
        ch.send(0, 0x88, 0, 0, bytes(103), ne=256)
    assert info.value.sw == 0x6700


def test_decipher_with_command_chaining(card, ch):
    verify(ch, card.pin)
    public = card.credentials.auth_cert.public_key()
    cryptogram = public.encrypt(b"session key", padding.PKCS1v15())
    ch.send(0, 0x22, 0x41, 0xB8, h("80011A840182"))
    assert ch.send(0, 0x2A, 0x80, 0x86, b"\x81" + cryptogram, ne=256) == b"session key"


def test_get_challenge(ch):
    a, b = ch.send(0, 0x84, 0, 0, ne=8), ch.send(0, 0x84, 0, 0, ne=8)
    assert len(a) == 8 and a != b


def test_unknown_instruction_and_class(card):
    assert raw(card, "00EE0000") == h("6D00")
    assert raw(card, "A0A4000C023F00") == h("6E00")
    assert raw(card, "00A4") == h("6700")


# ---------------------------------------------------------------- contactless
@pytest.mark.cps_profile("cps3-contactless")
def test_contactless_card_authenticates_without_pin_and_cannot_sign(card, ch):
    assert card.atr == h("3B8F80010031B86404B0ECC1739401808290000E") and card.protocol == "T1"
    ch.send(0, 0x22, 0x41, 0xA4, h("800102840183"))
    digest = hashlib.sha256(b"badge").digest()
    signature = ch.send(0, 0x88, 0, 0, SHA256_DI + digest, ne=256)
    card.credentials.tech_cert.public_key().verify(
        signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    with pytest.raises(errors.CardError):
        ch.send(0, 0x22, 0x41, 0xB6, h("800142840181"))
    assert card.pin is None
    assert ch.transmit(CommandApdu(0, 0x20, 0, 1)).sw == 0x6A88


# ---------------------------------------------------------------- faults
def test_removed_card(card, ch):
    card.remove()
    with pytest.raises(errors.CardRemoved):
        select_mf(ch)
    card.insert()
    select_mf(ch)


def test_garbage_and_truncated_answers_are_protocol_errors(card, ch):
    card.faults.truncate = 1
    with pytest.raises(errors.CardProtocolError):
        select_mf(ch)
    select_mf(ch)  # the next answer is sound again


def test_forced_61xx_in_small_pieces_is_reassembled(card, ch):
    card.faults.force_61xx = 7
    fcp = ch.send(0, 0xA4, 0x04, 0x04, AID_CONTACT, ne=256)
    assert fcp[0] == 0x62 and AID_CONTACT in fcp
    card.faults.clear()
    ch.send(0, 0xA4, 0x09, 0x0C, h("3F002F01"))
    card.faults.force_61xx = 5
    assert ch.send(0, 0xB0, 0, 0, ne=len(EF_ATR_CONTENT)) == EF_ATR_CONTENT


def test_forced_6cxx_is_followed(card, ch):
    ch.send(0, 0xA4, 0x09, 0x0C, h("3F002F01"))
    card.faults.force_6cxx = 1
    assert ch.send(0, 0xB0, 0, 0, ne=len(EF_ATR_CONTENT)) == EF_ATR_CONTENT
    assert card.faults.force_6cxx == 0


def test_endless_61xx_is_bounded(card, ch):
    card.faults.endless_61xx = True
    with pytest.raises(errors.CardProtocolError):
        select_mf(ch)


def test_mute_card_times_out(card, ch):
    card.mute_timeout = 0.05
    card.faults.mute = True
    start = time.monotonic()
    with pytest.raises(errors.ReaderTimeout):
        select_mf(ch)
    assert time.monotonic() - start < 5


def test_reset_between_commands_loses_the_pin(card, ch):
    verify(ch, card.pin)
    card.faults.reset_next = True
    assert ch.transmit(CommandApdu(0, 0x20, 0, 1)).sw == 0x63C3


def test_slow_card_still_answers(card, ch):
    card.faults.delay = 0.02
    start = time.monotonic()
    select_mf(ch)
    assert time.monotonic() - start >= 0.02


def test_garbage_never_escapes_as_anything_but_a_cps_error(card, ch):
    for _ in range(30):
        card.faults.garbage = 1
        try:
            ch.send(0, 0xA4, 0x04, 0x04, AID_CONTACT, ne=256)
        except errors.CpsError:
            pass


def test_emulated_card_repr_has_no_secret(card):
    assert card.pin not in repr(card) and card.puk not in repr(card)
    assert card.pin not in repr(card.os.chvs[1])
