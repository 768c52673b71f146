"""The walk: :func:`diagnose` runs the layers' checks from the bottom of the stack and
stops at the first broken one."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Iterable, List, Optional, Tuple

from .card import _check_application, _check_certificates, _check_pin
from .machine import Machine
from .pcsc import _check_atr, _check_card, _check_readers, _check_service
from .pkcs11 import _check_pkcs11
from .reachability import _check_revocation_sources
from .report import CARD_CHECKS, TITLES, Check, Report, _advice_for_error, _guarded, _State
from .trust import _check_chain, _check_revocation
from .workstation import check_workstation


def diagnose(reader: Optional[str] = None, *, module: Optional[str] = None,
             anchors: Any = None, crls: Iterable[Any] = (), online: bool = False,
             at: Optional[dt.datetime] = None, machine: Optional[Machine] = None,
             card: bool = True) -> Report:
    """Walk the stack and report what works, stopping at the first broken layer; then
    check the workstation around the card, whatever the walk found.

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
    :param machine: the machine the workstation checks read (a fake root in tests);
        default this computer.
    :param card: ``False`` runs the workstation checks only (no PC/SC, no card).

    The card walk's first failure comes first in :attr:`Report.first_failure`; a
    workstation failure is reported there only when the walk found none.
    """
    started = time.monotonic()
    at = at or dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) time")
    machine = machine or Machine.current()
    state = _State(reader=reader, module=module, anchors=anchors, crls=tuple(crls),
                   online=online, at=at, machine=machine)
    checks: List[Check] = []
    failed: Optional[str] = None
    try:
        for name, step in (_STEPS if card else ()):
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
    kind = state.entry.kind.value if state.entry is not None else None
    # GALSS channels are compared with the readers only when PC/SC listed them.
    listed = any(c.name == "readers" and c.status == "ok" for c in checks)
    for check in check_workstation(machine, card_kind=kind,
                                   readers=[r.name for r in state.readers] if listed else None):
        checks.append(check)
        if failed is None and check.status == "fail":
            failed = check.name
    return Report(ok=failed is None, first_failure=failed, checks=tuple(checks), at=at,
                  elapsed=time.monotonic() - started)


def _run(name: str, step: Callable[[_State], Check], state: _State) -> Check:
    return _guarded(name, lambda: step(state), _advice_for_error)


_STEPS: Tuple[Tuple[str, Callable[[_State], Check]], ...] = (
    ("pcsc-service", _check_service),
    ("readers", _check_readers),
    ("card", _check_card),
    ("atr", _check_atr),
    ("application", _check_application),
    ("certificates", _check_certificates),
    ("revocation-sources", _check_revocation_sources),
    ("chain", _check_chain),
    ("revocation", _check_revocation),
    ("pin", _check_pin),
    ("pkcs11", _check_pkcs11),
)
assert tuple(n for n, _ in _STEPS) == CARD_CHECKS  # noqa: S101 - one list, kept in step
