"""One signature-algorithm policy for certificates, CRLs and OCSP answers.

* SHA-1 signatures (RSA PKCS#1 v1.5, ECDSA, DSA, RSASSA-PSS over SHA-1) are
  accepted by default, as IGC-Santé's older objects need; ``allow_sha1=False``
  (``Validator``, ``OcspClient``) refuses them everywhere alike, with the
  reason ``"weak-algorithm"``.
* RSASSA-PSS (RFC 4055) is accepted only as its parameters declare it: MGF1
  over the same hash as the content, and exactly the declared salt length
  (never "any salt"), within what the key can carry. The parameters are read
  strictly (fields in order, each once, nothing after them): the same bytes
  cannot mean one salt here and another elsewhere. CMS signatures
  (:func:`cps.sign.verify_cms`) use the same reader.

The PSS parameters are read with the project's DER reader (:mod:`cps.der`),
here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

from ..der import header
from .certs import oid_to_str

if TYPE_CHECKING:  # cryptography loads on first use: `import cps.trust` stays light
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

__all__ = ["SHA1_SIGNATURES", "RSASSA_PSS", "RSA_ENCRYPTION", "SIGNATURES", "MAX_PSS_SALT",
           "PssParameters", "WeakAlgorithm", "UnknownSignatureAlgorithm", "is_sha1",
           "algorithm_identifier", "check_rsa_padding", "key_algorithm",
           "parse_pss_parameters", "pss_max_salt", "pss_parameters",
           "verify_signature"]

RSASSA_PSS = "1.2.840.113549.1.1.10"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
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
            params = parse_pss_parameters(parameters)
            if not params.fits(key.key_size):  # no signature by this key carries it
                return False
            algorithm, pss = params.hash_algorithm, params.padding()
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


def _hash_identifier(d: bytes, s: int, e: int, what: str) -> str:
    """The OID of a hash AlgorithmIdentifier filling exactly d[s:e]: the OID, then
    nothing or NULL (RFC 4055 2.1 accepts both), nothing else."""
    hs, he = _expect(d, s, e, 0x30, what)
    if he != e:
        raise _Malformed(f"bytes after {what}")
    os_, oe = _expect(d, hs, he, 0x06, f"{what} OID")
    if oe != he and d[oe:he] != b"\x05\x00":
        raise _Malformed(f"{what}: parameters other than NULL")
    return _oid(d, os_, oe)


def _integer(d: bytes, s: int, e: int) -> int:
    if s >= e:
        raise _Malformed("empty INTEGER")
    if e - s > 8:  # no salt length or trailer field needs more than 64 bits
        raise _Malformed("INTEGER too large")
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


#: the largest saltLength :func:`parse_pss_parameters` reads (an RSA-32768 key's
#: room); :func:`pss_max_salt` gives the bound of a given key
MAX_PSS_SALT = 4095


@dataclass(frozen=True)
class PssParameters:
    """RSASSA-PSS-params (RFC 4055 3.1) as read: MGF1 over ``hash``, always.

    :ivar hash: the hash's name as hashlib and cryptography spell it
        (``"sha256"``...), for the content and for MGF1 alike.
    :ivar salt_length: the declared saltLength, ``0 <= salt_length <= MAX_PSS_SALT``.
    """

    hash: str
    salt_length: int

    @property
    def hash_algorithm(self) -> "hashes.HashAlgorithm":
        """The hash, as a cryptography object."""
        from cryptography.hazmat.primitives import hashes

        algorithm: Any = getattr(hashes, self.hash.upper())()
        return algorithm  # type: ignore[no-any-return]

    def padding(self) -> "padding.PSS":
        """What to verify with: MGF1 over the hash, exactly the declared salt."""
        from cryptography.hazmat.primitives.asymmetric import padding

        return padding.PSS(padding.MGF1(self.hash_algorithm), self.salt_length)

    def fits(self, key_size: int) -> bool:
        """Whether a ``key_size``-bit RSA key can carry this salt (:func:`pss_max_salt`)."""
        return self.salt_length <= pss_max_salt(key_size, self.hash)


def pss_max_salt(key_size: int, hash: str) -> int:
    """The longest salt an RSASSA-PSS signature by a ``key_size``-bit key over
    ``hash`` can carry (RFC 8017 9.1.1: emLen - hLen - 2)."""
    em_len = (key_size - 1 + 7) // 8
    return em_len - _HASH_SIZES[hash] - 2


_HASH_SIZES = {"sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}


def parse_pss_parameters(parameters: Optional[bytes]) -> PssParameters:
    """Decode RSASSA-PSS-params (RFC 4055 3.1, defaults included), strictly.

    The fields in their order, each at most once; every AlgorithmIdentifier
    exactly an OID and absent or NULL parameters; nothing after them.

    :raises ValueError: missing or malformed parameters, an unknown hash, a
        mask generation function other than MGF1, MGF1 over another hash than
        the content's, a salt length outside ``0..MAX_PSS_SALT``, or a trailer
        field other than 1.
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
        last = 0x9F  # the fields come in their order, each at most once (DER)
        while pos < pe:
            tag, cs, ce = header(p, pos, pe, _Malformed)
            if not last < tag <= 0xA3:
                raise _Malformed(f"unexpected, repeated or misplaced tag 0x{tag:02X}")
            last = tag
            if tag == 0xA0:  # hashAlgorithm
                hash_oid = _hash_identifier(p, cs, ce, "hashAlgorithm")
            elif tag == 0xA1:  # maskGenAlgorithm: MGF1 with a hash AlgorithmIdentifier
                ms, me = _expect(p, cs, ce, 0x30, "maskGenAlgorithm")
                if me != ce:
                    raise _Malformed("bytes after maskGenAlgorithm")
                os_, oe = _expect(p, ms, me, 0x06, "maskGenAlgorithm OID")
                if _oid(p, os_, oe) != MGF1:
                    raise _Malformed("mask generation function is not MGF1")
                mgf_hash_oid = _hash_identifier(p, oe, me, "MGF1 hash")
            elif tag == 0xA2:  # saltLength
                ss, se = _expect(p, cs, ce, 0x02, "saltLength")
                if se != ce:
                    raise _Malformed("bytes after saltLength")
                salt = _integer(p, ss, se)
            else:  # trailerField: only 1 (0xBC) exists
                ts, te = _expect(p, cs, ce, 0x02, "trailerField")
                if te != ce or _integer(p, ts, te) != 1:
                    raise _Malformed("trailerField is not 1")
            pos = ce
    except (_Malformed, IndexError) as exc:
        raise ValueError(f"malformed RSASSA-PSS parameters: {exc}") from None
    if hash_oid not in HASHES:
        raise ValueError(f"RSASSA-PSS over an unknown hash {hash_oid}")
    if mgf_hash_oid != hash_oid:
        raise ValueError(f"RSASSA-PSS with MGF1 over {mgf_hash_oid}, not over the content "
                         f"hash {hash_oid}")
    if not 0 <= salt <= MAX_PSS_SALT:
        raise ValueError(f"RSASSA-PSS salt length {salt}")
    return PssParameters(HASHES[hash_oid].lower(), salt)


