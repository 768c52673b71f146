"""Diagnose a workstation: the library side of ``cps doctor``.

::

    from cps.diagnostics import diagnose

    report = diagnose()                         # never raises for a broken layer
    report.ok, report.first_failure             # True / None when nothing failed
    for check in report.checks:
        check.name, check.status, check.summary, check.advice, check.data

The walk follows the stack from the bottom and stops at the first broken
layer (the checks after it are ``"skipped"``):

==============  ==========================================================
``pcsc-service`` the PC/SC service (pcscd) answers
``readers``      PC/SC sees readers (and ``reader`` matches one)
``card``         a card is in the selected reader
``atr``          the ATR is a CPS3's (contactless: warning; CPS4 or unknown: failure)
``application``  the IAS-ECC application answers: the card number is read
``certificates`` the certificates are read and decode
``chain``        they validate to the trust anchors (revocation when CRLs or
                 ``online`` are given, else a warning says it was not checked)
``revocation``   the revocation information is current (time left)
``pin``          PIN tries left (warning at 1, failure when blocked) and the
                 unblock code's state
``pkcs11``       the PKCS#11 modules installed (ANS Cryptolib, OpenSC) load,
                 and do not compete for the card
==============  ==========================================================

Every failure or warning carries one actionable sentence (``advice``). The
walk never asks for a PIN and never spends a try (counters are read with GET
DATA), sends nothing to a card whose ATR is not a CPS3's, and is bounded in
time: PKCS#11 modules are loaded in a child process with a time limit and with
the PC/SC service hidden from them, so that no module talks to any card;
online CRL downloads have a deadline.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .atr import AtrEntry, CardKind, identify
from .card import KeyRole
from .errors import (
    CardError,
    CardIdentificationError,
    CardProtocolError,
    CardRemoved,
    CardReset,
    CertificateExpired,
    CertificateInvalid,
    CertificateParseError,
    CertificateRevoked,
    CpsError,
    CrlError,
    NoCard,
    NoReaders,
    NotSupported,
    PcscServiceUnavailable,
    ReaderError,
    ReaderNotFound,
    ReaderTimeout,
    RevocationError,
    SharingViolation,
    UnknownCard,
    UnsupportedCard,
    UntrustedCertificate,
)

__all__ = ["Check", "Report", "diagnose", "CHECKS", "TITLES", "STATUSES"]

_log = logging.getLogger("cps.diagnostics")

#: The checks, in the order of the walk.
CHECKS: Tuple[str, ...] = ("pcsc-service", "readers", "card", "atr", "application",
                           "certificates", "chain", "revocation", "pin", "pkcs11")
TITLES: Dict[str, str] = {
    "pcsc-service": "PC/SC service", "readers": "Readers", "card": "Card", "atr": "ATR",
    "application": "CPS3 application", "certificates": "Certificates", "chain": "Chain",
    "revocation": "Revocation", "pin": "PIN", "pkcs11": "PKCS#11 modules",
}
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
    :ivar checks: every check of :data:`CHECKS`, in order.
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


# --------------------------------------------------------------------------- the walk
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

    def close(self) -> None:
        card, conn, self.card, self.conn = self.card, self.conn, None, None
        for thing in (card, conn):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001, S110 - closing a broken link is best effort
                    pass


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


# --------------------------------------------------------------------------- PC/SC
def _check_service(st: _State) -> Check:
    from .readers import list_readers

    socket_path = os.environ.get("PCSCLITE_CSOCK_NAME") or "/run/pcscd/pcscd.comm"
    try:
        st.readers = list_readers()
    except PcscServiceUnavailable as exc:
        return _fail("pcsc-service", str(exc), _service_advice(exc, socket_path), exc,
                     socket=socket_path if sys.platform.startswith("linux") else None)
    n = len(st.readers)
    return _ok("pcsc-service", f"the PC/SC service answers ({n} reader{'s' * (n != 1)})",
               socket=socket_path if sys.platform.startswith("linux") else None)


def _service_advice(exc: PcscServiceUnavailable, socket_path: str) -> str:
    if exc.code is None and "pyscard" in str(exc):
        return ("Install pyscard in this Python environment: pip install pyscard "
                "(it builds with swig and libpcsclite-dev).")
    if sys.platform == "win32":
        return ("Start the Smart Card service: `sc start SCardSvr` as administrator "
                "(and set it to start automatically).")
    if os.environ.get("PCSCLITE_CSOCK_NAME"):
        return (f"PCSCLITE_CSOCK_NAME={socket_path} but no pcscd listens there: unset it "
                "to use the system pcscd, or start pcscd on that socket.")
    if exc.code == 0x8010001E:  # SCARD_E_SERVICE_STOPPED
        return ("pcscd stopped while in use: `systemctl restart pcscd.socket pcscd.service`, "
                "and see `journalctl -u pcscd` for why it stopped.")
    if not any(os.path.exists(p) for p in ("/usr/sbin/pcscd", "/sbin/pcscd",
                                           "/usr/local/sbin/pcscd")):
        return ("Install pcscd (Debian: `apt install pcscd`; RHEL: `dnf install pcsc-lite`), "
                "then start it: `systemctl enable --now pcscd.socket`.")
    return ("Start pcscd: `systemctl start pcscd.socket` as root (or run `pcscd` where "
            "there is no systemd).")


def _check_readers(st: _State) -> Check:
    from .readers import select_reader

    listing = [{"name": r.name, "card_present": r.card_present,
                "atr": r.atr.hex().upper() or None,
                "card_kind": r.card_kind.value if r.card_kind else None} for r in st.readers]
    if not st.readers:
        usb = _usb_devices()
        return _fail("readers", "pcscd sees no smart card reader", _no_reader_advice(usb),
                     NoReaders("no smart card reader is connected"), readers=[], usb=usb)
    try:
        st.info = select_reader(st.readers, st.reader)
    except ReaderNotFound as exc:
        return _fail("readers", f"{exc} (readers: {', '.join(r.name for r in st.readers)})",
                     "Choose one of the readers listed by `cps readers`: -r takes an index, a "
                     "name substring or an ATR prefix.", exc, readers=listing,
                     selector=st.reader)
    names = ", ".join(f"{r.name} ({'card' if r.card_present else 'empty'})" for r in st.readers)
    n = len(st.readers)
    return _ok("readers", f"{n} reader{'s' * (n != 1)}: {names}", readers=listing,
               selected=st.info.name)


def _no_reader_advice(usb: List[Dict[str, Any]]) -> str:
    terminals = [d for d in usb if d["vendor"] == "0b00"]
    if terminals:
        d = terminals[0]
        return (f"The SESAM-Vitale terminal plugged in (USB {d['vendor']}:{d['product']} "
                f"{d['name']}) is not a CCID reader pcscd can drive: read the CPS card in a "
                "CCID reader instead (docs/sysadmin.md).")
    ccid = [d for d in usb if d["ccid"]]
    unknown = [d for d in ccid if d.get("ccid_driver_lists") is False]
    if unknown:
        d = unknown[0]
        return (f"The reader plugged in ({d['name'] or 'USB'} {d['vendor']}:{d['product']}) is "
                "not in the CCID driver's list: install its vendor's PC/SC driver, or use a "
                "reader listed at https://ccid.apdu.fr.")
    if ccid:
        return (f"A CCID reader is plugged in ({ccid[0]['name'] or ccid[0]['vendor']}) but "
                "pcscd does not list it: `systemctl restart pcscd.socket pcscd.service` and "
                "look for a driver or permission error in `journalctl -u pcscd`.")
    return ("Plug in a CCID smart card reader and check that `pcsc_scan` lists it "
            "(SESAM-Vitale terminals are usually not CCID readers).")


_CCID_PLISTS = ("/etc/libccid_Info.plist",
                "/usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist",
                "/usr/lib64/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist")


def _ccid_listed() -> Optional[set]:
    """(vendor, product) pairs the installed CCID driver accepts; None without a driver."""
    import plistlib

    for path in _CCID_PLISTS:
        try:
            with open(path, "rb") as f:
                info = plistlib.load(f)
            return {(v.lower().replace("0x", ""), p.lower().replace("0x", ""))
                    for v, p in zip(info["ifdVendorID"], info["ifdProductID"])}
        except (OSError, KeyError, ValueError, AttributeError, plistlib.InvalidFileException):
            continue
    return None


def _usb_devices() -> List[Dict[str, Any]]:
    """USB readers from sysfs (Linux): vendor, product, name, CCID class, listed by the
    CCID driver. Cheap and bounded; asked only when pcscd sees no reader."""
    out: List[Dict[str, Any]] = []
    listed: Any = False
    for path in sorted(glob.glob("/sys/bus/usb/devices/*"))[:256]:
        vendor = _read_small(os.path.join(path, "idVendor"))
        if not vendor:
            continue
        product = _read_small(os.path.join(path, "idProduct"))
        name = " ".join(filter(None, (_read_small(os.path.join(path, "manufacturer")),
                                      _read_small(os.path.join(path, "product")))))
        ccid = any(_read_small(os.path.join(i, "bInterfaceClass")) == "0b"
                   for i in glob.glob(os.path.join(path, "*:*"))[:32])
        if ccid or vendor == "0b00":
            if listed is False:
                listed = _ccid_listed()
            out.append({"vendor": vendor, "product": product, "name": name, "ccid": ccid,
                        "ccid_driver_lists": None if listed is None
                        else (vendor.lower(), product.lower()) in listed})
    return out


def _read_small(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(256).strip()
    except OSError:
        return ""


def _check_card(st: _State) -> Check:
    info = st.info
    if info.card_present:
        return _ok("card", f"a card is in {info.name}", reader=info.name)
    if st.reader is None and len(st.readers) > 1:
        summary = f"no card in any of the {len(st.readers)} readers"
    else:
        summary = f"no card in {info.name}"
    return _fail("card", summary,
                 "Insert the CPS card fully, chip first and chip side up (a card inserted "
                 "upside down is not seen); if it is in, try another reader.",
                 NoCard(summary, reader=info.name), reader=info.name)


def _check_atr(st: _State) -> Check:
    atr = st.info.atr
    shown = atr.hex(" ").upper()
    entry = st.entry = identify(atr)
    data: Dict[str, Any] = {"atr": shown, "reader": st.info.name}
    if entry is None:
        known = _smartcard_list(atr)
        data["smartcard_list"] = known
        summary = f"not a CPS card: unknown ATR {shown}"
        if known:
            summary += f" ({known[0]})"
            advice = (f"pcsc-tools' smartcard_list.txt says this is \"{known[0]}\": insert "
                      "the CPS card instead.")
        else:
            advice = ("Look the ATR up in pcsc-tools' smartcard_list.txt (`pcsc_scan` shows "
                      "the match; https://smartcard-atr.apdu.fr); if it is a CPS card, "
                      "report the ATR to the cps project.")
        return _fail("atr", summary, advice, UnknownCard(summary, atr=atr), **data)
    data.update(card=entry.name, kind=entry.kind.value)
    if entry.kind is CardKind.CPS4:
        return _fail("atr", f"{entry.name}: a CPS4, recognised but not supported by cps",
                     "Use the ANS Cryptolib CPS >= 5.2 (PKCS#11) with CPS4 cards: cps "
                     "drives CPS3 cards only.",
                     UnsupportedCard("CPS4 cards are not supported", atr=atr,
                                     card_name=entry.name), **data)
    if entry.kind is CardKind.CPS3_CONTACTLESS:
        return _warn("atr", f"{entry.name}: identification only, no PIN and no signature",
                     "Insert the card in a contact reader (chip in the slot) to log in with "
                     "the PIN or sign.", **data)
    return _ok("atr", f"{entry.name}, ATR {atr.hex().upper()}", **data)


def _smartcard_list(atr: bytes) -> Optional[List[str]]:
    """Descriptions of ``atr`` in pcsc-tools' list (``None``: no list installed)."""
    text = None
    for candidate in SMARTCARD_LISTS:
        path = os.path.expanduser(candidate)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(8 * 1024 * 1024)
            break
        except OSError:
            continue
    if text is None:
        return None
    wanted = atr.hex(" ").upper()
    found: List[str] = []
    matching = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            if found:
                break
            matching = False
            continue
        if line[0] in " \t":
            if matching:
                found.append(line.strip())
            continue
        if found:
            break
        # Each ATR line is a regular expression over "3B 8F 80 ..." (pcsc_scan's way).
        try:
            matching = re.fullmatch(line.strip(), wanted, re.IGNORECASE) is not None
        except re.error:
            matching = False
    return [d for d in found if not d.startswith("http")][:3] or (found[:1] if found else [])


