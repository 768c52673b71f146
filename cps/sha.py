"""SHA-1 and SHA-256 with an exportable intermediate state.

CPS3 signs with "the last hash step on the card" (IAS-ECC PSO HASH): the host
hashes every complete 64-byte block, then sends the intermediate chaining
state, the number of bits hashed so far and the remaining 1..64 bytes; the
card pads and finishes. :mod:`hashlib` cannot export that state, so the
compression functions are written here, from FIPS 180-4.

The emulator uses :func:`finish` to complete such a hash, which keeps both
sides of the protocol honest against each other and against :mod:`hashlib`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Tuple

__all__ = ["PartialHash", "split", "finish", "DIGEST_SIZES"]

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


_ALGS = {"sha1": (_SHA1_IV, _sha1_compress), "sha256": (_SHA256_IV, _sha256_compress)}


def _alg(algorithm: str):
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


def split(algorithm: str, message: bytes) -> PartialHash:
    """Hash every full block of ``message`` but keep a non-empty last block (1..64 bytes).

    When the length is a multiple of 64 the last full block stays for the card
    (the ANS Cryptolib's behaviour: a CPS3 expects a non-empty last block).
    """
    iv, compress = _alg(algorithm)
    h = list(iv)
    keep = len(message) % 64 or min(64, len(message))
    cut = len(message) - keep
    mv = memoryview(message)
    for off in range(0, cut, 64):
        compress(h, bytes(mv[off:off + 64]))
    return PartialHash(algorithm, struct.pack(f">{len(h)}I", *h), cut * 8, bytes(mv[cut:]))


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
