"""Generate large, correctly signed CRLs fast, for benchmarks and tests.

cryptography's ``CertificateRevocationListBuilder`` needs minutes for a
million entries (one Python object and one FFI call per entry), so this module
writes the DER itself: every revoked entry is a few byte concatenations, and
only the finished TBSCertList goes through cryptography, to be signed with
RSA PKCS#1 v1.5 / SHA-256. The output is a plain RFC 5280 v2 CRL that
``cryptography.x509.load_der_x509_crl`` accepts and whose signature verifies.

Entries look like those of a large production CA: 16-byte random positive
serials (a 17-byte INTEGER when the top bit is set, as with CAs that draw
128-bit serials), UTCTime revocation dates spread over the years before
thisUpdate, and a reasonCode extension on every ``reasons_every``-th entry.
The CRL carries a cRLNumber and an authorityKeyIdentifier (from the CA's
subjectKeyIdentifier).

:func:`cached_crl` keeps the output under ``benchmarks/.cache/`` so that
repeated benchmark runs do not regenerate (a million entries take a few
seconds to generate).
"""

from __future__ import annotations

import hashlib
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps.der import encode_length

__all__ = ["make_crl", "crl_serials", "cached_crl", "cached_crl_path", "CACHE_DIR",
           "DEFAULT_THIS_UPDATE"]

#: Where :func:`cached_crl` keeps generated CRLs (not under version control).
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
#: A fixed default thisUpdate, so that the same arguments give the same DER.
DEFAULT_THIS_UPDATE = datetime(2026, 1, 1, 7, 0, 0, tzinfo=timezone.utc)

#: The reason codes drawn for entries that carry one (RFC 5280 5.3.1; no 0, no 7).
_REASONS = (1, 3, 4, 5, 1, 4, 9, 4, 3, 2)
_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def _integer(value: int) -> bytes:
    body = value.to_bytes(((value if value >= 0 else ~value).bit_length() + 8) // 8,
                          "big", signed=True)
    return _tlv(0x02, body)


def _time(moment: datetime) -> bytes:
    """UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 5.1.2.4)."""
    moment = moment.astimezone(timezone.utc)
    if 1950 <= moment.year < 2050:
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def _extension(oid_der: bytes, value: bytes, critical: bool = False) -> bytes:
    return _tlv(0x30, oid_der + (b"\x01\x01\xff" if critical else b"") + _tlv(0x04, value))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) datetime")
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def crl_serials(n_entries: int, seed: int = 1) -> List[int]:
    """The serials :func:`make_crl` writes for these arguments, in CRL order.

    Lets a benchmark pick hits without parsing the CRL.

    :param n_entries: number of entries.
    :param seed: the ``seed`` given to :func:`make_crl`.
    """
    raw = random.Random(seed).randbytes(16 * n_entries)
    return [int.from_bytes(raw[16 * i:16 * i + 16], "big") or 1 for i in range(n_entries)]