# --------------------------------------------------------------------------- the card
def _check_application(st: _State) -> Check:
    from .card import open_card
    from .pcsc import PcscConnection

    try:
        st.conn = PcscConnection(st.info.name)
        st.card = open_card(connection=st.conn)
        number = st.card.card_number
    except (CpsError, OSError) as exc:
        return _fail("application", f"the card does not answer as a CPS3: {exc}",
                     _card_io_advice(exc), exc, reader=st.info.name)
    return _ok("application", f"the IAS-ECC application answers: card number {number}",
               card_number=number, protocol=getattr(st.conn, "protocol", None))


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


# --------------------------------------------------------------------------- trust
def _trust_store(anchors: Any) -> Any:
    from .trust import TrustStore

    if anchors is None:
        return TrustStore.igc_sante()
    if isinstance(anchors, TrustStore):
        return anchors
    from .trust.anchors import to_der
    from .trust.certs import parse_cert

    roots: List[bytes] = []
    others: List[bytes] = []
    for cert in anchors:
        der = to_der(cert)
        parsed = parse_cert(der)
        (roots if parsed.subject == parsed.issuer else others).append(der)
    return TrustStore.from_certificates(roots, others, name="given anchors")


def _load_crl(item: Any) -> Any:
    """A CRL for the validator: paths are read (DER or PEM) and keep their name as source."""
    if isinstance(item, (str, os.PathLike)):
        from .trust.crlindex import CrlIndex

        path = os.fspath(item)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise CrlError(f"cannot read {path}: {exc.strerror}", source=path,
                           reason="unreadable") from None
        if raw.lstrip().startswith(b"-----BEGIN"):
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            try:
                raw = x509.load_pem_x509_crl(raw).public_bytes(Encoding.DER)
            except ValueError:
                raise CrlError(f"{path} is not a PEM CRL", source=path,
                               reason="malformed") from None
        return CrlIndex.load(raw, source=path)
    return item


