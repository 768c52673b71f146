"""PEM armour (RFC 7468): the one splitter of ``-----BEGIN <label>-----`` blocks.

Certificates (:mod:`cps.identity`, caIssuers answers in :mod:`cps.trust`,
certificate files), CRL files and CMS signatures (:mod:`cps.sign`) are all
unarmoured here. Scanning is linear in the input: each search starts where
the last block ended.
"""

from __future__ import annotations

import base64
import binascii
from typing import Iterable, List, Optional

__all__ = ["MARKER", "looks_pem", "blocks"]

MARKER = b"-----BEGIN"
_BEGIN, _DASHES = b"-----BEGIN ", b"-----"


def looks_pem(data: bytes) -> bool:
    """Whether ``data`` starts (after white space) with a PEM header."""
    return data.lstrip().startswith(MARKER)


def blocks(data: bytes, labels: Optional[Iterable[bytes]] = (b"CERTIFICATE",), *,
           strict: bool = True, limit: Optional[int] = None) -> List[bytes]:
    """The decoded bodies of the PEM blocks of ``data`` with one of ``labels``, in order.

    :param labels: the labels to keep (``b"CERTIFICATE"``, ``b"X509 CRL"``...);
        ``None`` keeps any. Blocks with another label are skipped.
    :param strict: raise on a block without its END line or with invalid
        base64; otherwise stop at the first unterminated block and skip
        undecodable ones.
    :param limit: stop after this many blocks.
    :raises ValueError: (``strict``) ``"truncated PEM block"`` or
        ``"malformed PEM block"``.
    """
    wanted = None if labels is None else tuple(labels)
    out: List[bytes] = []
    pos = 0
    while limit is None or len(out) < limit:
        start = data.find(_BEGIN, pos)
        if start < 0:
            break
        label_end = data.find(_DASHES, start + len(_BEGIN))
        if label_end < 0:
            if strict:
                raise ValueError("truncated PEM block")
            break
        label = data[start + len(_BEGIN):label_end]
        body = label_end + len(_DASHES)
        if wanted is not None and label not in wanted:
            pos = body
            continue
        end = b"-----END " + label + _DASHES
        stop = data.find(end, body)
        if stop < 0:
            if strict:
                raise ValueError("truncated PEM block")
            break
        try:
            out.append(base64.b64decode(b"".join(data[body:stop].split()), validate=True))
        except (binascii.Error, ValueError):
            if strict:
                raise ValueError("malformed PEM block") from None
        pos = stop + len(end)
    return out
