"""The error hierarchy carries data and never inherits ValueError."""

from __future__ import annotations

import inspect

from cps import errors


def _all_errors():
    return [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
            if issubclass(obj, errors.CpsError)]


def test_every_error_derives_from_cps_error_and_not_value_error():
    classes = _all_errors()
    assert len(classes) >= 25
    for cls in classes:
        assert not issubclass(cls, ValueError), cls
        assert not issubclass(cls, LookupError), cls


def test_errors_carry_data():
    assert errors.WrongPin(2, sw=0x63C2).tries_left == 2
    assert "2 tries left" in str(errors.WrongPin(2))
    assert "1 try left" in str(errors.WrongPin(1))
    e = errors.CardError("x", sw=0x6A82, data=b"\x01")
    assert (e.sw, e.data) == (0x6A82, b"\x01")
    assert errors.UnsupportedCard("x", atr=b"\x3b", card_name="CPS4").card_name == "CPS4"
    assert errors.UnknownCard("x", atr=b"\x3b\x00").atr == b"\x3b\x00"
    assert errors.ReaderError("x", reader="r", code=5).code == 5
    assert isinstance(errors.PinBlocked(), errors.CardError)
    assert isinstance(errors.CertificateRevoked("x"), errors.CertificateInvalid)


def test_card_error_from_sw_uses_the_table():
    err = errors.CardError.from_sw(0x63C1)
    assert isinstance(err, errors.WrongPin) and err.tries_left == 1