def pss_parameters(parameters: Optional[bytes]) -> Tuple["hashes.HashAlgorithm", "padding.PSS"]:
    """Decode RSASSA-PSS-params (:func:`parse_pss_parameters`) into what to verify with.

    :raises ValueError: as :func:`parse_pss_parameters`.
    """
    parsed = parse_pss_parameters(parameters)
    return parsed.hash_algorithm, parsed.padding()


def algorithm_identifier(der: bytes) -> Tuple[str, Optional[bytes]]:
    """(dotted OID, raw DER parameters or None) of an AlgorithmIdentifier TLV filling
    ``der``; absent and NULL parameters are both None.

    :raises ValueError: not an AlgorithmIdentifier.
    """
    try:
        a_s, a_e = _expect(der, 0, len(der), 0x30, "AlgorithmIdentifier")
        if a_e != len(der):
            raise _Malformed("bytes after the AlgorithmIdentifier")
        os_, oe = _expect(der, a_s, a_e, 0x06, "algorithm OID")
        oid = _oid(der, os_, oe)
        if oe != a_e:
            _, _, pe = header(der, oe, a_e, _Malformed)
            if pe != a_e:
                raise _Malformed("bytes after the parameters")
    except (_Malformed, IndexError) as exc:
        raise ValueError(f"malformed AlgorithmIdentifier: {exc}") from None
    params = der[oe:a_e]
    return oid, (params if params and params != b"\x05\x00" else None)


def key_algorithm(spki: bytes) -> Tuple[str, Optional[bytes]]:
    """(dotted OID, raw DER parameters or None) of a SubjectPublicKeyInfo's algorithm.

    :raises ValueError: not a SubjectPublicKeyInfo.
    """
    try:
        s, e = _expect(spki, 0, len(spki), 0x30, "SubjectPublicKeyInfo")
        _, a_s, a_e = header(spki, s, e, _Malformed)
    except (_Malformed, IndexError) as exc:
        raise ValueError(f"malformed SubjectPublicKeyInfo: {exc}") from None
    return algorithm_identifier(spki[s:a_e])


def check_rsa_padding(spki: bytes, padding_name: str,
                      pss: Optional[PssParameters] = None) -> None:
    """Whether the key of ``spki`` may make a signature with this padding.

    ``rsaEncryption`` allows both (``"pkcs1v15"``, ``"pss"``); ``id-RSASSA-PSS``
    (RFC 4055 1.2, 3.1) restricts the key to PSS and, when it carries
    parameters, to their hash and to salts at least as long as theirs.

    :param padding_name: ``"pkcs1v15"`` or ``"pss"`` (then ``pss`` is given).
    :raises ValueError: the key does not allow it (or its parameters are unusable).
    """
    oid, params = key_algorithm(spki)
    if oid == RSA_ENCRYPTION:
        return
    if oid != RSASSA_PSS:
        raise ValueError(f"not an RSA key ({oid})")
    if padding_name != "pss" or pss is None:
        raise ValueError("the key is an RSASSA-PSS key (id-RSASSA-PSS): it signs with "
                         "PSS only, not PKCS#1 v1.5")
    if params is None:  # RFC 4055 3.1: no restriction beyond PSS itself
        return
    restriction = parse_pss_parameters(params)
    if restriction.hash != pss.hash:
        raise ValueError(f"the key allows RSASSA-PSS over {restriction.hash} only, "
                         f"not {pss.hash}")
    if pss.salt_length < restriction.salt_length:
        raise ValueError(f"the key requires a salt of {restriction.salt_length} bytes at "
                         f"least, not {pss.salt_length}")
