"""From a profile and its credentials to the card's files: the CPS3 layout.

File tree (cps-domain.md 1.4, file IDs marked * are ours: the real ones are
not published)::

    3F00 MF
     ├─ 2F00 EF.DIR       SFI 1E   application templates (contact + contactless AIDs)
     ├─ 2F01 EF.ATR       SFI 1D   starts with the stray 80 byte of real cards
     ├─ D003 EF.SN.ICC    SFI 1C   5A 0A 80 25 00 00 01 <card number> <Luhn> F
     └─ 0001 DF  (AID E8 28 BD 08 0F 80 25 00 00 01 FF 00 10)
         ├─ 5031* EF.ODF
         ├─ 5032* EF.TokenInfo
         ├─ 7001  AODF    "Code porteur de la carte CPX"
         ├─ 7002* PrKDF   CPS_PRIV_SIG (81), CPS_PRIV_AUT (82)
         ├─ 7005  CDF     the two certificates
         ├─ C000* authentication certificate
         └─ C001* signature certificate
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from cryptography.hazmat.primitives.serialization import Encoding

from ..tlv import encode as T
from .filesystem import ACL_READ_ONLY, ALWAYS, DF, EF, NEVER
from .profiles import CardProfile
from .security import KEY_AUTH, KEY_SIGN, KEY_TECH

__all__ = ["AID_CONTACT", "AID_CONTACTLESS", "ATR_CONTACT", "ATR_CONTACTLESS", "build_tree",
           "EF_ATR_CONTENT", "PIN_LABEL"]

h = bytes.fromhex
AID_CONTACT = h("E828BD080F8025000001FF0010")
AID_CONTACTLESS = h("E828BD080F8025000001FF0020")
ATR_CONTACT = h("3BAC00402A001225006480000310009000")
ATR_CONTACTLESS = h("3B8F80010031B86404B0ECC1739401808290000E")
AID_ECC_ROOT = h("8025000001FF0100")
PIN_LABEL = "Code porteur de la carte CPX"

# EF.ATR of a real CPS3 (OpenSC commits c581d1b26/b50834901), stray leading 80 included.
EF_ATR_CONTENT = h(
    "80" "4301B8" "460404B0ECC1" "4703940180" "4F088025000001FF0100"
    "E01002020104020201040202010002020100" "78080606" "2B8122F87802" "82029000")

# Access rules (compact form, cps-domain 1.4): read always, nothing else.
ACL_PUBLIC = ACL_READ_ONLY
# EF.ATR: read always; update/delete under SE 45 (AM 43 = DELETE, UPDATE, READ).
ACL_EF_ATR = bytes((0x43, 0x45, 0x45, ALWAYS))

FID_ODF, FID_TOKENINFO = 0x5031, 0x5032
FID_AODF, FID_PRKDF, FID_CDF = 0x7001, 0x7002, 0x7005
FID_CERT_AUTH, FID_CERT_SIGN, FID_CERT_TECH = 0xC000, 0xC001, 0xC002

APP_PATH = h("3F000001")


def _bcd_pan(pan: str) -> bytes:
    digits = pan + "F" * (len(pan) % 2)
    return bytes.fromhex(digits)


def ef_sn_icc(profile: CardProfile) -> bytes:
    """EF.SN.ICC: tag 5A (PAN, BCD), issuer 8025000001 + card number + Luhn, F-padded."""
    return T(0x5A, _bcd_pan(profile.pan))


def ef_dir() -> bytes:
    """EF.DIR: one application template per interface, as iasecc-tool lists them."""
    out = b""
    for aid, label in ((AID_CONTACT, "CPx IAS"), (AID_CONTACTLESS, "CPx IAS CL")):
        out += T(0x61, T(0x4F, aid) + T(0x50, label.encode()) + T(0x51, APP_PATH)
                 + T(0x73, T(0x4F, AID_CONTACT)))
    return out


# ----------------------------------------------------------------- PKCS#15 (ISO 7816-15)
def _seq(*parts: bytes) -> bytes:
    return T(0x30, b"".join(parts))


def _utf8(text: str) -> bytes:
    return T(0x0C, text.encode("utf-8"))


def _int(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return T(0x02, value.to_bytes(size, "big", signed=False) if value >= 0 else b"")


def _path(path: bytes) -> bytes:
    return _seq(T(0x04, path))


def _bits(*bits: int, der: bool = True) -> bytes:
    """A BIT STRING with the given bits set (bit 0 = most significant).

    With ``der=False`` the unused-bits count is 0 and trailing zero bits are
    kept, as on real CPS3 cards (OpenSC issue #2224): readers must tolerate it.
    """
    top = max(bits) if bits else 0
    nbytes = top // 8 + 1
    value = bytearray(nbytes)
    for b in bits:
        value[b // 8] |= 0x80 >> (b % 8)
    if not bits:
        return T(0x03, b"\x00")
    unused = (8 - (top + 1) % 8) % 8 if der else 0
    return T(0x03, bytes((unused,)) + bytes(value))


def odf(has_tech: bool) -> bytes:
    app = APP_PATH
    return (T(0xA0, _path(app + FID_PRKDF.to_bytes(2, "big")))       # privateKeys [0]
            + T(0xA4, _path(app + FID_CDF.to_bytes(2, "big")))       # certificates [4]
            + T(0xA8, _path(app + FID_AODF.to_bytes(2, "big"))))     # authObjects [8]


# PKCS#11 mechanisms named in TokenInfo.supportedAlgorithms
CKM_RSA_PKCS, CKM_SHA1_RSA_PKCS, CKM_SHA256_RSA_PKCS = 0x01, 0x06, 0x40
OP_COMPUTE_SIGNATURE, OP_DECIPHER = 1, 5  # supportedOperations bits


def _algorithm_info(reference: int, mechanism: int, operation: int, alg_ref: int) -> bytes:
    return _seq(_int(reference), _int(mechanism), T(0x05, b""), _bits(operation), _int(alg_ref))


def supported_algorithms() -> bytes:
    """TokenInfo.supportedAlgorithms [2]: the IAS-ECC algorithm references of cps-domain 1.7.

    OpenSC's CPx fix-up (PR #2270) derives each key's algReferences from this
    list, since the PrKDF of real cards has none.
    """
    return T(0xA2, _algorithm_info(1, CKM_RSA_PKCS, OP_COMPUTE_SIGNATURE, 0x02)
             + _algorithm_info(2, CKM_SHA1_RSA_PKCS, OP_COMPUTE_SIGNATURE, 0x12)
             + _algorithm_info(3, CKM_SHA256_RSA_PKCS, OP_COMPUTE_SIGNATURE, 0x42)
             + _algorithm_info(4, CKM_RSA_PKCS, OP_DECIPHER, 0x1A))


def token_info(profile: CardProfile) -> bytes:
    serial = profile.card_number.encode()
    flags = _bits(1)  # loginRequired
    return _seq(_int(0), T(0x04, serial), _utf8("ANS"),
                T(0x80, f"CPS3v3-{profile.card_number}".encode()), flags,
                supported_algorithms())


def aodf(profile: CardProfile) -> bytes:
    """The PIN object: CHV 1 in the MF, 4 to 8 digits, padded with FF to 8."""
    if profile.contactless:
        return b""
    common = _seq(_utf8(PIN_LABEL), _bits(0, 1, der=False))       # private, modifiable
    auth = _seq(T(0x04, b"\x01"))                                   # authId 01
    # PinFlags: initialized(4), needs-padding(5); not local: CHV 1 lives in the MF.
    pin_flags = _bits(4, 5, der=False)
    attrs = _seq(pin_flags, T(0x0A, b"\x01"), _int(4), _int(8), T(0x80, b"\x01"),
                 T(0x04, b"\xff"))  # no path: a global PIN, VERIFY goes straight to CHV 1
    return _seq(common, auth, T(0xA1, attrs))


def _prkey(label: str, key_id: bytes, usage_bits: Tuple[int, ...], ref: int,
           bits: int, needs_pin: bool, flags: Tuple[int, ...] = (0,)) -> bytes:
    common = _seq(_utf8(label), _bits(*flags, der=False) if needs_pin else T(0x03, b"\x00"),
                  *( [T(0x04, b"\x01")] if needs_pin else []))
    # accessFlags: sensitive(0), alwaysSensitive(2), neverExtractable(3)
    key_attrs = _seq(T(0x04, key_id), _bits(*usage_bits), _bits(0, 2, 3), _int(ref))
    rsa_attrs = _seq(_path(APP_PATH), _int(bits))
    return _seq(common, key_attrs, T(0xA1, rsa_attrs))


def key_id(ref: int) -> bytes:
    """PKCS#15 ID of a key and its certificate: the application AID + the key number."""
    return AID_CONTACT + bytes((ref & 0x0F,))


def prkdf(profile: CardProfile, key_bits: int) -> bytes:
    # Key usage bits: decrypt(1), sign(2), nonRepudiation(9)
    if profile.contactless:
        return _prkey("CPS_PRIV_TECH_AUT", key_id(KEY_TECH), (2,), KEY_TECH, key_bits, False)
    return (_prkey("CPS_PRIV_SIG", key_id(KEY_SIGN), (9,), KEY_SIGN, key_bits, True)
            + _prkey("CPS_PRIV_AUT", key_id(KEY_AUTH), (1, 2), KEY_AUTH, key_bits, True,
                   flags=(0, 1)))  # private, modifiable (real-card dump)


def _cert_entry(label: str, cid: bytes, fid: int) -> bytes:
    return _seq(_seq(_utf8(label)), _seq(T(0x04, cid)),
                T(0xA1, _seq(_path(APP_PATH + fid.to_bytes(2, "big")))))


def cdf(profile: CardProfile) -> bytes:
    if profile.contactless:
        return _cert_entry("Certificat Technique CPS", key_id(KEY_TECH), FID_CERT_TECH)
    return (_cert_entry("Certificat d'Authentification CPS", key_id(KEY_AUTH), FID_CERT_AUTH)
            + _cert_entry("Certificat de Signature CPS", key_id(KEY_SIGN), FID_CERT_SIGN))


def build_tree(profile: CardProfile, certificates: Dict[int, bytes], key_bits: int = 2048) -> DF:
    """The MF with every file of the card, for ``profile``.

    :param certificates: DER certificates by key reference (0x81, 0x82, 0x83).
    """
    # The MF answers to the IAS-ECC root AID that EF.ATR announces (tag 4F):
    # OpenSC selects it by name right after reading EF.ATR.
    mf = DF(0x3F00, name=AID_ECC_ROOT)
    mf.add(EF(0x2F00, bytearray(ef_dir()), sfi=0x1E, acl_contact=ACL_PUBLIC,
              acl_contactless=ACL_PUBLIC))
    mf.add(EF(0x2F01, bytearray(EF_ATR_CONTENT), sfi=0x1D, acl_contact=ACL_EF_ATR,
              acl_contactless=ACL_EF_ATR))
    mf.add(EF(0xD003, bytearray(ef_sn_icc(profile)), sfi=0x1C))
    app = mf.add(DF(0x0001, name=AID_CONTACTLESS if profile.contactless else AID_CONTACT))
    app.add(EF(FID_ODF, bytearray(odf(profile.contactless))))
    app.add(EF(FID_TOKENINFO, bytearray(token_info(profile))))
    if not profile.contactless:
        app.add(EF(FID_AODF, bytearray(aodf(profile))))
    app.add(EF(FID_PRKDF, bytearray(prkdf(profile, key_bits))))
    app.add(EF(FID_CDF, bytearray(cdf(profile))))
    for ref, fid in ((KEY_AUTH, FID_CERT_AUTH), (KEY_SIGN, FID_CERT_SIGN),
                     (KEY_TECH, FID_CERT_TECH)):
        if ref in certificates:
            app.add(EF(fid, bytearray(certificates[ref])))
    return mf
