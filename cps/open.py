"""``open_card``: the one way in, picking the backend (CPS3 session over PC/SC or a
given connection, or PKCS#11).

It lives apart from :mod:`cps.card` (the ``Card`` base class the backends
derive from) so that the base class imports no backend: ``cps.card`` ->
nothing, ``cps.cps3``/``cps.pkcs11`` -> ``cps.card``, ``cps.open`` -> all of
them. ``cps.open_card`` and ``cps.card.open_card`` are this function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .card import Card
from .cps3 import Cps3Card
from .errors import NoCard, NotSupported

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

__all__ = ["open_card"]


def open_card(reader: Optional[str] = None, backend: str = "pcsc", module: Optional[str] = None,
              connection: Optional["Connection"] = None, *, exclusive: bool = False) -> Card:
    """Open the CPS card in a reader (or on a given connection).

    :param reader: PC/SC reader: index, name substring or ATR prefix; ``None``
        takes the first reader holding a CPS card.
    :param backend: ``"pcsc"`` (the library speaks to the card itself) or
        ``"pkcs11"`` (through a PKCS#11 module: ANS Cryptolib, OpenSC, SoftHSM2).
    :param module: PKCS#11 module path (``backend="pkcs11"``); default: the ANS
        Cryptolib, then OpenSC, in their usual places.
    :param connection: an already open :class:`~cps.connection.Connection`
        (e.g. ``EmulatedCard.connection()``); it is not closed with the card.
    :raises NoReaders, ReaderNotFound, NoCard, UnknownCard, UnsupportedCard: ...
    """
    if connection is not None:
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
    conn = PcscConnection(info.name, exclusive=exclusive)
    try:
        return Cps3Card(conn, owns_connection=True)
    except BaseException:
        conn.close()
        raise
