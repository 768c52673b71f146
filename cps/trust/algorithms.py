"""One signature-algorithm policy for certificates, CRLs and OCSP answers.

* SHA-1 signatures (RSA PKCS#1 v1.5, ECDSA, DSA, RSASSA-PSS over SHA-1) are
  accepted by default, as IGC-Santé's older objects need; ``allow_sha1=False``
  (``Validator``, ``OcspClient``) refuses them everywhere alike, with the
  reason ``"weak-algorithm"``.
* RSASSA-PSS (RFC 4055) is accepted only as its parameters declare it: MGF1
  over the same hash as the content, and exactly the declared salt length
  (never "any salt").

The PSS parameters are read with the project's DER reader of CRLs
(:mod:`cps.trust.crlindex`'s primitives), the one place they are decoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

if TYPE_CHECKING:  # cryptography loads on first use: `import cps.trust` stays light
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

__all__ = ["SHA1_SIGNATURES", "RSASSA_PSS", "WeakAlgorithm", "is_sha1", "pss_parameters"]

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
    from .crlindex import _expect, _integer, _Malformed, _oid, _read

    hash_oid = mgf_hash_oid = SHA1  # the defaults
    salt = 20
    if parameters is None:
        raise ValueError("RSASSA-PSS without parameters")
    try:
        ps, pe = _expect(parameters, 0, len(parameters), 0x30, "RSASSA-PSS-params")
        if pe != len(parameters):
            raise _Malformed("bytes after RSASSA-PSS-params")
        pos = ps
        while pos < pe:
            tag, cs, ce = _read(parameters, pos, pe)
            if tag == 0xA0:  # hashAlgorithm
                hs, he = _expect(parameters, cs, ce, 0x30, "hashAlgorithm")
                os_, oe = _expect(parameters, hs, he, 0x06, "hashAlgorithm OID")
                hash_oid = _oid(parameters, os_, oe)
            elif tag == 0xA1:  # maskGenAlgorithm: MGF1 with a hash AlgorithmIdentifier
                ms, me = _expect(parameters, cs, ce, 0x30, "maskGenAlgorithm")
                os_, oe = _expect(parameters, ms, me, 0x06, "maskGenAlgorithm OID")
                if _oid(parameters, os_, oe) != MGF1:
                    raise _Malformed("mask generation function is not MGF1")
                hs, he = _expect(parameters, oe, me, 0x30, "MGF1 hash")
                os_, oe = _expect(parameters, hs, he, 0x06, "MGF1 hash OID")
                mgf_hash_oid = _oid(parameters, os_, oe)
            elif tag == 0xA2:  # saltLength
                is_, ie = _expect(parameters, cs, ce, 0x02, "saltLength")
                salt = _integer(parameters, is_, ie, "saltLength")
            elif tag == 0xA3:  # trailerField: only 1 (0xBC) exists
                is_, ie = _expect(parameters, cs, ce, 0x02, "trailerField")
                if _integer(parameters, is_, ie, "trailerField") != 1:
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
