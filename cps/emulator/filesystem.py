"""The emulated card's file system: DFs, transparent EFs, FCP templates.

Access rules are kept in the ISO 7816-4 compact form the real card uses (an
access-mode byte followed by one security-condition byte per set bit), so the
FCP we return is what a CPS3 returns, and the same bytes decide whether READ
BINARY is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, TypeVar, Union

from .. import tlv

__all__ = ["SwError", "EF", "DF", "ALWAYS", "NEVER", "ACL_READ_ONLY"]

ALWAYS = 0x00
NEVER = 0xFF
USER_AUTH = 0x12  # SCB: user authentication (PIN) in SE #2 -- what CPS3 keys and PIN files use

# Access mode 7B: DELETE, TERMINATE, ACTIVATE, DEACTIVATE, UPDATE, READ (no WRITE);
# one SCB each, in that order. "Read always, nothing else": the real EF.SN.ICC.
ACL_READ_ONLY = bytes((0x7B, NEVER, NEVER, NEVER, NEVER, NEVER, ALWAYS))


class SwError(Exception):
    """Raised inside command handlers; becomes the response's status word."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass
class EF:
    """A transparent elementary file."""

    fid: int
    data: bytearray
    sfi: Optional[int] = None
    acl_contact: bytes = ACL_READ_ONLY
    acl_contactless: bytes = ACL_READ_ONLY
    life_cycle: int = 0x05  # operational, activated
    parent: Optional["DF"] = field(default=None, repr=False)

    def read_condition(self, contactless: bool = False) -> int:
        """The SCB for READ BINARY (last SCB, bit b1 of the access mode)."""
        acl = self.acl_contactless if contactless else self.acl_contact
        return acl[-1] if acl[0] & 0x01 else NEVER

    def fcp(self) -> bytes:
        body = tlv.encode(0x80, len(self.data).to_bytes(2, "big"))
        body += tlv.encode(0x82, b"\x01")  # transparent working EF
        body += tlv.encode(0x83, self.fid.to_bytes(2, "big"))
        if self.sfi is not None:
            body += tlv.encode(0x88, bytes((self.sfi << 3,)))
        body += tlv.encode(0xA1, tlv.encode(0x8C, self.acl_contact)
                           + tlv.encode(0x9C, self.acl_contactless))
        body += tlv.encode(0x8A, bytes((self.life_cycle,)))
        return tlv.encode(0x62, body)


_Node = TypeVar("_Node", "DF", EF)


@dataclass
class DF:
    """A dedicated file (the MF, or an application DF with a name)."""

    fid: int
    name: Optional[bytes] = None
    children: Dict[int, Union[DF, EF]] = field(default_factory=dict)
    parent: Optional["DF"] = field(default=None, repr=False)
    acl: bytes = bytes((0x7F, NEVER, NEVER, NEVER, NEVER, NEVER, NEVER, NEVER))
    life_cycle: int = 0x05

    def add(self, node: _Node) -> _Node:
        node.parent = self
        self.children[node.fid] = node
        return node

    def walk(self) -> Iterator[Union[DF, EF]]:
        yield self
        for child in self.children.values():
            if isinstance(child, DF):
                yield from child.walk()
            else:
                yield child

    def fcp(self) -> bytes:
        body = tlv.encode(0x82, b"\x38")  # DF
        body += tlv.encode(0x83, self.fid.to_bytes(2, "big"))
        if self.name:
            body += tlv.encode(0x84, self.name)
        body += tlv.encode(0xA1, tlv.encode(0x8C, self.acl) + tlv.encode(0x9C, self.acl))
        body += tlv.encode(0x8A, bytes((self.life_cycle,)))
        return tlv.encode(0x62, body)
