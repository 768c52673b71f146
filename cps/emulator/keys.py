"""Deterministic RSA keys for the emulator's test PKI.

.. warning::
   TEST-ONLY key material. Every key produced here is a pure function of a
   public seed and a label: anyone who knows the seed (``1`` by default, and
   it sits in the test suite) can recompute every private key. Never use these
   keys, or certificates issued for them, outside tests and demos.

``cryptography`` cannot seed its key generator, yet the emulator needs
reproducible card and CA keys so that the same seed always yields the same
certificates (DER-identical), whatever the machine. We therefore generate the
primes ourselves:

* an HMAC-DRBG (NIST SP 800-90A, HMAC-SHA-256) instantiated with a
  domain-separated encoding of ``(seed, label, bits)`` produces candidate
  starting points with the two top bits set (so that ``p * q`` has exactly
  ``bits`` bits);
* from each start, a window of odd candidates is sieved by all primes below
  2**16 (one big-integer reduction per small prime, then slice assignments),
  which removes ~90 % of the candidates before any modular exponentiation;
* survivors go through a base-2 Fermat test, then Miller-Rabin with bases
  derived by hashing the candidate (so that tuning the round count never
  changes which primes are selected);
* ``e = 65537``; ``d = e^-1 mod lcm(p-1, q-1)``; CRT values are computed and
  the key is built with :class:`~cryptography.hazmat.primitives.asymmetric.rsa.RSAPrivateNumbers`,
  whose loader re-checks the key with OpenSSL.

A 2048-bit key takes about 0.2-0.3 s in CPython; a 4096-bit key several
seconds, hence :func:`cached_rsa_key`, which keeps derived keys on disk: in
the directory of the PKI that uses them, and in one per-user *shared* cache
(:func:`shared_key_cache`: ``$CPS_TEST_KEY_CACHE``, else
``$XDG_CACHE_HOME/cps/test-keys``, else ``~/.cache/cps/test-keys``), so that
the many test PKIs built in temporary directories derive each key once per
machine, not once per directory. Sharing is safe because a derived key is a
pure function of ``(derivation version, seed, label, bits)``, all of which
are hashed into the file name.

The derivation is versioned (``_DERIVATION_VERSION``): changing anything that
affects the bytes drawn from the DRBG changes every key and certificate, so it
must come with a version bump.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "HmacDrbg",
    "KEY_CACHE_ENV",
    "cached_rsa_key",
    "derive_rsa_key",
    "seed_bytes",
    "shared_key_cache",
    "write_atomic",
]

PUBLIC_EXPONENT = 65537
_DERIVATION_VERSION = b"cps-emulator/test-rsa-key/v1"
#: Environment variable naming the shared key cache directory; empty disables it.
KEY_CACHE_ENV = "CPS_TEST_KEY_CACHE"
_SHARED = object()  # sentinel: "use shared_key_cache()"


class HmacDrbg:
    """HMAC-DRBG with SHA-256 (NIST SP 800-90A section 10.1.2), without reseeding.

    Deterministic by design: it is used to derive TEST-ONLY key material and
    serial numbers, never to produce secrets.

    :param seed_material: entropy input || nonce || personalization string,
        already concatenated by the caller.
    """

    _OUTLEN = 32

    def __init__(self, seed_material: bytes) -> None:
        self._key = b"\x00" * self._OUTLEN
        self._value = b"\x01" * self._OUTLEN
        self._update(seed_material)

    def _hmac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def _update(self, provided: bytes | None) -> None:
        self._key = self._hmac(self._value + b"\x00" + (provided or b""))
        self._value = self._hmac(self._value)
        if provided:
            self._key = self._hmac(self._value + b"\x01" + provided)
            self._value = self._hmac(self._value)

    def generate(self, length: int) -> bytes:
        """Return the next ``length`` pseudo-random bytes.

        :param length: number of bytes wanted.
        """
        out = bytearray()
        while len(out) < length:
            self._value = self._hmac(self._value)
            out += self._value
        self._update(None)
        return bytes(out[:length])

    def randbits(self, bits: int) -> int:
        """Return a non-negative integer of at most ``bits`` bits.

        :param bits: size of the integer, in bits.
        """
        raw = int.from_bytes(self.generate((bits + 7) // 8), "big")
        return raw >> (-bits % 8)


def seed_bytes(seed: int | bytes) -> bytes:
    """Encode a seed unambiguously (``1`` and ``b"\\x01"`` are different seeds).

    :param seed: a non-negative integer or a byte string.
    :raises TypeError: for any other type.
    :raises ValueError: for a negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, bytes)):
        raise TypeError(f"seed must be int or bytes, not {type(seed).__name__}")
    if isinstance(seed, int):
        if seed < 0:
            raise ValueError("seed must be non-negative")
        return b"i" + seed.to_bytes(max(1, (seed.bit_length() + 7) // 8), "big")
    return b"b" + seed


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _small_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit, i)))
    return [i for i in range(3, limit) if sieve[i]]  # 2 is handled by oddness