def _check_chain(st: _State) -> Check:
    from .trust import Validator

    store = _trust_store(st.anchors)
    kwargs: Dict[str, Any] = {}
    if st.online:
        from .trust.fetch import Fetcher
        from .trust.ocsp import OcspClient

        fetcher = Fetcher(timeout=ONLINE_TIMEOUT, deadline=ONLINE_DEADLINE)
        kwargs.update(fetcher=fetcher, ocsp=OcspClient(fetcher, timeout=ONLINE_TIMEOUT))
    st.revocation_mode = "soft-fail" if (st.crls or st.online) else "off"
    try:
        validator = Validator(store, crls=[_load_crl(c) for c in st.crls],
                              revocation=st.revocation_mode, **kwargs)
    except (CrlError, CertificateParseError) as exc:
        return _fail("chain", f"unusable CRL: {exc}",
                     "Pass CRL files in DER or PEM (as published at "
                     f"http://{IGC_SANTE_CRL_HOST}/CRL/).", exc,
                     source=getattr(exc, "source", None))
    data: Dict[str, Any] = {"anchors": store.name, "revocation_mode": st.revocation_mode,
                            "crl_urls": _crl_urls(st.certs.values())}
    try:
        for role, cert in st.certs.items():
            purpose = KeyRole.SIGN if role is KeyRole.SIGN else KeyRole.AUTH
            st.results[role] = validator.validate(cert, at=st.at, purpose=purpose)
    except CertificateInvalid as exc:
        data.update(role=role.value, position=exc.position, subject=exc.subject,
                    reason=exc.reason)
        return _chain_failure(exc, store, cert, data)
    except RevocationError as exc:
        data.update(role=role.value)
        return _fail("chain", f"revocation could not be checked: {exc}",
                     _revocation_advice(str(exc), exc), exc, **data)
    data["paths"] = {role.value: [_cn(c) for c in result.path]
                     for role, result in st.results.items()}
    anchor = _cn(next(iter(st.results.values())).anchor)
    not_after = min(c.not_valid_after_utc for c in st.certs.values())
    left = not_after - st.at
    data.update(expires=_iso(not_after), days_left=left.days)
    roles = " + ".join(r.value for r in st.results)
    summary = f"{roles} valid up to {anchor} ({store.name})"
    if st.revocation_mode == "off":
        return _warn("chain", f"{summary}; revocation not checked",
                     "Pass the CRLs with --crl FILE or use --online: without them a "
                     "revoked card looks valid.", **data)
    if left < EXPIRY_WARNING:
        return _warn("chain", f"{summary}; expires in {left.days} days ({not_after:%Y-%m-%d})",
                     "Renew the card now: the ANS issues a new CPS card before the old one "
                     "expires, if asked in time.", **data)
    return _ok("chain", summary, **data)


