"""What the workstation checks share: where PKCS#11 modules are registered (p11-kit,
NSS databases, Firefox profiles, policies and module manifests), which browsers are
installed, and one-sentence advice per platform."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..machine import Machine

#: Kinds of modules, from their file names (the doctor never loads them here).
CRYPTOLIB, OPENSC, P11KIT, OTHER = "cryptolib", "opensc", "p11-kit-proxy", "other"
CARD_KINDS = (CRYPTOLIB, OPENSC)

_FIREFOX_PROFILE_DIRS = {
    "linux": [("firefox", "~/.mozilla/firefox"),
              ("firefox-snap", "~/snap/firefox/common/.mozilla/firefox"),
              ("firefox-flatpak", "~/.var/app/org.mozilla.firefox/.mozilla/firefox")],
    "darwin": [("firefox", "~/Library/Application Support/Firefox/Profiles")],
    "win32": [("firefox", "%APPDATA%\\Mozilla\\Firefox\\Profiles")],
}


def module_kind(path: str) -> str:
    """The kind of a module from its path: the Cryptolib, OpenSC, p11-kit's proxy."""
    name = os.path.basename(path.replace("\\", "/")).lower()
    if "cps3_pkcs11" in name or "cps_pkcs11" in name or "cps2ter" in name:
        return CRYPTOLIB
    if "opensc" in name:
        return OPENSC
    if "p11-kit-proxy" in name or name.startswith("libp11-kit.so"):
        return P11KIT
    return OTHER


@dataclass(frozen=True)
class Registration:
    """A module made known to an application.

    :ivar app: who loads it: ``p11-kit`` (every p11-kit-aware program), ``nss``
        (the shared NSS database: Chromium and Chrome on Linux), ``firefox``,
        ``firefox-snap``, ``firefox-flatpak``.
    :ivar via: how: ``p11-kit module``, ``pkcs11.txt``, ``policies.json``,
        ``policy (registry)``, ``manifest`` (a Mozilla PKCS#11 module manifest,
        loaded when an allowed extension asks).
    :ivar where: the file or registry key, as the platform spells it.
    :ivar module: the module's path.
    """

    app: str
    via: str
    where: str
    module: str

    @property
    def kind(self) -> str:
        return module_kind(self.module)

    def as_dict(self) -> Dict[str, str]:
        return {"app": self.app, "via": self.via, "where": self.where, "module": self.module,
                "kind": self.kind}


def registrations(m: Machine) -> List[Registration]:
    """Every registration found on the machine, in a stable order."""
    out: List[Registration] = []
    if m.linux:
        for pattern in ("/usr/share/p11-kit/modules/*.module", "/etc/pkcs11/modules/*.module",
                        "~/.config/pkcs11/modules/*.module"):
            for real in m.glob(pattern, 64):
                module = _p11kit_module(m.read_text(real, 64 * 1024, real=True) or "")
                if module:
                    out.append(Registration("p11-kit", "p11-kit module", m.display(real), module))
        for real in m.glob("/etc/pki/nssdb/pkcs11.txt", 1) + m.glob("~/.pki/nssdb/pkcs11.txt", 1):
            out += _pkcs11_txt(m, real, "nss")
    for app, base in _FIREFOX_PROFILE_DIRS.get(_family(m), []):
        for real in m.glob(base + ("\\*\\pkcs11.txt" if m.windows else "/*/pkcs11.txt"), 32):
            out += _pkcs11_txt(m, real, app)
    out += _firefox_policies(m)
    out += _manifests(m)
    return out


def _family(m: Machine) -> str:
    return "win32" if m.windows else "darwin" if m.macos else "linux"


def _p11kit_module(text: str) -> str:
    """The ``module:`` of a p11-kit module file (``enable-in``/``disable-in`` narrow
    which programs load it: the module stays registered for the others)."""
    for line in text.splitlines()[:256]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "module":
            return value.strip()
    return ""


def _pkcs11_txt(m: Machine, real: str, app: str) -> List[Registration]:
    out = []
    for line in (m.read_text(real, 64 * 1024, real=True) or "").splitlines()[:1024]:
        if line.startswith("library="):
            module = line.split("=", 1)[1].strip()
            if module:
                out.append(Registration(app, "pkcs11.txt", m.display(real), module))
    return out


def _firefox_policies(m: Machine) -> List[Registration]:
    out: List[Registration] = []
    if m.windows:
        key = r"HKLM\SOFTWARE\Policies\Mozilla\Firefox\SecurityDevices"
        for name, value in sorted(m.registry.values(key).items()):
            if isinstance(value, str) and value:
                out.append(Registration("firefox", "policy (registry)",
                                        f"{key}\\{name}", value))
        files = ["%ProgramFiles%\\Mozilla Firefox\\distribution\\policies.json"]
    elif m.macos:
        files = ["/Applications/Firefox.app/Contents/Resources/distribution/policies.json"]
    else:
        files = ["/etc/firefox/policies/policies.json",
                 "/usr/lib/firefox/distribution/policies.json",
                 "/usr/lib64/firefox/distribution/policies.json",
                 "/usr/lib/firefox-esr/distribution/policies.json"]
    for path in files:
        real = m.find(path)
        text = m.read_text(real, real=True) if real else None
        if not text:
            continue
        try:
            devices = json.loads(text).get("policies", {}).get("SecurityDevices", {})
        except (ValueError, AttributeError, RecursionError):  # deep nesting: malformed
            continue
        if isinstance(devices, dict):
            # Firefox >= 114 also accepts {"Add": {...}, "Delete": [...]}
            add = devices.get("Add")
            added: Dict[str, Any] = add if isinstance(add, dict) else devices
            for module in added.values():
                if isinstance(module, str) and module:
                    out.append(Registration("firefox", "policies.json", m.display(real or path),
                                            module))
    return out


