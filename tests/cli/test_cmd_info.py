"""The pure functions of cps_cli.view behind the commands (no reader needed)."""

from __future__ import annotations

from cps.card import PinStatus
from cps_cli.view import describe_pin_status, error_to_dict, reader_events


def _state(name, atr=None, kind=None):
    return {name: {"reader": name, "card_present": atr is not None, "atr": atr,
                   "card_kind": kind}}


def test_reader_events():
    empty = _state("R")
    card = _state("R", "3BAC", "cps3")
    other = _state("R", "3B8F", "cps3-contactless")
    assert reader_events(empty, card) == [
        {"event": "inserted", "reader": "R", "atr": "3BAC", "card_kind": "cps3"}]
    assert [e["event"] for e in reader_events(card, empty)] == ["removed"]
    assert [e["event"] for e in reader_events(card, other)] == ["removed", "inserted"]
    assert reader_events(card, card) == []
    assert [e["event"] for e in reader_events({}, card)] == ["reader-added", "inserted"]
    assert [e["event"] for e in reader_events(card, {})] == ["removed", "reader-removed"]


def test_describe_pin_status():
    assert describe_pin_status(None) == "PIN: none on this interface"
    last = PinStatus(1, 3, False, 10, 10, 100, False)
    assert describe_pin_status(last) == ("PIN: 1 of 3 tries left (LAST TRY); unblock code: "
                                         "10 of 10 tries left, 100 unblocks left")
    blocked = PinStatus(0, 3, True)
    assert describe_pin_status(blocked) == "PIN: BLOCKED (0 of 3 tries left)"


def test_error_to_dict_never_needs_a_secret():
    from cps.errors import WrongPin

    data = error_to_dict(WrongPin(2, sw=0x63C2))
    assert data == {"type": "WrongPin", "message": "wrong PIN, 2 tries left", "what": "PIN",
                    "tries_left": 2, "sw": "63C2"}