def _crl_urls(certs: Iterable[Any]) -> List[str]:
    """The CRL distribution points the certificates name (what --online would fetch)."""
    from cryptography import x509

    urls: List[str] = []
    for cert in certs:
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            continue
        for point in points:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) and name.value not in urls:
                    urls.append(name.value)
    return urls


def _chain_failure(exc: CertificateInvalid, store: Any, cert: Any,
                   data: Dict[str, Any]) -> Check:
    leaf = exc.position in (0, None)
    if isinstance(exc, CertificateRevoked):
        when = _day(exc.revocation_date)
        why = f" ({exc.revocation_reason})" if exc.revocation_reason else ""
        data.update(revocation_date=_iso(exc.revocation_date),
                    revocation_reason=exc.revocation_reason)
        if leaf:
            return _fail("chain", f"the card's certificate was revoked on {when}{why}",
                         "The card was revoked (opposition) and can no longer be used: ask the "
                         "ANS for a replacement card.", exc, **data)
        return _fail("chain", f"a CA of the path was revoked on {when}{why}: {exc.subject}",
                     "Every card of that CA is refused: check the ANS announcements and "
                     "update cps.", exc, **data)
    if isinstance(exc, CertificateExpired):
        data.update(not_before=_iso(exc.not_before), not_after=_iso(exc.not_after))
        if exc.reason == "not-yet-valid":
            return _fail("chain", f"certificate not valid before {_day(exc.not_before)}: "
                         f"{exc.subject}", "Check this computer's date, time and time zone "
                         "(`timedatectl`); a card fresh from the ANS is valid from its "
                         "issue date.", exc, **data)
        if leaf:
            return _fail("chain", f"the card's certificates expired on {_day(exc.not_after)}",
                         "The card must be renewed: order a new CPS card from the ANS (the "
                         "expired one cannot be extended).", exc, **data)
        return _fail("chain", f"a CA certificate of the path expired: {exc.subject}",
                     "Update cps (its bundled anchors), or the anchors given with --anchors.",
                     exc, **data)
    if isinstance(exc, UntrustedCertificate):
        issuer = cert.issuer.rfc4514_string()
        data["issuer"] = issuer
        if "TEST" in issuer.upper() and store.name == "IGC-Santé":
            return _fail("chain", f"a TEST card: its issuer ({_cn_of(issuer)}) is not a "
                         "production IGC-Santé CA", "This card comes from a TEST PKI: use "
                         "--anchors test (the emulator's) or the TEST CA certificates with "
                         "--anchors FILE.", exc, **data)
        return _fail("chain", f"no path to the trust anchors ({store.name}): issuer "
                     f"{_cn_of(issuer)}", "This is not a genuine IGC-Santé card, or its CA is "
                     "not among the anchors: give the right ones with --anchors FILE.",
                     exc, **data)
    return _fail("chain", f"the certificate path is invalid ({exc.reason}): {exc}",
                 "The card does not meet the IGC-Santé certificate profile and cannot be "
                 "used: report it to the ANS.", exc, **data)


