"""The PKCS#11 layer: the modules installed (ANS Cryptolib, OpenSC) load in a child
process with a time limit and the PC/SC service hidden, and do not compete for the card."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Tuple

from .report import _OPENSC_CLAIMS_CPX, PKCS11_PROBE_TIMEOUT, Check, _fail, _ok, _State, _warn

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
    from ..pkcs11_modules import CRYPTOLIB, candidate_paths, install_advice, module_candidates

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


