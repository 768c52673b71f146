"""Where the PKCS#11 modules for CPS cards are installed: one search, per platform.

``open_card(backend="pkcs11")`` (through :func:`cps.pkcs11.find_module`, which is
:func:`find_module`) and ``cps doctor`` (its ``pkcs11`` check) both use it::

    from cps.pkcs11_modules import find_module, module_candidates

    find_module()                       # the path to load, or NotSupported saying
                                        # what to install and where it looked
    [c for c in module_candidates() if c.exists]     # ModuleCandidate(path, kind, exists)

Search order: an explicit ``module`` argument, else ``$CPS_PKCS11_MODULE``, else
the ANS Cryptolib CPS, else OpenSC, in this order:

=======  =================================================================================
Windows  Cryptolib, 64-bit Python: ``%WINDIR%\\System32\\cps3_pkcs11_w64.dll``;
         32-bit Python: ``%WINDIR%\\System32\\cps3_pkcs11_w32.dll``, then
         ``%WINDIR%\\SysWOW64\\cps3_pkcs11_w32.dll``. OpenSC:
         ``%ProgramFiles%\\OpenSC Project\\OpenSC\\pkcs11\\opensc-pkcs11.dll``
         (32-bit Python: under ``%ProgramFiles(x86)%``), then
         ``%WINDIR%\\System32\\opensc-pkcs11.dll`` (older installers)
macOS    Cryptolib: ``/usr/local/lib/libcps3_pkcs11_osx.dylib``, ``/usr/lib/...`` (older
         versions). OpenSC: ``/Library/OpenSC/lib/opensc-pkcs11.so`` (its .pkg), Homebrew's
         ``/opt/homebrew/lib/opensc-pkcs11.so`` (Apple silicon), ``/usr/local/lib/...`` (Intel)
Linux,   Cryptolib: ``/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so``, ``/usr/lib64/...``,
BSD      ``/usr/local/galss/...``, ``/usr/lib/...``. OpenSC: ``/usr/lib/<multiarch>/`` (Debian),
         ``/usr/lib64/`` (Fedora, SUSE), ``/usr/lib/``, ``/usr/local/lib/`` (BSD ports), each
         also in its ``pkcs11/`` subdirectory (p11-kit's module directory)
=======  =================================================================================

A process can load only a module of its own width: the Cryptolib's Windows
installer puts the 64-bit module in ``System32`` and the 32-bit one in
``SysWOW64``. A 32-bit process on 64-bit Windows sees ``SysWOW64`` through the
name ``System32`` (WOW64 file-system redirection), so ``System32`` finds the
32-bit module on 32- and 64-bit Windows alike; ``SysWOW64`` is also looked at
by name, for a process with redirection turned off (and for simulated trees).
Two candidates that are the same file (redirection, symbolic links) count once.
When only the module of the other width is installed, the error says so.

The platform facts are keyword arguments, defaulting to the running process:
``platform`` (a :data:`sys.platform` value), ``bits`` (32 or 64, from
:data:`sys.maxsize`), ``environ`` (``%WINDIR%``, ``%ProgramFiles%``...) and
``root``, a directory standing for the file system's root (tests: the Windows
``C:\\Windows\\System32\\x.dll`` is then looked for as ``<root>/Windows/System32/x.dll``).
Nothing here imports python-pkcs11.
"""

from __future__ import annotations

import ntpath
import os
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import NotSupported
from .platform_paths import getenv

__all__ = ["CRYPTOLIB", "OPENSC", "ModuleCandidate", "candidate_paths", "find_module",
           "install_advice", "module_candidates"]

#: The kinds of candidate modules, in the order they are preferred.
CRYPTOLIB, OPENSC = "cryptolib", "opensc"
ENV_VAR = "CPS_PKCS11_MODULE"

_CRYPTOLIB_W64, _CRYPTOLIB_W32 = "cps3_pkcs11_w64.dll", "cps3_pkcs11_w32.dll"
_OPENSC_DLL = "opensc-pkcs11.dll"
_OPENSC_SO = "opensc-pkcs11.so"
_CRYPTOLIB_OSX = "libcps3_pkcs11_osx.dylib"
_CRYPTOLIB_LUX = "libcps3_pkcs11_lux.so"


