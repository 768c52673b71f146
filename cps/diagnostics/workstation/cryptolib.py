"""The ``cryptolib`` check: the ANS Cryptolib CPS installed, its product version read
without loading it, and whether it is recent enough for CPS4 cards (5.2)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ...cryptolib import CPS4_MIN_VERSION, installed_version, parse_version
from ...cryptolib import install_advice as cryptolib_install_advice
from ...pkcs11_modules import CRYPTOLIB, module_candidates
from ..machine import Machine
from ..report import Check, _fail, _ok, _warn

NAME = "cryptolib"
_MIN = ".".join(map(str, CPS4_MIN_VERSION))


def install_advice(m: Machine, found: Optional[str] = None) -> str:
    """The exact install step for this machine's platform, as one sentence (the
    library's wording: :func:`cps.cryptolib.install_advice`)."""
    return cryptolib_install_advice(platform=m.platform, installed=found) + "."


def modules(m: Machine) -> List[Dict[str, Any]]:
    """The Cryptolib modules installed, each with its width (Windows: both widths)."""
    out: List[Dict[str, Any]] = []
    seen = set()
    widths = (64, 32) if m.windows else (64,)
    for bits in widths:
        for c in module_candidates(platform=m.platform, bits=bits,
                                   environ=dict(m.environ) or None, root=m.root):
            if c.kind == CRYPTOLIB and c.exists and c.path not in seen:
                seen.add(c.path)
                out.append({"path": m.display(c.path),
                            "bits": bits if m.windows else None})
    return out


def check_cryptolib(m: Machine, card_kind: Optional[str] = None) -> Check:
    """Present? which version? enough for CPS4 (5.2)? A CPS4 in the reader makes a
    missing or older Cryptolib a failure; otherwise it is a warning."""
    found = modules(m)
    version, source = installed_version(platform=m.platform, root=m.root, registry=m.registry)
    data: Dict[str, Any] = {"modules": found, "version": version, "version_source": source,
                            "cps4_minimum": _MIN, "cps4_in_reader": card_kind == "cps4"}
    cps4 = card_kind == "cps4"
    if not found:
        summary = "the ANS Cryptolib CPS is not installed"
        if cps4:
            return _fail(NAME, summary + ": a CPS4 card needs it", install_advice(m), **data)
        return _warn(NAME, summary + " (CPS4 cards, issued since 2025, need it)",
                     install_advice(m), **data)
    where = ", ".join(f["path"] for f in found)
    parsed = parse_version(version)
    if parsed is None:
        summary = f"Cryptolib CPS installed ({where}), version unknown"
        advice = ("No installer record says the version: reinstall the Cryptolib CPS "
                  f"{_MIN} or later to be sure (" + install_advice(m)[:1].lower()
                  + install_advice(m)[1:-1] + ").")
        return (_fail if cps4 else _warn)(NAME, summary, advice, **data)
    if parsed[:2] < CPS4_MIN_VERSION:
        summary = f"Cryptolib CPS {version} installed: older than {_MIN}, no CPS4 support"
        return (_fail if cps4 else _warn)(NAME, summary, install_advice(m, version), **data)
    if m.windows and len(found) == 1:
        bits = found[0]["bits"]
        other = 32 if bits == 64 else 64
        return _warn(NAME, f"Cryptolib CPS {version} installed for {bits}-bit programs only "
                     f"({where})",
                     f"{other}-bit programs (browsers, billing software) cannot use it: "
                     "reinstall with CryptolibCPS-5.2.x_x64.msi, which installs both widths.",
                     **data)
    return _ok(NAME, f"Cryptolib CPS {version} ({source}), {where}", **data)
