"""The Windows registry as the doctor reads it: live (:mod:`winreg`) or from a ``.reg``
export, so that every Windows check runs on Linux CI against a prepared export.

::

    from cps.diagnostics.registry import RegistryExport

    reg = RegistryExport.from_file("machine.reg")      # regedit's "Export" format
    reg.value(r"HKLM\\SOFTWARE\\ASIP\\Cryptolib CPS", "Version")   # "05.02.02" or None
    reg.subkeys(r"HKLM\\SOFTWARE\\Mozilla\\PKCS11Modules")         # ["cps3", ...]

The export format is regedit's: UTF-16LE with a byte-order mark (what regedit
writes) or UTF-8, a first line ``Windows Registry Editor Version 5.00`` (or
``REGEDIT4``), ``[HKEY_...\\key]`` sections, ``"name"="string"``, ``@=`` for the
default value, ``dword:0000000a``, ``hex:..`` / ``hex(N):..`` with ``\\``
continuations. An export is untrusted input: the parser is bounded (size, lines,
keys, values) and a malformed file raises :class:`RegistryExportError`.
Key names are case-insensitive, as in Windows; ``HKLM``/``HKCU`` abbreviate the
hives.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Protocol, Tuple, Union

from ..errors import CpsError

__all__ = ["Registry", "RegistryExport", "RegistryExportError", "EmptyRegistry",
           "LiveRegistry", "normalise_key"]

#: Bounds for an export file: a whole-machine export is far larger, but the doctor
#: needs a few keys, and an attacker-sized file must not cost unbounded memory.
MAX_EXPORT_BYTES = 16 * 1024 * 1024
MAX_KEYS = 50_000
MAX_VALUES_PER_KEY = 4_096
#: Characters of one value once its continuation lines are joined.
MAX_LOGICAL_LINE = 4 * 1024 * 1024

Value = Union[str, int, bytes, List[str]]

_HIVES = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER", "HKCR": "HKEY_CLASSES_ROOT",
          "HKU": "HKEY_USERS", "HKCC": "HKEY_CURRENT_CONFIG"}


class RegistryExportError(CpsError):
    """A ``.reg`` export could not be read: too large, not text, or malformed."""


class Registry(Protocol):
    """What the doctor asks of a registry (live or exported)."""

    def value(self, key: str, name: str) -> Optional[Value]:
        """The value ``name`` of ``key`` (``""``: the default value), ``None`` when absent."""

    def values(self, key: str) -> Dict[str, Value]:
        """Every value of ``key`` (empty when the key is absent)."""

    def subkeys(self, key: str) -> List[str]:
        """The names of ``key``'s direct subkeys (empty when absent)."""


def normalise_key(key: str) -> str:
    """``HKLM\\Software\\X`` -> ``HKEY_LOCAL_MACHINE\\SOFTWARE\\X`` (upper case, single
    backslashes): the form keys are compared in."""
    parts = [p for p in key.replace("/", "\\").split("\\") if p]
    if not parts:
        raise ValueError("empty registry key")
    parts[0] = _HIVES.get(parts[0].upper(), parts[0])
    return "\\".join(p.upper() for p in parts)


class EmptyRegistry:
    """No registry (not Windows, or no export given): every key is absent."""

    def value(self, key: str, name: str) -> Optional[Value]:
        return None

    def values(self, key: str) -> Dict[str, Value]:
        return {}

    def subkeys(self, key: str) -> List[str]:
        return []