def _manifests(m: Machine) -> List[Registration]:
    out: List[Registration] = []
    if m.windows:
        base = r"HKLM\SOFTWARE\Mozilla\PKCS11Modules"
        for sub in m.registry.subkeys(base)[:64]:
            manifest = m.registry.value(f"{base}\\{sub}", "")
            module = _manifest_path(m, str(manifest)) if isinstance(manifest, str) else ""
            out.append(Registration("firefox", "manifest", f"{base}\\{sub}",
                                    module or f"(manifest {manifest!s})"))
        return out
    patterns = (["/Library/Application Support/Mozilla/PKCS11Modules/*.json"] if m.macos else
                [f"/usr/{lib}/mozilla/pkcs11-modules/*.json" for lib in ("lib", "lib64")])
    for pattern in patterns:
        for real in m.glob(pattern, 32):
            module = _manifest_json(m.read_text(real, 64 * 1024, real=True) or "")
            if module:
                out.append(Registration("firefox", "manifest", m.display(real), module))
    return out


def _manifest_path(m: Machine, manifest: str) -> str:
    return _manifest_json(m.read_text(manifest) or "")


def _manifest_json(text: str) -> str:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):    # deep nesting: a malformed manifest
        return ""
    path = data.get("path") if isinstance(data, dict) else None
    return path if isinstance(path, str) else ""


def seen_by(regs: List[Registration], app: str) -> List[Registration]:
    """What an application loads: its own registrations, plus p11-kit's modules when it
    loads p11-kit's proxy."""
    own = [r for r in regs if r.app == app]
    if any(r.kind == P11KIT for r in own):
        own += [r for r in regs if r.app == "p11-kit"]
    return own


# --------------------------------------------------------------------------- browsers
@dataclass(frozen=True)
class Browser:
    """An installed browser: ``name`` (``firefox``, ``firefox-snap``, ``firefox-flatpak``,
    ``chrome``, ``chromium``, ``edge``) and where it was found."""

    name: str
    where: str


def browsers(m: Machine) -> List[Browser]:
    """The browsers installed, in a stable order."""
    if m.windows:
        places = [("firefox", "%ProgramFiles%\\Mozilla Firefox\\firefox.exe"),
                  ("firefox", "%ProgramFiles(x86)%\\Mozilla Firefox\\firefox.exe"),
                  ("chrome", "%ProgramFiles%\\Google\\Chrome\\Application\\chrome.exe"),
                  ("chrome", "%ProgramFiles(x86)%\\Google\\Chrome\\Application\\chrome.exe"),
                  ("edge", "%ProgramFiles(x86)%\\Microsoft\\Edge\\Application\\msedge.exe")]
    elif m.macos:
        places = [("firefox", "/Applications/Firefox.app"),
                  ("chrome", "/Applications/Google Chrome.app"),
                  ("safari", "/Applications/Safari.app")]
    else:
        places = [("firefox", "/usr/lib/firefox/firefox"),
                  ("firefox", "/usr/lib64/firefox/firefox"),
                  ("firefox", "/usr/lib/firefox-esr/firefox-esr"),
                  ("firefox", "/opt/firefox/firefox"),
                  ("firefox-snap", "/snap/firefox/current"),
                  ("firefox-flatpak", "/var/lib/flatpak/app/org.mozilla.firefox"),
                  ("firefox-flatpak", "~/.local/share/flatpak/app/org.mozilla.firefox"),
                  ("chrome", "/opt/google/chrome/chrome"),
                  ("chromium", "/usr/lib/chromium/chromium"),
                  ("chromium", "/usr/lib/chromium-browser/chromium-browser"),
                  ("chromium", "/snap/chromium/current")]
    found: Dict[str, Browser] = {}
    for name, path in places:
        real = m.find(path)
        if real and name not in found:
            found[name] = Browser(name, m.display(real))
    return list(found.values())


# --------------------------------------------------------------------------- advice
def by_platform(m: Machine, *, linux: str, windows: str, macos: str) -> str:
    """The sentence for this machine's platform (apt/systemctl only ever on Linux)."""
    return windows if m.windows else macos if m.macos else linux


def ini_sections(text: str, max_lines: int = 4096) -> Dict[str, Dict[str, str]]:
    """A Windows-style .ini (``[SECTION]``, ``Key=Value``; ``;`` comments) as
    {upper-case section: {lower-case key: value}}; bounded, never raises."""
    out: Dict[str, Dict[str, str]] = {}
    current: Optional[Dict[str, str]] = None
    for line in text.replace("\r", "\n").splitlines()[:max_lines]:
        line = line.strip()
        if not line or line.startswith((";", "#")):
            continue
        head = re.fullmatch(r"\[([^\]]{1,100})\]", line)
        if head:
            current = out.setdefault(head.group(1).strip().upper(), {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip().lower()] = value.strip()
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def first(items: List[Any]) -> Any:
    return items[0] if items else None
