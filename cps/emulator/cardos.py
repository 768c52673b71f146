"""The emulated CPS3 card operating system: APDU in, APDU out.

Below the APDU layer on purpose: the library's encoding, ``61xx``/``6Cxx``
handling, command chaining and status-word mapping all run against it exactly
as against a real card. The command set and quirks follow cps-domain.md
sections 1.4-1.9 and, where they disagree, OpenSC's CPx driver (see
docs/emulator.md).

Handlers raise :class:`SwError`; :meth:`CardOS.execute` turns results into
T=0-shaped answers: case-4 commands answer ``61xx`` and give their data by GET
RESPONSE, a case-2 command with the wrong Le gets ``6Cxx``.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, List, Optional, Union

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from .. import tlv
from ..apdu import CommandApdu, parse_command
from ..errors import CardProtocolError
from ..logs import TRAFFIC, format_command, format_response
from ..sha import DIGEST_SIZES, finish
from .filesystem import DF, EF, NEVER, SwError
from .profiles import Behaviour
from .security import (
    ACL_DECIPHER,
    ACL_INT_AUTH,
    ACL_PSO_CDS,
    ALG_AT_PKCS1,
    ALG_CT_DECIPHER,
    ALG_DST,
    ALG_HASH,
    CardKey,
    Chv,
    SecurityEnvironment,
    chv_by_ref,
)

__all__ = ["CardOS", "SwError"]

_log = logging.getLogger("cps.emulator")

SW_OK = 0x9000
MF_FID = 0x3F00
# SHA-1: the CPS3 card signs SHA-1 digests too (PSO HASH / COMPUTE DIGITAL SIGNATURE)
_HASHES = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}  # noqa: S303 - the card's algorithm
# Internal authenticate accepts at most 40 % of the modulus (ANS spec, cps-domain 1.7).
INT_AUTH_MAX_RATIO = 0.40
# Commands whose answer the card computes: on T=0 it answers them 61xx and gives
# the data by GET RESPONSE, even to a case-2 command with Le (a real trace:
# ``00 2A 9E 9A 00`` -> ``61 00``).
_COMPUTED = frozenset((0x2A, 0x88))


class CardOS:
    """A CPS3 card OS over a file system and a set of secrets.

    :param atr: the ATR the card answers with.
    :param mf: the master file, already populated.
    :param chvs: PIN objects by reference (1 = PIN, 2 = unblock code).
    :param keys: RSA keys by reference (0x81 sign, 0x82 auth, ...).
    :param protocol: ``"T0"`` (contact: ``61xx`` answers) or ``"T1"`` (contactless).
    :param behaviour: the profile's choices where no trace settles the card's answer.
    :param ias_ecc: ``False`` for a CPS4 (NXP ChipDoc): no IAS-ECC application to
        speak to -- every SELECT answers ``6A82``, every other command ``6D00``.
        Not an emulation of ChipDoc (whose APDUs are not public): a CPS4 is reached
        through the Cryptolib's PKCS#11 module, and this makes any IAS-ECC talk fail.
    """

    def __init__(self, atr: bytes, mf: DF, chvs: Dict[int, Chv], keys: Dict[int, CardKey],
                 protocol: str = "T0", behaviour: Optional[Behaviour] = None,
                 ias_ecc: bool = True) -> None:
        self.atr = atr
        #: what no real-card trace settles (defaults: the strictest)
        self.behaviour = behaviour or Behaviour()
        self.mf = mf
        self.chvs = chvs
        self.keys = keys
        self.protocol = protocol
        #: contactless cards are read under the 9C access rules
        self.contactless = protocol != "T0"
        self.se = SecurityEnvironment()
        self.current_df: DF = mf
        self.current_ef: Optional[EF] = None
        self.powered = False
        self.apdu_count = 0
        self._pending = b""            # data waiting for GET RESPONSE
        self._chain: Optional[CommandApdu] = None
        self._handlers: Dict[int, Callable[[CommandApdu], bytes]] = {
            0xA4: self._select,
            0xB0: self._read_binary,
            0xC0: self._get_response,
            0xCA: self._get_data,
            0xCB: self._get_data,
            0x20: self._verify,
            0x24: self._change_reference_data,
            0x2C: self._reset_retry_counter,
            0x22: self._mse,
            0x2A: self._pso,
            0x88: self._internal_authenticate,
            0x84: self._get_challenge,
        }
        if not ias_ecc:
            self._handlers = {0xA4: self._no_such_application}

    @staticmethod
    def _no_such_application(apdu: CommandApdu) -> bytes:
        raise SwError(0x6A82)

    # ------------------------------------------------------------------ power
    def power_up(self) -> bytes:
        self._clear_state()
        self.powered = True
        return self.atr

    def power_down(self) -> None:
        self._clear_state()
        self.powered = False

    def reset(self) -> bytes:
        """Warm reset: the security state is lost, the MF is current again."""
        return self.power_up()

    def _clear_state(self) -> None:
        for chv in self.chvs.values():
            chv.verified = False
        self.se.clear()
        self.current_df = self.mf
        self.current_ef = None
        self._pending = b""
        self._chain = None

    # ------------------------------------------------------------------ dispatch
    def execute(self, raw: bytes) -> bytes:
        """Run one command APDU; return the response APDU (data + SW)."""
        self.apdu_count += 1
        if _log.isEnabledFor(TRAFFIC):
            _log.log(TRAFFIC, "card > %s", format_command(raw))
        response = self._execute(raw)
        if _log.isEnabledFor(TRAFFIC):
            _log.log(TRAFFIC, "card < %s", format_response(response[:-2],
                                                           int.from_bytes(response[-2:], "big")))
        return response

    def _execute(self, raw: bytes) -> bytes:
        if not self.powered:
            self.power_up()
        try:
            apdu = parse_command(raw)
        except CardProtocolError:
            return b"\x67\x00"
        if apdu.ins != 0xC0:
            self._pending = b""
        if apdu.cla & 0x10:  # command chaining: keep the part, answer 9000
            if self._chain is not None and self._chain.ins != apdu.ins:
                self._chain = None
                return b"\x68\x83"
            data = (self._chain.data if self._chain else b"") + apdu.data
            if len(data) > 4096:
                self._chain = None
                return b"\x67\x00"
            self._chain = CommandApdu(apdu.cla & 0xEF, apdu.ins, apdu.p1, apdu.p2, data)
            return b"\x90\x00"
        if self._chain is not None:
            if self._chain.ins == apdu.ins:
                apdu = CommandApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2,
                                   self._chain.data + apdu.data, apdu.ne)
            self._chain = None
        if apdu.cla not in (0x00, 0x80, 0x0C):
            return b"\x6E\x00"
        handler = self._handlers.get(apdu.ins)
        if handler is None:
            return b"\x6D\x00"
        try:
            data = handler(apdu)
        except _Partial as exc:
            return exc.data + exc.sw.to_bytes(2, "big")
        except SwError as exc:
            return exc.sw.to_bytes(2, "big")
        return self._shape(apdu, data)

    def _shape(self, apdu: CommandApdu, data: bytes) -> bytes:
        """Give ``data`` back the way the transport protocol would."""
        if not data:
            return b"\x90\x00"
        if self.protocol == "T0":
            if apdu.data or apdu.ne is None or apdu.ins in _COMPUTED:
                # Case 4 (or case 3 with an answer): T=0 cannot send data here.
                self._pending = data
                return b"\x61" + bytes((min(len(data), 256) & 0xFF,))
            if apdu.ne != len(data) and not (apdu.ne == 256 and len(data) > 256):
                if apdu.ne > len(data):
                    return b"\x6C" + bytes((len(data),))
            if len(data) > apdu.ne:
                self._pending = data[apdu.ne:]
                rest = len(self._pending)
                return data[:apdu.ne] + b"\x61" + bytes((min(rest, 256) & 0xFF,))
            return data + b"\x90\x00"
        ne = apdu.ne or 256
        if len(data) > ne:
            self._pending = data[ne:]
            return data[:ne] + b"\x61" + bytes((min(len(self._pending), 256) & 0xFF,))
        return data + b"\x90\x00"

    # ------------------------------------------------------------------ files
    def _select(self, apdu: CommandApdu) -> bytes:
        p1, p2, data = apdu.p1, apdu.p2, apdu.data
        if p2 not in (0x04, 0x0C):
            # CPS3 refuses P2=00 (FCI) for FIDs and names alike (OpenSC 20f359ea0, 1a3666364).
            raise SwError(0x6A86)
        node: Union[DF, EF, None]
        if p1 == 0x00:
            if not data:
                node = self.mf
            elif len(data) != 2:
                raise SwError(0x6A87)
            else:
                node = self._find_fid(int.from_bytes(data, "big"))
        elif p1 == 0x01 or p1 == 0x02:
            if len(data) != 2:
                raise SwError(0x6A87)
            fid = int.from_bytes(data, "big")
            if fid == MF_FID:
                # OpenSC's CPx driver selects the MF with P1=02 before PIN
                # operations, and works on real cards: the card accepts it.
                node = self.mf
            else:
                node = self.current_df.children.get(fid)
                if node is None or isinstance(node, DF) != (p1 == 0x01):
                    raise SwError(0x6A82)
        elif p1 == 0x03:
            node = self.current_df.parent or self.mf
        elif p1 == 0x04:
            node = next((n for n in self.mf.walk() if isinstance(n, DF) and n.name == data), None)
            if node is None or not data:
                raise SwError(0x6A82)
        elif p1 in (0x08, 0x09):
            node = self._find_path(data, from_mf=(p1 == 0x08))
        else:
            raise SwError(0x6A86)
        if isinstance(node, DF):
            self.current_df, self.current_ef = node, None
        else:
            assert node.parent is not None  # noqa: S101 - every EF of the tree was added to a DF
            self.current_df, self.current_ef = node.parent, node
        return node.fcp() if p2 == 0x04 else b""

    def _find_fid(self, fid: int) -> Union[DF, EF]:
        if fid == MF_FID:
            return self.mf
        if fid == self.current_df.fid:
            return self.current_df
        node = self.current_df.children.get(fid)
        if node is None and self.current_df.parent is not None:
            parent = self.current_df.parent
            node = parent if parent.fid == fid else parent.children.get(fid)
        if node is None:
            raise SwError(0x6A82)
        return node

    def _find_path(self, path: bytes, from_mf: bool) -> Union[DF, EF]:
        if not path or len(path) % 2:
            raise SwError(0x6A87)
        fids = [int.from_bytes(path[i:i + 2], "big") for i in range(0, len(path), 2)]
        node: Union[DF, EF]
        if from_mf:
            node = self.mf
            if fids and fids[0] == MF_FID:
                fids = fids[1:]
        else:
            # CPS3 quirk (OpenSC fc0df4e5d): a path from the current DF must start with 3F00.
            if fids[0] != MF_FID:
                raise SwError(0x6A82)
            node, fids = self.mf, fids[1:]
        for fid in fids:
            if not isinstance(node, DF) or fid not in node.children:
                raise SwError(0x6A82)
            node = node.children[fid]
        return node

    def _read_binary(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 & 0x80:  # short file identifier in P1
            # ISO 7816-4: an SFI names an EF of the current DF, nowhere else (with
            # DF 0001 current, EF.SN.ICC's SFI 1C is not found).
            sfi = apdu.p1 & 0x1F
            ef = next((c for c in self.current_df.children.values()
                       if isinstance(c, EF) and c.sfi == sfi), None)
            if ef is None:
                raise SwError(0x6A82)
            self.current_ef = ef
            offset = apdu.p2
        else:
            ef = self.current_ef
            if ef is None:
                raise SwError(0x6986)
            offset = ((apdu.p1 & 0x7F) << 8) | apdu.p2
        self._check_access(ef.read_condition(self.contactless))
        if offset > len(ef.data):
            raise SwError(0x6B00)
        if apdu.ne is None:
            raise SwError(0x6700)
        data = bytes(ef.data[offset:offset + apdu.ne])
        if len(data) < apdu.ne:
            # Asked past the end: no trace shows what a CPS3 answers.
            answer = self.behaviour.over_long_le
            if answer == "6282":
                raise _Partial(data, 0, sw=0x6282)
            if answer == "6Cxx" and data:
                raise SwError(0x6C00 | len(data))
            raise SwError(0x6700)
        return data

    def _get_response(self, apdu: CommandApdu) -> bytes:
        if not self._pending:
            raise SwError(0x6985)
        ne = apdu.ne or 256
        if ne > self.behaviour.get_response_max:
            # No trace shows a CPS3 answering a GET RESPONSE of more than 0xE7.
            raise SwError(0x6700)
        pending, self._pending = self._pending, b""
        if ne > len(pending):
            self._pending = pending
            raise SwError(0x6C00 | len(pending))
        if ne < len(pending):
            # Return what was asked; the rest waits for the next GET RESPONSE.
            self._pending = pending[ne:]
            raise _Partial(pending[:ne], len(self._pending))
        return pending

    def _check_access(self, scb: int) -> None:
        if scb == 0x00:
            return
        if scb == NEVER:
            raise SwError(0x6982)
        if not self.chvs.get(1) or not self.chvs[1].verified:
            raise SwError(0x6982)

    # ------------------------------------------------------------------ GET DATA (SDOs)
    def _get_data(self, apdu: CommandApdu) -> bytes:
        if apdu.ins == 0xCA or (apdu.p1, apdu.p2) != (0x3F, 0xFF):
            raise SwError(0x6A88)
        try:
            outer = tlv.find(apdu.data, 0x4D, 0x70)
            sdo = outer.children()[0] if outer else None
        except (CardProtocolError, IndexError):
            raise SwError(0x6A80) from None
        if sdo is None:
            raise SwError(0x6A80)
        cls, ref = (sdo.tag >> 8) & 0xFF, sdo.tag & 0xFF
        if sdo.value != b"\xA0\x80":
            # Only the DOCP (A0) is readable; asked for the "public part" (7F41 /
            # 7F48) the card says "incorrect parameters", which OpenSC expects
            # before it asks for the DOCP.
            raise SwError(0x6A80)
        if cls == 0x81:  # CHV: the MF must be current (OpenSC e3a3722ad)
            if self.current_df is not self.mf or ref not in self.chvs:
                raise SwError(0x6A88)
            return self.chvs[ref].docp()
        if cls == 0x90:  # RSA private key: DF 0001 must be current
            key = self.keys.get(0x80 | ref)
            if key is None or self.current_df is self.mf:
                raise SwError(0x6A88)
            return key.docp()
        raise SwError(0x6A88)

    # ------------------------------------------------------------------ PIN
    def _verify(self, apdu: CommandApdu) -> bytes:
        chv = chv_by_ref(self.chvs, apdu.p2)
        if chv is None or apdu.p1 != 0x00:
            raise SwError(0x6A88 if chv is None else 0x6A86)
        if chv.blocked:
            raise SwError(0x6983)
        if not apdu.data:  # status query: no try spent
            if chv.verified:
                return b""
            raise SwError(0x63C0 | chv.tries_left)
        self._present(chv, apdu.data)
        return b""

    def _present(self, chv: Chv, candidate: bytes) -> None:
        if len(candidate.rstrip(b"\xff")) < chv.min_length or len(candidate) > 64:
            raise SwError(0x6700)
        if chv.matches(candidate):
            chv.tries_left = chv.max_tries
            chv.verified = True
            return
        chv.tries_left = max(0, chv.tries_left - 1)
        chv.verified = False
        raise SwError(0x63C0 | chv.tries_left)

    @staticmethod
    def _split_pair(data: bytes, first_len: int) -> List[bytes]:
        if first_len and len(data) > first_len:
            return [data[:first_len], data[first_len:]]
        half = len(data) // 2
        return [data[:half], data[half:]]

    def _change_reference_data(self, apdu: CommandApdu) -> bytes:
        chv = chv_by_ref(self.chvs, apdu.p2)
        if chv is None:
            raise SwError(0x6A88)
        if chv.ref != 1:
            raise SwError(0x6982)  # the unblock code cannot be changed (ACL FF)
        if chv.blocked:
            raise SwError(0x6983)
        if apdu.p1 == 0x00:  # old || new, each padded to the stored length
            stored = chv.max_length if len(apdu.data) == 2 * chv.max_length else 0
            old, new = self._split_pair(apdu.data, stored)
            self._present(chv, old)
        elif apdu.p1 == 0x01:  # new only, after a VERIFY in this session
            if not chv.verified:
                raise SwError(0x6982)
            new = apdu.data
        else:
            raise SwError(0x6A86)
        self._set_value(chv, new)
        return b""

    def _set_value(self, chv: Chv, new: bytes) -> None:
        value = new.rstrip(b"\xff")
        if not chv.min_length <= len(value) <= chv.max_length:
            raise SwError(0x6A80)
        chv.value = bytes(value)
        chv.tries_left = chv.max_tries
        chv.verified = True

    def _reset_retry_counter(self, apdu: CommandApdu) -> bytes:
        pin = chv_by_ref(self.chvs, apdu.p2)
        puk = self.chvs.get(2)
        if pin is None or pin.ref != 1 or puk is None:
            raise SwError(0x6A88)
        if puk.blocked:
            raise SwError(0x6983)
        if apdu.p1 != 0x02:
            # The one form both middlewares send (docs/emulator.md, "Unblock"):
            # VERIFY of the unblock code, then P1=02 with the new PIN. Whether a
            # CPS3 takes the unblock code inside this command (P1=00/01) or resets
            # without a new PIN (P1=03) no trace shows: refused.
            raise SwError(0x6A86)
        if not puk.verified:  # the reset rule of CHV 1: SCB 13, CHV 2 verified
            raise SwError(0x6982)
        new = apdu.data
        if not new:
            raise SwError(0x6A80)
        assert puk.usage_left is not None  # noqa: S101 - CHV2 always has a usage counter
        puk.usage_left -= 1
        pin.tries_left = pin.max_tries
        if new:
            self._set_value(pin, new)
        return b""

    # ------------------------------------------------------------------ crypto
    def _mse(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 == 0xF3:  # RESTORE: back to the default (empty) environment
            self.se.clear()
            return b""
        if apdu.p1 != 0x41:
            raise SwError(0x6A86)
        try:
            items = {t.tag: t.value for t in tlv.parse(apdu.data)}
        except CardProtocolError:
            raise SwError(0x6A80) from None
        alg = items.get(0x80, b"")
        key = items.get(0x84, b"")
        alg_ref = alg[0] if len(alg) == 1 else None
        key_ref = key[0] if len(key) == 1 else None
        if apdu.p2 == 0xAA:  # HT
            if alg_ref not in ALG_HASH:
                raise SwError(0x6A80)
            self.se.hash_alg = ALG_HASH[alg_ref]
            self.se.pending_hash = None
        elif apdu.p2 == 0xB6:  # DST
            if alg_ref not in ALG_DST or key_ref not in self.keys:
                raise SwError(0x6A80 if alg_ref not in ALG_DST else 0x6A88)
            self.se.dst_alg, self.se.dst_key = ALG_DST[alg_ref], key_ref
        elif apdu.p2 == 0xA4:  # AT
            if alg_ref != ALG_AT_PKCS1 or key_ref not in self.keys:
                raise SwError(0x6A80 if alg_ref != ALG_AT_PKCS1 else 0x6A88)
            self.se.at_alg, self.se.at_key = alg_ref, key_ref
        elif apdu.p2 == 0xB8:  # CT
            if alg_ref != ALG_CT_DECIPHER or key_ref not in self.keys:
                raise SwError(0x6A80 if alg_ref != ALG_CT_DECIPHER else 0x6A88)
            self.se.ct_alg, self.se.ct_key = alg_ref, key_ref
        else:
            raise SwError(0x6A86)
        return b""

    def _pso(self, apdu: CommandApdu) -> bytes:
        p1p2 = (apdu.p1 << 8) | apdu.p2
        if p1p2 == 0x90A0:
            return self._pso_hash(apdu.data)
        if p1p2 == 0x9E9A:
            return self._pso_cds(apdu.data)
        if p1p2 == 0x8086:
            return self._pso_decipher(apdu.data)
        raise SwError(0x6A86)

    def _pso_hash(self, data: bytes) -> bytes:
        alg = self.se.hash_alg
        if alg is None:
            raise SwError(0x6985)
        try:
            items = {t.tag: t.value for t in tlv.parse(data)}
        except CardProtocolError:
            raise SwError(0x6A80) from None
        size = DIGEST_SIZES[alg]
        state = items.get(0x90, b"")
        if 0x80 not in items and len(state) == size:
            self.se.pending_hash = state  # the whole hash, computed by the host
            return b""
        if 0x80 not in items or len(items[0x80]) > 64:
            raise SwError(0x6A80)
        if state and len(state) != size + 8:
            raise SwError(0x6A80)
        count = int.from_bytes(state[size:], "big") if state else 0
        try:
            self.se.pending_hash = finish(alg, state[:size], count, items[0x80])
        except CardProtocolError:
            raise SwError(0x6A80) from None
        return b""

    def _require_pin(self, key: CardKey) -> None:
        if key.needs_pin and not (self.chvs.get(1) and self.chvs[1].verified):
            raise SwError(0x6982)

    def _pso_cds(self, data: bytes) -> bytes:
        if self.se.dst_key is None or self.se.dst_alg is None:
            raise SwError(0x6985)
        key = self.keys[self.se.dst_key]
        if not key.allows(ACL_PSO_CDS):  # only CPS_PRIV_SIG may sign
            raise SwError(0x6982)
        self._require_pin(key)
        alg = self.se.dst_alg
        if data:  # hash off card
            if len(data) != DIGEST_SIZES[alg]:
                raise SwError(0x6700)
            value = data
        else:
            if self.se.pending_hash is None or self.se.hash_alg != alg:
                raise SwError(0x6985)
            value = self.se.pending_hash
        self.se.pending_hash = None
        return key.key.sign(value, padding.PKCS1v15(), utils.Prehashed(_HASHES[alg]))

    def _internal_authenticate(self, apdu: CommandApdu) -> bytes:
        if self.se.at_key is None or apdu.p1 != 0 or apdu.p2 != 0:
            raise SwError(0x6985 if self.se.at_key is None else 0x6A86)
        key = self.keys[self.se.at_key]
        if not key.allows(ACL_INT_AUTH):  # the signature key does not authenticate
            raise SwError(0x6982)
        self._require_pin(key)
        if not apdu.data or len(apdu.data) > int(key.modulus_bytes * INT_AUTH_MAX_RATIO):
            raise SwError(0x6700)
        return _raw_pkcs1_sign(key, apdu.data)

    def _pso_decipher(self, data: bytes) -> bytes:
        if self.se.ct_key is None:
            raise SwError(0x6985)
        key = self.keys[self.se.ct_key]
        if not key.allows(ACL_DECIPHER):
            raise SwError(0x6982)
        self._require_pin(key)
        if not data or data[0] != 0x81 or len(data) - 1 != key.modulus_bytes:
            raise SwError(0x6A80)
        try:
            return key.key.decrypt(data[1:], padding.PKCS1v15())
        except ValueError:
            raise SwError(0x6A80) from None

    def _get_challenge(self, apdu: CommandApdu) -> bytes:
        if apdu.ne is None or apdu.ne > 256:
            raise SwError(0x6700)
        return os.urandom(apdu.ne)


class _Partial(SwError):
    """Data with a status word other than 9000: ``61xx`` (a GET RESPONSE with Le
    smaller than what waits: the rest is announced), or a warning such as ``6282``."""

    def __init__(self, data: bytes, rest: int, sw: Optional[int] = None) -> None:
        super().__init__(sw if sw is not None else 0x6100 | (min(rest, 256) & 0xFF))
        self.data = data


def _raw_pkcs1_sign(key: CardKey, data: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 padding of ``data``, then the raw RSA private operation."""
    k = key.modulus_bytes
    block = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    nums = key.key.private_numbers()
    c = int.from_bytes(block, "big")
    # CRT: three times faster than one pow with d.
    m1 = pow(c, nums.dmp1, nums.p)
    m2 = pow(c, nums.dmq1, nums.q)
    h = (nums.iqmp * (m1 - m2)) % nums.p
    return (m2 + h * nums.q).to_bytes(k, "big")