class RegistryExport:
    """A parsed ``.reg`` export (see the module's documentation)."""

    def __init__(self, keys: Mapping[str, Dict[str, Value]], names: Mapping[str, str]) -> None:
        self._keys = dict(keys)          # normalised key -> {lower-case value name: value}
        self._names = dict(names)        # normalised key -> the key's last part, as written

    @classmethod
    def from_file(cls, path: str) -> "RegistryExport":
        """Read and parse an export file.

        :raises RegistryExportError: unreadable, too large or malformed.
        """
        from ..cryptolib import read_regular

        data = read_regular(path, MAX_EXPORT_BYTES + 1)    # never blocks on a FIFO
        if data is None:
            raise RegistryExportError(f"cannot read the registry export {path}: not a "
                                      "readable regular file")
        return cls.parse(data, source=path)

    @classmethod
    def parse(cls, data: bytes, *, source: str = "registry export") -> "RegistryExport":
        """Parse the bytes of an export.

        :raises RegistryExportError: too large, not UTF-16/UTF-8 text, or malformed.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("data must be bytes")
        if len(data) > MAX_EXPORT_BYTES:
            raise RegistryExportError(f"{source}: larger than {MAX_EXPORT_BYTES} bytes")
        text = _decode(bytes(data), source)
        lines = _logical_lines(text, source)
        if not lines or lines[0][1].strip() not in ("Windows Registry Editor Version 5.00",
                                                     "REGEDIT4"):
            raise RegistryExportError(f"{source}: not a registry export (no "
                                      "'Windows Registry Editor Version 5.00' header)")
        keys: Dict[str, Dict[str, Value]] = {}
        names: Dict[str, str] = {}
        current: Optional[Dict[str, Value]] = None
        for number, line in lines[1:]:
            stripped = line.strip()
            if not stripped or stripped.startswith(";"):
                continue
            if stripped.startswith("["):
                if not stripped.endswith("]"):
                    raise RegistryExportError(f"{source}, line {number}: unterminated key")
                raw = stripped[1:-1]
                if raw.startswith("-"):          # a deletion: nothing to read
                    current = None
                    continue
                try:
                    key = normalise_key(raw)
                except ValueError:
                    raise RegistryExportError(f"{source}, line {number}: empty key") from None
                if key not in keys and len(keys) >= MAX_KEYS:
                    raise RegistryExportError(f"{source}: more than {MAX_KEYS} keys")
                current = keys.setdefault(key, {})
                names[key] = raw.replace("/", "\\").rstrip("\\").split("\\")[-1]
                continue
            if current is None:
                raise RegistryExportError(f"{source}, line {number}: a value outside any key")
            name, value = _value_line(stripped, source, number)
            if len(current) >= MAX_VALUES_PER_KEY:
                raise RegistryExportError(f"{source}: more than {MAX_VALUES_PER_KEY} values "
                                          "in one key")
            if value is not None:
                current[name.lower()] = value
        return cls(keys, names)

    def value(self, key: str, name: str) -> Optional[Value]:
        return self._keys.get(normalise_key(key), {}).get(name.lower())

    def values(self, key: str) -> Dict[str, Value]:
        return dict(self._keys.get(normalise_key(key), {}))

    def subkeys(self, key: str) -> List[str]:
        prefix = normalise_key(key) + "\\"
        found: Dict[str, str] = {}
        for k in self._keys:
            if k.startswith(prefix):
                child = k[len(prefix):].split("\\", 1)[0]
                found.setdefault(child, self._names.get(prefix + child, child))
        return sorted(found.values(), key=str.upper)


def _decode(data: bytes, source: str) -> str:
    try:
        if data.startswith(b"\xff\xfe"):
            return data[2:].decode("utf-16-le")
        if data.startswith(b"\xef\xbb\xbf"):
            return data[3:].decode("utf-8")
        if len(data) > 1 and data[1:2] == b"\x00":      # UTF-16LE without its mark
            return data.decode("utf-16-le")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryExportError(f"{source}: not UTF-16 or UTF-8 text ({exc.reason} at byte "
                                  f"{exc.start})") from None


def _logical_lines(text: str, source: str) -> List[Tuple[int, str]]:
    """Lines with regedit's backslash continuations joined, each with its first number.

    The pieces of a value are joined once (linear), and one value is at most
    :data:`MAX_LOGICAL_LINE` characters."""
    out: List[Tuple[int, str]] = []
    first = 0
    pieces: List[str] = []
    size = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if pieces:
            line = line.strip()
        elif "=hex" not in line:
            out.append((number, line))
            continue
        else:
            first = number
        stripped = line.rstrip()
        more = stripped.endswith("\\")
        piece = stripped[:-1] if more else line
        size += len(piece)
        if size > MAX_LOGICAL_LINE:
            raise RegistryExportError(f"{source}, line {first}: value too long (more than "
                                      f"{MAX_LOGICAL_LINE} characters)")
        pieces.append(piece)
        if not more:
            out.append((first, "".join(pieces)))
            pieces, size = [], 0
    if pieces:
        raise RegistryExportError(f"{source}, line {first}: continuation at the end of "
                                  "the file")
    return out


_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _value_line(line: str, source: str, number: int) -> Tuple[str, Optional[Value]]:
    """``"name"=value`` (``@=value``: the default value) -> ``(name, value)``; the value
    is ``None`` for a deletion (``"name"=-``)."""
    where = f"{source}, line {number}"
    if line.startswith("@="):
        name, rest = "", line[2:]
    else:
        match = _STRING.match(line)
        if not match or line[match.end():match.end() + 1] != "=":
            raise RegistryExportError(f'{where}: expected "name"=value')
        name, rest = _unescape(match.group(1)), line[match.end() + 1:]
    rest = rest.strip()
    if rest == "-":
        return name, None
    if rest.startswith('"'):
        match = _STRING.fullmatch(rest)
        if not match:
            raise RegistryExportError(f"{where}: unterminated string")
        return name, _unescape(match.group(1))
    lowered = rest.lower()
    if lowered.startswith("dword:"):
        digits = rest[6:]
        if not re.fullmatch(r"[0-9a-fA-F]{1,8}", digits):
            raise RegistryExportError(f"{where}: bad dword {digits[:20]!r}")
        return name, int(digits, 16)
    match = re.match(r"hex(?:\(([0-9a-fA-F]{1,8})\))?:", lowered)
    if match:
        body = rest[match.end():].replace(" ", "")
        if body and not re.fullmatch(r"[0-9a-fA-F]{2}(,[0-9a-fA-F]{2})*,?", body):
            raise RegistryExportError(f"{where}: bad hex data")
        raw = bytes(int(b, 16) for b in body.split(",") if b)
        kind = int(match.group(1), 16) if match.group(1) else 3
        return name, _typed(kind, raw)
    raise RegistryExportError(f"{where}: unknown value type {rest[:20]!r}")


def _typed(kind: int, raw: bytes) -> Value:
    """A ``hex(N):`` value as its type: REG_SZ (1), REG_EXPAND_SZ (2), REG_MULTI_SZ (7)
    as text (UTF-16LE), REG_DWORD (4), REG_QWORD (11) as numbers, else bytes."""
    if kind in (1, 2, 7):
        text = raw.decode("utf-16-le", "replace")
        if kind == 7:
            return [s for s in text.split("\x00") if s]
        return text.split("\x00", 1)[0]
    if kind == 4 and len(raw) == 4:
        return int.from_bytes(raw, "little")
    if kind == 11 and len(raw) == 8:
        return int.from_bytes(raw, "little")
    return raw


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


class LiveRegistry:
    """The running Windows machine's registry, read-only, through :mod:`winreg`.

    Reads the 64-bit view first, then the 32-bit one (``WOW6432Node``), as the
    Cryptolib's 32-bit installer writes there on 64-bit Windows."""

    def __init__(self) -> None:
        import winreg  # noqa: F401 - fails early off Windows

    def _open(self, key: str) -> List[object]:
        import winreg

        hive_name, _, path = normalise_key(key).partition("\\")
        hive = getattr(winreg, hive_name, None)
        if hive is None:
            return []
        handles: List[object] = []
        views = (winreg.KEY_WOW64_64KEY, winreg.KEY_WOW64_32KEY)  # type: ignore[attr-defined]
        for view in views:
            try:
                handles.append(winreg.OpenKey(hive, path, 0,  # type: ignore[attr-defined]
                                              winreg.KEY_READ | view))  # type: ignore[attr-defined]
            except OSError:
                continue
        return handles

    def value(self, key: str, name: str) -> Optional[Value]:
        return self.values(key).get(name.lower())

    def values(self, key: str) -> Dict[str, Value]:
        import winreg

        out: Dict[str, Value] = {}
        for handle in self._open(key):
            with handle:  # type: ignore[attr-defined]
                for i in range(MAX_VALUES_PER_KEY):
                    try:
                        name, data, _ = winreg.EnumValue(handle, i)  # type: ignore[attr-defined]
                    except OSError:
                        break
                    if isinstance(data, (str, int, bytes, list)):
                        out.setdefault(str(name).lower(), data)
        return out

    def subkeys(self, key: str) -> List[str]:
        import winreg

        out: Dict[str, str] = {}
        for handle in self._open(key):
            with handle:  # type: ignore[attr-defined]
                for i in range(MAX_KEYS):
                    try:
                        name = winreg.EnumKey(handle, i)  # type: ignore[attr-defined]
                    except OSError:
                        break
                    out.setdefault(name.upper(), name)
        return sorted(out.values(), key=str.upper)
