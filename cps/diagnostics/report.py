"""What a diagnosis reports (:class:`Check`, :class:`Report`), the walk's state, and
the helpers every layer's checks share (advice for an error, dates, names)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..atr import AtrEntry
from ..card import KeyRole
from ..errors import (
    CardError,
    CardIdentificationError,
    CardProtocolError,
    CardRemoved,
    CardReset,
    CpsError,
    NoCard,
    NoReaders,
    PcscServiceUnavailable,
    ReaderError,
    ReaderNotFound,
    ReaderTimeout,
    RevocationError,
    SharingViolation,
)

_log = logging.getLogger("cps.diagnostics")

#: The checks, in the order of the walk.
CHECKS: Tuple[str, ...] = ("pcsc-service", "readers", "card", "atr", "application",
                           "certificates", "revocation-sources", "chain", "revocation", "pin",
                           "pkcs11")
TITLES: Dict[str, str] = {
    "pcsc-service": "PC/SC service", "readers": "Readers", "card": "Card", "atr": "ATR",
    "application": "Card application", "certificates": "Certificates",
    "revocation-sources": "Revocation sources", "chain": "Chain",
    "revocation": "Revocation", "pin": "PIN", "pkcs11": "PKCS#11 modules",
}
#: The card walk's checks (stopping at the first broken layer), then the workstation's,
#: which run whatever the walk found (cps.diagnostics.workstation).
CARD_CHECKS: Tuple[str, ...] = CHECKS
WORKSTATION_CHECKS: Tuple[str, ...] = ("cryptolib", "middleware", "browsers", "galss", "ccid",
                                       "remote")
CHECKS = CARD_CHECKS + WORKSTATION_CHECKS
TITLES.update({"cryptolib": "Cryptolib CPS", "middleware": "Middleware conflicts",
               "browsers": "Browsers", "galss": "GALSS", "ccid": "CCID driver",
               "remote": "Remote session"})
STATUSES = ("ok", "warn", "fail", "skipped")

#: A certificate expiring sooner than this gives a warning (renewal takes time).
EXPIRY_WARNING = dt.timedelta(days=30)
#: Time limit for loading one PKCS#11 module in its child process.
PKCS11_PROBE_TIMEOUT = 10.0
#: Online revocation: per socket operation, and per download.
ONLINE_TIMEOUT, ONLINE_DEADLINE = 5.0, 20.0
#: Where pcsc-tools installs its ATR list (Debian, RHEL, a user's copy).
SMARTCARD_LISTS = ("/usr/share/pcsc/smartcard_list.txt", "/usr/share/pcsc-tools/smartcard_list.txt",
                   "~/.cache/smartcard_list.txt", "~/.smartcard_list.txt")
IGC_SANTE_CRL_HOST = "igc-sante.esante.gouv.fr"
_OPENSC_CLAIMS_CPX = (0, 22)   # OpenSC 0.22.0 added the IAS/ECC CPx driver (cps-domain 1.10)


# --------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class Check:
    """The finding of one check.

    :ivar name: one of :data:`CHECKS`.
    :ivar status: ``"ok"``, ``"warn"`` (works, with a caveat), ``"fail"`` (this
        layer is broken) or ``"skipped"`` (not run: a layer below failed, or it
        does not apply).
    :ivar summary: what was found, one line.
    :ivar advice: what to do about it, one sentence (empty when ``ok``).
    :ivar data: the facts, JSON-serialisable (ATR, reader, dates, counters...).
    :ivar error: the library error behind a failure, when there is one (not
        serialised; the CLI maps it to its exit code).
    """

    name: str
    status: str
    summary: str
    advice: str = ""
    data: Dict[str, Any] = field(default_factory=dict, hash=False)
    error: Optional[BaseException] = field(default=None, repr=False, compare=False, hash=False)

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    def as_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status,
                "summary": self.summary, "advice": self.advice, "data": self.data}


@dataclass(frozen=True)
class Report:
    """What :func:`diagnose` found.

    :ivar ok: no check failed (warnings allowed).
    :ivar first_failure: the name of the failed check, ``None`` when ``ok``.
    :ivar checks: the checks run, in the order of :data:`CHECKS` (every one of them,
        except the card walk's with ``diagnose(card=False)``).
    :ivar at: the time certificates and CRLs were judged at.
    :ivar elapsed: seconds the walk took.
    """

    ok: bool
    first_failure: Optional[str]
    checks: Tuple[Check, ...]
    at: Optional[dt.datetime] = None
    elapsed: float = 0.0

    def check(self, name: str) -> Check:
        """The check called ``name``.

        :raises KeyError: no such check.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def failure(self) -> Optional[Check]:
        """The failed check, ``None`` when ``ok``."""
        return self.check(self.first_failure) if self.first_failure else None

    @property
    def warnings(self) -> Tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "warn")

    def as_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "first_failure": self.first_failure,
                "at": _iso(self.at), "elapsed": round(self.elapsed, 3),
                "checks": [c.as_dict() for c in self.checks]}


@dataclass
class _State:
    reader: Optional[str]
    module: Optional[str]
    anchors: Any
    crls: Sequence[Any]
    online: bool
    at: dt.datetime
    readers: List[Any] = field(default_factory=list)
    info: Any = None                    # the selected ReaderInfo
    entry: Optional[AtrEntry] = None
    conn: Any = None
    card: Any = None
    certs: Dict[KeyRole, Any] = field(default_factory=dict)
    results: Dict[KeyRole, Any] = field(default_factory=dict)
    revocation_mode: str = "off"
    machine: Any = None                 # the Machine the workstation checks read
    cps4: Any = None                    # a CPS4 used through this CryptolibInstall

    def close(self) -> None:
        card, conn, self.card, self.conn = self.card, self.conn, None, None
        for thing in (card, conn):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001, S110 - closing a broken link is best effort
                    pass


