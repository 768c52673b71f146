"""`EmulatedCard`: a CPS3 built from a profile, and the ways to plug it in.

::

    pki = TestPKI.generate(directory, seed=1)
    emu = EmulatedCard.from_profile("cps3-medecin", pki=pki)
    with cps.open_card(connection=emu.connection()) as card: ...   # in-process
    with emu.serve_vpcd():                                         # through pcscd
        ...
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple, Union

from cryptography.hazmat.primitives.serialization import Encoding

from ..connection import Connection, split_response
from ..errors import CardRemoved, ReaderError, ReaderTimeout
from ..platform_paths import user_cache_dir
from .cardos import CardOS
from .faults import CardMuted, Faults
from .filesystem import SwError  # noqa: F401 - re-exported for tests
from .layout import ATR_CONTACT, ATR_CONTACTLESS, ATR_CPS4, build_tree
from .pki import CardCredentials, TestPKI
from .profiles import CardProfile, load_profile
from .security import KEY_AUTH, KEY_SIGN, KEY_TECH, CardKey, Chv
from .vpcd import VPCD_PORT, VpcdAttachment

__all__ = ["EmulatedCard", "EmulatedConnection", "default_pki"]

# CHV access rules as the real card reports them (iasecc-tool, cps-domain 1.6).
ACL_CHV1 = bytes.fromhex("F3000013FF00")
ACL_CHV2 = bytes.fromhex("F3FF00FFFF00")

_default_pki_lock = threading.Lock()
_default_pki: Optional[TestPKI] = None


def default_pki() -> TestPKI:
    """The test PKI used when none is given: seed 1, cached in ``$CPS_TEST_PKI_DIR``
    (default ``test-pki`` in :func:`cps.platform_paths.user_cache_dir`)."""
    global _default_pki
    with _default_pki_lock:
        if _default_pki is None:
            directory = os.environ.get("CPS_TEST_PKI_DIR") or str(
                user_cache_dir() / "test-pki")
            _default_pki = TestPKI.generate(directory, seed=1)
        return _default_pki


class EmulatedCard:
    """A CPS3 card in memory: card OS, files, keys, PIN counters, faults.

    Thread-safe: one command runs at a time, as on a real card.
    """

    #: seconds a mute card keeps the host waiting before its attachment gives up
    mute_timeout = 2.0

    def __init__(self, profile: CardProfile, credentials: CardCredentials,
                 pin: Optional[str] = None, puk: Optional[str] = None) -> None:
        self.profile = profile
        self.credentials = credentials
        self._pin = pin if pin is not None else profile.pin
        self._puk = puk if puk is not None else profile.puk
        self.faults = Faults()
        #: set to a list to record every ``(command, response)`` the card sees
        #: (after faults), e.g. to compare a sequence with a real-card trace
        self.journal: Optional[List[Tuple[bytes, bytes]]] = None
        self._lock = threading.RLock()
        #: what a PC/SC transaction is to processes, for in-process connections
        self._transaction_lock = threading.RLock()
        #: the vpcd attachment serving the card, when the ``cps_vpcd_card`` fixture made one
        self.attachment: Optional[VpcdAttachment] = None
        certificates: Dict[int, bytes] = {}
        keys: Dict[int, CardKey] = {}
        chvs: Dict[int, Chv] = {}
        if profile.contactless:
            assert credentials.tech_key and credentials.tech_cert  # noqa: S101
            keys[KEY_TECH] = CardKey(KEY_TECH, credentials.tech_key, "CPS_PRIV_TECH_AUT",
                                     needs_pin=False)
            certificates[KEY_TECH] = credentials.tech_cert.public_bytes(Encoding.DER)
            atr, protocol = ATR_CONTACTLESS, "T1"
        else:
            keys[KEY_SIGN] = CardKey(KEY_SIGN, credentials.sign_key, "CPS_PRIV_SIG")
            keys[KEY_AUTH] = CardKey(KEY_AUTH, credentials.auth_key, "CPS_PRIV_AUT")
            certificates[KEY_SIGN] = credentials.sign_cert.public_bytes(Encoding.DER)
            certificates[KEY_AUTH] = credentials.auth_cert.public_bytes(Encoding.DER)
            chvs[1] = Chv(1, (self._pin or "").encode(), 3, profile.pin_tries_left, ACL_CHV1)
            chvs[2] = Chv(2, (self._puk or "").encode(), 10, profile.puk_tries_left, ACL_CHV2,
                          usage_left=profile.unblock_uses_left, min_length=8, max_length=8)
            atr, protocol = (ATR_CPS4 if profile.cps4 else ATR_CONTACT), "T0"
        # A CPS4 answers no IAS-ECC command (cardos.CardOS ias_ecc): its keys live on
        # for provision_softhsm, the way tests reach a CPS4 (through PKCS#11).
        self.os = CardOS(atr, build_tree(profile, certificates), chvs, keys, protocol,
                         behaviour=profile.behaviour, ias_ecc=not profile.cps4)

    @classmethod
    def from_profile(cls, name: Union[str, CardProfile], pki: Optional[TestPKI] = None,
                     pin: Optional[str] = None, puk: Optional[str] = None) -> "EmulatedCard":
        """Build the card of a bundled profile (``"cps3-medecin"``...).

        :param pki: the test PKI issuing the card's certificates; default :func:`default_pki`.
        :param pin: override the profile's PIN; ``None`` keeps it.
        :param puk: override the profile's unblock code; ``None`` keeps it.
        """
        profile = load_profile(name) if isinstance(name, str) else name
        pki = pki or default_pki()
        return cls(profile, pki.issue_card(profile), pin=pin, puk=puk)

    # ------------------------------------------------------------------ facts for tests
    @property
    def pin(self) -> Optional[str]:
        """The PIN the card holds now (it changes with CHANGE REFERENCE DATA)."""
        chv = self.os.chvs.get(1)
        return chv.value.decode() if chv else None

    @property
    def puk(self) -> Optional[str]:
        """The unblock code the card holds."""
        chv = self.os.chvs.get(2)
        return chv.value.decode() if chv else None

    @property
    def atr(self) -> bytes:
        return self.os.atr

    @property
    def protocol(self) -> str:
        return self.os.protocol

    @property
    def apdu_count(self) -> int:
        """Commands the card has executed since it was built (GET RESPONSE included)."""
        return self.os.apdu_count

    def __repr__(self) -> str:
        return f"EmulatedCard({self.profile.name!r})"

    # ------------------------------------------------------------------ power and faults
    def power_up(self) -> bytes:
        """Cold start: power the card (again); its volatile state is lost."""
        with self._lock:
            return self.os.power_up()

    def power_on(self) -> bytes:
        """Power the card if it is off; a powered card keeps its state."""
        with self._lock:
            return self.os.atr if self.os.powered else self.os.power_up()

    def power_down(self) -> None:
        with self._lock:
            self.os.power_down()

    def reset(self) -> bytes:
        """Warm reset: the PIN verification and security environment are lost."""
        with self._lock:
            return self.os.reset()

    def remove(self) -> None:
        """Pull the card out of the reader (its volatile state is lost)."""
        with self._lock:
            self.faults.removed = True
            self.os.power_down()

    def insert(self) -> None:
        """Put the card back."""
        with self._lock:
            self.faults.removed = False

    def transmit(self, raw: bytes) -> bytes:
        """Execute one command APDU with the faults applied; return the response APDU.

        :raises CardMuted: the card is mute (attachments turn it into a timeout).
        :raises CardRemoved: the card is out.
        """
        response = self._transmit(raw)
        if self.journal is not None:
            self.journal.append((bytes(raw), bytes(response)))
        return response

    def _transmit(self, raw: bytes) -> bytes:
        faults = self.faults
        if faults.delay:
            time.sleep(faults.delay)
        with self._lock:
            if faults.removed:
                raise CardRemoved("the emulated card was removed")
            if faults.mute:
                raise CardMuted()
            if faults.reset_next:
                faults.reset_next = False
                self.os.reset()
            if faults.endless_61xx:
                return b"\x61\x10"
            if faults.force_6cxx and len(raw) == 5 and raw[1] != 0xC0 \
                    and faults.take("force_6cxx"):
                # A case-2 command answered "wrong Le, use xx" (the command had no
                # effect worth keeping: reads are idempotent; GET RESPONSE is not,
                # so it is spared).
                probe = self.os.execute(raw)
                if probe[-2:] == b"\x90\x00" and len(probe) > 2:
                    return b"\x6C" + bytes(((len(probe) - 2) & 0xFF,))
                return probe
            response = self.os.execute(raw)
            if faults.force_61xx and len(response) > 2 and response[-2:] == b"\x90\x00" \
                    and raw[1] != 0xC0:
                data = response[:-2]
                self.os._pending = data  # noqa: SLF001 - the fault lives inside the OS
                return b"\x61" + bytes((min(len(data), 256) & 0xFF,))
            if faults.force_61xx and raw[1] == 0xC0 and len(response) > 2 + faults.force_61xx:
                # Hand the pending data out in small pieces.
                data = response[:-2]
                piece, rest = data[:faults.force_61xx], data[faults.force_61xx:]
                if response[-2] == 0x61:
                    rest = rest + self.os._pending  # noqa: SLF001
                self.os._pending = rest  # noqa: SLF001
                return piece + b"\x61" + bytes((min(len(rest), 256) & 0xFF,))
            hook = faults.response_hook()
            if hook == "garbage":
                return faults.garbage_bytes()
            if hook == "truncate":
                return response[:1]
            return response

    # ------------------------------------------------------------------ attachments
    def connection(self) -> "EmulatedConnection":
        """An in-process :class:`~cps.connection.Connection` to this card (no pcscd)."""
        return EmulatedConnection(self)

    def serve_vpcd(self, port: int = VPCD_PORT, host: str = "127.0.0.1",
                   wait_present: bool = True) -> VpcdAttachment:
        """Plug the card into pcscd's vsmartcard-vpcd reader; use as a context manager.

        Port 35963 is reader ``Virtual PCD 00 00``, 35964 ``Virtual PCD 00 01``.
        """
        return VpcdAttachment(self, port=port, host=host).start(wait_present=wait_present)


class EmulatedConnection(Connection):
    """In-process connection: the library's stack talks straight to the card OS.

    ``transaction()`` holds the card for one thread at a time, like a PC/SC
    transaction holds it for one process.
    """

    reader = "emulator"

    def __init__(self, card: EmulatedCard) -> None:
        self.card = card
        self.protocol = card.protocol
        self._closed = False
        # Connecting does not reset a card that is already powered: its security
        # state (a PIN verified through another connection) stays, as in PC/SC.
        card.power_on()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.card._transaction_lock:  # noqa: SLF001 - shared by all connections
            yield

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def send_and_receive(self, apdu: bytes) -> Tuple[bytes, int]:
        if self._closed:
            raise ReaderError("connection closed", reader=self.reader)
        try:
            raw = self.card.transmit(apdu)
        except CardMuted:
            time.sleep(self.card.mute_timeout)
            raise ReaderTimeout("the card does not answer (mute card)", reader=self.reader) \
                from None
        return split_response(raw)

    def reset(self) -> None:
        if self._closed:
            raise ReaderError("connection closed", reader=self.reader)
        self.card.reset()

    def check_present(self) -> None:
        if self._closed:
            raise ReaderError("connection closed", reader=self.reader)
        if self.card.faults.removed:
            raise CardRemoved("the emulated card was removed", reader=self.reader)

    def close(self) -> None:
        self._closed = True
