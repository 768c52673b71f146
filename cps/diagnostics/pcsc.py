"""The PC/SC layers: the service (pcscd), the readers, a card in the reader, its ATR."""

from __future__ import annotations

import glob
import os
import re
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

from ..atr import CardKind, identify
from ..errors import (
    MissingExtra,
    NoCard,
    NoReaders,
    PcscServiceUnavailable,
    ReaderNotFound,
    UnknownCard,
    UnsupportedCard,
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


def _ccid_listed() -> Optional[Set[Tuple[str, str]]]:
    """(vendor, product) pairs the installed CCID driver accepts; None without a driver."""
    import plistlib

    for path in _CCID_PLISTS:
        try:
            with open(path, "rb") as f:
                info = plistlib.load(f)
            return {(v.lower().replace("0x", ""), p.lower().replace("0x", ""))
                    # a malformed plist's uneven lists pair up as far as they go
                    for v, p in zip(info["ifdVendorID"], info["ifdProductID"], strict=False)}
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