@dataclass(frozen=True)
class ModuleCandidate:
    """A place a PKCS#11 module may be installed.

    :ivar path: the path to load (under ``root`` when one was given).
    :ivar kind: :data:`CRYPTOLIB` or :data:`OPENSC`.
    :ivar exists: a file is there.
    """

    path: str
    kind: str
    exists: bool


def _facts(platform: str | None, bits: int | None) -> tuple[str, int]:
    system = platform or sys.platform
    if bits is None:
        bits = 64 if sys.maxsize > 2**32 else 32
    if bits not in (32, 64):
        raise ValueError(f"bits must be 32 or 64, not {bits!r}")
    return system, bits


def _windows(bits: int, environ: Mapping[str, str] | None) -> list[tuple[str, str]]:
    def env(*names: str) -> str:
        return next((v for v in (getenv(n, platform="win32", environ=environ) for n in names)
                     if v), "")

    windir = env("WINDIR", "SystemRoot") or "C:\\Windows"
    system32, syswow64 = ntpath.join(windir, "System32"), ntpath.join(windir, "SysWOW64")
    if bits == 64:
        programs = env("ProgramW6432", "ProgramFiles") or "C:\\Program Files"
        cryptolib = [ntpath.join(system32, _CRYPTOLIB_W64)]
    else:
        # A 32-bit process on 64-bit Windows gets ProgramFiles(x86) as %ProgramFiles%
        # already; on 32-bit Windows there is no (x86) folder.
        programs = env("ProgramFiles(x86)", "ProgramFiles") or "C:\\Program Files"
        cryptolib = [ntpath.join(system32, _CRYPTOLIB_W32), ntpath.join(syswow64, _CRYPTOLIB_W32)]
    opensc = [ntpath.join(programs, "OpenSC Project", "OpenSC", "pkcs11", _OPENSC_DLL),
              ntpath.join(system32, _OPENSC_DLL)]
    return [(CRYPTOLIB, p) for p in cryptolib] + [(OPENSC, p) for p in opensc]


def _darwin() -> list[tuple[str, str]]:
    return [(CRYPTOLIB, "/usr/local/lib/" + _CRYPTOLIB_OSX),
            (CRYPTOLIB, "/usr/lib/" + _CRYPTOLIB_OSX),
            (OPENSC, "/Library/OpenSC/lib/" + _OPENSC_SO),
            (OPENSC, "/opt/homebrew/lib/" + _OPENSC_SO), (OPENSC, "/usr/local/lib/" + _OPENSC_SO)]


