"""The emulated card's secrets: PIN objects (CHV), RSA keys, the security environment."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Dict, Optional

from cryptography.hazmat.primitives.asymmetric import rsa

from .. import tlv

__all__ = ["Chv", "CardKey", "SecurityEnvironment", "KEY_SIGN", "KEY_AUTH", "KEY_TECH"]

KEY_SIGN = 0x81  # CPS_PRIV_SIG: PSO COMPUTE DIGITAL SIGNATURE, nonRepudiation
KEY_AUTH = 0x82  # CPS_PRIV_AUT: INTERNAL AUTHENTICATE / decipher
KEY_TECH = 0x83
ALWAYS_SCB = 0x00
NEVER_SCB = 0xFF
USER_AUTH_SCB = 0x12
# Access-mode bits of a key SDO (OpenSC iasecc-sdo.h: IASECC_ACL_*)
# (ACL_INT_AUTH: CPS_PRIV_TECH_AUT on the contactless side, reference not published)
ACL_GET_DATA, ACL_DECIPHER, ACL_INT_AUTH, ACL_PSO_CDS = 0x01, 0x10, 0x20, 0x40

# Algorithm references (IAS-ECC, cps-domain 1.7)
ALG_HASH = {0x10: "sha1", 0x40: "sha256"}
ALG_DST = {0x12: "sha1", 0x42: "sha256"}
ALG_AT_PKCS1 = 0x02
ALG_CT_DECIPHER = 0x1A


@dataclass
class Chv:
    """A card-holder verification object (PIN or unblock code) in the MF.

    The value never appears in a repr.
    """

    ref: int
    value: bytes = field(repr=False)
    max_tries: int
    tries_left: int
    acl: bytes
    usage_left: Optional[int] = None   # unblock uses left (CHV2 only)
    verified: bool = False
    min_length: int = 4
    max_length: int = 8

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0 or (self.usage_left is not None and self.usage_left == 0)

    def matches(self, candidate: bytes) -> bool:
        # IAS-ECC hosts pad PINs to the stored length with FF (OpenSC does, as the
        # AODF asks); compare without the padding, in constant time.
        return hmac.compare_digest(candidate.rstrip(b"\xff"), self.value)

    def docp(self) -> bytes:
        """The SDO as GET DATA returns it.

        ``BF 81 <ref> { A0 { 9A max, 9B left, [9D uses], A1 {8C acl} } }``
        """
        body = (tlv.encode(0x9A, bytes((self.max_tries,)))
                + tlv.encode(0x9B, bytes((self.tries_left,))))
        if self.usage_left is not None:
            body += tlv.encode(0x9D, self.usage_left.to_bytes(2, "big"))
        body += tlv.encode(0xA1, tlv.encode(0x8C, self.acl))
        return tlv.encode(0x70, tlv.encode(0xBF8100 | self.ref, tlv.encode(0xA0, body)))


@dataclass
class CardKey:
    """An RSA private key held by the card."""

    ref: int
    key: rsa.RSAPrivateKey = field(repr=False)
    label: str
    needs_pin: bool = True

    @property
    def modulus_bytes(self) -> int:
        return (self.key.key_size + 7) // 8

    @property
    def acl(self) -> bytes:
        """Compact access rule: AM 7B, then one SCB per operation, in the order
        PSO CDS, INTERNAL AUTHENTICATE, DECIPHER, GENERATE, PUT DATA, GET DATA.
        12 = user authentication (the PIN), 00 = always, FF = never."""
        user = USER_AUTH_SCB if self.needs_pin else ALWAYS_SCB
        sign = user if self.ref == KEY_SIGN else NEVER_SCB
        auth = NEVER_SCB if self.ref == KEY_SIGN else user
        decipher = user if self.ref == KEY_AUTH else NEVER_SCB
        return bytes((0x7B, sign, auth, decipher, NEVER_SCB, NEVER_SCB, ALWAYS_SCB))

    def allows(self, operation: int) -> bool:
        """Whether the key may be used for ``operation`` (ACL_PSO_CDS, ACL_INT_AUTH...)."""
        order = (ACL_PSO_CDS, ACL_INT_AUTH, ACL_DECIPHER, 0x08, 0x02, ACL_GET_DATA)
        return self.acl[1 + order.index(operation)] != NEVER_SCB

    def docp(self) -> bytes:
        """The private-key SDO as GET DATA returns it: access rules, size and the
        non-repudiation flag. The size is in bytes, as OpenSC's CPx code expects
        (it checks ``size & ~0x1E0 == 0``). The key material (7F48) is never given."""
        body = tlv.encode(0xA1, tlv.encode(0x8C, self.acl))
        body += tlv.encode(0x80, self.modulus_bytes.to_bytes(2, "big"))
        body += tlv.encode(0x9E, b"\x01" if self.ref == KEY_SIGN else b"\x00")
        return tlv.encode(0x70, tlv.encode(0xBF9000 | (self.ref & 0x3F), tlv.encode(0xA0, body)))


@dataclass
class SecurityEnvironment:
    """What MSE SET chose, and the hash PSO HASH left for PSO CDS."""

    hash_alg: Optional[str] = None
    dst_alg: Optional[str] = None
    dst_key: Optional[int] = None
    at_alg: Optional[int] = None
    at_key: Optional[int] = None
    ct_alg: Optional[int] = None
    ct_key: Optional[int] = None
    pending_hash: Optional[bytes] = field(default=None, repr=False)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


def chv_by_ref(chvs: Dict[int, Chv], p2: int) -> Optional[Chv]:
    """VERIFY P2 names a CHV either globally (01) or with the local bit (81)."""
    return chvs.get(p2 & 0x7F)
