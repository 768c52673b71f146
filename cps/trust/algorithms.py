"""One signature-algorithm policy for certificates, CRLs and OCSP answers.

* SHA-1 signatures (RSA PKCS#1 v1.5, ECDSA, DSA, RSASSA-PSS over SHA-1) are
  accepted by default, as IGC-Santé's older objects need; ``allow_sha1=False``
  (``Validator``, ``OcspClient``) refuses them everywhere alike, with the
  reason ``"weak-algorithm"``.
* RSASSA-PSS (RFC 4055) is accepted only as its parameters declare it: MGF1
  over the same hash as the content, and exactly the declared salt length
  (never "any salt").

The PSS parameters are read with the project's DER reader (:mod:`cps.der`),
here and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

from ..der import header
from .certs import oid_to_str

if TYPE_CHECKING:  # cryptography loads on first use: `import cps.trust` stays light
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

__all__ = ["SHA1_SIGNATURES", "RSASSA_PSS", "SIGNATURES", "WeakAlgorithm",
           "UnknownSignatureAlgorithm", "is_sha1", "pss_parameters", "verify_signature"]

RSASSA_PSS = "1.2.840.113549.1.1.10"
MGF1 = "1.2.840.113549.1.1.8"
SHA1 = "1.3.14.3.2.26"
#: signatureAlgorithm OIDs that sign a SHA-1 digest
SHA1_SIGNATURES = frozenset({
    "1.2.840.113549.1.1.5",   # sha1WithRSAEncryption
    "1.3.14.3.2.29",          # sha1WithRSASignature (OIW)
    "1.2.840.10045.4.1",      # ecdsa-with-SHA1
    "1.2.840.10040.4.3",      # dsa-with-sha1
})
#: hash OID -> the name of cryptography's class
HASHES = {
    SHA1: "SHA1", "2.16.840.1.101.3.4.2.4": "SHA224", "2.16.840.1.101.3.4.2.1": "SHA256",
    "2.16.840.1.101.3.4.2.2": "SHA384", "2.16.840.1.101.3.4.2.3": "SHA512",
}


#: signatureAlgorithm OID -> (key type, name of cryptography's hash class): every
#: signature a certificate, a CRL or an OCSP answer may carry
SIGNATURES = {
    "1.2.840.113549.1.1.5": ("rsa", "SHA1"), "1.3.14.3.2.29": ("rsa", "SHA1"),
    "1.2.840.113549.1.1.14": ("rsa", "SHA224"), "1.2.840.113549.1.1.11": ("rsa", "SHA256"),
    "1.2.840.113549.1.1.12": ("rsa", "SHA384"), "1.2.840.113549.1.1.13": ("rsa", "SHA512"),
    RSASSA_PSS: ("rsa-pss", None),
    "1.2.840.10045.4.1": ("ecdsa", "SHA1"), "1.2.840.10045.4.3.1": ("ecdsa", "SHA224"),
    "1.2.840.10045.4.3.2": ("ecdsa", "SHA256"), "1.2.840.10045.4.3.3": ("ecdsa", "SHA384"),
    "1.2.840.10045.4.3.4": ("ecdsa", "SHA512"),
    "1.2.840.10040.4.3": ("dsa", "SHA1"), "2.16.840.1.101.3.4.3.2": ("dsa", "SHA256"),
    "1.3.101.112": ("ed25519", None), "1.3.101.113": ("ed448", None),
}


class UnknownSignatureAlgorithm(ValueError):
    """Raised by :func:`verify_signature` for an algorithm outside :data:`SIGNATURES`."""


def verify_signature(key: Any, signature: bytes, data: Union[bytes, memoryview], oid: str,
                     parameters: Optional[bytes] = None) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key``: the one dispatch
    from a signatureAlgorithm to cryptography's verify call.

    ``data`` may be a memoryview (a CRL's tbsCertList, not copied).

    :param oid: the signatureAlgorithm, dotted.
    :param parameters: its raw DER parameters (read for RSASSA-PSS only).
    :returns: ``False`` when the signature does not verify or the key's type
        does not fit the algorithm (this key did not make this signature).
    :raises UnknownSignatureAlgorithm: an algorithm outside :data:`SIGNATURES`.
    :raises ValueError: RSASSA-PSS parameters this policy refuses or cannot read.
    :raises cryptography.exceptions.UnsupportedAlgorithm: the backend cannot.
    """
    entry = SIGNATURES.get(oid)
    if entry is None:
        raise UnknownSignatureAlgorithm(f"unsupported signature algorithm {oid}")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

    kind, hash_name = entry
    algorithm: Any = getattr(hashes, hash_name)() if hash_name else None
    try:
        if kind == "rsa":
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            # cryptography's stub says bytes for RSA only; the binding takes any
            # buffer, as its EC, DSA and EdDSA stubs declare.
            key.verify(signature, data, padding.PKCS1v15(), algorithm)  # type: ignore[arg-type]
        elif kind == "rsa-pss":
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            # MGF1 over the content hash, exactly the declared salt
            algorithm, pss = pss_parameters(parameters)
            key.verify(signature, data, pss, algorithm)  # type: ignore[arg-type]  # as above
        elif kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif kind == "dsa":
            if not isinstance(key, dsa.DSAPublicKey):
                return False
            key.verify(signature, data, algorithm)
        else:
            if not isinstance(key, ed25519.Ed25519PublicKey if kind == "ed25519"
                              else ed448.Ed448PublicKey):
                return False
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