def _check_revocation(st: _State) -> Check:
    if st.revocation_mode == "off":
        return Check("revocation", "skipped",
                     "not checked: no CRL given (--crl) and not online (--online)",
                     data={"mode": "off"})
    entries = _revocation_entries(st)
    unknown = [e for e in entries if e["status"] != "good"]
    public = [{k: (_iso(v) if k == "next_update" else v) for k, v in e.items()
               if k != "issuer"} for e in entries]
    if unknown:
        e = unknown[0]
        detail = _dedupe_url(e["failures"][0]) if e["failures"] else "no revocation source"
        return _fail("revocation", f"no usable revocation information for {e['certificate']}: "
                     f"{detail}", _revocation_advice(detail, None, e["issuer"], st.online),
                     None, sources=public)
    dated = [e["next_update"] for e in entries if e["next_update"] is not None]
    if not dated:
        return _ok("revocation", "not revoked (the answers carry no next update)",
                   sources=public)
    soonest = min(dated)
    left = soonest - st.at
    summary = (f"not revoked; CRLs current for {_duration(left)} more (until "
               f"{soonest:%Y-%m-%d %H:%M} UTC)")
    if left < dt.timedelta(hours=1):
        return _warn("revocation", summary,
                     "Fetch fresh CRLs soon: IGC-Santé publishes them daily from 07:00 "
                     f"(Paris time) at http://{IGC_SANTE_CRL_HOST}/CRL/.", sources=public,
                     next_update=_iso(soonest), seconds_left=int(left.total_seconds()))
    return _ok("revocation", summary, sources=public, next_update=_iso(soonest),
               seconds_left=int(left.total_seconds()))


