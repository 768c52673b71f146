"""The PKCS#11 layer: the modules installed (ANS Cryptolib, OpenSC) load in a child
process with a time limit and the PC/SC service hidden, and do not compete for the card."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

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
    # Windows and macOS: modules are described, not loaded (see _probe_module).
    good = [m for m in modules if m["loadable"] is not False]
    bad = [m for m in modules if m["loadable"] is False]
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
    if all(m["loadable"] is None for m in good):
        verb = "found (not loaded on this platform)"
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


def _probe_module(path: str, *, platform: Optional[str] = None) -> Dict[str, Any]:
    """Load one module in a child process, isolated from the card, and say what it is.

    Isolation does not rest on pcsc-lite's environment variable alone:

    * Linux: the child runs in a mount namespace of its own where the pcscd socket's
      directory is an empty tmpfs (``unshare``; as root, or through a user namespace
      where the kernel allows them), and with ``PCSCLITE_CSOCK_NAME`` pointing nowhere;
      where no namespace can be made, the variable alone (``data["isolation"]`` says
      which);
    * Windows and macOS: the module is not loaded at all (the Smart Card service and
      CryptoTokenKit cannot be hidden from a process): it is described from its file.
    """
    system = platform or sys.platform
    if system in ("win32", "darwin"):
        return {"path": path, "loadable": None, "probed": False,
                "isolation": "not loaded", "kind": _module_kind(path, ""),
                "note": "not loaded on this platform, so that nothing reaches the card"}
    env = dict(os.environ)
    # No PC/SC for the module: loading it must not touch any card (OpenSC's
    # C_Initialize would otherwise bind every card in every reader).
    env["PCSCLITE_CSOCK_NAME"] = os.path.join(os.sep, "nonexistent", "cps-doctor",
                                              "pcscd.comm")
    out: Dict[str, Any] = {"path": path, "loadable": False}
    prefix = _namespace_prefix()
    out["isolation"] = "mount namespace" if prefix else "environment"
    try:
        done = subprocess.run([*prefix, sys.executable, "-I", "-c", _PROBE, path],  # noqa: S603
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


def _socket_dir() -> str:
    """The directory of pcscd's socket (pcsc-lite's default, or $PCSCLITE_CSOCK_NAME's)."""
    socket = os.environ.get("PCSCLITE_CSOCK_NAME") or "/run/pcscd/pcscd.comm"
    return os.path.realpath(os.path.dirname(socket))


_NAMESPACE: List[Optional[List[str]]] = []


def _namespace_prefix() -> List[str]:
    """The command prefix running a child in a mount namespace where pcscd's socket
    directory is an empty tmpfs; ``[]`` when this machine cannot make one. Tried once."""
    if _NAMESPACE:
        return list(_NAMESPACE[0] or [])
    prefix: Optional[List[str]] = None
    unshare = shutil.which("unshare")
    directory = _socket_dir()
    if sys.platform.startswith("linux") and unshare and os.path.isdir(directory):
        base = [unshare, "--mount", "--propagation", "private"]
        if os.geteuid() != 0:   # a user namespace gives the right to mount in it
            base[1:1] = ["--user", "--map-root-user"]
        hide = 'mount -t tmpfs -o size=4k,mode=0755 cps-doctor "$0" && exec "$@"'
        candidate = [*base, "--", "/bin/sh", "-c", hide, directory]
        try:
            test = subprocess.run([*candidate, "/bin/sh", "-c",  # noqa: S603
                                   'test -z "$(ls -A "$0")"', directory],
                                  capture_output=True, timeout=10, check=False)
            if test.returncode == 0:
                prefix = candidate
        except (OSError, subprocess.TimeoutExpired):
            prefix = None
    _NAMESPACE.append(prefix)
    return list(prefix or [])


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


