"""The ANS Cryptolib CPS installed on this machine: where, and which version.

CPS4 cards speak only to the Cryptolib 5.2 or later (ANS). ``open_card()`` on a
CPS4 and ``cps doctor`` both ask here::

    from cps.cryptolib import find_cryptolib, CPS4_MIN_VERSION

    install = find_cryptolib()          # None: not installed
    install.module, install.version, install.supports_cps4

The platform facts are keyword arguments defaulting to the running process, as
in :mod:`cps.pkcs11_modules` (``platform``, ``bits``, ``environ``, ``root``: a
directory standing for the file system's root, for tests on prepared trees;
``registry``: on Windows, a :class:`cps.diagnostics.registry.Registry`, e.g. a
parsed ``.reg`` export).

Nothing here loads the module: ``C_GetInfo`` would only say the library version
(3.1 for every Cryptolib 5.x), not the product version, and loading a module may
talk to the card. The product version is read from what the ANS installers leave
behind (read in the 5.2.2 RPM's scripts, the 5.2.1 macOS package's scripts and
receipts, and the Windows installer's functional specification v3.3.4):

=======  =============================================================================
Linux    the SESAM-Vitale "ADM" inventory file the RPM's post-install script writes,
         ``/var/opt/santesocial/commun/adm/155.adm`` (64-bit; ``154.adm`` 32-bit): its
         first line is the version as ``050202``; else the RPM database
         (``/var/lib/rpm/rpmdb.sqlite``, package ``CryptolibCPS``); else dpkg's
         status (the RPM converted by alien: package ``cryptolibcps``)
macOS    the installer receipt ``/var/db/receipts/fr.asipsante.pkg.cryptolibCPS.plist``
         (``PackageVersion``; older ``org.asipsante.cryptolibCPS``), else the ADM file
         ``/Library/Application Support/santesocial/commun/adm/155.adm``
Windows  ``HKLM\\SOFTWARE\\ASIP\\Cryptolib CPS`` value ``Version`` (``05.02.02``; also
         under ``WOW6432Node``), else the ``Uninstall`` entry whose ``DisplayName``
         names the Cryptolib CPS (``DisplayVersion``)
=======  =============================================================================
"""

from __future__ import annotations

import os
import plistlib
import re
import sqlite3
import stat
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .pkcs11_modules import CRYPTOLIB, candidate_paths, module_candidates

__all__ = ["CPS4_MIN_VERSION", "CryptolibInstall", "find_cryptolib", "install_advice",
           "installed_version",
           "parse_version", "read_regular"]

#: The first Cryptolib that speaks to CPS4 cards (ANS, July 2024).
CPS4_MIN_VERSION = (5, 2)

_ADM_LINUX = "/var/opt/santesocial/commun/adm"
_ADM_MACOS = "/Library/Application Support/santesocial/commun/adm"
_RECEIPTS = ("fr.asipsante.pkg.cryptolibCPS", "org.asipsante.cryptolibCPS")
_RPM_NAME = "CryptolibCPS"
_DPKG_NAME = "cryptolibcps"
_MAX_SMALL = 64 * 1024
_MAX_DPKG = 32 * 1024 * 1024
_MAX_RPM_ROWS = 20_000
#: SQLite virtual-machine steps the RPM query may take (a real rpmdb needs far fewer):
#: a hostile database (a view over an endless recursive query) is cut off.
_RPM_BUDGET = 50_000_000
_RPM_STEP = 10_000


#: Where the ANS publishes the Cryptolib (its DiagCPS online test offers it too).
DOWNLOAD = "https://github.com/ansforge/dops-cryptolib"


