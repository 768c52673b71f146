"""SHA-1 and SHA-256 with an exportable intermediate state.

CPS3 signs with "the last hash step on the card" (IAS-ECC PSO HASH): the host
hashes every complete 64-byte block, then sends the intermediate chaining
state, the number of bits hashed so far and the remaining 1..64 bytes; the
card pads and finishes. :mod:`hashlib` cannot export that state, so the
compression functions are written here, from FIPS 180-4.

The emulator uses :func:`finish` to complete such a hash, which keeps both
sides of the protocol honest against each other and against :mod:`hashlib`.

Speed. :func:`split` hashes the full blocks with OpenSSL's libcrypto when it
can: the low-level ``SHA1_Init``/``SHA1_Update`` and ``SHA256_Init``/
``SHA256_Update`` (deprecated in OpenSSL 3, still exported by 1.1 and 3.x)
through :mod:`ctypes`, then reads the chaining values from the public
``SHA_CTX``/``SHA256_CTX`` layout of ``openssl/sha.h``. The library is the one
CPython's own ``_hashlib`` loaded (found in ``/proc/self/maps``, the dyld image
list on macOS, next to ``_hashlib`` on Windows, else ``find_library``), so no
new dependency. It is loaded on the first :func:`split` that has a full block
to hash, never at import, and checked once against :mod:`hashlib` on known
messages; anything off (no library, missing symbols, a wrong state or bit count)
leaves the pure-Python compression functions in use. ``logging`` says at DEBUG
(logger ``cps.sha``) which one is used; :func:`implementation` tells too.

Why not a package: ``cryptography`` and ``pycryptodome`` have no API that
exports the chaining state; ``rehash`` (last release 2022) reaches into
CPython's and OpenSSL's object internals; ``sha256`` on PyPI (one release)
does SHA-256 only. The libcrypto symbols are a documented, stable C API that
every CPython with :mod:`hashlib` already carries.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["PartialHash", "split", "finish", "DIGEST_SIZES", "implementation"]

_log = logging.getLogger("cps.sha")

#: Set to True to never use libcrypto (the pure-Python compression functions
#: then hash every block): for tests, or to rule the C path out when debugging.
PURE_PYTHON = False

DIGEST_SIZES = {"sha1": 20, "sha256": 32}
_MASK = 0xFFFFFFFF

_SHA1_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
_SHA256_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
              0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_K256 = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)


def _sha1_compress(h: List[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 80):
        x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
        w.append(((x << 1) | (x >> 31)) & _MASK)
    a, b, c, d, e = h
    for t in range(80):
        if t < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif t < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif t < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        temp = (((a << 5) | (a >> 27)) + f + e + k + w[t]) & _MASK
        a, b, c, d, e = temp, a, ((b << 30) | (b >> 2)) & _MASK, c, d
    for i, v in enumerate((a, b, c, d, e)):
        h[i] = (h[i] + v) & _MASK


def _sha256_compress(h: List[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        x, y = w[t - 15], w[t - 2]
        s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
        s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & _MASK)
    a, b, c, d, e, f, g, hh = h
    for t in range(64):
        s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
        ch = (e & f) ^ (~e & g)
        t1 = (hh + (s1 & _MASK) + ch + _K256[t] + w[t]) & _MASK
        s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = ((s0 & _MASK) + maj) & _MASK
        hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & _MASK, c, b, a, (t1 + t2) & _MASK
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & _MASK


_Compress = Callable[[List[int], bytes], None]
_ALGS: Dict[str, Tuple[Tuple[int, ...], _Compress]] = {
    "sha1": (_SHA1_IV, _sha1_compress), "sha256": (_SHA256_IV, _sha256_compress)}


def _alg(algorithm: str) -> Tuple[Tuple[int, ...], _Compress]:
    try:
        return _ALGS[algorithm]
    except KeyError:
        from .errors import NotSupported

        raise NotSupported(f"hash algorithm {algorithm!r} (CPS3 knows sha1 and sha256)") from None


@dataclass(frozen=True)
class PartialHash:
    """A hash stopped before its last block.

    :ivar algorithm: ``"sha1"`` or ``"sha256"``.
    :ivar state: the big-endian chaining values (20 or 32 bytes).
    :ivar bit_count: bits absorbed into ``state`` (a multiple of 512).
    :ivar tail: the 1..64 bytes left for the card (0 bytes only for an empty message).
    """

    algorithm: str
    state: bytes
    bit_count: int
    tail: bytes

    @property
    def state_and_count(self) -> bytes:
        """The value of tag 90 in PSO HASH: state followed by the 8-byte bit count."""
        return self.state + self.bit_count.to_bytes(8, "big")


# --- libcrypto (C speed) -------------------------------------------------------------

#: Bytes given to each call's context: SHA_CTX is 92 bytes and SHA256_CTX 112 with a
#: 32-bit SHA_LONG; the margin keeps a library with another layout inside the buffer
#: until the check at load time refuses it.
_CTX_BYTES = 256
#: (symbol prefix, chaining words) per algorithm; in both structs the chaining words
#: come first, then Nl and Nh (the bit count, low and high words), then data[16], num.
_NATIVE_ALGS = {"sha1": ("SHA1", 5), "sha256": ("SHA256", 8)}


class _LibCrypto:
    """libcrypto's SHA1/SHA256 Init+Update, giving the chaining state of full blocks.

    :param functions: ``{algorithm: (init, update)}``; ``init(ctx)`` and
        ``update(ctx, data, length)`` return 1 on success, as in OpenSSL.
    :param name: where the functions come from (for logs and :func:`implementation`).
    """

    def __init__(self, functions: Dict[str, Tuple[Callable[..., int], Callable[..., int]]],
                 name: str) -> None:
        import ctypes

        self._ctypes = ctypes
        self._functions = functions
        self.name = name

    @classmethod
    def from_library(cls, lib: Any, name: str) -> "_LibCrypto":
        """Bind the symbols of a loaded library (:class:`ctypes.CDLL`); AttributeError if absent."""
        import ctypes

        functions = {}
        for algorithm, (prefix, _) in _NATIVE_ALGS.items():
            init = getattr(lib, f"{prefix}_Init")
            update = getattr(lib, f"{prefix}_Update")
            init.argtypes, init.restype = [ctypes.c_void_p], ctypes.c_int
            update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            update.restype = ctypes.c_int
            functions[algorithm] = (init, update)
        return cls(functions, name)

    def state(self, algorithm: str, message: bytes | bytearray | memoryview, cut: int) -> bytes:
        """The big-endian chaining state after ``message[:cut]`` (``cut`` a multiple of 64).

        Each call has its own context, so threads may hash at once (ctypes releases
        the GIL during the calls). Raises :class:`RuntimeError` if libcrypto fails
        or its context does not read as expected.
        """
        init, update = self._functions[algorithm]
        words = _NATIVE_ALGS[algorithm][1]
        ctx = self._ctypes.create_string_buffer(_CTX_BYTES)
        if init(ctx) != 1:
            raise RuntimeError(f"{algorithm} Init failed")
        if cut:
            if isinstance(message, bytes):
                data: Any = message  # ctypes passes a pointer to the bytes, no copy
            else:
                data = bytes(memoryview(message)[:cut])
            if update(ctx, data, cut) != 1:
                raise RuntimeError(f"{algorithm} Update failed")
        values = struct.unpack_from(f"={words + 2}I", ctx, 0)  # host-endian SHA_LONGs
        bits = values[words] | (values[words + 1] << 32)  # Nl | Nh << 32
        num = struct.unpack_from("=I", ctx, (words + 2 + 16) * 4)[0]
        if bits != cut * 8 or num != 0:
            raise RuntimeError(f"{algorithm} context does not have the expected layout")
        return struct.pack(f">{words}I", *values[:words])


def _verify(native: _LibCrypto) -> bool:
    """True if ``native`` gives states that :func:`finish` completes into hashlib's digests."""
    import hashlib

    for algorithm in _NATIVE_ALGS:
        for blocks, extra in ((1, 0), (2, 5), (17, 63)):
            message = bytes((i * 167 + 13) & 0xFF for i in range(64 * blocks + extra))
            cut = 64 * blocks if extra else 64 * (blocks - 1)
            try:
                state = native.state(algorithm, message, cut)
            except Exception as exc:  # noqa: BLE001 - any failure means "don't use it"
                _log.debug("libcrypto %s refused: %s", native.name, exc)
                return False
            expected = hashlib.new(algorithm, message, usedforsecurity=False).digest()
            if finish(algorithm, state, cut * 8, message[cut:]) != expected:
                _log.debug("libcrypto %s refused: wrong %s state", native.name, algorithm)
                return False
    return True