def _ok(name: str, summary: str, **data: Any) -> Check:
    return Check(name, "ok", summary, "", data)


def _warn(name: str, summary: str, advice: str, **data: Any) -> Check:
    return Check(name, "warn", summary, advice, data)


def _fail(name: str, summary: str, advice: str, error: Optional[BaseException] = None,
          **data: Any) -> Check:
    if error is not None:
        data.setdefault("error", type(error).__name__)
        code = getattr(error, "code", None)
        if isinstance(code, int):
            data.setdefault("code", f"0x{code & 0xFFFFFFFF:08X}")
    return Check(name, "fail", summary, advice, data, error)


def _guarded(name: str, check: Callable[[], Check],
             advice: Callable[[BaseException], str]) -> Check:
    """Run one check: a library error becomes its failure (with ``advice(error)``),
    anything else a failure saying it is a bug; a doctor reports, it does not crash."""
    try:
        return check()
    except CpsError as exc:
        _log.debug("check %s failed: %r", name, exc)
        return _fail(name, str(exc), advice(exc), exc)
    except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
        _log.debug("check %s: unexpected error", name, exc_info=True)
        return Check(name, "fail", f"unexpected {type(exc).__name__}: {exc}",
                     "This is a bug or a broken installation: run `cps -l debug doctor` and "
                     "report its output to the cps project.",
                     {"error": type(exc).__name__, "unexpected": True}, exc)


# --------------------------------------------------------------------------- helpers
def _advice_for_error(exc: BaseException) -> str:
    """Advice for an error met where no check-specific advice applies."""
    if isinstance(exc, PcscServiceUnavailable):
        return "Start pcscd: `systemctl start pcscd.socket` as root."
    if isinstance(exc, (NoReaders, ReaderNotFound)):
        return "Plug in a CCID reader, or pick one listed by `cps readers` with -r."
    if isinstance(exc, (NoCard, CardRemoved, CardReset, SharingViolation, ReaderTimeout)):
        return _card_io_advice(exc)
    if isinstance(exc, CardIdentificationError):
        return "Insert a CPS3 card."
    if isinstance(exc, RevocationError):
        return _revocation_advice(str(exc), exc)
    if isinstance(exc, ReaderError):
        return "Reinsert the card and check the reader with `pcsc_scan`."
    return "Run `cps -l debug doctor` for details, and report the output if this looks wrong."


def _cn(cert: Any) -> str:
    from cryptography.x509.oid import NameOID

    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else cert.subject.rfc4514_string()


def _cn_of(rfc4514: str) -> str:
    match = re.search(r"(?:^|,)CN=((?:\\.|[^,])+)", rfc4514)
    return match.group(1).replace("\\", "") if match else rfc4514


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d}"
    return f"{max(seconds, 0) // 60} min"


def _day(moment: Optional[dt.datetime]) -> str:
    return f"{moment:%Y-%m-%d}" if moment is not None else "an unknown date"


def _iso(moment: Optional[dt.datetime]) -> Optional[str]:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")




def _card_io_advice(exc: BaseException) -> str:
    if isinstance(exc, SharingViolation):
        return ("Another program holds the card exclusively (CPS Gestion, a browser, "
                "scdaemon, `pcsc_scan`...): close it and run cps doctor again.")
    if isinstance(exc, (NoCard, CardRemoved, CardReset)):
        return "The card was removed or reset during the check: leave it in and run again."
    if isinstance(exc, ReaderTimeout):
        return ("The card does not answer: clean the chip, reinsert it or try another "
                "reader; a card mute everywhere is defective and must be replaced (ANS).")
    if isinstance(exc, (CardError, CardProtocolError)):
        return ("The card answered like no CPS3 should: try another reader, then have the "
                "card replaced (ANS) if it fails there too.")
    return _advice_for_error(exc)


def _revocation_advice(detail: str, exc: Optional[BaseException], issuer: str = "",
                       online: bool = False) -> str:
    text = detail.lower()
    if "expired" in text or "next update was" in text:
        return (f"The CRL is out of date: fetch the current one (IGC-Santé publishes daily "
                f"from 07:00, Paris time, at http://{IGC_SANTE_CRL_HOST}/CRL/) and check that "
                "this machine reaches that host (firewall, proxy: http_proxy).")
    if any(w in text for w in ("unreachable", "timeout", "timed out", "http-error", "refused",
                               "name or service", "resolve")):
        host = re.search(r"https?://([^/:\s]+)", detail)
        return (f"The CRL server cannot be reached: allow HTTP to "
                f"{host.group(1) if host else IGC_SANTE_CRL_HOST} through the firewall or set "
                "http_proxy, or pass downloaded CRLs with --crl.")
    if "future" in text:
        return "Check this computer's date, time and time zone (`timedatectl`)."
    if "signature" in text or "scope" in text:
        return ("The CRL given is not the one of this CA (or is corrupted): pass the CRL "
                "published for it.")
    who = f" of {issuer}" if issuer else ""
    if online:
        return (f"No revocation source answered for the CRL{who}: check the network "
                f"access to {IGC_SANTE_CRL_HOST}, or pass the CRL with --crl.")
    return (f"Pass the CRL{who} with --crl FILE (every CA of the path needs its CRL), "
            "or use --online.")


