"""The ``galss`` check: the GIE SESAM-Vitale GALSS (reader-sharing layer) installed, and
its channels configured as serial PSS readers or as PC/SC readers.

``galss.ini`` (``C:\\Windows\\galss.ini``, macOS ``/Library/Preferences/galss.ini``,
Linux ``/etc/galss.ini`` or ``/usr/local/galss/galss.ini``) is a Windows-style .ini:
``[PROTOCOLEn]`` sections name a library (``NomLib=PSSINW64.DLL``: serial PSS readers;
``PCSCW64.DLL``, ``pcscosx``: PC/SC), ``[CANALn]`` sections a channel with its
``Protocole=n`` and ``Caracteristiques=`` (a serial port's settings such as
``9600,1,8,0,0``, or a PC/SC reader's name). The ANS says the GALSS is no longer used
in the field, PSS readers having been abandoned; the Cryptolib 5.x uses PC/SC.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from ..machine import Machine
from ..report import Check, _ok, _warn
from .common import by_platform, ini_sections

NAME = "galss"


def _ini_paths(m: Machine) -> List[str]:
    if m.windows:
        return ["%WINDIR%\\galss.ini"]
    if m.macos:
        return ["/Library/Preferences/galss.ini"]
    return ["/etc/galss.ini", "/usr/local/galss/galss.ini"]


def _installed(m: Machine) -> Optional[str]:
    if m.windows:
        for path in ("%ProgramFiles%\\santesocial\\galss",
                     "%ProgramFiles(x86)%\\santesocial\\galss"):
            if m.find(path):
                return path
        base = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
        for view in (base, base.replace("SOFTWARE\\", "SOFTWARE\\WOW6432Node\\")):
            for sub in m.registry.subkeys(view)[:2048]:
                if "galss" in str(m.registry.value(f"{view}\\{sub}", "DisplayName") or "").lower():
                    return f"{view}\\{sub}"
        return None
    places = (["/Library/Frameworks/galssosx.framework", "/Library/Application Support/Galss"]
              if m.macos else ["/usr/local/galss/galsvlux"])
    return next((p for p in places if m.exists(p)), None)


def channels(text: str) -> List[Dict[str, Any]]:
    """The channels of a galss.ini, each with its kind: ``serial`` or ``pcsc``."""
    sections = ini_sections(text)
    out: List[Dict[str, Any]] = []
    for name, values in sections.items():
        m = re.fullmatch(r"CANAL(\d{1,3})", name)
        if not m:
            continue
        proto = sections.get(f"PROTOCOLE{values.get('protocole', '').strip()}", {})
        lib = proto.get("nomlib", "")
        carac = values.get("caracteristiques", "")
        if re.match(r"\d+,\d+", carac) or "pss" in lib.lower():
            kind = "serial"
        elif "pcsc" in lib.lower() or values.get("tcanal") == "3":
            kind = "pcsc"
        else:
            kind = "unknown"
        out.append({"channel": int(m.group(1)), "kind": kind, "library": lib,
                    "characteristics": carac[:120]})
    return sorted(out, key=lambda c: c["channel"])[:64]


def check_galss(m: Machine, readers: Optional[List[str]] = None) -> Check:
    installed = _installed(m)
    ini_path: Optional[str] = None
    text: Optional[str] = None
    for path in _ini_paths(m):
        real = m.find(path)
        if real:
            ini_path, text = m.display(real), m.read_text(real, real=True)
            break
    data: Dict[str, Any] = {"installed": installed, "ini": ini_path, "channels": []}
    if not installed and ini_path is None:
        return _ok(NAME, "GALSS not installed (not needed: cards are read through PC/SC)", **data)
    chans = channels(text or "")
    data["channels"] = chans
    serial = [c for c in chans if c["kind"] == "serial"]
    remove = by_platform(
        m, linux="remove the GALSS package if no billing software needs it",
        windows="uninstall the GALSS in Control Panel → Programs if no billing software needs it",
        macos="remove the GALSS (its uninstall.sh in /Library/Application Support/Galss) if no "
              "billing software needs it")
    if serial:
        ports = ", ".join(f"CANAL{c['channel']} ({c['characteristics'] or c['library']})"
                          for c in serial)
        return _warn(NAME, f"GALSS channels configured as serial PSS readers: {ports}",
                     "PSS readers and the GALSS are no longer used in the field (ANS): plug "
                     "in a PC/SC reader and switch the billing software to PC/SC, or "
                     f"reconfigure {ini_path or 'galss.ini'} with PC/SC channels; then {remove}.",
                     **data)
    if ini_path and not chans:
        return _warn(NAME, f"GALSS installed but {ini_path} declares no channel",
                     f"Reconfigure the GALSS with its configuration tool, or {remove}.", **data)
    missing = [c for c in chans if c["kind"] == "pcsc" and readers is not None
               and c["characteristics"] and c["characteristics"] not in readers]
    if missing:
        c = missing[0]
        return _warn(NAME, f"GALSS channel CANAL{c['channel']} names the reader "
                     f"\"{c['characteristics']}\", which PC/SC does not list",
                     f"Set Caracteristiques= in {ini_path} to a reader name shown by "
                     "`cps readers` (the GALSS matches the name exactly).", **data)
    return _ok(NAME, f"GALSS in PC/SC mode ({len(chans)} channels); the Cryptolib 5 does not "
               "need it", **data)
