"""The ``ccid`` check: USB readers plugged in whose id the CCID driver does not list
(pcscd then never sees them), and SESAM-Vitale terminals known to be absent from it."""

from __future__ import annotations

import plistlib
from typing import Any, Dict, List, Optional, Set, Tuple

from ..machine import Machine
from ..report import Check, _ok, _warn
from .common import by_platform

NAME = "ccid"

#: USB ids known to be missing from the CCID driver's list (cps-domain section 5:
#: CCID #105, pcsc-tools #80): vendor, product -> name.
KNOWN_MISSING = {("0b00", "0090"): "INGENICO Lecteur SESAM VITALE"}
#: Vendors of health-sector readers and terminals, looked at even without a CCID class.
HEALTH_VENDORS = {"0b00": "Ingenico", "2947": "KAPELSE", "046a": "Cherry", "0f14": "Ingenico"}

_PLISTS = {"linux": ("/etc/libccid_Info.plist",
                     "/usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist",
                     "/usr/lib64/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist",
                     "/usr/local/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist"),
           "darwin": tuple(f"{d}/SmartCardServices/drivers/ifd-ccid.bundle/Contents/Info.plist"
                           for d in ("/usr/local/libexec", "/usr/libexec"))}


def ccid_list(m: Machine) -> Tuple[Optional[str], Optional[Set[Tuple[str, str]]]]:
    """(where, the (vendor, product) pairs the CCID driver accepts); (None, None)
    without a driver (Windows has its own class driver)."""
    for path in _PLISTS.get("darwin" if m.macos else "win32" if m.windows else "linux", ()):
        data = m.read_bytes(path, 4 * 1024 * 1024)
        if not data:
            continue
        try:
            info = plistlib.loads(data)
            pairs = {(_hex4(v), _hex4(p))
                     for v, p in zip(info["ifdVendorID"], info["ifdProductID"], strict=False)}
        except Exception:  # noqa: BLE001, S112 - a broken plist is no list
            continue
        return path, pairs
    return None, None


def _hex4(value: object) -> str:
    return str(value).lower().replace("0x", "").zfill(4)


def check_ccid(m: Machine) -> Check:
    devices = m.usb_devices()
    if devices is None:
        how = by_platform(m, linux="sysfs (/sys/bus/usb) is not readable",
                          windows="the registry's Enum\\USB was not given",
                          macos="no ioreg output was available")
        return Check(NAME, "skipped", f"USB devices not known: {how}", data={"usb": None})
    where, listed = ccid_list(m)
    readers = [d for d in devices if d.ccid or d.vendor in HEALTH_VENDORS]
    data: Dict[str, Any] = {"ccid_list": where, "usb": []}
    problems: List[Dict[str, Any]] = []
    for d in readers:
        entry = dict(d.as_dict(),
                     listed=None if listed is None else (d.vendor, d.product) in listed)
        data["usb"].append(entry)
        known = KNOWN_MISSING.get((d.vendor, d.product))
        if known or (entry["listed"] is False and d.ccid is not False):
            problems.append(dict(entry, known=known))
    if not problems:
        n = len(readers)
        return _ok(NAME, f"{n} USB reader{'s' * (n != 1)}, none known to lack a driver"
                   if n else "no USB smart card reader plugged in", **data)
    p = problems[0]
    ids = f"{p['vendor'].upper()}:{p['product'].upper()}"
    label = f"{p['name'] or p['known'] or 'USB device'} {ids}"
    if p["known"]:
        return _warn(NAME, f"{label}: a SESAM-Vitale terminal missing from the CCID driver's "
                     "list, which PC/SC does not see as a reader",
                     "A SESAM-Vitale terminal exposes PC/SC only with its EI96S application "
                     "4.0 or later and a driver listing its id: update the terminal and use its "
                     "vendor's PC/SC driver, or read the CPS card in a CCID reader listed at "
                     "https://ccid.apdu.fr.", **data)
    kind = "has a CCID interface but" if p["ccid"] else "is a smart card reader"
    return _warn(NAME, f"{label} {kind} is not in the CCID driver's list ({where})",
                 by_platform(m, linux="Update the CCID driver (`apt install libccid` / `dnf "
                             "install pcsc-lite-ccid`), or add the id to its Info.plist and "
                             "restart pcscd (`systemctl restart pcscd`), or use a listed "
                             "reader (https://ccid.apdu.fr).",
                             windows="Install the reader vendor's driver.",
                             macos="Install the reader vendor's driver, or use a reader listed "
                             "at https://ccid.apdu.fr."), **data)