def install_advice(*, platform: str | None = None, bits: int | None = None,
                   installed: str | None = None) -> str:
    """What to install for CPS4 cards on this platform, as one sentence without its
    full stop: the Cryptolib CPS 5.2 or later, the installer to run, where to get
    it, and the PKCS#11 module it installs (the path :func:`find_cryptolib` looks at).
    The one wording for ``open_card``'s :class:`~cps.errors.CryptolibRequired` and
    ``cps doctor``.

    :param platform: a :data:`sys.platform` value; default this process's.
    :param bits: 32 or 64; default this process's width.
    :param installed: the version installed now, when one is (too old).
    """
    system = platform or sys.platform
    width = bits or (64 if sys.maxsize > 2**32 else 32)
    minimum = ".".join(str(n) for n in CPS4_MIN_VERSION)
    now = f" (the one installed is {installed})" if installed else ""
    source = f"from {DOWNLOAD} or through the ANS's online DiagCPS test"
    if system == "win32":
        module = candidate_paths(CRYPTOLIB, platform=system, bits=width)[0]
        return (f"Install the ANS Cryptolib CPS {minimum} or later for Windows{now}: run "
                f"CryptolibCPS-5.2.x_x64.msi (CryptolibCPS-5.2.x.msi on 32-bit Windows; "
                f"{source}) as administrator, then restart the browsers; its {width}-bit "
                f"PKCS#11 module will be {module}")
    if system == "darwin":
        module = candidate_paths(CRYPTOLIB, platform=system, bits=width)[0]
        return (f"Install the ANS Cryptolib CPS {minimum} or later for macOS{now}: open its "
                f"package CryptolibCPS-5.2.x.pkg ({source}), then restart the browsers; its "
                f"PKCS#11 module will be {module}")
    if system.startswith("linux"):
        module = candidate_paths(CRYPTOLIB, platform=system, bits=width)[0]
        return (f"Install the ANS Cryptolib CPS {minimum} or later for Linux{now}: its RPM "
                f"CryptolibCPS-5.2.x-1.x86_64.rpm ({source}), `dnf install "
                f"./CryptolibCPS-5.2.x-1.x86_64.rpm` as root (Debian/Ubuntu: convert it with "
                f"`alien --scripts`); its PKCS#11 module will be {module}")
    return (f"A CPS4 needs the ANS Cryptolib CPS {minimum} or later, which exists only for "
            f"Linux, macOS and Windows ({DOWNLOAD})")


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"5.2.6"`` -> ``(5, 2, 6)``; ``None`` for nothing readable."""
    if not text:
        return None
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _normalise(text: str) -> str | None:
    """``"050202"`` (ADM), ``"05.02.02"`` (registry), ``"5.2.2-1"`` (rpm/dpkg) -> ``"5.2.2"``."""
    text = text.strip()
    if re.fullmatch(r"\d{6}", text):
        return ".".join(str(int(text[i:i + 2])) for i in (0, 2, 4))
    match = re.match(r"v?(\d{1,3}(?:\.\d{1,5}){0,3})", text)
    if not match:
        return None
    return ".".join(str(int(p)) for p in match.group(1).split("."))


@dataclass(frozen=True)
class CryptolibInstall:
    """An installed Cryptolib CPS.

    :ivar module: the PKCS#11 module's path (under ``root`` when one was given).
    :ivar version: the product version (``"5.2.6"``), ``None`` when nothing on
        the machine says it.
    :ivar version_source: where the version was read (``"adm"``, ``"rpm"``,
        ``"dpkg"``, ``"registry"``, ``"receipt"``), ``"unknown"`` when it was not.
    """

    module: str
    version: str | None = None
    version_source: str = "unknown"

    @property
    def version_tuple(self) -> tuple[int, ...] | None:
        return parse_version(self.version)

    @property
    def supports_cps4(self) -> bool | None:
        """Whether this version speaks to CPS4 cards; ``None`` when the version is unknown."""
        v = self.version_tuple
        return None if v is None else v[:2] >= CPS4_MIN_VERSION


def find_cryptolib(*, platform: str | None = None, bits: int | None = None,
                   environ: Mapping[str, str] | None = None,
                   root: str | os.PathLike[str] | None = None,
                   registry: Any = None) -> CryptolibInstall | None:
    """The Cryptolib installed for this process's width, or ``None``.

    The version is read without loading the module (see the module's documentation).
    """
    for candidate in module_candidates(platform=platform, bits=bits, environ=environ, root=root):
        if candidate.kind == CRYPTOLIB and candidate.exists:
            version, source = installed_version(platform=platform, root=root,
                                                registry=registry)
            return CryptolibInstall(candidate.path, version, source)
    return None


def installed_version(*, platform: str | None = None,
                      root: str | os.PathLike[str] | None = None,
                      registry: Any = None) -> tuple[str | None, str]:
    """The Cryptolib's product version and where it was read, ``(None, "unknown")``
    when no installer record says it. Malformed records are skipped, never raised."""
    system = platform or sys.platform
    if system == "win32":
        return _windows_version(_registry(registry, root))
    if system == "darwin":
        for ident in _RECEIPTS:
            version = _receipt(_under(root, f"/var/db/receipts/{ident}.plist"), root)
            if version:
                return version, "receipt"
        version = _adm(_under(root, _ADM_MACOS), root)
        return (version, "adm") if version else (None, "unknown")
    version = _adm(_under(root, _ADM_LINUX), root)
    if version:
        return version, "adm"
    version = _rpm_sqlite(_under(root, "/var/lib/rpm/rpmdb.sqlite"), root)
    if version:
        return version, "rpm"
    version = _dpkg(_under(root, "/var/lib/dpkg/status"), root)
    if version:
        return version, "dpkg"
    return None, "unknown"


def _under(root: str | os.PathLike[str] | None, path: str) -> str:
    if root is None:
        return path
    return os.path.join(os.fspath(root), *(p for p in path.split("/") if p not in ("", ".", "..")))


def _registry(registry: Any, root: str | os.PathLike[str] | None) -> Any:
    if registry is not None:
        return registry
    if root is None and sys.platform == "win32":
        from .diagnostics.registry import LiveRegistry

        return LiveRegistry()
    return None


def _windows_version(registry: Any) -> tuple[str | None, str]:
    if registry is None:
        return None, "unknown"
    for key in (r"HKLM\SOFTWARE\ASIP\Cryptolib CPS",
                r"HKLM\SOFTWARE\WOW6432Node\ASIP\Cryptolib CPS"):
        value = registry.value(key, "Version")
        if isinstance(value, str) and _normalise(value):
            return _normalise(value), "registry"
    for base in (r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
                 r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall"):
        for sub in registry.subkeys(base)[:2048]:
            values = registry.values(f"{base}\\{sub}")
            name = str(values.get("displayname", ""))
            if "cryptolib" in name.lower() and "cps" in name.lower():
                version = values.get("displayversion")
                if isinstance(version, str) and _normalise(version):
                    return _normalise(version), "registry"
    return None, "unknown"


def inside(path: str, root: str | os.PathLike[str] | None) -> str | None:
    """``path`` with its symbolic links resolved when it stays under ``root`` (a link
    inside the root to inside the root is fine), ``None`` when it leads out; ``path``
    itself without a root."""
    if root is None:
        return path
    base = os.path.realpath(os.fspath(root))
    real = os.path.realpath(path)
    try:
        return real if os.path.commonpath([real, base]) == base else None
    except ValueError:          # another drive (Windows)
        return None


def read_regular(path: str, limit: int, *,
                 root: str | os.PathLike[str] | None = None) -> bytes | None:
    """At most ``limit`` bytes of the regular file ``path``; ``None`` when it is missing,
    unreadable, not a regular file (a FIFO, a device: never blocks on one) or, with a
    ``root``, when it (or a symbolic link on the way) leads out of the root."""
    real = inside(path, root)
    if real is None:
        return None
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    if root is not None:        # resolved above: a link appearing since is not followed
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path: str, limit: int, root: str | os.PathLike[str] | None = None) -> bytes | None:
    return read_regular(path, limit, root=root)


def _adm(directory: str, root: str | os.PathLike[str] | None = None) -> str | None:
    """The installer's ADM record: ``155.adm`` (64-bit) or ``154.adm`` (32-bit), the
    version as six digits on the first line (``050202``), then a label."""
    for name in ("155.adm", "154.adm"):
        data = _read(os.path.join(directory, name), 256, root)
        if data:
            first = data.decode("latin-1").splitlines()[0].strip() if data.strip() else ""
            if re.fullmatch(r"\d{6}", first):
                return _normalise(first)
    return None


def _receipt(path: str, root: str | os.PathLike[str] | None = None) -> str | None:
    data = _read(path, _MAX_SMALL, root)
    if not data:
        return None
    try:
        info = plistlib.loads(data)
    except Exception:  # noqa: BLE001 - plistlib raises many types on hostile input
        return None
    version = info.get("PackageVersion") if isinstance(info, dict) else None
    return _normalise(version) if isinstance(version, str) else None


def _dpkg(path: str, root: str | os.PathLike[str] | None = None) -> str | None:
    # Bounded read (a status without newlines is never read whole; a record beyond the
    # first _MAX_DPKG bytes is not looked at), and the package's stanza found in the
    # bytes: nothing decodes or splits the whole file (memory stays ~ the bytes read).
    data = _read(path, _MAX_DPKG, root)
    if not data:
        return None
    wanted = b"Package: " + _DPKG_NAME.encode() + b"\n"
    at = 0 if data.startswith(wanted) else data.find(b"\n" + wanted)
    if at < 0:
        return None
    end = data.find(b"\n\n", at + 1)
    stanza = data[at:end if end >= 0 else len(data)][:64 * 1024].decode("utf-8", "replace")
    for line in stanza.splitlines():
        if line.startswith("Version:"):
            return _normalise(line.split(":", 1)[1].split(":")[-1])
    return None


def _rpm_sqlite(path: str, root: str | os.PathLike[str] | None = None) -> str | None:
    """RHEL 9's RPM database: table ``Packages(hnum, blob)``, each blob an RPM header
    without its magic (``il``, ``dl``, ``il`` index entries, ``dl`` bytes of data)."""
    real = inside(path, root)
    if real is None or not os.path.isfile(real):
        return None
    path = real
    # Read-only, with rpm's write-ahead log when it can be read; else the main file
    # alone (immutable: no lock, no -shm needed), which misses only the newest writes.
    for mode in ("ro", "ro&immutable=1"):
        version = _rpm_query(path, mode)
        if version is not _UNREADABLE:
            return version
    return None


_UNREADABLE = "unreadable"


def _rpm_query(path: str, mode: str) -> str | None:
    try:
        db = sqlite3.connect(f"file:{quote(path)}?mode={mode}", uri=True, timeout=1)
    except sqlite3.Error:
        return _UNREADABLE
    steps = [0]

    def budget() -> int:        # non-zero aborts the statement (version unknown)
        steps[0] += 1
        return int(steps[0] * _RPM_STEP > _RPM_BUDGET)

    try:
        db.set_progress_handler(budget, _RPM_STEP)
        # Functions named in the file's schema (views, triggers) are not run.
        db.execute("PRAGMA trusted_schema=OFF")
        kind = db.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
        if kind is None or kind[0] != "table":      # a view could compute forever
            return None
        # A header is a few KiB; a hostile database's giant blobs are not read.
        rows = db.execute("SELECT blob FROM Packages WHERE length(blob) <= ? LIMIT ?",
                          (_MAX_SMALL * 16, _MAX_RPM_ROWS))
        for (blob,) in rows:
            if isinstance(blob, bytes) and _RPM_NAME.encode() in blob:
                tags = _rpm_header(blob)
                if tags.get(1000) == _RPM_NAME and tags.get(1001):
                    return _normalise(tags[1001])
    except sqlite3.OperationalError as exc:
        return None if "interrupt" in str(exc).lower() else _UNREADABLE
    except sqlite3.Error:
        return _UNREADABLE
    finally:
        db.close()
    return None


def _rpm_header(blob: bytes) -> dict[int, str]:
    """NAME (1000) and VERSION (1001) of an RPM header blob; empty when malformed."""
    try:
        il, dl = struct.unpack(">II", blob[:8])
        if il > 10_000 or 8 + 16 * il + dl > len(blob):
            return {}
        store = 8 + 16 * il
        out: dict[int, str] = {}
        for i in range(il):
            tag, kind, offset, _count = struct.unpack(">IIII", blob[8 + 16 * i:24 + 16 * i])
            if tag in (1000, 1001) and kind == 6 and offset < dl:
                end = blob.find(b"\0", store + offset, store + dl)
                if end > 0:
                    out[tag] = blob[store + offset:end].decode("utf-8", "replace")
        return out
    except struct.error:
        return {}
