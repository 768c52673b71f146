"""The PC/SC backend through the real system pcscd with the vsmartcard-vpcd driver."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import cps
from cps import errors
from cps.atr import CardKind, card_kind, require_supported
from cps.pcsc import PcscConnection, pcsc_error
from cps.readers import ReaderInfo, select_reader

pytestmark = pytest.mark.pcsc

CPS3 = bytes.fromhex("3BAC00402A001225006480000310009000")


def test_vpcd_reader_is_listed_through_pcscd(pcscd):
    readers = cps.list_readers()
    names = [r.name for r in readers]
    assert "Virtual PCD 00 00" in names, names
    for r in readers:
        assert isinstance(r, ReaderInfo)
        if not r.card_present:
            assert r.atr == b"" and r.card_kind is None


def test_connecting_to_an_empty_reader_raises_no_card(pcscd):
    empty = [r.name for r in cps.list_readers() if not r.card_present]
    assert empty, "expected at least one empty virtual reader"
    with pytest.raises((errors.NoCard, errors.ReaderTimeout)) as info:
        PcscConnection(empty[-1])
    assert info.value.reader == empty[-1]


def test_unknown_reader_name_raises_reader_not_found(pcscd):
    with pytest.raises(errors.ReaderNotFound):
        PcscConnection("No Such Reader 99")


def test_no_service_is_reported_as_such(tmp_path):
    # pcsc-lite clients honour PCSCLITE_CSOCK_NAME: point it at a socket that
    # does not exist, as on a machine where pcscd is not running.
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "none.comm"))
    code = ("import cps\n"
            "from cps import errors\n"
            "try:\n    cps.list_readers()\n"
            "except errors.PcscServiceUnavailable as e:\n    print('NOSERVICE', hex(e.code))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=30)
    assert "NOSERVICE 0x8010001d" in out.stdout, out.stderr


@pytest.mark.parametrize("code, cls", [
    (0x8010001D, errors.PcscServiceUnavailable),
    (0x8010002E, errors.NoReaders),
    (0x80100009, errors.ReaderNotFound),
    (0x8010000C, errors.NoCard),
    (0x80100069, errors.CardRemoved),
    (0x80100068, errors.CardReset),
    (0x8010000B, errors.SharingViolation),
    (0x8010000A, errors.ReaderTimeout),
    (0x80100066, errors.ReaderTimeout),
    (0x80100001, errors.ReaderError),
])
def test_pcsc_codes_map_to_typed_errors(code, cls):
    err = pcsc_error(code, "doing", "Reader 0")
    assert type(err) is cls and err.code == code and err.reader == "Reader 0"
    assert f"0x{code:08X}" in str(err)


def test_atr_table():
    assert card_kind(CPS3) is CardKind.CPS3
    assert card_kind(bytes.fromhex("3BAC00402A001225006480820212009000")) is CardKind.CPS3
    assert card_kind(bytes.fromhex("3B8F8001" "0031B86404B0ECC1739401808290000E")) \
        is CardKind.CPS3_CONTACTLESS
    assert card_kind(bytes.fromhex("3BDC18FF00001225006480000401009000")) is CardKind.CPS4
    assert card_kind(bytes.fromhex("3B00")) is CardKind.UNKNOWN
    with pytest.raises(errors.UnsupportedCard) as info:
        require_supported(bytes.fromhex("3B9B1880010012250064800401000090" "44"))
    assert "CPS4" in info.value.card_name
    with pytest.raises(errors.UnknownCard) as info2:
        require_supported(bytes.fromhex("3B8F8001"))
    assert info2.value.atr == bytes.fromhex("3B8F8001")


def test_select_reader_by_index_name_and_atr():
    readers = [ReaderInfo("Acme Reader 0", False, b"", None),
               ReaderInfo("Virtual PCD 00 00", True, CPS3, CardKind.CPS3),
               ReaderInfo("Virtual PCD 00 01", False, b"", None)]
    assert select_reader(readers).name == "Virtual PCD 00 00"  # the one with a CPS card
    assert select_reader(readers, "2").name == "Virtual PCD 00 01"
    assert select_reader(readers, "acme").name == "Acme Reader 0"
    assert select_reader(readers, "3b ac 00 40").name == "Virtual PCD 00 00"
    with pytest.raises(errors.ReaderNotFound):
        select_reader(readers, "virtual")   # ambiguous
    with pytest.raises(errors.ReaderNotFound):
        select_reader(readers, "7")
    with pytest.raises(errors.NoReaders):
        select_reader([])


def test_pcsc_connection_to_the_emulated_card(cps_vpcd_card):
    name = cps_vpcd_card.attachment.reader_name
    (info,) = [r for r in cps.list_readers() if r.name == name]
    assert info.card_present and info.atr == CPS3 and info.card_kind is CardKind.CPS3
    from cps.apdu import ApduChannel

    with PcscConnection(name) as conn:
        assert conn.atr == CPS3 and conn.protocol == "T0"
        channel = ApduChannel(conn, max_response_length=0xE7)
        size = len(cps_vpcd_card.os.mf.children[0xD003].data)
        with channel.transaction():
            with channel.transaction():  # re-entrant
                data = channel.send(0, 0xB0, 0x9C, 0, ne=size)  # by SFI, the MF current
        assert data[0] == 0x5A and data[2:7] == bytes.fromhex("8025000001")
        fcp = channel.send(0, 0xA4, 0x09, 0x04, bytes.fromhex("3F000001"), ne=256)  # 61xx
        assert fcp[0] == 0x62
        with pytest.raises(errors.CardError) as err:
            channel.send(0, 0xA4, 0x09, 0x0C, bytes.fromhex("2F00"))
        assert err.value.sw == 0x6A82


def test_card_removed_under_an_open_connection(cps_vpcd_card):
    name = cps_vpcd_card.attachment.reader_name
    with PcscConnection(name) as conn:
        conn.send_and_receive(bytes.fromhex("00A4000C023F00"))
        cps_vpcd_card.attachment.stop()
        with pytest.raises(errors.CardRemoved) as info:
            conn.send_and_receive(bytes.fromhex("00A4000C023F00"))
        assert info.value.reader == name and info.value.code == 0x80100069


def test_mute_card_through_pcscd_fails_in_bounded_time_and_recovers(cps_vpcd_card):
    import time

    card = cps_vpcd_card
    card.mute_timeout = 0.3
    with PcscConnection(card.attachment.reader_name) as conn:
        conn.send_and_receive(bytes.fromhex("00A4000C023F00"))
        card.faults.mute = True
        start = time.monotonic()
        with pytest.raises(errors.ReaderError):
            conn.send_and_receive(bytes.fromhex("00A4000C023F00"))
        assert time.monotonic() - start < 10
    card.faults.mute = False
    # The card comes back on the bus; pcscd needs a moment to notice the
    # removal and the new insertion, meanwhile errors are typed.
    deadline = time.monotonic() + 15
    while True:
        try:
            with PcscConnection(card.attachment.reader_name) as conn:
                assert conn.send_and_receive(bytes.fromhex("00A4000C023F00")) == (b"", 0x9000)
            break
        except errors.ReaderError:
            assert time.monotonic() < deadline, "the card never came back"
            time.sleep(0.1)
