"""Stable exit codes of the ``cps`` command (documented in docs/cli.md)."""

from __future__ import annotations

from typing import Tuple, Type

from cps import errors

OK = 0
FAILURE = 1             #: an error without a more specific code
USAGE = 2               #: bad arguments (click's own code)
NO_SERVICE = 3          #: PC/SC service not running
NO_READER = 4           #: no reader, or none matches --reader
NO_CARD = 5             #: no card, card removed or reset
UNSUPPORTED_CARD = 6    #: unknown or unsupported card
WRONG_PIN = 7
PIN_BLOCKED = 8
CERT_INVALID = 9
CERT_REVOKED = 10
REVOCATION_UNAVAILABLE = 11
CARD_ERROR = 12         #: the card refused a command, or broke the protocol
AUTH_FAILED = 13        #: a challenge-response token was refused
NOT_SUPPORTED = 14      #: the operation does not exist on this card, interface or backend
LAST_TRY_REFUSED = 15   #: one PIN try left: refused without --force
ABORTED = 16            #: a confirmation declined; PIN entry on the keypad cancelled or refused
SIGNATURE_INVALID = 17  #: a signature (raw or CMS) does not verify, or a CMS is malformed
TLS_FAILED = 18         #: `cps tls`: no TLS connection (refused handshake, network, timeout)
SERVER_UNTRUSTED = 19   #: `cps tls`: the server's certificate or name is not trusted
HTTP_ERROR = 20         #: `cps tls get`: the server answered an HTTP status >= 400

# Most specific first: the first matching class wins.
_TABLE: Tuple[Tuple[Type[BaseException], int], ...] = (
    (errors.PcscServiceUnavailable, NO_SERVICE),
    (errors.NoReaders, NO_READER),
    (errors.ReaderNotFound, NO_READER),
    (errors.NoCard, NO_CARD),
    (errors.CardRemoved, NO_CARD),
    (errors.CardReset, NO_CARD),
    (errors.CardIdentificationError, UNSUPPORTED_CARD),
    (errors.PinEntryError, ABORTED),   # keypad entry cancelled, timed out, refused: no try spent
    (errors.WrongPin, WRONG_PIN),
    (errors.PinBlocked, PIN_BLOCKED),
    (errors.CertificateRevoked, CERT_REVOKED),
    (errors.CertificateError, CERT_INVALID),
    (errors.RevocationError, REVOCATION_UNAVAILABLE),
    (errors.AuthError, AUTH_FAILED),
    (errors.ServerCertificateError, SERVER_UNTRUSTED),
    (errors.TlsError, TLS_FAILED),
    (errors.NotSupported, NOT_SUPPORTED),
    (errors.CardError, CARD_ERROR),
    (errors.CardProtocolError, CARD_ERROR),
)


def _last_try() -> Tuple[Type[BaseException], int]:
    from cps.card import LastTryRefused

    return (LastTryRefused, LAST_TRY_REFUSED)


_TABLE = (_last_try(),) + _TABLE


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error raised by the library."""
    import sys

    sign = sys.modules.get("cps.sign")  # only loaded when a signature was involved
    if sign is not None and isinstance(exc, getattr(sign, "SignatureError", ())):
        return SIGNATURE_INVALID
    for cls, code in _TABLE:
        if isinstance(exc, cls):
            return code
    return FAILURE
