"""The machine the workstation checks look at: one object for files, environment,
registry and USB devices, so that every check runs on a prepared fake root in tests.

::

    from cps.diagnostics.machine import Machine

    Machine.current()                                  # this computer
    Machine("win32", root="tests/fixtures/doctor/windows-cryptolib-old-rdp/root",
            environ={"USERPROFILE": r"C:\\Users\\alice"}, registry="machine.reg")

Paths are written as the platform spells them (``C:\\Windows\\galss.ini``,
``/etc/pkcs11/modules``) and read under ``root`` when one is given (``C:\\x`` is
``<root>/x``). :meth:`display` turns a path found under the root back into the
platform's spelling, so that reports do not depend on where the fixture lives.
With a root, nothing outside it is read: not the real home, registry or USB bus.

USB devices: Linux reads sysfs (``/sys/bus/usb/devices/*/idVendor``...) under the
root; Windows reads the registry's ``HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB``
(live, or in the export); macOS parses the output of ``ioreg -p IOUSB -l -w 0``
(run live with a time limit, or read from the dump file given as ``ioreg``;
with a root and no dump, the USB bus is unknown and the check says so).
"""

from __future__ import annotations

import fnmatch
import glob
import ntpath
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

from ..cryptolib import inside, read_regular
from ..platform_paths import getenv
from .registry import EmptyRegistry, LiveRegistry, Registry, RegistryExport

__all__ = ["Machine", "UsbDevice"]

#: Files the checks read are small (configuration, manifests, NSS module lists).
MAX_FILE = 256 * 1024
#: Directory listings are bounded (profiles, module directories, USB devices).
MAX_ENTRIES = 256
#: Time limit for `ioreg` on a live Mac.
IOREG_TIMEOUT = 5.0


@dataclass(frozen=True)
class UsbDevice:
    """A USB device plugged in: ids as 4 lower-case hex digits, and its name when known."""

    vendor: str
    product: str
    name: str = ""
    ccid: Optional[bool] = None    #: has a smart-card (CCID, class 0x0B) interface; None: unknown

    def as_dict(self) -> Dict[str, Any]:
        return {"vendor": self.vendor, "product": self.product, "name": self.name,
                "ccid": self.ccid}


