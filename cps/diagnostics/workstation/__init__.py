"""The workstation checks of ``cps doctor``: what a medical practice's computer needs
around the card, checked whatever the card walk found (a missing card must not hide a
browser misconfiguration).

==============  =========================================================================
``cryptolib``   the ANS Cryptolib CPS installed, its version (read without loading it),
                5.2 or later for CPS4 cards
``middleware``  OpenSC and the Cryptolib both registered for the card in one application
``browsers``    Firefox (deb/rpm, snap, flatpak), Chromium/Chrome's NSS database, the
                Windows certificate store: can each use the card?
``galss``       the GALSS installed, its channels serial (PSS) or PC/SC
``ccid``        USB readers whose id the CCID driver does not list
``remote``      a remote desktop session (RDP, Citrix, xrdp, SSH), the card redirected?
==============  =========================================================================

Every check reads the machine through one :class:`~cps.diagnostics.machine.Machine`,
so that tests run them on prepared fake roots of each platform.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from ..machine import Machine
from ..report import TITLES, WORKSTATION_CHECKS, Check, _guarded
from .browsers import check_browsers
from .ccid import check_ccid
from .common import Registration, registrations
from .cryptolib import check_cryptolib
from .galss import check_galss
from .middleware import check_middleware
from .remote import check_remote

__all__ = ["WORKSTATION_CHECKS", "WORKSTATION_TITLES", "check_workstation"]

WORKSTATION_TITLES = {name: TITLES[name] for name in WORKSTATION_CHECKS}


def check_workstation(machine: Optional[Machine] = None, *, card_kind: Optional[str] = None,
                      readers: Optional[List[str]] = None) -> List[Check]:
    """Run every workstation check on ``machine`` (default: this computer).

    :param card_kind: the kind of card the walk found (``"cps4"`` makes a missing or
        old Cryptolib a failure).
    :param readers: the PC/SC reader names the walk saw (GALSS channels are compared).
    """
    m = machine or Machine.current()
    found: List[List[Registration]] = []

    def regs() -> List[Registration]:  # read once, for the two checks that need them
        if not found:
            found.append(registrations(m))
        return found[0]

    steps: List[Tuple[str, Callable[[], Check]]] = [
        ("cryptolib", lambda: check_cryptolib(m, card_kind)),
        ("middleware", lambda: check_middleware(m, regs())),
        ("browsers", lambda: check_browsers(m, regs())),
        ("galss", lambda: check_galss(m, readers)),
        ("ccid", lambda: check_ccid(m)),
        ("remote", lambda: check_remote(m)),
    ]
    return [_guarded(name, step, _file_advice) for name, step in steps]


def _file_advice(exc: BaseException) -> str:
    """A workstation check reads files, the registry, USB listings: a typed error
    there names what it could not read."""
    return "Check the file named, or run `cps -l debug doctor` and report its output."
