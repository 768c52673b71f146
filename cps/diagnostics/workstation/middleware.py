"""The ``middleware`` check: OpenSC and the Cryptolib both registered for the same
card in one application (p11-kit, NSS databases, Firefox profiles, policies and
module manifests)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..machine import Machine
from ..report import Check, _fail, _ok, _warn
from .common import CRYPTOLIB, OPENSC, Registration, by_platform, registrations, seen_by

NAME = "middleware"
_APPS = ("firefox", "firefox-snap", "firefox-flatpak", "nss", "p11-kit")
_APP_LABELS = {"firefox": "Firefox", "firefox-snap": "Firefox (snap)",
               "firefox-flatpak": "Firefox (flatpak)",
               "nss": "the shared NSS database (Chromium, Chrome)",
               "p11-kit": "p11-kit (every p11-kit-aware program)"}
CONSEQUENCE = ("two tokens for one card: the application shows the certificates twice, asks "
               "for the PIN twice (each wrong entry counts against the card's 3 tries), and "
               "one middleware can hold the card while the other waits")


def _opensc_version(m: Machine) -> Optional[str]:
    """OpenSC's version from the package records (no module is loaded)."""
    if m.windows:
        for base in (r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
                     r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall"):
            for sub in m.registry.subkeys(base)[:2048]:
                values = m.registry.values(f"{base}\\{sub}")
                if str(values.get("displayname", "")).lower().startswith("opensc"):
                    return str(values.get("displayversion", "")) or None
        return None
    if m.linux:
        text = m.read_text("/var/lib/dpkg/status", 32 * 1024 * 1024) or ""
        package = ""
        for line in text.splitlines():
            if line.startswith("Package:"):
                package = line.split(":", 1)[1].strip()
            elif line.startswith("Version:") and package in ("opensc-pkcs11", "opensc"):
                return line.split(":", 1)[1].strip().split(":")[-1]
    return None


def _claims(version: Optional[str]) -> bool:
    """OpenSC 0.22.0 added the CPx driver; an unknown version is assumed recent."""
    from ...cryptolib import parse_version

    parsed = parse_version(version)
    return parsed is None or parsed[:2] >= (0, 22)


def check_middleware(m: Machine, regs: Optional[List[Registration]] = None) -> Check:
    regs = registrations(m) if regs is None else regs
    version = _opensc_version(m)
    data: Dict[str, Any] = {"registrations": [r.as_dict() for r in regs],
                            "opensc_version": version, "conflicts": []}
    if not _claims(version):
        return _ok(NAME, f"OpenSC {version} predates CPx support: no conflict with the Cryptolib",
                   **data)
    conflicts: List[Dict[str, Any]] = []
    for app in _APPS:
        seen = seen_by(regs, app)
        kinds = {r.kind for r in seen}
        if CRYPTOLIB in kinds and OPENSC in kinds:
            conflicts.append({"app": app, "where": sorted({r.where for r in seen
                                                           if r.kind in (CRYPTOLIB, OPENSC)})})
    data["conflicts"] = conflicts
    if conflicts:
        apps = ", ".join(_APP_LABELS[c["app"]] for c in conflicts)
        first = conflicts[0]
        return _fail(NAME, f"OpenSC and the Cryptolib are both registered for the card in {apps}"
                     f" ({'; '.join(first['where'])}): {CONSEQUENCE}",
                     _fix(m, first["app"], first["where"]), **data)
    kinds = {r.kind for r in regs}
    if CRYPTOLIB in kinds and OPENSC in kinds:
        return _warn(NAME, "OpenSC and the Cryptolib are both registered, for different "
                     "applications", "Keep it so: never register both in one application "
                     f"({CONSEQUENCE}).", **data)
    used = sorted({r.kind for r in regs if r.kind in (CRYPTOLIB, OPENSC)})
    return _ok(NAME, ("one middleware registered for the card: " + ", ".join(used)) if used
               else "no card middleware registered anywhere", **data)


def _fix(m: Machine, app: str, where: List[str]) -> str:
    if app == "p11-kit":
        opensc = next((w for w in where if "opensc" in w.rsplit("/", 1)[-1]),
                      "/usr/share/p11-kit/modules/opensc-pkcs11.module")
        return ("Keep one middleware for p11-kit's programs: override OpenSC's registration "
                f"with a file /etc/pkcs11/modules/{opensc.rsplit('/', 1)[-1]} holding its "
                "`module:` line and `disable-in:` followed by the programs that use the "
                "Cryptolib (pkcs11.conf(5)), or remove the `opensc-pkcs11` package.")
    if app == "nss":
        return ("Remove one from the shared NSS database: `modutil -dbdir sql:$HOME/.pki/nssdb "
                "-delete OpenSC` (Chromium and Chrome then use the Cryptolib only).")
    return by_platform(
        m,
        linux=("In Firefox, Settings → Privacy & Security → Security Devices: unload OpenSC "
               "and keep \"Module de sécurité CPS\" (also remove OpenSC from "
               "/etc/firefox/policies/policies.json SecurityDevices if it is there)."),
        windows=("In Firefox, Settings → Privacy & Security → Security Devices: unload OpenSC "
                 "and keep \"Module de sécurité CPS\"; remove OpenSC from the SecurityDevices "
                 "policy (HKLM\\SOFTWARE\\Policies\\Mozilla\\Firefox) if it is there."),
        macos=("In Firefox, Settings → Privacy & Security → Security Devices: unload OpenSC "
               "and keep \"Module de sécurité CPS\" (and remove OpenSC from Firefox.app's "
               "distribution/policies.json if it is there)."))