class Machine:
    """A platform, a file-system root, an environment, a registry and a USB source.

    :param platform: a :data:`sys.platform` value (``"linux"``, ``"win32"``, ``"darwin"``).
    :param root: directory standing for the file system's root; ``None``: the real one.
    :param environ: the environment (``HOME``, ``USERPROFILE``, ``SESSIONNAME``...);
        default :data:`os.environ` for the live machine, empty with a root.
    :param registry: a :class:`~cps.diagnostics.registry.Registry`, or the path of a
        ``.reg`` export; default the live registry on a live Windows, else none.
    :param ioreg: macOS: the path of an ``ioreg -p IOUSB -l -w 0`` dump.
    :param cryptolib: the Cryptolib the card walk reads a CPS4 through (a
        :class:`~cps.cryptolib.CryptolibInstall`; tests: a fake one). Default: this
        computer's -- a prepared root describes another machine, and no module is
        ever loaded from it unless given here deliberately.
    :raises RegistryExportError: the export cannot be parsed.
    """

    def __init__(self, platform: Optional[str] = None, *,
                 root: Optional[Union[str, "os.PathLike[str]"]] = None,
                 environ: Optional[Mapping[str, str]] = None,
                 registry: Optional[Union[Registry, str, "os.PathLike[str]"]] = None,
                 ioreg: Optional[Union[str, "os.PathLike[str]"]] = None,
                 cryptolib: Any = None) -> None:
        #: this very computer, as the process sees it (nothing prepared, nothing given)
        self.this_computer = (root is None and environ is None and registry is None
                              and ioreg is None and platform in (None, sys.platform))
        self.cryptolib = cryptolib
        self.platform = platform or sys.platform
        self.root = os.fspath(root) if root is not None else None
        if environ is None:
            environ = os.environ if self.root is None else {}
        self.environ: Mapping[str, str] = dict(environ)
        if isinstance(registry, (str, os.PathLike)):
            self.registry: Registry = RegistryExport.from_file(os.fspath(registry))
        elif registry is not None:
            self.registry = registry
        elif self.platform == "win32" and self.root is None and sys.platform == "win32":
            self.registry = LiveRegistry()
        else:
            self.registry = EmptyRegistry()
        self.ioreg = os.fspath(ioreg) if ioreg is not None else None

    @classmethod
    def current(cls) -> "Machine":
        """This computer."""
        return cls()

    # ------------------------------------------------------------------ facts
    @property
    def windows(self) -> bool:
        return self.platform == "win32"

    @property
    def macos(self) -> bool:
        return self.platform == "darwin"

    @property
    def linux(self) -> bool:
        return self.platform.startswith("linux")

    @property
    def live(self) -> bool:
        return self.root is None

    def env(self, name: str) -> str:
        """An environment variable, ``""`` when unset (case-insensitive on Windows)."""
        return getenv(name, platform=self.platform, environ=self.environ)

    def home(self) -> Optional[str]:
        """The user's home directory as the platform spells it, ``None`` when unknown."""
        if self.windows:
            return self.env("USERPROFILE") or None
        home = self.env("HOME")
        if home:
            return home
        return os.path.expanduser("~") if self.live else None

    def expand(self, path: str) -> str:
        """``%WINDIR%\\x`` -> ``C:\\Windows\\x`` (Windows), ``~/x`` -> the home (elsewhere)."""
        if self.windows:
            defaults = {"WINDIR": "C:\\Windows", "SYSTEMROOT": "C:\\Windows",
                        "PROGRAMFILES": "C:\\Program Files",
                        "PROGRAMFILES(X86)": "C:\\Program Files (x86)",
                        "PROGRAMDATA": "C:\\ProgramData"}

            def one(m: "re.Match[str]") -> str:
                return self.env(m.group(1)) or defaults.get(m.group(1).upper(), m.group(0))

            return re.sub(r"%([^%]+)%", one, path)
        if path.startswith("~/"):
            home = self.home()
            return (home.rstrip("/") + path[1:]) if home else path
        return path

    # ------------------------------------------------------------------ files
    def path(self, path: str) -> str:
        """Where ``path`` (platform spelling) is read on this computer."""
        path = self.expand(path)
        if self.root is None:
            return path
        if self.windows:
            parts = ntpath.splitdrive(path)[1].replace("/", "\\").split("\\")
        else:
            parts = path.split("/")
        # As in a chroot, ``..`` at the top stays at the top: never above the root.
        kept: List[str] = []
        for part in parts:
            if part == "..":
                if kept:
                    kept.pop()
            elif part and part != ".":
                kept.append(part)
        return os.path.join(self.root, *kept)

    def display(self, real: str) -> str:
        """A path returned by :meth:`glob` (or :meth:`path`), as the platform spells it."""
        if self.root is None:
            return real
        rel = os.path.relpath(real, self.root)
        if rel.startswith(".."):
            return real
        if self.windows:
            return "C:\\" + rel.replace(os.sep, "\\")
        return "/" + rel.replace(os.sep, "/")

    def isfile(self, path: str) -> bool:
        real = inside(self.path(path), self.root)
        return real is not None and os.path.isfile(real)

    def isdir(self, path: str) -> bool:
        real = inside(self.path(path), self.root)
        return real is not None and os.path.isdir(real)

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.path(path))

    def glob(self, pattern: str, limit: int = MAX_ENTRIES) -> List[str]:
        """Real paths matching ``pattern`` (platform spelling; ``*`` wildcards), sorted,
        at most ``limit``. Windows patterns match case-insensitively, as there."""
        real = self.path(pattern)
        if self.windows and self.root is not None:
            return self._glob_nocase(real, limit)
        return sorted(glob.glob(glob.escape(real).replace("[*]", "*")))[:limit]

    def _glob_nocase(self, real: str, limit: int) -> List[str]:
        assert self.root is not None  # noqa: S101 - only called with a root
        rel = os.path.relpath(real, self.root)
        current = [self.root]
        for part in rel.split(os.sep):
            nxt: List[str] = []
            for base in current:
                try:
                    names = sorted(os.listdir(base))[:MAX_ENTRIES * 4]
                except OSError:
                    continue
                nxt.extend(os.path.join(base, n) for n in names
                           if fnmatch.fnmatch(n.lower(), part.lower()))
            current = nxt[:MAX_ENTRIES * 4]
        return sorted(current)[:limit]

    def find(self, path: str) -> Optional[str]:
        """The real path of ``path``; on a Windows fake root, matched case-insensitively."""
        found = self.glob(glob.escape(path)) if self.windows and self.root else []
        if found:
            return found[0]
        real = self.path(path)
        return real if os.path.lexists(real) else None

    def read_text(self, path: str, limit: int = MAX_FILE, *, real: bool = False) -> Optional[str]:
        """The start of a text file (UTF-8, or UTF-16 with a mark, or Latin-1), ``None``
        when it cannot be read. ``real``: ``path`` is already a real path (from :meth:`glob`)."""
        data = self.read_bytes(path, limit, real=real)
        if data is None:
            return None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16", "replace")
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")

    def read_bytes(self, path: str, limit: int = MAX_FILE, *,
                   real: bool = False) -> Optional[bytes]:
        """The start of a regular file (never a FIFO or device: nothing blocks), ``None``
        when it cannot be read or, with a root, leads out of it."""
        target = path if real else (self.find(path) or self.path(path))
        return read_regular(target, limit, root=self.root)

    def _small(self, path: str) -> str:
        data = read_regular(path, 256, root=self.root)
        return data.decode("utf-8", "replace").strip() if data else ""

    # ------------------------------------------------------------------ USB
    def usb_devices(self) -> Optional[List[UsbDevice]]:
        """The USB devices plugged in; ``None`` when this machine gives no way to know."""
        if self.windows:
            return self._usb_windows()
        if self.macos:
            return self._usb_macos()
        return self._usb_sysfs()

    def _usb_sysfs(self) -> Optional[List[UsbDevice]]:
        base = self.path("/sys/bus/usb/devices")
        if not os.path.isdir(base):
            return None
        out: List[UsbDevice] = []
        for path in sorted(glob.glob(os.path.join(base, "*")))[:MAX_ENTRIES]:
            vendor = self._small(os.path.join(path, "idVendor")).lower()
            product = self._small(os.path.join(path, "idProduct")).lower()
            if not re.fullmatch(r"[0-9a-f]{4}", vendor) or not re.fullmatch(r"[0-9a-f]{4}",
                                                                            product):
                continue
            name = " ".join(filter(None, (self._small(os.path.join(path, "manufacturer")),
                                          self._small(os.path.join(path, "product")))))
            ccid = any(self._small(os.path.join(i, "bInterfaceClass")) == "0b"
                       for i in sorted(glob.glob(os.path.join(path, "*:*")))[:32])
            out.append(UsbDevice(vendor, product, name, ccid))
        return out

    def _usb_windows(self) -> Optional[List[UsbDevice]]:
        key = r"HKLM\SYSTEM\CurrentControlSet\Enum\USB"
        names = self.registry.subkeys(key)
        if not names and isinstance(self.registry, EmptyRegistry):
            return None
        out: List[UsbDevice] = []
        for sub in names[:MAX_ENTRIES]:
            m = re.fullmatch(r"VID_([0-9A-Fa-f]{4})&PID_([0-9A-Fa-f]{4})", sub)
            if not m:
                continue
            label = ""
            ccid: Optional[bool] = None
            for instance in self.registry.subkeys(f"{key}\\{sub}")[:8]:
                values = self.registry.values(f"{key}\\{sub}\\{instance}")
                label = label or _reg_label(values.get("friendlyname") or
                                            values.get("devicedesc"))
                service = str(values.get("service", "")).lower()
                klass = str(values.get("class", "")).lower()
                if service or klass:
                    ccid = bool(ccid) or service in ("scfilter", "wudfrd", "usbccid") \
                        or klass == "smartcardreader"
            out.append(UsbDevice(m.group(1).lower(), m.group(2).lower(), label, ccid))
        return out

    def _usb_macos(self) -> Optional[List[UsbDevice]]:
        text: Optional[str] = None
        if self.ioreg is not None:
            data = read_regular(self.ioreg, 4 * 1024 * 1024)
            if data is None:
                return None
            text = data.decode("utf-8", "replace")
        elif self.live:
            try:
                done = subprocess.run(["ioreg", "-p", "IOUSB", "-l", "-w", "0"],  # noqa: S603,S607
                                      capture_output=True, text=True, timeout=IOREG_TIMEOUT,
                                      check=False)
                text = done.stdout[:4 * 1024 * 1024]
            except (OSError, subprocess.TimeoutExpired):
                return None
        if text is None:
            return None
        return _parse_ioreg(text)