def _entries(n_entries: int, reasons_every: int, this_update: datetime, seed: int) -> bytes:
    """The content of revokedCertificates: ``n_entries`` entries, in one bytes object."""
    serials = crl_serials(n_entries, seed)
    # Revocations spread evenly over the five years before thisUpdate, oldest
    # first, as a CA appends them; formatting one date per distinct day keeps
    # strftime out of the loop.
    span = 5 * 365 * 86400
    start = int(this_update.timestamp()) - span
    step = span / max(n_entries, 1)
    days: dict = {}
    out: List[bytes] = []
    append = out.append
    for i, serial in enumerate(serials):
        body = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
        seconds = start + int(i * step)
        day, rest = divmod(seconds, 86400)
        prefix = days.get(day)
        if prefix is None:
            prefix = days[day] = datetime.fromtimestamp(day * 86400, timezone.utc) \
                .strftime("%y%m%d").encode()
        hh, rest = divmod(rest, 3600)
        mm, ss = divmod(rest, 60)
        date = b"\x17\x0d" + prefix + b"%02d%02d%02dZ" % (hh, mm, ss)
        entry = b"\x02" + bytes((len(body),)) + body + date
        if reasons_every and i % reasons_every == 0:
            code = _REASONS[(i // reasons_every) % len(_REASONS)]
            # SEQUENCE { Extension { id-ce-cRLReasons, OCTET STRING { ENUMERATED } } }
            entry += b"\x30\x0c\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01" + bytes((code,))
        append(b"\x30" + bytes((len(entry),)) + entry)
    return b"".join(out)


def make_crl(
    n_entries: int,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    reasons_every: int = 3,
    this_update: Optional[datetime] = None,
    next_update: Union[datetime, timedelta, None] = timedelta(days=1),
    crl_number: int = 1,
    seed: int = 1,
) -> bytes:
    """Build and sign a CRL of ``n_entries`` revoked certificates, as DER.

    The same arguments always give the same bytes (RSA PKCS#1 v1.5 signatures
    are deterministic).

    :param n_entries: number of revoked certificates (0 omits revokedCertificates).
    :param ca_cert: the issuing CA certificate (issuer name and key identifier).
    :param ca_key: the CA's RSA private key.
    :param reasons_every: every n-th entry (starting with the first) carries a
        reasonCode extension; 0 for none.
    :param this_update: aware datetime; default :data:`DEFAULT_THIS_UPDATE`.
    :param next_update: an aware datetime, a delay after ``this_update``, or
        ``None`` to omit nextUpdate.
    :param crl_number: the cRLNumber extension's value.
    :param seed: seed of the serial numbers.
    """
    if n_entries < 0:
        raise ValueError("n_entries must be >= 0")
    this = _utc(this_update or DEFAULT_THIS_UPDATE)
    if isinstance(next_update, timedelta):
        nxt: Optional[datetime] = this + next_update
    else:
        nxt = _utc(next_update) if next_update is not None else None
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key()).digest
    extensions = (
        _extension(b"\x06\x03\x55\x1d\x23", _tlv(0x30, _tlv(0x80, ski)))  # AKI keyIdentifier
        + _extension(b"\x06\x03\x55\x1d\x14", _integer(crl_number))       # cRLNumber
    )
    parts = [
        b"\x02\x01\x01",  # v2
        _SHA256_WITH_RSA,
        ca_cert.subject.public_bytes(),
        _time(this),
    ]
    if nxt is not None:
        parts.append(_time(nxt))
    if n_entries:
        entries = _entries(n_entries, reasons_every, this, seed)
        parts.append(b"\x30" + encode_length(len(entries)))
        parts.append(entries)
        del entries
    parts.append(_tlv(0xA0, _tlv(0x30, extensions)))
    body_len = sum(len(p) for p in parts)
    tbs = b"".join([b"\x30", encode_length(body_len)] + parts)
    del parts
    signature = ca_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    bit_string = _tlv(0x03, b"\x00" + signature)
    content_len = len(tbs) + len(_SHA256_WITH_RSA) + len(bit_string)
    return b"".join((b"\x30", encode_length(content_len), tbs, _SHA256_WITH_RSA, bit_string))


def cached_crl_path(
    n_entries: int,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    cache_dir: Optional[Path] = None,
    **options: object,
) -> Path:
    """Path of :func:`make_crl`'s output kept on disk, generated on first use.

    The file name hashes every argument and the CA certificate, so a changed
    CA or option never reuses a stale file.

    :param cache_dir: where to keep the files; default :data:`CACHE_DIR`.
    :param options: the keyword arguments of :func:`make_crl`.
    """
    folder = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    key = hashlib.sha256(
        ca_cert.public_bytes(serialization.Encoding.DER)
        + repr(sorted((k, repr(v)) for k, v in options.items())).encode()
    ).hexdigest()[:16]
    path = folder / f"crl-{n_entries}-{key}.der"
    if not path.is_file():
        der = make_crl(n_entries, ca_cert, ca_key, **options)  # type: ignore[arg-type]
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(der)
        tmp.replace(path)  # atomic: a concurrent run never reads half a file
    return path


def cached_crl(n_entries: int, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey, *,
               cache_dir: Optional[Path] = None, **options: object) -> bytes:
    """:func:`make_crl`, kept on disk (see :func:`cached_crl_path`).

    :param cache_dir: where to keep the files; default :data:`CACHE_DIR`.
    :param options: the keyword arguments of :func:`make_crl`.
    """
    return cached_crl_path(n_entries, ca_cert, ca_key, cache_dir=cache_dir,
                           **options).read_bytes()