class _Malformed(ValueError):
    """Malformed RSASSA-PSS parameters (turned into a ValueError with context)."""


def _expect(d: bytes, pos: int, limit: int, tag: int, what: str) -> Tuple[int, int]:
    t, s, e = header(d, pos, limit, _Malformed)
    if t != tag:
        raise _Malformed(f"{what}: expected tag 0x{tag:02X}, found 0x{t:02X} at offset {pos}")
    return s, e


def _oid(d: bytes, s: int, e: int) -> str:
    if s >= e or e - s > 64 or d[e - 1] & 0x80 or d[s] == 0x80:
        raise _Malformed("bad OBJECT IDENTIFIER")
    return oid_to_str(d[s:e])


def _integer(d: bytes, s: int, e: int) -> int:
    if s >= e:
        raise _Malformed("empty INTEGER")
    if e - s > 1 and ((d[s] == 0 and d[s + 1] < 0x80) or (d[s] == 0xFF and d[s + 1] >= 0x80)):
        raise _Malformed("INTEGER not minimally encoded")
    return int.from_bytes(d[s:e], "big", signed=True)


class WeakAlgorithm(ValueError):
    """Raised by :func:`pss_parameters` for parameters this policy refuses."""


def is_sha1(oid: str, parameters: Optional[bytes]) -> bool:
    """Whether a signatureAlgorithm (dotted OID, raw DER parameters) signs SHA-1."""
    if oid in SHA1_SIGNATURES:
        return True
    if oid == RSASSA_PSS:
        try:
            algorithm, _ = pss_parameters(parameters)
        except ValueError:
            return False
        return algorithm.name == "sha1"
    return False


def pss_parameters(parameters: Optional[bytes]) -> Tuple["hashes.HashAlgorithm", "padding.PSS"]:
    """Decode RSASSA-PSS-params (RFC 4055 3.1, defaults included) into what to verify with.

    :raises ValueError: malformed, an unknown hash, a mask generation function
        other than MGF1, MGF1 over another hash than the content's, an absurd
        salt length, or a trailer field other than 1.
    """
    hash_oid = mgf_hash_oid = SHA1  # the defaults
    salt = 20
    if parameters is None:
        raise ValueError("RSASSA-PSS without parameters")
    p = parameters
    try:
        ps, pe = _expect(p, 0, len(p), 0x30, "RSASSA-PSS-params")
        if pe != len(p):
            raise _Malformed("bytes after RSASSA-PSS-params")
        pos = ps
        while pos < pe:
            tag, cs, ce = header(p, pos, pe, _Malformed)
            if tag == 0xA0:  # hashAlgorithm
                hs, he = _expect(p, cs, ce, 0x30, "hashAlgorithm")
                hash_oid = _oid(p, *_expect(p, hs, he, 0x06, "hashAlgorithm OID"))
            elif tag == 0xA1:  # maskGenAlgorithm: MGF1 with a hash AlgorithmIdentifier
                ms, me = _expect(p, cs, ce, 0x30, "maskGenAlgorithm")
                os_, oe = _expect(p, ms, me, 0x06, "maskGenAlgorithm OID")
                if _oid(p, os_, oe) != MGF1:
                    raise _Malformed("mask generation function is not MGF1")
                hs, he = _expect(p, oe, me, 0x30, "MGF1 hash")
                mgf_hash_oid = _oid(p, *_expect(p, hs, he, 0x06, "MGF1 hash OID"))
            elif tag == 0xA2:  # saltLength
                salt = _integer(p, *_expect(p, cs, ce, 0x02, "saltLength"))
            elif tag == 0xA3:  # trailerField: only 1 (0xBC) exists
                if _integer(p, *_expect(p, cs, ce, 0x02, "trailerField")) != 1:
                    raise _Malformed("trailerField is not 1")
            else:
                raise _Malformed(f"unexpected tag 0x{tag:02X}")
            pos = ce
    except (_Malformed, IndexError) as exc:
        raise ValueError(f"malformed RSASSA-PSS parameters: {exc}") from None
    if hash_oid not in HASHES:
        raise ValueError(f"RSASSA-PSS over an unknown hash {hash_oid}")
    if mgf_hash_oid != hash_oid:
        raise ValueError(f"RSASSA-PSS with MGF1 over {mgf_hash_oid}, not over the content "
                         f"hash {hash_oid}")
    if not 0 <= salt < 4096:
        raise ValueError(f"RSASSA-PSS salt length {salt}")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    algorithm: Any = getattr(hashes, HASHES[hash_oid])()
    mgf_hash: Any = getattr(hashes, HASHES[mgf_hash_oid])()
    return algorithm, padding.PSS(padding.MGF1(mgf_hash), salt)