def _is_libcrypto(path: str) -> bool:
    return os.path.basename(path).lower().startswith("libcrypto")


def _libcrypto_candidates() -> Iterator[str]:
    """Paths (or names) of libcrypto to try, CPython's own first."""
    try:
        import _hashlib

        hashlib_file: Optional[str] = getattr(_hashlib, "__file__", None)
    except ImportError:
        hashlib_file = None
    if os.path.exists("/proc/self/maps"):  # Linux: what _hashlib (or _ssl) mapped
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    fields = line.split(None, 5)
                    if len(fields) == 6 and _is_libcrypto(fields[5].strip()):
                        yield fields[5].strip()
        except OSError:
            pass
    if sys.platform == "darwin":
        yield from _dyld_images()
    if sys.platform == "win32":
        import glob

        folders = [os.path.join(sys.base_prefix, "DLLs")]
        if hashlib_file:
            folders.insert(0, os.path.dirname(hashlib_file))
        for folder in folders:
            for pattern in ("libcrypto-3*.dll", "libcrypto-1_1*.dll"):
                yield from sorted(glob.glob(os.path.join(folder, pattern)))
    if sys.platform == "darwin" and hashlib_file:
        import glob

        for folder in (os.path.dirname(hashlib_file),
                       os.path.join(os.path.dirname(hashlib_file), os.pardir)):
            yield from sorted(glob.glob(os.path.join(folder, "libcrypto*.dylib")))
    import ctypes.util

    found = ctypes.util.find_library("crypto")
    if found:
        yield found
    if hashlib_file:  # an OpenSSL linked statically into _hashlib, if it exports the symbols
        yield hashlib_file


