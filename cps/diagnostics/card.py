"""The card layers: the card application answers (a CPS3 over PC/SC, a CPS4 through
the Cryptolib's PKCS#11 module), its certificates decode, the PIN's tries and the
unblock code (a CPS3: read with GET DATA; a CPS4: the token's flags; no try spent)."""

from __future__ import annotations

from typing import Any, Dict

from ..card import KeyRole
from ..errors import (
    CardError,
    CardProtocolError,
    CertificateParseError,
    CpsError,
    NotSupported,
)
from .report import Check, _card_io_advice, _fail, _iso, _ok, _State, _warn


def _check_application(st: _State) -> Check:
    from ..open import open_card
    from ..pcsc import PcscConnection

    if st.cps4 is not None:
        return _check_cps4_token(st)
    try:
        st.conn = PcscConnection(st.info.name)
        st.card = open_card(connection=st.conn)
        number = st.card.card_number
    except (CpsError, OSError) as exc:
        return _fail("application", f"the card does not answer as a CPS3: {exc}",
                     _card_io_advice(exc), exc, reader=st.info.name)
    return _ok("application", f"the IAS-ECC application answers: card number {number}",
               card_number=number, protocol=getattr(st.conn, "protocol", None))


def _check_cps4_token(st: _State) -> Check:
    """A CPS4: its token in the Cryptolib's PKCS#11 module (no login, no APDU of ours)."""
    from ..errors import CryptolibRequired
    from ..open import open_cps4

    install = st.cps4
    try:
        st.card = open_cps4(st.info.name, install=install, atr=st.info.atr or b"")
        number = st.card.card_number
    except CryptolibRequired as exc:
        return _fail("application", f"the Cryptolib's module shows no CPS4 token: {exc}",
                     f"{exc.install_advice}.", exc, reader=st.info.name,
                     module=install.module)
    except (CpsError, OSError) as exc:
        return _fail("application", f"the CPS4 token cannot be read through the Cryptolib: "
                     f"{exc}", _card_io_advice(exc), exc, reader=st.info.name,
                     module=install.module)
    version = f" {install.version}" if install.version else ""
    return _ok("application", f"the CPS4 token answers through the Cryptolib CPS{version}: "
               f"card number {number}", card_number=number, cps4=True,
               token=getattr(st.card, "token_label", None), module=install.module)


def _check_certificates(st: _State) -> Check:
    card = st.card
    roles = [KeyRole.TECH] if card.contactless else [KeyRole.AUTH, KeyRole.SIGN]
    try:
        for role in roles:
            st.certs[role] = card.certificate(role)
        who = card.practitioner
    except CertificateParseError as exc:
        return _fail("certificates", str(exc), "A certificate on the card is unreadable: the "
                     "card must be replaced (ANS).", exc)
    except (CardError, CardProtocolError, NotSupported) as exc:
        return _fail("certificates", f"cannot read the certificates: {exc}",
                     _card_io_advice(exc), exc)
    certs = {role.value: _cert_data(cert) for role, cert in st.certs.items()}
    name = " ".join(filter(None, (who.first_name, who.last_name))) or who.idnat
    ident = f"{who.id_type.name} {who.national_id}"
    summary = (f"{' + '.join(r.value for r in roles)}: {name}, "
               f"{who.profession_label or who.card_type.value}, {ident}")
    return _ok("certificates", summary, certificates=certs, practitioner={
        "idnat": who.idnat, "id_type": who.id_type.name, "national_id": who.national_id,
        "last_name": who.last_name, "first_name": who.first_name,
        "profession_code": who.profession_code, "profession_label": who.profession_label,
        "card_type": who.card_type.value, "card_number": who.card_number})


def _cert_data(cert: Any) -> Dict[str, Any]:
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "serial": f"{cert.serial_number:X}",
            "not_before": _iso(cert.not_valid_before_utc),
            "not_after": _iso(cert.not_valid_after_utc)}


# --------------------------------------------------------------------------- PIN
def _check_pin(st: _State) -> Check:
    card = st.card
    if card.contactless:
        return Check("pin", "skipped", "contactless interface: the card has no PIN there",
                     data={"contactless": True})
    s = card.pin_status()   # GET DATA on the counters: no try spent
    data = {"tries_left": s.tries_left, "max_tries": s.max_tries, "blocked": s.blocked,
            "unblock_tries_left": s.unblock_tries_left,
            "unblock_max_tries": s.unblock_max_tries,
            "unblock_uses_left": s.unblock_uses_left, "unblock_blocked": s.unblock_blocked}
    unblock = _unblock_text(s)
    if s.blocked:
        if s.unblock_blocked:
            return _fail("pin", f"PIN blocked, and it can no longer be unblocked ({unblock})",
                         "The card is unusable: order a replacement card from the ANS.",
                         None, **data)
        return _fail("pin", f"PIN blocked ({unblock})",
                     "Unblock it with the unblock code (code de déblocage, sent to the holder "
                     "with the PIN): `cps pin unblock` sets a new PIN.", None, **data)
    if s.last_try:
        return _warn("pin", f"1 PIN try left of {s.max_tries}: the next wrong PIN blocks the "
                     f"card ({unblock})", "Present the PIN only when sure of it (a right PIN "
                     "resets the counter); if it is forgotten, use `cps pin unblock` with the "
                     "unblock code instead.", **data)
    if s.unblock_blocked:
        return _warn("pin", f"{s.tries_left}/{s.max_tries} PIN tries left, but the PIN can no "
                     f"longer be unblocked ({unblock})", "If the PIN blocks now the card is "
                     "lost: take care with it and plan a replacement card (ANS).", **data)
    return _ok("pin", f"{s.tries_left}/{s.max_tries} tries left; {unblock}", **data)


def _unblock_text(s: Any) -> str:
    if s.unblock_tries_left is None:
        return "unblock code state unknown"
    text = f"unblock code {s.unblock_tries_left}/{s.unblock_max_tries} tries"
    if s.unblock_uses_left is not None:
        text += f", {s.unblock_uses_left} unblock{'s' * (s.unblock_uses_left != 1)} left"
    return text


