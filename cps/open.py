"""``open_card``: the one way in, picking the backend (CPS3 session over PC/SC or a
given connection, or PKCS#11) -- and, for a CPS4, the ANS Cryptolib's PKCS#11 module.

It lives apart from :mod:`cps.card` (the ``Card`` base class the backends
derive from) so that the base class imports no backend: ``cps.card`` ->
nothing, ``cps.cps3``/``cps.pkcs11`` -> ``cps.card``, ``cps.open`` -> all of
them. ``cps.open_card`` and ``cps.card.open_card`` are this function.

A CPS4 (NXP ChipDoc) does not speak IAS-ECC: the library never sends it an APDU
of its own. Its ATR (read by PC/SC, no APDU) sends :func:`open_card` to
:func:`open_cps4`, which opens the CPS4 token of the Cryptolib's PKCS#11 module
(5.2 or later, the first that knows CPS4 cards), or raises
:class:`CryptolibRequired` -- an :class:`~cps.errors.UnsupportedCard`, as before --
saying exactly what to install (docs/card-api.md, "CPS4").
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Literal, Optional, Union

from .atr import CardKind, card_kind
from .card import Card
from .cps3 import Cps3Card
from .errors import (
    CryptolibRequired,
    NoCard,
    NoReaders,
    NotSupported,
    PcscServiceUnavailable,
    ReaderNotFound,
    UnknownCard,
)

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection
    from .cryptolib import CryptolibInstall

__all__ = ["CryptolibRequired", "open_card", "open_cps4"]

log = logging.getLogger("cps.open")

#: the name of the CPS4 in messages (the ATR table's entries all start with it)
_CPS4 = "CPS4 (NXP ChipDoc)"


class _Lookup(enum.Enum):
    #: stands for "look the Cryptolib up" in :func:`open_cps4`
    FIND = "find"


def open_cps4(reader: Optional[str] = None, *, module: Optional[str] = None,
              install: Union["CryptolibInstall", None, Literal[_Lookup.FIND]] = _Lookup.FIND,
              atr: bytes = b"") -> Card:
    """Open the CPS4 in ``reader`` through a PKCS#11 module: ``module`` when given,
    else the ANS Cryptolib CPS when it is 5.2 or later (or of unknown version).

    Slots: the Cryptolib names each slot after its PC/SC reader (cps-domain 2.2),
    so the CPS4 token is looked for in the slots named after ``reader``
    (:func:`cps.pkcs11.slot_matches_reader`: a name cut at the 64 bytes of a slot
    description still matches). When none is, and none of the module's slots
    bears any PC/SC reader's name (a module that names slots otherwise --
    SoftHSM2 in tests), the one CPS4 token the module shows is taken, and several
    are refused (``ReaderNotFound``). A module that does name slots after readers
    but shows none for ``reader`` does not see the card there: ``NoCard``, never
    another reader's CPS4. A CPS3 token is never taken for the CPS4
    (:attr:`Pkcs11Card.generation`).

    :param reader: the PC/SC reader name; ``None`` takes the one CPS4 token.
    :param module: a PKCS#11 module to use instead of the Cryptolib.
    :param install: the Cryptolib to use (:func:`cps.cryptolib.find_cryptolib`'s
        answer, ``None``: none installed); default: look it up.
    :param atr: the card's ATR, for the errors.
    :raises CryptolibRequired: no Cryptolib, one older than 5.2, or one of unknown
        version (or an explicit ``module``) that sees no CPS4 token.
    :raises ReaderNotFound: several CPS4 tokens and none in a slot named ``reader``.
    :raises MissingExtra: python-pkcs11 is not installed (the ``card`` extra).
    """
    from .cryptolib import CPS4_MIN_VERSION, find_cryptolib, install_advice
    from .pkcs11 import CPS4, Pkcs11Card

    found: Optional[CryptolibInstall] = None
    if module is None:
        found = find_cryptolib() if install is _Lookup.FIND else install
        if found is None:
            raise CryptolibRequired(f"{_CPS4}: the library reaches a CPS4 through the ANS "
                                    f"Cryptolib CPS, which is not installed",
                                    install_advice=install_advice(), atr=atr)
        if found.supports_cps4 is False:
            raise CryptolibRequired(
                f"{_CPS4}: the installed Cryptolib CPS {found.version} ({found.module}) "
                f"predates CPS4 cards (they need "
                f"{'.'.join(str(n) for n in CPS4_MIN_VERSION)} or later)",
                install_advice=install_advice(installed=found.version), atr=atr,
                installed=found)
        module = found.module
    try:
        try:
            card = Pkcs11Card.open(module=module, reader=reader, generation=CPS4)
        except ReaderNotFound:
            if reader is None:
                raise
            if _slots_named_after_readers(module):
                # The module names its slots after the PC/SC readers (the Cryptolib
                # does) and none is this one: it does not see the card there. Taking
                # its one CPS4 token would be another reader's card.
                raise NoCard(f"{module} shows no token in {reader}", reader=reader) from None
            # A module naming slots its own way: its one CPS4 token, if only one.
            log.info("no slot of %s is named after a reader: taking its only CPS4 token",
                     module)
            card = Pkcs11Card.open(module=module, generation=CPS4, unique=True)
    except (NoCard, UnknownCard) as exc:
        if found is not None and found.supports_cps4:
            raise  # a Cryptolib 5.2+: the card is not there (removed, unreadable)
        version = f" {found.version}" if found is not None and found.version else ""
        raise CryptolibRequired(
            f"{_CPS4}: the PKCS#11 module {module}{version} shows no CPS4 token "
            f"({exc}); a CPS4 needs the ANS Cryptolib CPS "
            f"{'.'.join(str(n) for n in CPS4_MIN_VERSION)} or later",
            install_advice=install_advice(), atr=atr, installed=found) from exc
    log.info("CPS4 in %r opened through %s", reader, module)
    return card


def _slots_named_after_readers(module: str) -> bool:
    """Whether one of the module's slots bears a PC/SC reader's name."""
    from .pkcs11 import slot_descriptions, slot_matches_reader
    from .readers import list_readers

    try:
        names = [r.name for r in list_readers()]
    except (NoReaders, PcscServiceUnavailable):
        return False
    return any(slot_matches_reader(d, n) for d in slot_descriptions(module) for n in names)


def open_card(reader: Optional[str] = None, backend: str = "pcsc", module: Optional[str] = None,
              connection: Optional["Connection"] = None, *, exclusive: bool = False) -> Card:
    """Open the CPS card in a reader (or on a given connection).

    :param reader: PC/SC reader: index, name substring or ATR prefix; ``None``
        takes the first reader holding a CPS card.
    :param backend: ``"pcsc"`` (the library speaks to the card itself; a CPS4
        goes through the Cryptolib's PKCS#11 module, see :func:`open_cps4`) or
        ``"pkcs11"`` (through a PKCS#11 module: ANS Cryptolib, OpenSC, SoftHSM2).
    :param module: PKCS#11 module path (``backend="pkcs11"``, or a CPS4 found by
        the ``pcsc`` backend); default: the ANS Cryptolib, then OpenSC, in their
        usual places (a CPS4: the Cryptolib 5.2 or later only).
    :param connection: an already open :class:`~cps.connection.Connection`
        (e.g. ``EmulatedCard.connection()``); it is not closed with the card.
    :param exclusive: hold the reader exclusively (PC/SC); not for a CPS4, which
        the Cryptolib's module opens as it decides.
    :raises NoReaders, ReaderNotFound, NoCard, UnknownCard, UnsupportedCard: ...
    :raises CryptolibRequired: (an ``UnsupportedCard``) a CPS4 and no usable
        Cryptolib; ``install_advice`` says what to install.
    """
    if connection is not None:
        if card_kind(connection.atr) is CardKind.CPS4:
            from .cryptolib import install_advice

            # A connection carries APDUs, and a CPS4 takes none of ours.
            raise CryptolibRequired(f"{_CPS4}: a CPS4 is opened through the Cryptolib's "
                                    f"PKCS#11 module, not over a connection: call "
                                    f"open_card(reader=...) or open_card(backend='pkcs11')",
                                    install_advice=install_advice(),
                                    atr=connection.atr)
        card: Card = Cps3Card(connection, owns_connection=False)
        card.backend = "connection"
        return card
    if backend == "pkcs11":
        from .pkcs11 import Pkcs11Card

        return Pkcs11Card.open(module=module, reader=reader)
    if backend != "pcsc":
        raise NotSupported(f"unknown backend {backend!r}: use 'pcsc' or 'pkcs11'")
    from .pcsc import PcscConnection
    from .readers import list_readers, select_reader

    info = select_reader(list_readers(), reader)
    if not info.card_present:
        raise NoCard(f"no card in {info.name}", reader=info.name)
    if info.card_kind is CardKind.CPS4:
        # Decided on the ATR alone: not one APDU reaches the CPS4 from here.
        return open_cps4(info.name, module=module, atr=info.atr)
    conn = PcscConnection(info.name, exclusive=exclusive)
    try:
        return Cps3Card(conn, owns_connection=True)
    except BaseException:
        conn.close()
        raise