def _reg_label(value: Any) -> str:
    text = str(value or "")
    return text.rsplit(";", 1)[-1].strip()   # "@usbccid.inf,%desc%;Microsoft Usbccid ..."


def _parse_ioreg(text: str) -> List[UsbDevice]:
    """``ioreg -p IOUSB -l`` output: one ``+-o Name@...`` block per device, with
    ``"idVendor" = 2816`` and ``"idProduct" = 144`` (decimal) lines."""
    out: List[UsbDevice] = []
    block: Dict[str, str] = {}
    name = ""

    def flush() -> None:
        if "idVendor" in block and "idProduct" in block and len(out) < MAX_ENTRIES:
            try:
                out.append(UsbDevice(f"{int(block['idVendor']):04x}",
                                     f"{int(block['idProduct']):04x}",
                                     block.get("USB Product Name", name).strip('"')))
            except ValueError:
                pass

    for line in text.splitlines()[:200_000]:
        # str.find, not a regular expression: linear on any line (ReDoS).
        start = line.find("+-o ")
        end = line.find("<class", start + 4) if start >= 0 else -1
        if end > start + 4 and line[end - 1].isspace() and line[start + 4:end].strip():
            flush()
            head = line[start + 4:end].strip()
            at = head.rfind("@")
            if at > 0 and re.fullmatch(r"[0-9a-fA-F]+", head[at + 1:]):
                head = head[:at]
            block, name = {}, head
            continue
        m = re.search(r'"(idVendor|idProduct|USB Product Name)" = (.+)$', line)
        if m:
            block[m.group(1)] = m.group(2).strip()
    flush()
    return out
