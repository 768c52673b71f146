"""Diagnose a workstation: the library side of ``cps doctor``.

::

    from cps.diagnostics import diagnose

    report = diagnose()                         # never raises for a broken layer
    report.ok, report.first_failure             # True / None when nothing failed
    for check in report.checks:
        check.name, check.status, check.summary, check.advice, check.data

The walk follows the stack from the bottom and stops at the first broken
layer (the checks after it are ``"skipped"``):

====================== ==================================================
``pcsc-service``       the PC/SC service (pcscd) answers
``readers``            PC/SC sees readers (and ``reader`` matches one)
``card``               a card is in the selected reader
``atr``                the ATR is a CPS3's (contactless: warning; unknown:
                       failure; CPS4: fine with the Cryptolib 5.2 or later,
                       the CPS3 checks below then skipped)
``application``        the IAS-ECC application answers: the card number is read
``certificates``       the certificates are read and decode
``revocation-sources`` (``online`` only) the CRL, delta CRL, OCSP and caIssuers
                       endpoints the certificates name answer (bounded probes)
``chain``              they validate to the trust anchors (revocation when CRLs
                       or ``online`` are given, else a warning says it was not
                       checked)
``revocation``         the revocation information is current (time left)
``pin``                PIN tries left (warning at 1, failure when blocked) and
                       the unblock code's state
``pkcs11``             the PKCS#11 modules installed (ANS Cryptolib, OpenSC)
                       load, and do not compete for the card
====================== ==================================================

Then the workstation checks run whatever the walk found (a missing card must not
hide a browser misconfiguration): ``cryptolib``, ``middleware``, ``browsers``,
``galss``, ``ccid``, ``remote`` (:mod:`cps.diagnostics.workstation`). They read the
machine through a :class:`~cps.diagnostics.machine.Machine` (``diagnose(machine=...)``:
a prepared fake root of Linux, Windows or macOS in tests); ``diagnose(card=False)``
runs them alone. The walk's first failure comes first in ``first_failure``.

Every failure or warning carries one actionable sentence (``advice``). The
walk never asks for a PIN and never spends a try (counters are read with GET
DATA), sends nothing to a card whose ATR is not a CPS3's, and is bounded in
time: PKCS#11 modules are loaded in a child process with a time limit and with
the PC/SC service hidden from them (on Linux a mount namespace with an empty
pcscd socket directory; on Windows and macOS they are not loaded at all), so
that no module talks to any card; the Cryptolib's version is read from its
installer's records, never by loading it;
online CRL downloads have a deadline.

The package has one module per checked layer (``pcsc``: service, readers,
card, ATR; ``card``: application, certificates, PIN; ``reachability``: the
revocation sources; ``trust``: chain and revocation; ``pkcs11``: the modules),
the ``workstation`` package (one module per workstation check), ``machine`` and
``registry`` (how the workstation checks read the machine), ``report`` (what a
check says, the shared advice) and ``walk`` (:func:`diagnose`, the order of the
checks).
"""

from __future__ import annotations

from .report import (  # noqa: F401 - the package's names, as they were in one module
    CARD_CHECKS,
    CHECKS,
    EXPIRY_WARNING,
    IGC_SANTE_CRL_HOST,
    ONLINE_DEADLINE,
    ONLINE_TIMEOUT,
    PKCS11_PROBE_TIMEOUT,
    SMARTCARD_LISTS,
    STATUSES,
    TITLES,
    WORKSTATION_CHECKS,
    Check,
    Report,
)
from .walk import diagnose

__all__ = ["Check", "Report", "diagnose", "CHECKS", "CARD_CHECKS", "WORKSTATION_CHECKS",
           "TITLES", "STATUSES"]
