"""From a profile and its credentials to the card's files: the CPS3 layout.

Contact card (cps-domain.md 1.4; provenance of each file in docs/emulator.md:
[D] real-card bytes, [I] inferred, [P] our design where nothing is published)::

    3F00 MF, also selectable by the IAS-ECC root AID 80 25 00 00 01 FF 01 00
     ├─ 2F00 EF.DIR       SFI 1E   contactless record first, then contact   [D]/[I]
     ├─ 2F01 EF.ATR       SFI 1D   with the stray leading 80               [D]
     ├─ D003 EF.SN.ICC    SFI 1C   5A 0A 80 25 00 00 01 <card number> <Luhn> F  [D]
     └─ 0001 DF, AID E8 28 BD 08 0F 80 25 00 00 01 FF 00 10               [D]
         ├─ 5031 EF.ODF                                                   [I]
         ├─ 5032 EF.TokenInfo  (supportedAlgorithms: OpenSC needs them)   [D]/[P]
         ├─ 7001 AODF   PIN "Code porteur de la carte CPX" + unblock code [D]
         ├─ 7002 PrKDF  CPS_PRIV_SIG (81), CPS_PRIV_AUT (82)              [P]/[D]
         ├─ 7005 CDF                                                      [D]/[P]
         ├─ C001 Certificat de Signature CPS                              [P]
         └─ C002 Certificat d'Authentification CPS                        [P]

The contactless card carries the same MF files, DF 0001 with an AODF it
refuses to read over the air (ANS tells the interfaces apart that way), and DF
0002 (AID ...FF 00 20) with the technical key and certificate.
"""

from __future__ import annotations

from typing import Dict

from ..tlv import encode as T
from .filesystem import DF, EF
from .profiles import CardProfile
from .security import KEY_AUTH, KEY_SIGN, KEY_TECH

__all__ = ["AID_CONTACT", "AID_CONTACTLESS", "AID_ECC_ROOT", "ATR_CONTACT", "ATR_CONTACTLESS",
           "ATR_CPS4",
           "EF_ATR_CONTENT", "PIN_LABEL", "PUK_LABEL", "build_tree", "key_id", "CERT_FIDS"]

h = bytes.fromhex
AID_CONTACT = h("E828BD080F8025000001FF0010")
AID_CONTACTLESS = h("E828BD080F8025000001FF0020")
AID_ECC_ROOT = h("8025000001FF0100")
ATR_CONTACT = h("3BAC00402A001225006480000310009000")
ATR_CONTACTLESS = h("3B8F80010031B86404B0ECC1739401808290000E")
#: CPS4 (NXP ChipDoc), contact: the ANS Cryptolib 5.2's CPS4_C_ATR (card-cps.c), exact.
ATR_CPS4 = h("3B9B188001001225006480040100009044")
PIN_LABEL = "Code porteur de la carte CPX"
PUK_LABEL = "Code de déblocage de la carte CPS"

# EF.ATR of a real CPS3 (OpenSC commits c581d1b26/b50834901), stray leading 80 included.
EF_ATR_CONTENT = h(
    "80" "4301B8" "460404B0ECC1" "4703940180" "4F088025000001FF0100"
    "E01002020104020201040202010002020100" "78080606" "2B8122F87802" "82029000")

# Compact access rules. AM 7B = DELETE, TERMINATE, ACTIVATE, DEACTIVATE, UPDATE, READ.
ACL_ADMIN_READ = h("7B45FFFFFF4500")   # real EF.DIR / EF.ATR: update/delete under SE 45
ACL_READ_ONLY = h("7BFFFFFFFFFF00")    # real EF.SN.ICC: read always, nothing else
ACL_NO_ACCESS = h("7BFFFFFFFFFFFF")    # the AODF seen over the contactless interface

FID_ODF, FID_TOKENINFO = 0x5031, 0x5032
FID_AODF, FID_PRKDF, FID_CDF = 0x7001, 0x7002, 0x7005
#: certificate file of each key reference (the real FIDs are not published)
CERT_FIDS = {KEY_SIGN: 0xC001, KEY_AUTH: 0xC002, KEY_TECH: 0xC003}


def key_id(ref: int) -> bytes:
    """PKCS#15 ID of a key and of its certificate: the application AID + the key number."""
    return AID_CONTACT + bytes((ref & 0x0F,))


def _bcd_pan(pan: str) -> bytes:
    return bytes.fromhex(pan + "F" * (len(pan) % 2))


def ef_sn_icc(profile: CardProfile) -> bytes:
    """EF.SN.ICC: tag 5A (PAN, BCD), issuer 8025000001 + card number + Luhn, F-padded."""
    return T(0x5A, _bcd_pan(profile.pan))


