"""The walk: :func:`diagnose` runs the layers' checks from the bottom of the stack and
stops at the first broken one."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Callable, Iterable, List, Optional, Tuple

from ..errors import (
    CpsError,
)
from .card import _check_application, _check_certificates, _check_pin
from .pcsc import _check_atr, _check_card, _check_readers, _check_service
from .pkcs11 import _check_pkcs11
from .report import CHECKS, TITLES, Check, Report, _advice_for_error, _fail, _State
from .trust import _check_chain, _check_revocation

_log = logging.getLogger("cps.diagnostics")

def diagnose(reader: Optional[str] = None, *, module: Optional[str] = None,
             anchors: Any = None, crls: Iterable[Any] = (), online: bool = False,
             at: Optional[dt.datetime] = None) -> Report:
    """Walk the stack and report what works, stopping at the first broken layer.

    Never raises for a broken layer: failures are reported in the :class:`Report`.
    Never asks for a PIN and never spends a PIN try.

    :param reader: the reader, as for :func:`cps.open_card`: index, name
        substring or ATR prefix; ``None`` takes the first reader holding a CPS
        card (else the first holding any card, else the first reader).
    :param module: the PKCS#11 module to check; default every ANS Cryptolib and
        OpenSC module found in its usual place (and ``$CPS_PKCS11_MODULE``).
    :param anchors: a :class:`cps.trust.TrustStore`, or certificates (DER or
        cryptography objects: self-issued ones become anchors, the others
        intermediates); default ``TrustStore.igc_sante()``.
    :param crls: CRLs (DER bytes, cryptography CRLs, ``CrlIndex`` objects or
        paths of DER/PEM files) for revocation checking.
    :param online: download the CRLs the certificates point to (and ask OCSP),
        with a time limit.
    :param at: aware datetime at which certificates and CRLs are judged;
        default now.
    """
    started = time.monotonic()
    at = at or dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) time")
    state = _State(reader=reader, module=module, anchors=anchors, crls=tuple(crls),
                   online=online, at=at)
    checks: List[Check] = []
    failed: Optional[str] = None
    try:
        for name, step in _STEPS:
            if failed is not None:
                checks.append(Check(name, "skipped", f"not checked: {TITLES[failed]} failed",
                                    data={"after": failed}))
                continue
            check = _run(name, step, state)
            checks.append(check)
            if check.status == "fail":
                failed = name
            if name == "pin":
                state.close()  # release the card before any PKCS#11 module looks for it
    finally:
        state.close()
    return Report(ok=failed is None, first_failure=failed, checks=tuple(checks), at=at,
                  elapsed=time.monotonic() - started)


def _run(name: str, step: Callable[[_State], Check], state: _State) -> Check:
    try:
        return step(state)
    except CpsError as exc:
        _log.debug("check %s failed: %r", name, exc)
        return _fail(name, str(exc), _advice_for_error(exc), exc)
    except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
        _log.debug("check %s: unexpected error", name, exc_info=True)
        return Check(name, "fail", f"unexpected {type(exc).__name__}: {exc}",
                     "This is a bug or a broken installation: run `cps -l debug doctor` and "
                     "report its output to the cps project.",
                     {"error": type(exc).__name__, "unexpected": True}, exc)


_STEPS: Tuple[Tuple[str, Callable[[_State], Check]], ...] = (
    ("pcsc-service", _check_service),
    ("readers", _check_readers),
    ("card", _check_card),
    ("atr", _check_atr),
    ("application", _check_application),
    ("certificates", _check_certificates),
    ("chain", _check_chain),
    ("revocation", _check_revocation),
    ("pin", _check_pin),
    ("pkcs11", _check_pkcs11),
)
assert tuple(n for n, _ in _STEPS) == CHECKS  # noqa: S101 - one list, kept in step
