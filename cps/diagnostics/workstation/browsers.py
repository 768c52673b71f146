"""The ``browsers`` check: can each installed browser use the card for TLS client
authentication? Firefox (deb/rpm, snap, flatpak), Chromium/Chrome through the shared
NSS database on Linux, and the Windows certificate store (certificate propagation)
that Chrome, Edge and Firefox use on Windows.

Facts behind the verdicts:

* snap Firefox runs confined (AppArmor): it cannot map a module from the host
  (``/opt``, ``/usr/lib``); since 2024 the snap ships its own OpenSC, loadable only as
  ``/snap/firefox/current/usr/lib/<arch>/opensc-pkcs11.so`` (canonical/firefox-snap
  #82, LP #1967632). The Cryptolib, hence CPS4 cards, cannot be used there.
* flatpak Firefox sees the host's ``/opt`` and ``/usr`` only where an override
  grants it (``flatpak override --filesystem=...``).
* Chromium and Chrome on Linux load the modules of ``~/.pki/nssdb`` (modutil).
* On Windows, Chrome and Edge (and Firefox, through its ``osclientcerts`` module)
  use the user's certificate store: the card's certificates must be propagated to
  ``My`` (the Cryptolib's CCM, or Windows' Certificate Propagation service).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from ..machine import Machine
from ..report import Check, _fail, _ok, _warn
from .common import CARD_KINDS, Browser, Registration, browsers, registrations, seen_by

NAME = "browsers"
_MY = r"HKCU\Software\Microsoft\SystemCertificates\My\Certificates"


def check_browsers(m: Machine, regs: Optional[List[Registration]] = None) -> Check:
    regs = registrations(m) if regs is None else regs
    found = browsers(m)
    if not found:
        return Check(NAME, "skipped", "no browser found", data={"browsers": []})
    results: List[Dict[str, Any]] = []
    for b in found:
        status, summary, advice = _judge(m, b, regs)
        results.append({"name": b.name, "where": b.where, "status": status,
                        "summary": summary, "advice": advice})
    data = {"browsers": results}
    summary = "; ".join(f"{r['name']}: {r['summary']}" for r in results)
    failed = [r for r in results if r["status"] == "fail"]
    if failed:
        return _fail(NAME, summary, failed[0]["advice"], None, **data)
    warned = [r for r in results if r["status"] == "warn"]
    if warned:
        return _warn(NAME, summary, warned[0]["advice"], **data)
    return _ok(NAME, summary, **data)


def _card_modules(regs: List[Registration]) -> List[Registration]:
    return [r for r in regs if r.kind in CARD_KINDS]


def _judge(m: Machine, b: Browser, regs: List[Registration]) -> Tuple[str, str, str]:
    if b.name == "firefox-snap":
        return _snap(m, regs)
    if b.name == "firefox-flatpak":
        return _flatpak(m, regs)
    if m.windows:
        return _windows(m, b, regs)
    if b.name == "firefox":
        mods = _card_modules(seen_by(regs, "firefox"))
        if mods:
            return "ok", f"security module {mods[0].module} ({mods[0].via})", ""
        return ("warn", "no card security module registered",
                "In Firefox, Settings → Privacy & Security → Security Devices → Load: name "
                "\"Module de sécurité CPS\" (or \"OpenSC\"), file " + _module_hint(m) + ".")
    if b.name in ("chrome", "chromium") and m.linux:
        mods = _card_modules(seen_by(regs, "nss"))
        if mods:
            return "ok", f"NSS database loads {mods[0].module}", ""
        return ("warn", "no card module in ~/.pki/nssdb",
                "Register the module for Chromium and Chrome: `modutil -dbdir "
                "sql:$HOME/.pki/nssdb -add \"CPS\" -libfile "
                + _module_hint(m) + "` (browser closed).")
    return ("ok", "uses the macOS keychain (CryptoTokenKit): not checked here", "")


def _module_hint(m: Machine) -> str:
    """The module to register: the Cryptolib's when installed, else OpenSC's when it
    is, else where the Cryptolib installs it."""
    from ...pkcs11_modules import module_candidates

    found = [c for c in module_candidates(platform=m.platform, environ=dict(m.environ) or None,
                                          root=m.root) if c.exists]
    if found:
        return m.display(found[0].path)
    if m.macos:
        return "/usr/local/lib/libcps3_pkcs11_osx.dylib"
    return "/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so"


def _snap(m: Machine, regs: List[Registration]) -> Tuple[str, str, str]:
    mods = _card_modules(seen_by(regs, "firefox-snap"))
    outside = [r for r in mods if not r.module.startswith("/snap/")]
    advice = ("snap Firefox cannot load the Cryptolib (its confinement forbids modules from "
              "the host): install Firefox from Mozilla's APT repository (packages.mozilla.org, "
              "deb) or the distribution's deb/rpm build, and register the module there.")
    if outside:
        return ("fail", f"snap Firefox cannot load {outside[0].module} (confined)", advice)
    if mods:
        return ("warn", "snap Firefox uses its own OpenSC only: no Cryptolib, no CPS4", advice)
    return ("warn", "snap Firefox: no card module, and it cannot load the Cryptolib", advice)


def _flatpak(m: Machine, regs: List[Registration]) -> Tuple[str, str, str]:
    mods = _card_modules(seen_by(regs, "firefox-flatpak"))
    grants: List[str] = []
    for path in ("/var/lib/flatpak/overrides/org.mozilla.firefox",
                 "~/.local/share/flatpak/overrides/org.mozilla.firefox"):
        for line in (m.read_text(path, 64 * 1024) or "").splitlines():
            if line.startswith("filesystems="):
                grants += [g.split(":")[0] for g in line.split("=", 1)[1].split(";") if g]
    grant_advice = ("Grant the module's folder to flatpak Firefox: `flatpak override "
                    "--filesystem=/opt/santesocial/CPS:ro org.mozilla.firefox`, then load it in "
                    "Security Devices; or use Firefox's deb/rpm build.")
    if not mods:
        return ("warn", "flatpak Firefox: no card module registered", grant_advice)
    for r in mods:
        visible = any(g in ("host", "host-os") or r.module.startswith(g.rstrip("/") + "/")
                      for g in grants)
        if not visible:
            return ("fail", f"flatpak Firefox cannot see {r.module} (not granted to the "
                    "sandbox)", grant_advice)
    return ("ok", f"flatpak Firefox loads {mods[0].module} (folder granted)", "")


def _windows(m: Machine, b: Browser, regs: List[Registration]) -> Tuple[str, str, str]:
    propagated, service = _propagation(m)
    store_advice = ("Let the card's certificates reach the user's store: start the Cryptolib's "
                    "\"Gestionnaire de certificats CPS\" (CCM, Start menu → Cryptolib CPS), and "
                    "set the Certificate Propagation service to Automatic in services.msc.")
    if b.name == "firefox":
        mods = _card_modules(seen_by(regs, "firefox"))
        if mods:
            return "ok", f"security module {mods[0].module} ({mods[0].via})", ""
        if propagated:
            return "ok", "Windows store (osclientcerts): card certificates propagated", ""
        return ("warn", "no card security module and no card certificate in the Windows store",
                "Register the Cryptolib in Firefox (Settings → Privacy & Security → Security "
                "Devices → Load: C:\\Windows\\System32\\cps3_pkcs11_w64.dll), or reinstall the "
                "Cryptolib, which registers it.")
    if propagated:
        return "ok", "card certificates in the Windows store (My)", ""
    why = f"; Certificate Propagation service {service}" if service else ""
    return ("warn", f"no card certificate in the user's Windows store{why}", store_advice)


def _propagation(m: Machine) -> Tuple[bool, str]:
    """Whether the user's ``My`` store holds an IGC-Santé certificate (a card's), and the
    Certificate Propagation service's start mode when it is not automatic or manual."""
    found = False
    for thumb in m.registry.subkeys(_MY)[:256]:
        blob = m.registry.value(f"{_MY}\\{thumb}", "Blob")
        if isinstance(blob, bytes) and _is_card_cert(blob):
            found = True
            break
    start = m.registry.value(r"HKLM\SYSTEM\CurrentControlSet\Services\CertPropSvc", "Start")
    policy = m.registry.value(r"HKLM\SOFTWARE\Policies\Microsoft\Windows\CertProp",
                              "CertPropEnabled")
    state = ""
    if start == 4:
        state = "disabled"
    elif policy == 0:
        state = "turned off by policy (CertPropEnabled=0)"
    return found, state


def _is_card_cert(blob: bytes) -> bool:
    """A store entry's Blob: properties (id, reserved, length, data); id 32 is the
    certificate. A card's is issued by an IGC-Santé CA (or the older GIP-CPS ones)."""
    pos, der = 0, b""
    while pos + 12 <= len(blob) and pos < 1 << 20:
        prop = int.from_bytes(blob[pos:pos + 4], "little")
        size = int.from_bytes(blob[pos + 8:pos + 12], "little")
        if prop == 32:
            der = blob[pos + 12:pos + 12 + size]
            break
        pos += 12 + size
    if not der:
        return False
    try:
        from cryptography import x509

        issuer = x509.load_der_x509_certificate(der).issuer.rfc4514_string()
    except Exception:  # noqa: BLE001 - a damaged store entry is just not a card's
        return False
    return re.search(r"IGC-SANTE|GIP-CPS|CPS2", issuer, re.IGNORECASE) is not None