def _revocation_entries(st: _State) -> List[Dict[str, Any]]:
    """One entry per certificate of the validated paths (anchors excluded)."""
    seen: Dict[bytes, Dict[str, Any]] = {}
    for role, result in st.results.items():
        path = result.path
        for status in result.revocation:
            if status.status == "not-checked" or status.subject_der in seen:
                continue
            position = status.position
            label = (f"the {role.value} certificate" if position == 0
                     else _cn(path[position]))
            issuer = _cn(path[position + 1]) if position + 1 < len(path) else ""
            seen[status.subject_der] = {
                "certificate": label, "issuer": issuer, "status": status.status,
                "source": status.source, "next_update": status.next_update,
                "failures": list(status.failures)}
    return list(seen.values())


def _dedupe_url(text: str) -> str:
    # The validator prefixes the URL, and the fetcher's message repeats it.
    return re.sub(r"^(\S+): \1: ", r"\1: ", text)


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


# --------------------------------------------------------------------------- PKCS#11
# Runs in a child process: a broken module may crash or hang, and none may
# reach a card (the PC/SC socket is hidden from it): only load, C_Initialize,
# C_GetInfo, C_Finalize.
_PROBE = r"""
import ctypes, json, sys
out = {"loadable": False}
try:
    class V(ctypes.Structure):
        _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]
    class Info(ctypes.Structure):
        if sys.platform == "win32":  # PKCS#11 packs its structures to 1 byte on Windows
            _pack_ = 1
        _fields_ = [("cryptoki", V), ("manufacturer", ctypes.c_char * 32),
                    ("flags", ctypes.c_ulong), ("description", ctypes.c_char * 32),
                    ("library", V)]
    F = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)
    class FL(ctypes.Structure):
        if sys.platform == "win32":
            _pack_ = 1
        _fields_ = [("version", V), ("C_Initialize", F), ("C_Finalize", F),
                    ("C_GetInfo", ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.POINTER(Info)))]
    try:
        lib = ctypes.CDLL(sys.argv[1])
    except OSError as exc:
        out["error"] = "cannot be loaded: " + str(exc)
        raise SystemExit
    try:
        get = lib.C_GetFunctionList
    except AttributeError:
        out["error"] = "not a PKCS#11 module (no C_GetFunctionList)"
        raise SystemExit
    get.restype = ctypes.c_ulong
    fl = ctypes.POINTER(FL)()
    rv = get(ctypes.byref(fl))
    if rv or not fl:
        out["error"] = "C_GetFunctionList failed: rv=0x%X" % rv
        raise SystemExit
    rv = fl.contents.C_Initialize(None)
    if rv not in (0, 0x191):
        out["error"] = "C_Initialize failed: rv=0x%X" % rv
        raise SystemExit
    info = Info()
    rv = fl.contents.C_GetInfo(ctypes.byref(info))
    if rv:
        out["error"] = "C_GetInfo failed: rv=0x%X" % rv
    else:
        out.update(loadable=True,
                   manufacturer=info.manufacturer.decode("utf-8", "replace").strip(),
                   description=info.description.decode("utf-8", "replace").strip(),
                   version="%d.%d" % (info.library.major, info.library.minor),
                   cryptoki="%d.%d" % (info.cryptoki.major, info.cryptoki.minor))
    fl.contents.C_Finalize(None)
finally:
    sys.stdout.write(json.dumps(out))
"""