def _dyld_images() -> Iterator[str]:
    """macOS: the libcrypto images loaded in this process (after ``import _hashlib``)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        count = libc._dyld_image_count
        count.restype = ctypes.c_uint32
        image_name = libc._dyld_get_image_name
        image_name.argtypes, image_name.restype = [ctypes.c_uint32], ctypes.c_char_p
        names = [image_name(i) for i in range(count())]
    except (OSError, AttributeError):
        return
    for raw in names:
        if raw and _is_libcrypto(raw.decode("utf-8", "replace")):
            yield raw.decode("utf-8", "replace")


def _open_libcrypto() -> Iterator[Tuple[str, Any]]:
    """Load each candidate libcrypto in turn: ``(name, ctypes.CDLL)``."""
    import ctypes

    seen = set()
    for path in _libcrypto_candidates():
        if path in seen:
            continue
        seen.add(path)
        if sys.platform == "darwin" and path.startswith("/usr/lib/"):
            continue  # the system's LibreSSL stub aborts the process when loaded
        try:
            yield path, ctypes.CDLL(path)
        except OSError as exc:
            _log.debug("cannot load %s: %s", path, exc)


def _load_native() -> Optional[_LibCrypto]:
    """The first libcrypto that has the symbols and passes :func:`_verify`, else None."""
    for name, lib in _open_libcrypto():
        try:
            native = _LibCrypto.from_library(lib, name)
        except AttributeError as exc:
            _log.debug("libcrypto %s refused: %s", name, exc)
            continue
        if _verify(native):
            return native
    return None


_native_lock = threading.Lock()
_native_loaded = False
_native: Optional[_LibCrypto] = None


def _native_impl() -> Optional[_LibCrypto]:
    """libcrypto's functions if usable, loaded and checked on first use; None for pure Python."""
    global _native, _native_loaded
    if PURE_PYTHON:
        return None
    if not _native_loaded:
        with _native_lock:
            if not _native_loaded:
                try:
                    _native = _load_native()
                except Exception as exc:  # noqa: BLE001 - never fail a hash over this
                    _log.debug("libcrypto lookup failed: %s", exc)
                    _native = None
                if _native is not None:
                    _log.debug("SHA-1/SHA-256 intermediate states from libcrypto %s",
                               _native.name)
                else:
                    _log.debug("SHA-1/SHA-256 intermediate states in pure Python "
                               "(no usable libcrypto)")
                _native_loaded = True
    return _native


