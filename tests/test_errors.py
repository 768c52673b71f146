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


def test_error_for_sw_uses_the_table():
    from cps.sw import error_for_sw

    err = error_for_sw(0x63C1)
    assert isinstance(err, errors.WrongPin) and err.tries_left == 1


def test_certificate_errors_name_the_certificate():
    err = errors.CertificateInvalid("bad signature", reason="signature", position=1,
                                    subject="CN=TEST AC")
    assert str(err) == "bad signature [path position 1: CN=TEST AC]"
    assert err.args == ("bad signature",)  # the message itself, the context in str()
    leaf = errors.CertificateExpired("certificate expired on 2026-01-01 00:00 UTC",
                                     position=0, subject="CN=810100123453")
    assert str(leaf).endswith("[leaf, path position 0: CN=810100123453]")
    # named once: a message that already says the subject does not repeat it
    named = errors.CertificatePurposeError("CN=X is not for signing", subject="CN=X")
    assert str(named) == "CN=X is not for signing [leaf, path position 0]"
    assert str(errors.CertificateInvalid("no context")) == "no context"


def test_revocation_unavailable_names_the_certificate_when_about_one():
    err = errors.RevocationUnavailable("no usable revocation information", position=1,
                                       subject="CN=TEST AC", reason="expired")
    assert err.subject == "CN=TEST AC" and str(err).endswith("[path position 1: CN=TEST AC]")
    fetch = errors.RevocationUnavailable("http://x/crl: HTTP 404", source="http://x/crl")
    assert str(fetch) == "http://x/crl: HTTP 404" and fetch.subject == ""


def test_nonce_store_unavailable_carries_the_store():
    err = errors.NonceStoreUnavailable("nonce store unavailable", store="RedisNonceStore")
    assert isinstance(err, errors.AuthError) and err.store == "RedisNonceStore"
    assert err.reason == "nonce-store-unavailable"
    assert "NonceStoreUnavailable" in errors.__all__
