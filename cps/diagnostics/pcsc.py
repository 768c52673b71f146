"""The PC/SC layers: the service (pcscd), the readers, a card in the reader, its ATR."""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Dict, List, Optional

from ..atr import CardKind, identify
from ..errors import (
    CryptolibRequired,
    MissingExtra,
    NoCard,
    NoReaders,
    PcscServiceUnavailable,
    ReaderNotFound,
    UnknownCard,
)
from .report import SMARTCARD_LISTS, Check, _fail, _ok, _State, _warn


def _check_service(st: _State) -> Check:
    from ..readers import list_readers

    socket_path = os.environ.get("PCSCLITE_CSOCK_NAME") or "/run/pcscd/pcscd.comm"
    try:
        st.readers = list_readers()
    except MissingExtra as exc:  # card access is an extra: say which install it needs
        return _fail("pcsc-service", str(exc),
                     f"Install card access in this Python environment: "
                     f"pip install 'cps-middleware[{exc.extra}]'.", exc,
                     socket=socket_path if sys.platform.startswith("linux") else None)
    except PcscServiceUnavailable as exc:
        return _fail("pcsc-service", str(exc), _service_advice(exc, socket_path), exc,
                     socket=socket_path if sys.platform.startswith("linux") else None)
    n = len(st.readers)
    return _ok("pcsc-service", f"the PC/SC service answers ({n} reader{'s' * (n != 1)})",
               socket=socket_path if sys.platform.startswith("linux") else None)


def _service_advice(exc: PcscServiceUnavailable, socket_path: str) -> str:
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
    from ..readers import select_reader

    listing = [{"name": r.name, "card_present": r.card_present,
                "atr": r.atr.hex().upper() or None,
                "card_kind": r.card_kind.value if r.card_kind else None} for r in st.readers]
    if not st.readers:
        usb = _usb_readers(st)
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


def _usb_readers(st: _State) -> List[Dict[str, Any]]:
    """The USB readers and SESAM-Vitale terminals plugged in (the ``ccid`` check's
    sources: :meth:`Machine.usb_devices`, the CCID driver's list), each with whether
    the driver lists it. Cheap and bounded; asked only when pcscd sees no reader."""
    from .machine import Machine
    from .workstation.ccid import ccid_list

    machine = st.machine or Machine.current()
    devices = machine.usb_devices() or []
    out: List[Dict[str, Any]] = []
    listed: Any = False
    for d in devices:
        if d.ccid or d.vendor == "0b00":
            if listed is False:
                listed = ccid_list(machine)[1]
            out.append(dict(d.as_dict(), ccid_driver_lists=None if listed is None
                            else (d.vendor, d.product) in listed))
    return out


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
        return _cps4(st, entry, atr, data)
    if entry.kind is CardKind.CPS3_CONTACTLESS:
        return _warn("atr", f"{entry.name}: identification only, no PIN and no signature",
                     "Insert the card in a contact reader (chip in the slot) to log in with "
                     "the PIN or sign.", **data)
    return _ok("atr", f"{entry.name}, ATR {atr.hex().upper()}", **data)


def _cps4(st: _State, entry: Any, atr: bytes, data: Dict[str, Any]) -> Check:
    """A CPS4 is used through the ANS Cryptolib's PKCS#11 module (5.2 or later): the
    checks above the ATR then read it there (:func:`cps.open.open_cps4`); cps sends
    it no APDU of its own. No usable Cryptolib: the exact install advice."""
    from ..cryptolib import find_cryptolib
    from .machine import Machine
    from .workstation.cryptolib import install_advice

    given = st.machine or Machine.current()
    # The card is in this computer's reader: its Cryptolib reads it. A prepared root
    # (or registry, platform...) describes another machine, and a module is never
    # loaded from it; only one deliberately given (``Machine(cryptolib=...)``, tests).
    m = given if given.this_computer else Machine.current()
    install = given.cryptolib if given.cryptolib is not None else find_cryptolib(
        platform=m.platform, environ=dict(m.environ) or None, root=m.root,
        registry=m.registry)
    data["cryptolib"] = install.version if install else None
    data["cryptolib_module"] = install.module if install else None
    if install is not None and install.supports_cps4 is not False:
        st.cps4 = install
        if install.supports_cps4 is None:  # no record of the version: the module will tell
            return _warn("atr", f"{entry.name}: a CPS4, read through the ANS Cryptolib CPS "
                         f"({install.module}), whose version nothing on this machine records",
                         "If the card is not found next, install the Cryptolib CPS 5.2 or "
                         "later (the first that knows CPS4 cards). "
                         + install_advice(m, None), **data)
        return _ok("atr", f"{entry.name}: a CPS4, read through the ANS Cryptolib CPS "
                   f"{install.version}", **data)
    found = f"the Cryptolib {install.version} installed is older" if install and \
        install.version else "the Cryptolib is not installed"
    advice = install_advice(m, install.version if install else None)
    return _fail("atr", f"{entry.name}: a CPS4, which needs the ANS Cryptolib CPS >= 5.2 "
                 f"({found})", "CPS4 cards need the Cryptolib 5.2 or later (PKCS#11). " + advice,
                 CryptolibRequired(f"{entry.name}: the ANS Cryptolib CPS 5.2 or later is "
                                   f"needed ({found})", install_advice=advice.rstrip("."),
                                   atr=atr, card_name=entry.name), **data)


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