def _reset_native() -> None:
    """Forget the libcrypto lookup: the next :func:`split` looks again (for tests)."""
    global _native, _native_loaded
    with _native_lock:
        _native, _native_loaded = None, False


def implementation() -> str:
    """What :func:`split` hashes full blocks with: ``"libcrypto <path>"`` or ``"python"``.

    Loads and checks libcrypto if that was not done yet.
    """
    native = _native_impl()
    return f"libcrypto {native.name}" if native is not None else "python"


def _python_state(algorithm: str, message: bytes | bytearray | memoryview, cut: int) -> bytes:
    iv, compress = _alg(algorithm)
    h = list(iv)
    mv = memoryview(message)
    for off in range(0, cut, 64):
        compress(h, bytes(mv[off:off + 64]))
    return struct.pack(f">{len(h)}I", *h)


def _octets(message: object) -> bytes | bytearray | memoryview:
    """The message as bytes, whatever buffer it came in: lengths and slices then
    count bytes, not the items of an ``array('H')`` or a multi-byte memoryview.

    :raises TypeError: not a bytes-like object (a ``str`` has no bytes to sign).
    """
    if isinstance(message, (bytes, bytearray)):
        return message
    try:
        view = memoryview(message)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not {type(message).__name__!r}") \
            from None
    if view.itemsize == 1 and view.ndim == 1 and view.c_contiguous:
        return view.cast("B") if view.format != "B" else view
    return view.tobytes()


def split(algorithm: str, message: bytes | bytearray | memoryview) -> PartialHash:
    """Hash every full block of ``message`` but keep a non-empty last block (1..64 bytes).

    When the length is a multiple of 64 the last full block stays for the card
    (the ANS Cryptolib's behaviour: a CPS3 expects a non-empty last block).
    """
    global _native
    _alg(algorithm)
    octets = _octets(message)
    keep = len(octets) % 64 or min(64, len(octets))
    cut = len(octets) - keep
    state = None
    if cut:
        native = _native_impl()
        if native is not None:
            try:
                state = native.state(algorithm, octets, cut)
            except Exception as exc:  # noqa: BLE001 - fall back, and stop using it
                _log.debug("libcrypto %s failed (%s): pure Python from now on", native.name, exc)
                with _native_lock:
                    _native = None
    if state is None:
        state = _python_state(algorithm, octets, cut)
    return PartialHash(algorithm, state, cut * 8, bytes(memoryview(octets)[cut:]))


def finish(algorithm: str, state: bytes, bit_count: int, tail: bytes) -> bytes:
    """Complete a hash from an intermediate state: pad ``tail`` and compress.

    :param state: chaining values as exported by :func:`split`; empty to start
        from the initial value (PSO HASH with ``90 00``).
    :param bit_count: bits already absorbed into ``state``.
    :param tail: the remaining message bytes.
    """
    iv, compress = _alg(algorithm)
    if state:
        if len(state) != len(iv) * 4 or bit_count % 512:
            from .errors import CardProtocolError

            raise CardProtocolError("inconsistent intermediate hash state")
        h = list(struct.unpack(f">{len(iv)}I", state))
    else:
        h, bit_count = list(iv), 0
    total_bits = bit_count + len(tail) * 8
    padded = tail + b"\x80" + b"\x00" * ((55 - len(tail)) % 64) + total_bits.to_bytes(8, "big")
    for off in range(0, len(padded), 64):
        compress(h, padded[off:off + 64])
    return struct.pack(f">{len(h)}I", *h)


def digest(algorithm: str, message: bytes) -> Tuple[PartialHash, bytes]:
    """Split then finish (for tests): returns the partial hash and the final digest."""
    part = split(algorithm, message)
    return part, finish(algorithm, part.state, part.bit_count, part.tail)