def _unix(system: str) -> list[tuple[str, str]]:
    arch = (sysconfig.get_config_var("MULTIARCH") if system == sys.platform else None) \
        or "x86_64-linux-gnu"
    cryptolib = ["/opt/santesocial/CPS/lib", "/usr/lib64", "/usr/local/galss", "/usr/lib"]
    opensc = [f"/usr/lib/{arch}", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    return ([(CRYPTOLIB, f"{d}/{_CRYPTOLIB_LUX}") for d in cryptolib]
            + [(OPENSC, f"{d}{sub}/{_OPENSC_SO}") for d in opensc for sub in ("", "/pkcs11")])


def candidate_paths(kind: str | None = None, *, platform: str | None = None,
                    bits: int | None = None,
                    environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Where modules of ``kind`` (default: both, Cryptolib first) are looked for,
    as the platform spells them (no ``root``); the file system is not touched."""
    system, bits = _facts(platform, bits)
    if system == "win32":
        pairs = _windows(bits, environ)
    elif system == "darwin":
        pairs = _darwin()
    else:
        pairs = _unix(system)
    return tuple(path for k, path in pairs if kind is None or k == kind)


def _under(root: str | os.PathLike[str] | None, path: str, system: str) -> str:
    if root is None:
        return path
    if system == "win32":
        parts = ntpath.splitdrive(path)[1].replace("/", "\\").split("\\")
    else:
        parts = path.split("/")
    return os.path.join(os.fspath(root), *(p for p in parts if p))


def module_candidates(*, platform: str | None = None, bits: int | None = None,
                      environ: Mapping[str, str] | None = None,
                      root: str | os.PathLike[str] | None = None) -> list[ModuleCandidate]:
    """Every place looked at, in order (Cryptolib first, then OpenSC), each with
    whether a module is there. A file already found under another name (WOW64
    redirection, a symbolic link) is left out the second time."""
    system, bits = _facts(platform, bits)
    out: list[ModuleCandidate] = []
    seen: set[tuple[int, int]] = set()
    for kind in (CRYPTOLIB, OPENSC):
        for target in candidate_paths(kind, platform=system, bits=bits, environ=environ):
            path = _under(root, target, system)
            exists = os.path.isfile(path)
            if exists:
                st = os.stat(path)
                if st.st_ino and (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            out.append(ModuleCandidate(path, kind, exists))
    return out


def install_advice(*, platform: str | None = None, bits: int | None = None) -> str:
    """What to install on this platform, as one sentence without its full stop."""
    system, bits = _facts(platform, bits)
    if system == "win32":
        width = "64-bit" if bits == 64 else "32-bit"
        dll = _CRYPTOLIB_W64 if bits == 64 else _CRYPTOLIB_W32
        return (f"Install the ANS Cryptolib CPS for Windows (its {width} module {dll} goes to "
                f"{'System32' if bits == 64 else 'SysWOW64 (System32 on 32-bit Windows)'}) or "
                f"OpenSC's {width} Windows installer (OpenSC-*_{'win64' if bits == 64 else 'win32'}"
                ".msi, github.com/OpenSC/OpenSC/releases)")
    if system == "darwin":
        return ("Install the ANS Cryptolib CPS for macOS (it installs /usr/local/lib/"
                f"{_CRYPTOLIB_OSX}) or OpenSC (its .pkg from github.com/OpenSC/OpenSC/releases, "
                "or `brew install opensc`)")
    if system.startswith("linux"):
        return (f"Install the ANS Cryptolib CPS for Linux (it installs /opt/santesocial/CPS/lib/"
                f"{_CRYPTOLIB_LUX}) or OpenSC (`apt install opensc-pkcs11`, `dnf install opensc`)")
    return ("Install OpenSC from the system's packages (e.g. `pkg install opensc`); the ANS "
            "Cryptolib CPS exists only for Linux, macOS and Windows")


def _other_width(system: str, bits: int, environ: Mapping[str, str] | None,
                 root: str | os.PathLike[str] | None) -> str | None:
    """The Cryptolib module of the other width, when it is the one installed (Windows)."""
    if system != "win32":
        return None
    windir = (getenv("WINDIR", platform=system, environ=environ)
              or getenv("SystemRoot", platform=system, environ=environ) or "C:\\Windows")
    if bits == 64:
        places = [ntpath.join(windir, "SysWOW64", _CRYPTOLIB_W32)]
    else:  # Sysnative: how a 32-bit process names the real System32 under WOW64
        places = [ntpath.join(windir, d, _CRYPTOLIB_W64) for d in ("Sysnative", "System32")]
    return next((p for p in (_under(root, t, system) for t in places) if os.path.isfile(p)),
                None)


def find_module(module: str | None = None, *, platform: str | None = None,
                bits: int | None = None, environ: Mapping[str, str] | None = None,
                root: str | os.PathLike[str] | None = None) -> str:
    """The PKCS#11 module to load.

    :param module: explicit path; default ``$CPS_PKCS11_MODULE``, else the first
        installed of :func:`module_candidates` (the ANS Cryptolib, else OpenSC).
    :raises NotSupported: nothing found; the message says what to install for
        this platform and lists where it looked.
    """
    system, bits = _facts(platform, bits)
    explicit = module or getenv(ENV_VAR, platform=system, environ=environ)
    if explicit:
        if os.path.isfile(explicit):
            return explicit
        origin = "" if module else f" (${ENV_VAR})"
        raise NotSupported(f"no PKCS#11 module at {explicit}{origin}: give the path of an "
                           f"installed module, or {install_advice(platform=system, bits=bits)}")
    candidates = module_candidates(platform=system, bits=bits, environ=environ, root=root)
    for candidate in candidates:
        if candidate.exists:
            return candidate.path
    message = (f"no PKCS#11 module found. {install_advice(platform=system, bits=bits)}, or set "
               f"{ENV_VAR} to a module's path. Looked for "
               + ", ".join(c.path for c in candidates) + ".")
    other = _other_width(system, bits, environ, root)
    if other:
        message += (f" {other} is installed, but this Python is {bits}-bit and can load only a "
                    f"{bits}-bit module: install the {bits}-bit Cryptolib CPS, or use a "
                    f"{96 - bits}-bit Python.")
    raise NotSupported(message)
