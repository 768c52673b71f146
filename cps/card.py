"""The one Card API, whatever the backend: PC/SC (CPS3 session), PKCS#11, emulator.

::

    with cps.open_card() as card:
        card.practitioner               # who the certificate says (validate before trusting!)
        card.pin_status()               # no try spent
        card.verify_pin("1234")
        card.sign(b"document")          # signing key, PKCS#1 v1.5
        card.authenticate(challenge)    # authentication key

A PIN is never retried automatically, and the last try is refused unless the
caller passes ``allow_last_try=True``.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from .errors import NotSupported, PinBlocked, PinError, WrongPin

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

    from .identity import Practitioner

__all__ = ["KeyRole", "PinStatus", "Card", "LastTryRefused", "DIGEST_INFO_PREFIXES",
           "PSS_PARAMETERS", "SIGNATURE_PADDINGS", "check_padding_name", "digest_info",
           "check_pin_format", "check_last_try"]


class KeyRole(str, enum.Enum):
    """Which key (and certificate) of the card."""

    AUTH = "auth"   #: CPS_PRIV_AUT: authentication (INTERNAL AUTHENTICATE), decipher
    SIGN = "sign"   #: CPS_PRIV_SIG: non-repudiation signature (PSO CDS)
    TECH = "tech"   #: CPS_PRIV_TECH_AUT: contactless technical key, no PIN


@dataclass(frozen=True)
class PinStatus:
    """PIN and unblock-code counters, read without spending a try.

    :ivar tries_left: PIN tries left (0 = blocked).
    :ivar max_tries: PIN tries after a successful verification (3 on a CPS3).
    :ivar blocked: no PIN try left.
    :ivar unblock_tries_left: unblock-code tries left, ``None`` when unknown.
    :ivar unblock_max_tries: unblock-code tries (10 on a CPS3), ``None`` when unknown.
    :ivar unblock_uses_left: unblocks still allowed (100 on a new CPS3), ``None`` when unknown.
    :ivar unblock_blocked: the PIN can no longer be unblocked.
    """

    tries_left: int
    max_tries: int
    blocked: bool
    unblock_tries_left: Optional[int] = None
    unblock_max_tries: Optional[int] = None
    unblock_uses_left: Optional[int] = None
    unblock_blocked: bool = False

    @property
    def last_try(self) -> bool:
        """One try left: the next wrong PIN blocks the card."""
        return self.tries_left == 1


class LastTryRefused(PinError):
    """Verification refused because only one try is left and ``allow_last_try`` was not given."""

    def __init__(self, what: str = "PIN") -> None:
        super().__init__(f"only one {what} try left: refusing to risk it without "
                         "allow_last_try=True")
        self.tries_left = 1
        self.what = what


# DER DigestInfo prefixes (RFC 8017 9.2 note 1)
DIGEST_INFO_PREFIXES: Dict[str, bytes] = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
}


def digest_info(hash_name: str, digest: bytes) -> bytes:
    """DER DigestInfo for a SHA-1 or SHA-256 digest."""
    try:
        prefix = DIGEST_INFO_PREFIXES[hash_name]
    except KeyError:
        raise NotSupported(f"hash {hash_name!r}: CPS3 signs sha1 and sha256") from None
    return prefix + digest


#: ``padding`` names of :meth:`Card.sign` / :meth:`Card.authenticate`.
SIGNATURE_PADDINGS: Tuple[str, ...] = ("pkcs1v15", "pss")
PKCS1V15, PSS = SIGNATURE_PADDINGS

#: RSASSA-PSS as every backend signs it: MGF1 with the message's hash, salt as long
#: as that hash. Why these: TLS 1.3 requires them (RFC 8446 4.2.3, "the length of
#: the Salt MUST be equal to the length of the output of the digest algorithm"),
#: and they are what RFC 4055 2.1/3.1 recommends for RSASSA-PSS in certificates and
#: CMS (MGF1 with the message's hash, salt length = hash length), so one signature
#: serves both without parameters to negotiate. The ANS Cryptolib's own PSS tests
#: on real CPS4 cards use them too (testSignatureVerifSignRsaPss.cpp: sLen = hash
#: length, MGF1 with the same hash).
PSS_PARAMETERS = "MGF1 with the same hash, salt length = hash length"


def check_padding_name(padding: str) -> str:
    """A known ``padding`` name (``"pkcs1v15"``, ``"pss"``), or the caller's mistake.

    :raises TypeError: not a ``str``.
    :raises ValueError: an unknown name.
    """
    if not isinstance(padding, str):
        raise TypeError(f"padding must be a str, not {type(padding).__name__}")
    if padding not in SIGNATURE_PADDINGS:
        raise ValueError(f"unknown padding {padding!r}: use "
                         f"{' or '.join(repr(p) for p in SIGNATURE_PADDINGS)}")
    return padding


def check_pin_format(pin: str, what: str = "PIN", min_len: int = 4, max_len: int = 8) -> bytes:
    """Check a PIN's shape before it goes anywhere near the card (no try spent).

    :raises TypeError: not a ``str``.
    :raises PinError: not digits, or a length the card cannot hold. The message
        never contains the PIN.
    """
    if not isinstance(pin, str):  # the caller's mistake, not a PIN's shape
        raise TypeError(f"the {what} must be a str of digits, not {type(pin).__name__}")
    if not pin.isdigit() or not pin.isascii():
        raise PinError(f"the {what} must be made of digits")
    if not min_len <= len(pin) <= max_len:
        raise PinError(f"the {what} must have {min_len} to {max_len} digits")
    return pin.encode("ascii")


def check_last_try(tries_left: Optional[int], uses_left: Optional[int], what: str,
                   allow_last_try: bool) -> None:
    """The one last-try rule (every backend applies it before sending a code).

    :param tries_left: tries left of the code about to be sent; ``None`` unknown.
    :param uses_left: unblocks left (unblock code only); ``None`` unknown.
    :param what: ``"PIN"`` or ``"unblock code"``.
    :raises PinBlocked: no try (or no unblock) left.
    :raises LastTryRefused: one try left and ``allow_last_try`` is false.
    """
    if tries_left == 0 or (what != "PIN" and uses_left == 0):
        raise PinBlocked("PIN blocked: unblock it with the unblock code" if what == "PIN"
                         else "the unblock code is blocked (or no unblock is left): the "
                         "card must be replaced", what=what)
    if tries_left == 1 and not allow_last_try:
        raise LastTryRefused(what)


class Card(abc.ABC):
    """A CPS card, opened through one backend. Use :func:`cps.open_card` to get one.

    Properties are cached for the card session: the certificates and the
    practitioner are read once.
    """

    #: ``"pcsc"``, ``"pkcs11"``...
    backend: str = ""

    #: how many times this session forgot its PIN verification (``logout()``):
    #: a long-lived user of the card's authentication (the TLS session cache of
    #: :mod:`cps.tls`) keys what it keeps by it, so nothing outlives a logout
    login_generation: int = 0

    # ---------------------------------------------------------------- identity
    @property
    @abc.abstractmethod
    def card_number(self) -> str:
        """The card number (without the 8025000001 issuer prefix and Luhn digit)."""

    @property
    @abc.abstractmethod
    def contactless(self) -> bool:
        """True for the contactless interface (technical key, no PIN, no signature)."""

    @property
    def generation(self) -> str:
        """The card generation: ``"cps3"`` (IAS-ECC, what the PC/SC backend speaks to)
        or ``"cps4"`` (NXP ChipDoc, through the Cryptolib's PKCS#11 module). Asking
        costs no APDU."""
        return "cps3"

    @abc.abstractmethod
    def certificate(self, role: KeyRole = KeyRole.AUTH) -> "x509.Certificate":
        """The certificate of one key (read once, then cached).

        :raises NotSupported: the card has no such key (e.g. SIGN in contactless mode).
        """

    @property
    def practitioner(self) -> "Practitioner":
        """The practitioner named by the authentication certificate.

        **Not authenticated**: this is what the certificate *says*. Trust it only
        after validating the certificate (``cps.trust``) and checking that the
        card holds its key (``cps.auth``).
        """
        from .identity import Practitioner

        cached = getattr(self, "_practitioner", None)
        if cached is None:
            role = KeyRole.TECH if self.contactless else KeyRole.AUTH
            cached = Practitioner.from_certificate(self.certificate(role))
            self._practitioner = cached
        return cached

    # ---------------------------------------------------------------- PIN
    @abc.abstractmethod
    def pin_status(self) -> PinStatus:
        """PIN and unblock counters, without spending a try."""

    @property
    def has_pinpad(self) -> bool:
        """The PIN can be entered on the reader's keypad (a PC/SC part 10 PIN pad,
        or a PKCS#11 token with a protected authentication path): then
        ``verify_pin(None)`` asks the holder there. The default: no keypad."""
        return False

    @abc.abstractmethod
    def verify_pin(self, pin: Optional[str] = None, *, allow_last_try: bool = False) -> None:
        """Present the PIN once (never retried).

        :param pin: the PIN's digits, or ``None`` to have the holder enter it on the
            reader's keypad (:attr:`has_pinpad`; the counters are checked first).
        :raises ValueError: ``None`` on a card without a keypad.
        :raises WrongPin: refused; ``tries_left`` says what is left.
        :raises PinBlocked: no try left.
        :raises LastTryRefused: one try left and ``allow_last_try`` is false.
        :raises PinEntryError: the keypad entry was cancelled, timed out or refused
            by the reader (no try spent).
        """

    @abc.abstractmethod
    def change_pin(self, old_pin: Optional[str] = None, new_pin: Optional[str] = None, *,
                   allow_last_try: bool = False) -> None:
        """Change the PIN (the old one is checked by the card). Both ``None``: both
        are entered on the reader's keypad (where it can), the new one twice."""

    @abc.abstractmethod
    def unblock_pin(self, puk: str, new_pin: str, *, allow_last_try: bool = False) -> None:
        """Reset the PIN counter with the unblock code and set a new PIN.

        Each attempt spends an unblock-code try (and, on success, one of the
        card's unblocks): it is sent once, in one form, never retried.

        :raises WrongPin: the unblock code was refused (``what == "unblock code"``).
        :raises PinBlocked: the unblock code is blocked, or no unblock is left.
        :raises LastTryRefused: one unblock-code try left and ``allow_last_try`` is false.
        """

    #: End the session with the card's security state reset (PIN verification
    #: forgotten) when this session presented the PIN. ``False`` leaves it for
    #: other programs sharing the card, and for anyone who opens the card next.
    logout_on_close: bool = True

    @property
    def pin_status_seen(self) -> Optional[PinStatus]:
        """The counters as this session last read or learnt them, without an APDU.

        ``None`` before any. A PIN operation's own check (:meth:`verify_pin`...)
        reads only the counters it needs: the others keep their last known value
        (``None`` when never read). After a verification, change or unblock the
        PIN counter is known to be full; after a refusal, what the card said is left.
        """
        return self._seen

    _seen: Optional[PinStatus] = None
    _checked: Optional[PinStatus] = None

    @property
    def last_pin_check(self) -> Optional[PinStatus]:
        """The counters as the last PIN operation read them before it sent a code
        (``None`` before any): what "before" means in a report of that operation."""
        return self._checked

    def _counters(self, what: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
        """``(tries left, max tries, unblocks left)`` of the PIN (``what == "PIN"``) or
        the unblock code, without spending a try. Backends override it to read
        only what the rule needs; this default reads everything."""
        status = self.pin_status()
        if what == "PIN":
            return status.tries_left, status.max_tries, None
        return status.unblock_tries_left, status.unblock_max_tries, status.unblock_uses_left

    def _check_last_try(self, what: str, allow_last_try: bool) -> None:
        """The one last-try rule, for every backend and both codes.

        Refuses a blocked code (or a card with no unblock left) and the last try
        unless ``allow_last_try``. Unknown counters (``None``) refuse nothing.
        """
        left, maximum, uses = self._counters(what)
        self._note(what, left, maximum, uses)
        self._checked = self._seen
        check_last_try(left, uses, what, allow_last_try)

    def _note(self, what: str, left: Optional[int], maximum: Optional[int] = None,
              uses: Optional[int] = None) -> None:
        """Remember counters read or learnt (see :attr:`pin_status_seen`)."""
        seen = self._seen
        if what == "PIN":
            if left is None:
                return
            if maximum is None:
                maximum = seen.max_tries if seen is not None else left
            if seen is None:
                self._seen = PinStatus(tries_left=left, max_tries=maximum, blocked=left == 0)
            else:
                self._seen = replace(seen, tries_left=left, max_tries=maximum,
                                     blocked=left == 0)
        elif seen is not None:
            if uses is None:
                uses = seen.unblock_uses_left
            if maximum is None:
                maximum = seen.unblock_max_tries
            self._seen = replace(seen, unblock_tries_left=left, unblock_max_tries=maximum,
                                 unblock_uses_left=uses,
                                 unblock_blocked=left == 0 or uses == 0)

    def _note_status(self, status: PinStatus) -> PinStatus:
        self._seen = status
        return status

    def _note_error(self, error: BaseException, what: str) -> None:
        """Learn the counter a refusal carries (``WrongPin.tries_left``, blocked)."""
        if isinstance(error, WrongPin):
            self._note(what, error.tries_left)
        elif isinstance(error, PinBlocked):
            self._note(what, 0)

    def _note_success(self, what: str) -> None:
        """After a verification, change or unblock the PIN counter is full."""
        seen = self._seen
        if seen is None:
            return
        seen = replace(seen, tries_left=seen.max_tries, blocked=False)
        if what == "unblock code":
            uses = seen.unblock_uses_left - 1 if seen.unblock_uses_left else \
                seen.unblock_uses_left
            seen = replace(seen, unblock_tries_left=seen.unblock_max_tries,
                           unblock_uses_left=uses, unblock_blocked=uses == 0)
        self._seen = seen

    # ---------------------------------------------------------------- keys
    @property
    def signature_paddings(self) -> frozenset[str]:
        """The ``padding`` names :meth:`sign` and :meth:`authenticate` accept on this
        card: ``"pkcs1v15"`` always; ``"pss"`` too on a card (and backend) that signs
        RSASSA-PSS -- a CPS4 through a PKCS#11 module offering the PSS mechanisms,
        never a CPS3 (PKCS#1 v1.5 only, cps-domain 1.7). Asking costs no APDU."""
        return frozenset({PKCS1V15})

    def _check_padding(self, padding: str) -> str:
        """``padding`` checked against :data:`SIGNATURE_PADDINGS` (a caller's typo is a
        ``ValueError``) and :attr:`signature_paddings` (what this card cannot do is
        :class:`~cps.errors.NotSupported`), before anything reaches the card."""
        name = check_padding_name(padding)
        if name not in self.signature_paddings:
            names = {PKCS1V15: "PKCS#1 v1.5", PSS: "RSASSA-PSS"}
            can = ", ".join(names[p] for p in sorted(self.signature_paddings))
            raise NotSupported(f"padding {name!r}: this card signs with {can} only "
                               "(RSASSA-PSS needs a CPS4, through the ANS Cryptolib 5.2 or "
                               "later)")
        return name

    @abc.abstractmethod
    def sign(self, data: bytes, hash: str = "sha256", *, prehashed: bool = False,
             padding: str = PKCS1V15) -> bytes:
        """Sign with the signature key (CPS_PRIV_SIG).

        :param data: the document, or its digest when ``prehashed``.
        :param hash: ``"sha256"`` or ``"sha1"``.
        :param padding: ``"pkcs1v15"`` (RSASSA-PKCS1-v1_5, every card) or ``"pss"``
            (RSASSA-PSS, see :data:`PSS_PARAMETERS`; only where
            :attr:`signature_paddings` has it).
        :raises NotSupported: contactless card, a backend that cannot, or a padding
            this card does not sign with (before the card is touched).
        :raises ValueError: ``prehashed`` with a digest of the wrong length; an
            unknown padding name.
        """

    @abc.abstractmethod
    def authenticate(self, challenge: bytes, *, hash: Optional[str] = None,
                     padding: str = PKCS1V15) -> bytes:
        """Sign a challenge with the authentication key (INTERNAL AUTHENTICATE).

        :param challenge: with ``"pkcs1v15"``, sent as is (the card applies PKCS#1
            v1.5 type-1 padding), at most 40 % of the modulus (102 bytes) on a
            CPS3; with ``hash``, its DigestInfo is sent instead, which gives a
            standard PKCS#1 v1.5 signature. With ``"pss"``: without ``hash``, the
            challenge *is* the message digest (32 bytes: SHA-256, 20: SHA-1), as a
            TLS stack hands it over; with ``hash``, the challenge is hashed first.
        :param padding: ``"pkcs1v15"`` or ``"pss"`` (see :meth:`sign`).
        :raises NotSupported: a padding this card does not sign with (no APDU sent).
        :raises ValueError: an unknown padding name; a PSS digest of another length.
        """

    def auth_token(self, nonce: str, origin: str, *, padding: str = PKCS1V15
                   ) -> Dict[str, str]:
        """Answer a server's challenge: a JSON-serialisable token (docs/auth-token.md).

        Signs with the authentication key; the PIN must have been verified (not
        on the contactless interface). ``"pkcs1v15"`` (default): format 1,
        RS256, SHA-256(origin) || SHA-256(nonce) signed -- what every server
        accepts. ``"pss"`` (a CPS4, :attr:`signature_paddings`): format 2,
        PS256, whose signed data begins with SHA-256 of the format and the
        algorithm, so that the token cannot be relabelled.

        :raises NotSupported: ``"pss"`` on a card that signs PKCS#1 v1.5 only.
        :raises ValueError: an unknown padding name.
        """
        from cryptography.hazmat.primitives.serialization import Encoding

        from .token_format import format_for, signed_data, token_fields

        fmt, algorithm = format_for(check_padding_name(padding))
        role = KeyRole.TECH if self.contactless else KeyRole.AUTH
        data = signed_data(origin, nonce, fmt, algorithm)
        if padding == PSS:
            signature = self.authenticate(data, hash="sha256", padding=PSS)
        else:  # as before format 2: backends that predate the padding argument work
            signature = self.authenticate(data, hash="sha256")
        return token_fields(self.certificate(role).public_bytes(Encoding.DER), signature,
                            nonce, origin, fmt, algorithm)

    def check_present(self) -> None:  # noqa: B027 - optional hook: a default no-op
        """Raise :class:`~cps.errors.CardRemoved` (or ``CardReset``) when the card
        left its reader (or was reset) since this session began, without an APDU
        (a PC/SC status call, a PKCS#11 session check). A long-lived user of the
        card's authentication -- e.g. :class:`cps.tls.CardHTTPAdapter` -- calls
        it to end its sessions with the card. The default does nothing."""

    def close(self) -> None:  # noqa: B027 - optional hook: a default no-op, not abstract
        """Release the card."""

    def __enter__(self) -> "Card":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend}>"


if TYPE_CHECKING:
    from .open import open_card as open_card  # noqa: F401 - re-exported, typed
else:
    def __getattr__(name: str) -> object:
        # cps.card.open_card stays importable; it lives in cps.open, beside the
        # backends it picks from (this module, the Card base class, imports none of
        # them), and is loaded on first use. Hidden from type checkers, which see
        # the import above instead.
        if name == "open_card":
            from .open import open_card

            return open_card
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