def ef_dir() -> bytes:
    """EF.DIR, 101 bytes: labels, AIDs and DDOs as a real card lists them (OpenSC #2217).

    The contactless record comes first: OpenSC's "known applications first"
    reordering swaps the two, and a real card shows IAS first after the swap.
    """
    ddo = T(0x73, T(0x4F, AID_CONTACT))
    return (T(0x61, T(0x4F, AID_CONTACTLESS) + T(0x50, b"CPX IAS CL") + T(0x51, h("3F000002"))
              + ddo)
            + T(0x61, T(0x4F, AID_CONTACT) + T(0x50, b"CPX IAS") + T(0x51, h("3F000001"))
                + ddo))


# ----------------------------------------------------------------- PKCS#15 (ISO 7816-15)
def _seq(*parts: bytes) -> bytes:
    return T(0x30, b"".join(parts))


def _int(value: int) -> bytes:
    return T(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def pkcs15_path(fid: int, app_fid: int, form: str = "fid") -> bytes:
    """A PKCS#15 Path to a file of the application DF, in one of the forms a card
    may use (profile ``behaviour.pkcs15_paths``): ``fid`` (``7005``), ``app-path``
    (``0001 7005``) or ``absolute`` (``3F00 0001 7005``)."""
    path = fid.to_bytes(2, "big")
    if form == "fid":
        return path
    path = app_fid.to_bytes(2, "big") + path
    return path if form == "app-path" else b"\x3f\x00" + path


def odf(contactless: bool = False, form: str = "fid") -> bytes:
    """EF.ODF: paths of the PrKDF [0], CDF [4] and AODF [8] (real FIDs; the form of
    the paths on a real card is unknown: FIDs by default)."""
    app_fid = 0x0002 if contactless else 0x0001
    out = T(0xA0, _seq(T(0x04, pkcs15_path(FID_PRKDF, app_fid, form))))
    out += T(0xA4, _seq(T(0x04, pkcs15_path(FID_CDF, app_fid, form))))
    if not contactless:
        out += T(0xA8, _seq(T(0x04, pkcs15_path(FID_AODF, app_fid, form))))
    return out


# TokenInfo.supportedAlgorithms as the real card lists them (OpenSC #2267; 5 and 6
# completed from the driver's defaults). OpenSC's CPx fix-up derives each key's
# algReferences from this list, since the PrKDF of real cards has none.
_ALGORITHMS = h(
    "3017020101020202200500030201020605" "2B0E03021A" "020110"                  # SHA-1 hash
    "301B020102020202500500030201020609" "608648016503040201" "020140"          # SHA-256 hash
    "301A02010302010605000302064006092A864886F70D010105020112"                  # SHA1-RSA sign
    "301A02010402014005000302064006092A864886F70D01010B020142"                  # SHA256-RSA sign
    "301A02010502010105000302064006092A864886F70D010101020102"                  # RSA-PKCS sign
    "301A02010602010105000302020406092A864886F70D01010102011A")                 # RSA-PKCS decipher


def token_info(profile: CardProfile) -> bytes:
    """EF.TokenInfo: no serial number (OpenSC then reads EF.SN.ICC), "ASIP SANTE",
    label CPS3v3-<card number>, read-only + login required, the algorithms, lastUpdate."""
    return _seq(_int(0), T(0x0C, b"ASIP SANTE"),
                T(0x80, f"CPS3v3-{profile.card_number}".encode()),
                T(0x03, h("06C0")), T(0xA2, _ALGORITHMS),
                T(0xA5, T(0x18, b"20100316110000Z")))


def aodf() -> bytes:
    """The AODF of a real card (OpenSC #2224), byte for byte but for the PIN label.

    Kept as found: non-DER ``03 01 08`` flags; the PIN's authId 02 while the
    unblock code's ID is 04 (so OpenSC's ``--unblock-pin`` cannot pair them);
    min 4 / max 4 / stored 8 digits, padded with FF; references 1 and 2.
    """
    pin_label = T(0x0C, PIN_LABEL.encode("utf-8"))
    puk_label = T(0x0C, PUK_LABEL.encode("utf-8"))
    pin = _seq(
        _seq(pin_label, h("030108"), h("040102"),
             h("3019300603020520050030060302064005003007030203080401 04".replace(" ", ""))),
        h("3003040101"),
        h("A1193017030304 0C10 0A0101 020104 020108 020104 800101 0401FF".replace(" ", "")))
    puk = _seq(
        _seq(puk_label, h("030108"), h("301030060302052005003006030206400500")),
        h("3003040104"),
        h("A1163014030304 1D10 0A0101 020108 020108 020108 800102".replace(" ", "")))
    return pin + puk


def _prkey(label: str, flags: bytes, rules: bytes, ref: int, usage: bytes,
           auth_id: bool = True) -> bytes:
    common = T(0x0C, label.encode()) + flags + (h("040101") if auth_id else b"") + rules
    key = (T(0x04, key_id(ref)) + usage + h("0101FF") + h("030204B0")
           + T(0x02, bytes((0x00, ref))))
    return _seq(_seq(common), _seq(key), T(0xA1, _seq(_seq(T(0x04, b"")), _int(2048))))


def prkdf(contactless: bool = False) -> bytes:
    """The PrKDF. The CPS_PRIV_AUT entry is a real card's (OpenSC #2267); the
    CPS_PRIV_SIG entry follows it with the values `pkcs15-tool -k` printed."""
    if contactless:
        # No PIN on the contactless side: not private, no authId, no access rule.
        return _prkey("CPS_PRIV_TECH_AUT", h("03020700"), b"", KEY_TECH, h("03020520"),
                      auth_id=False)
    sig = _prkey("CPS_PRIV_SIG", h("03020780"), h("30093007030202040401 01".replace(" ", "")),
                 KEY_SIGN, h("0303060040"))
    aut = _prkey("CPS_PRIV_AUT", h("030205E0"),
                 h("3013" "300703020001040101" "30080303060040040101"), KEY_AUTH, h("03020560"))
    return sig + aut


def _cert(label: str, ref: int, app_fid: int, form: str) -> bytes:
    common = (T(0x0C, label.encode()) + h("03020800")
              + h("3011" "300603020780" "0500" "300703020640040101"))
    return _seq(_seq(common), _seq(T(0x04, key_id(ref))),
                T(0xA1, _seq(_seq(T(0x04, pkcs15_path(CERT_FIDS[ref], app_fid, form))))))


def cdf(contactless: bool = False, form: str = "fid") -> bytes:
    """The CDF: the signature entry is shaped like a real card's (OpenSC #2224)."""
    if contactless:
        return _cert("Certificat Technique CPS", KEY_TECH, 0x0002, form)
    return (_cert("Certificat de Signature CPS", KEY_SIGN, 0x0001, form)
            + _cert("Certificat d'Authentification CPS", KEY_AUTH, 0x0001, form))


def _app_df(fid: int, aid: bytes, profile: CardProfile, certificates: Dict[int, bytes],
            contactless: bool) -> DF:
    app = DF(fid, name=aid, acl=ACL_ADMIN_READ)
    form = profile.behaviour.pkcs15_paths
    for ef_fid, content in ((FID_ODF, odf(contactless, form)),
                            (FID_TOKENINFO, token_info(profile)),
                            (FID_PRKDF, prkdf(contactless)), (FID_CDF, cdf(contactless, form))):
        app.add(EF(ef_fid, bytearray(content), acl_contact=ACL_ADMIN_READ,
                   acl_contactless=ACL_ADMIN_READ))
    for ref, der in certificates.items():
        app.add(EF(CERT_FIDS[ref], bytearray(der), acl_contact=ACL_ADMIN_READ,
                   acl_contactless=ACL_ADMIN_READ))
    return app


def build_tree(profile: CardProfile, certificates: Dict[int, bytes]) -> DF:
    """The MF with every file of the card, for ``profile``.

    :param certificates: DER certificates by key reference (0x81, 0x82, 0x83).
    """
    # The MF answers to the IAS-ECC root AID that EF.ATR announces (tag 4F):
    # OpenSC selects it by name right after reading EF.ATR.
    mf = DF(0x3F00, name=AID_ECC_ROOT, acl=ACL_ADMIN_READ)
    mf.add(EF(0x2F00, bytearray(ef_dir()), sfi=0x1E, acl_contact=ACL_ADMIN_READ,
              acl_contactless=ACL_READ_ONLY))
    mf.add(EF(0x2F01, bytearray(EF_ATR_CONTENT), sfi=0x1D, acl_contact=ACL_ADMIN_READ,
              acl_contactless=ACL_READ_ONLY))
    mf.add(EF(0xD003, bytearray(ef_sn_icc(profile)), sfi=0x1C))
    if profile.contactless:
        ias = mf.add(DF(0x0001, name=AID_CONTACT, acl=ACL_ADMIN_READ))
        ias.add(EF(FID_AODF, bytearray(aodf()), acl_contact=ACL_ADMIN_READ,
                   acl_contactless=ACL_NO_ACCESS))
        mf.add(_app_df(0x0002, AID_CONTACTLESS, profile, certificates, contactless=True))
    else:
        app = mf.add(_app_df(0x0001, AID_CONTACT, profile, certificates, contactless=False))
        app.add(EF(FID_AODF, bytearray(aodf()), acl_contact=ACL_ADMIN_READ,
                   acl_contactless=ACL_NO_ACCESS))
    return mf