def _check_pkcs11(st: _State) -> Check:
    from .pkcs11_modules import CRYPTOLIB, candidate_paths, install_advice, module_candidates

    if st.module:
        candidates = [st.module]
    else:  # the same search as open_card(backend="pkcs11"), but every module found
        env = os.environ.get("CPS_PKCS11_MODULE")
        candidates = ([env] if env else []) + [c.path for c in module_candidates() if c.exists]
    found, real_seen = [], set()
    for path in candidates:
        if os.path.isfile(path) and os.path.realpath(path) not in real_seen:
            real_seen.add(os.path.realpath(path))
            found.append(path)
    registrations = _registrations()
    if st.module and not found:
        return _fail("pkcs11", f"no PKCS#11 module at {st.module}",
                     "Give the path of an installed module (ANS Cryptolib: "
                     f"{candidate_paths(CRYPTOLIB)[0]}), or {_lower(install_advice())}.", None,
                     modules=[], registrations=registrations)
    if not found:
        return _warn("pkcs11", "no PKCS#11 module installed (cps itself needs none)",
                     f"{install_advice()}, if browsers or other applications must use the "
                     "card.",
                     modules=[], registrations=registrations)
    modules = [_probe_module(path) for path in found]
    good = [m for m in modules if m["loadable"]]
    bad = [m for m in modules if not m["loadable"]]
    data = {"modules": modules, "registrations": registrations}
    if not good:
        m = bad[0]
        return _fail("pkcs11", f"{m['path']} {m['error']}",
                     f"Reinstall that module ({_deps_tool(m['path'])} shows missing libraries) "
                     "or remove it.", None, **data)
    names = ", ".join(f"{_module_label(m)}" for m in good)
    cryptolib = [m for m in good if m["kind"] == "cryptolib"]
    opensc = [m for m in good if m["kind"] == "opensc" and _version(m) >= _OPENSC_CLAIMS_CPX]
    if cryptolib and opensc and not st.module:
        both = [r["where"] for r in registrations if r["kind"] == "opensc"
                and any(o["where"] == r["where"] for o in registrations
                        if o["kind"] == "cryptolib")]
        where = f" (both registered in {both[0]})" if both else ""
        return _warn("pkcs11", f"{names}: OpenSC {opensc[0]['version']} also claims CPS3 "
                     f"cards{where}",
                     "Give each application one middleware for the card: in Firefox keep only "
                     "the ANS \"Module de sécurité CPS\" (remove OpenSC there, or its p11-kit "
                     "registration opensc-pkcs11.module).", **data)
    if bad:
        m = bad[0]
        return _warn("pkcs11", f"{names} loads; {m['path']} {m['error']}",
                     f"Reinstall or remove {m['path']} ({_deps_tool(m['path'])} shows missing "
                     "libraries).", **data)
    verb = "loads" if len(good) == 1 else "load"
    vias = [v for m in good for v in _registered_via(m["path"], registrations)]
    where = f" (registered with {', '.join(dict.fromkeys(vias))})" if vias else \
        " (registered nowhere: browsers will not use it)"
    return _ok("pkcs11", f"{names} {verb}{where}", **data)


def _lower(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:]


def _deps_tool(path: str) -> str:
    """The command showing which libraries a module misses, on this platform."""
    if sys.platform == "win32":
        return "Dependencies (github.com/lucasg/Dependencies)"
    if sys.platform == "darwin":
        return f"`otool -L {path}`"
    return f"`ldd {path}`"