_SIEVE_PRIMES = _small_primes(1 << 16)


def _miller_rabin_rounds(bits: int) -> int:
    # Random (not adversarial) candidates: FIPS 186-5 table B.1 needs about
    # 5 rounds for 1024-bit primes and 4 for 1536/2048-bit ones; we add margin.
    return 8 if bits <= 1024 else 6


def _is_probable_prime(n: int, rounds: int) -> bool:
    """Fermat base 2, then Miller-Rabin with bases derived from ``n`` itself."""
    if pow(2, n - 1, n) != 1:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    n_bytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
    for i in range(rounds):
        digest = hashlib.sha512(b"mr-base" + i.to_bytes(2, "big") + n_bytes).digest()
        a = 2 + int.from_bytes(digest, "big") % (n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(drbg: HmacDrbg, bits: int) -> int:
    """Draw a prime of exactly ``bits`` bits with its two top bits set."""
    window = 2 * bits  # odd offsets per start; covers ~3 average prime gaps
    rounds = _miller_rabin_rounds(bits)
    top = (1 << (bits - 1)) | (1 << (bits - 2))
    while True:
        start = drbg.randbits(bits) | top | 1
        alive = bytearray([1]) * window
        for p in _SIEVE_PRIMES:
            # Index i of candidate start + 2*i divisible by p: i = -start / 2 mod p.
            i0 = (-(start % p) * ((p + 1) // 2)) % p
            if start + 2 * i0 == p:  # never strike out a small prime itself
                i0 += p
            if i0 < window:
                alive[i0::p] = bytes(len(range(i0, window, p)))
        for i in range(window):
            if not alive[i]:
                continue
            candidate = start + 2 * i
            if candidate.bit_length() != bits:
                break
            if (candidate - 1) % PUBLIC_EXPONENT == 0:  # gcd(e, p - 1) must be 1
                continue
            if _is_probable_prime(candidate, rounds):
                return candidate


def derive_rsa_key(seed: int | bytes, label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """Derive a TEST-ONLY RSA private key deterministically from ``(seed, label, bits)``.

    The same arguments always give the same key, on every machine and Python
    version; any change to one of them gives an unrelated key. The key is
    recomputable by anyone who knows the seed: it protects nothing.

    :param seed: PKI seed (non-negative integer or bytes).
    :param label: what the key is for, e.g. ``"ca/FORT PERSONNES"`` or
        ``"card/2900001001/auth"``; distinct labels give independent keys.
    :param bits: modulus size, a multiple of 16 between 1024 and 8192.
    :returns: an RSA private key with public exponent 65537.
    :raises ValueError: for an unsupported size.
    """
    if bits % 16 or not 1024 <= bits <= 8192:
        raise ValueError(f"unsupported RSA key size: {bits}")
    drbg = HmacDrbg(
        _length_prefixed(
            _DERIVATION_VERSION, seed_bytes(seed), label.encode("utf-8"), str(bits).encode()
        )
    )
    half = bits // 2
    p = _random_prime(drbg, half)
    while True:
        q = _random_prime(drbg, half)
        # FIPS 186-5 asks |p - q| > 2^(bits/2 - 100); a clash is astronomically
        # unlikely with a sound DRBG, but checking costs nothing.
        if abs(p - q) >> (half - 100):
            break
    if p < q:  # conventional ordering, also makes iqmp well defined
        p, q = q, p
    e = PUBLIC_EXPONENT
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def _cache_file_name(seed: int | bytes, label: str, bits: int) -> str:
    digest = hashlib.sha256(
        _length_prefixed(_DERIVATION_VERSION, seed_bytes(seed), label.encode("utf-8"),
                         str(bits).encode())
    ).hexdigest()[:24]
    # A readable prefix helps when browsing the directory; the digest makes the
    # name unique per (seed, label, bits), so a cache can never serve a key
    # derived from another seed.
    slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")[:40]
    return f"{slug}-{bits}-{digest}.pem"


def shared_key_cache() -> Path | None:
    """The per-user directory shared by every test PKI for its TEST-ONLY keys.

    ``$CPS_TEST_KEY_CACHE`` when set (an empty value disables the shared
    cache), else ``test-keys`` in :func:`cps.platform_paths.user_cache_dir`
    (``$XDG_CACHE_HOME/cps`` or ``~/.cache/cps`` on Linux). Read afresh on each
    call, so that tests may change the variable.

    :returns: the directory (maybe not created yet), or ``None`` when disabled
        or when no home directory is known.
    """
    configured = os.environ.get(KEY_CACHE_ENV)
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    from ..platform_paths import user_cache_dir

    try:
        return user_cache_dir() / "test-keys"
    except (RuntimeError, KeyError):  # no home directory
        return None


def _usable_shared_dir(folder: Path) -> bool:
    """Create the shared cache (mode 0700) if needed; refuse one that others may write.

    The keys protect nothing, but a directory writable by another user would
    let that user substitute keys, and with them the certificates the test
    PKI issues.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return False
    if os.name != "posix":  # pragma: no cover - POSIX-only checks
        return True
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _load_cached(path: Path, bits: int) -> rsa.RSAPrivateKey | None:
    try:
        # OpenSSL's full key check costs ~30 ms per 2048-bit key (it re-tests
        # the primes); these files are ours, so a few big-integer identities
        # are enough to catch a damaged file.
        key = serialization.load_pem_private_key(
            path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
        )
    except (OSError, ValueError, TypeError):
        return None  # missing or damaged: derive again
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits and _consistent(key):
        return key
    return None


def cached_rsa_key(
    directory: str | os.PathLike[str] | None,
    seed: int | bytes,
    label: str,
    bits: int = 2048,
    *,
    shared_cache: str | os.PathLike[str] | None | object = _SHARED,
) -> rsa.RSAPrivateKey:
    """Like :func:`derive_rsa_key`, but keep the TEST-ONLY key on disk.

    The key is looked up in ``directory``, then in the shared per-user cache,
    and derived only when neither has a sound copy; it is then written to
    both (so that ``directory`` stays self-contained). Files (unencrypted
    PKCS#8 PEM: the key is public knowledge anyway) are named after a hash of
    ``(derivation version, seed, label, bits)``, written atomically so that
    concurrent test processes can share a directory, and re-derived when
    missing or unreadable. A shared cache that cannot be created or written,
    or that other users may write to, is ignored.

    :param directory: the PKI's own key directory (created if needed);
        ``None``: none.
    :param seed: PKI seed.
    :param label: key label, see :func:`derive_rsa_key`.
    :param bits: modulus size.
    :param shared_cache: the shared cache directory; default
        :func:`shared_key_cache`; ``None`` disables it.
    """
    name = _cache_file_name(seed, label, bits)
    own = Path(directory) / name if directory is not None else None
    if own is not None:
        key = _load_cached(own, bits)
        if key is not None:
            return key
    shared_dir = shared_key_cache() if shared_cache is _SHARED else shared_cache
    shared = None
    if shared_dir is not None:
        folder = Path(shared_dir)  # type: ignore[arg-type]
        if _usable_shared_dir(folder):
            shared = folder / name
    key = _load_cached(shared, bits) if shared is not None else None
    derived = key is None
    if key is None:
        key = derive_rsa_key(seed, label, bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if own is not None:
        write_atomic(own, pem)
    if shared is not None and derived:
        try:
            write_atomic(shared, pem)
        except OSError:
            pass  # a read-only or full cache only costs time
    return key


def _consistent(key: rsa.RSAPrivateKey) -> bool:
    n = key.private_numbers()
    pub = n.public_numbers
    return (
        pub.e == PUBLIC_EXPONENT
        and n.p * n.q == pub.n
        and (pub.e * n.d) % math.lcm(n.p - 1, n.q - 1) == 1
        and n.dmp1 == n.d % (n.p - 1)
        and n.dmq1 == n.d % (n.q - 1)
        and (n.iqmp * n.q) % n.p == 1
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`.

    :param path: destination; its parent directory is created if needed.
    :param data: file content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