def _probe_module(path: str) -> Dict[str, Any]:
    env = dict(os.environ)
    # No PC/SC for the module: loading it must not touch any card (OpenSC's
    # C_Initialize would otherwise bind every card in every reader).
    env["PCSCLITE_CSOCK_NAME"] = os.path.join(os.sep, "nonexistent", "cps-doctor",
                                              "pcscd.comm")
    out: Dict[str, Any] = {"path": path, "loadable": False}
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _PROBE, path],  # noqa: S603
                              capture_output=True, text=True, env=env,
                              timeout=PKCS11_PROBE_TIMEOUT, check=False)
        out.update(json.loads(done.stdout or "{}"))
        if not out.get("loadable") and "error" not in out:
            out["error"] = f"crashed the loader (exit {done.returncode})"
    except subprocess.TimeoutExpired:
        out["error"] = f"did not initialise in {PKCS11_PROBE_TIMEOUT:.0f} s"
    except (OSError, ValueError) as exc:
        out["error"] = f"could not be probed: {exc}"
    out["kind"] = _module_kind(path, out.get("manufacturer", ""))
    return out


def _module_kind(path: str, manufacturer: str) -> str:
    lowered = (path + " " + manufacturer).lower()
    if "cps3_pkcs11" in lowered or "cps_pkcs11" in lowered or manufacturer in ("ANS", "ASIP"):
        return "cryptolib"
    if "opensc" in lowered:
        return "opensc"
    if "softhsm" in lowered:
        return "softhsm"
    return "other"


def _module_label(m: Dict[str, Any]) -> str:
    kind = {"cryptolib": "ANS Cryptolib", "opensc": "OpenSC", "softhsm": "SoftHSM2"}.get(
        m["kind"], m.get("manufacturer") or os.path.basename(m["path"]))
    return f"{kind} {m.get('version', '')}".strip()


def _version(m: Dict[str, Any]) -> Tuple[int, int]:
    try:
        major, minor = str(m.get("version", "0.0")).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def _registrations() -> List[Dict[str, str]]:
    """Where PKCS#11 modules are registered: p11-kit, NSS databases, Firefox manifests."""
    home = os.path.expanduser("~")
    out: List[Dict[str, str]] = []

    def add(via: str, where: str, module: str) -> None:
        if module:
            out.append({"via": via, "where": where, "module": module,
                        "kind": _module_kind(module, "")})

    for pattern in ("/usr/share/p11-kit/modules/*.module", "/etc/pkcs11/modules/*.module",
                    f"{home}/.config/pkcs11/modules/*.module"):
        for path in sorted(glob.glob(pattern))[:64]:
            for line in _read_small_lines(path):
                if line.startswith("module:"):
                    add("p11-kit", path, line.split(":", 1)[1].strip())
    for pattern in ("/etc/pki/nssdb/pkcs11.txt", f"{home}/.pki/nssdb/pkcs11.txt",
                    f"{home}/.mozilla/firefox/*/pkcs11.txt",
                    f"{home}/snap/firefox/common/.mozilla/firefox/*/pkcs11.txt"):
        for path in sorted(glob.glob(pattern))[:32]:
            via = "Firefox" if "firefox" in path else "NSS"
            for line in _read_small_lines(path):
                if line.startswith("library="):
                    add(via, os.path.dirname(path), line.split("=", 1)[1].strip())
    for pattern in ("/usr/lib/mozilla/pkcs11-modules/*.json",
                    "/usr/lib64/mozilla/pkcs11-modules/*.json"):
        for path in sorted(glob.glob(pattern))[:32]:
            try:
                add("Firefox", path,
                    str(json.loads("\n".join(_read_small_lines(path))).get("path", "")))
            except (ValueError, AttributeError):
                continue
    return out


def _registered_via(module_path: str, registrations: List[Dict[str, str]]) -> List[str]:
    """How a module is registered (p11-kit, NSS, Firefox): p11-kit names modules by file name."""
    name = os.path.basename(module_path)
    vias: List[str] = []
    for r in registrations:
        if os.path.basename(r["module"]) == name and r["via"] not in vias:
            vias.append(r["via"])
    return vias


def _read_small_lines(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.strip() for line in f.read(64 * 1024).splitlines()]
    except OSError:
        return []


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
