"""TRE_G15-ProfessionSante: the health-profession codes of the French nomenclatures.

The table ships as Python data (no file to read, no network). It is the ANS
terminology ``TRE_G15-ProfessionSante`` (OID ``1.2.250.1.71.1.2.7``, version
``20250328120000``); card certificates carry the *label* in the subject
``title`` attribute (``title=Médecin``), and older certificates carry it in an
``OU``. :func:`code_for` turns such a label back into its code, tolerating
differences of case, accents, hyphens and spacing::

    >>> from cps.professions import code_for, label_for
    >>> code_for("MASSEUR KINESITHERAPEUTE")
    '70'
    >>> label_for("70")
    'Masseur-Kinésithérapeute'

Deprecated codes (35 to 39 since 2024-12-13, 93 since 2021-12-17) stay in the
table, flagged: cards issued before the change still carry them.

Professions *in training* use another table (TRE_G16, "Médecin en formation"…)
and specialties are not in certificates at all; neither is covered here.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Mapping, Optional, Union

__all__ = [
    "TRE_G15_OID",
    "TRE_G15_VERSION",
    "Profession",
    "PROFESSIONS",
    "ALIASES",
    "profession",
    "label_for",
    "code_for",
    "normalize_label",
]

#: OID of the TRE_G15-ProfessionSante code system.
TRE_G15_OID = "1.2.250.1.71.1.2.7"
#: Version of the table shipped here.
TRE_G15_VERSION = "20250328120000"


@dataclass(frozen=True)
class Profession:
    """One entry of TRE_G15-ProfessionSante.

    :ivar code: the two-digit code, e.g. ``"10"``.
    :ivar label: the display label, e.g. ``"Médecin"`` (as in certificate ``title``).
    :ivar deprecated: the code is no longer assigned (kept to read older cards).
    :ivar deprecated_since: when it was deprecated, ``None`` if it is current.
    """

    code: str
    label: str
    deprecated: bool = False
    deprecated_since: Optional[date] = None


_DEPRECATED_2024 = date(2024, 12, 13)
_DEPRECATED_2021 = date(2021, 12, 17)

_TABLE = (
    Profession("10", "Médecin"),
    Profession("21", "Pharmacien"),
    Profession("26", "Audioprothésiste"),
    Profession("28", "Opticien-Lunetier"),
    Profession("31", "Assistant dentaire"),
    Profession("32", "Physicien médical"),
    Profession("35", "Aide-soignant", True, _DEPRECATED_2024),
    Profession("36", "Ambulancier", True, _DEPRECATED_2024),
    Profession("37", "Auxiliaire de puériculture", True, _DEPRECATED_2024),
    Profession("38", "Préparateur en pharmacie hospitalière", True, _DEPRECATED_2024),
    Profession("39", "Préparateur en pharmacie (officine)", True, _DEPRECATED_2024),
    Profession("40", "Chirurgien-Dentiste"),
    Profession("50", "Sage-Femme"),
    Profession("60", "Infirmier"),
    Profession("69", "Infirmier psychiatrique"),
    Profession("70", "Masseur-Kinésithérapeute"),
    Profession("80", "Pédicure-Podologue"),
    Profession("81", "Orthoprothésiste"),
    Profession("82", "Podo-Orthésiste"),
    Profession("83", "Orthopédiste-Orthésiste"),
    Profession("84", "Oculariste"),
    Profession("85", "Epithésiste"),
    Profession("86", "Technicien de laboratoire médical"),
    Profession("91", "Orthophoniste"),
    Profession("92", "Orthoptiste"),
    Profession("93", "Psychologue", True, _DEPRECATED_2021),
    Profession("94", "Ergothérapeute"),
    Profession("95", "Diététicien"),
    Profession("96", "Psychomotricien"),
    Profession("98", "Manipulateur ERM"),
)

#: The table, by code (read-only).
PROFESSIONS: Mapping[str, Profession] = MappingProxyType({p.code: p for p in _TABLE})

#: Other spellings :func:`code_for` accepts: feminine forms and long forms. Not
#: part of TRE_G15; a convenience for labels typed by people or written by
#: other software. Keys are compared after :func:`normalize_label`.
ALIASES: Mapping[str, str] = MappingProxyType({
    "Pharmacienne": "21",
    "Opticienne-Lunetière": "28",
    "Assistante dentaire": "31",
    "Physicienne médicale": "32",
    "Aide-soignante": "35",
    "Ambulancière": "36",
    "Préparatrice en pharmacie hospitalière": "38",
    "Préparateur en pharmacie": "39",
    "Préparatrice en pharmacie": "39",
    "Préparatrice en pharmacie (officine)": "39",
    "Chirurgienne-Dentiste": "40",
    "Maïeuticien": "50",
    "Infirmière": "60",
    "Infirmière psychiatrique": "69",
    "Masseuse-Kinésithérapeute": "70",
    "Kinésithérapeute": "70",
    "Technicienne de laboratoire médical": "86",
    "Diététicienne": "95",
    "Psychomotricienne": "96",
    "Manipulatrice ERM": "98",
    "Manipulateur d'électroradiologie médicale": "98",
    "Manipulatrice d'électroradiologie médicale": "98",
})

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss"})
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_label(label: str) -> str:
    """The comparison key of a label: no accents, no case, words separated by one space.

    ``"Masseur-Kinésithérapeute"``, ``"MASSEUR KINESITHERAPEUTE"`` and
    ``" masseur_kinésithérapeute "`` all give ``"masseur kinesitherapeute"``.

    :param label: any text.
    :returns: the normalized text (may be empty).
    """
    text = unicodedata.normalize("NFKD", label.translate(_LIGATURES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold().translate(_LIGATURES)
    return _NON_ALNUM.sub(" ", text).strip()


_BY_KEY: Mapping[str, str] = MappingProxyType({
    **{normalize_label(label): code for label, code in ALIASES.items()},
    **{normalize_label(p.label): p.code for p in _TABLE},  # official labels win
})


def _code_key(code: Union[str, int]) -> Optional[str]:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return f"{code:02d}" if code >= 0 else None
    if isinstance(code, str):
        return code.strip()
    return None


def profession(code: Union[str, int]) -> Optional[Profession]:
    """The table entry of a code.

    :param code: a TRE_G15 code, ``"10"`` (an int such as ``10`` is accepted too).
    :returns: the :class:`Profession`, or ``None`` for an unknown code.
    """
    key = _code_key(code)
    return PROFESSIONS.get(key) if key is not None else None


def label_for(code: Union[str, int]) -> Optional[str]:
    """The display label of a TRE_G15 code.

    :param code: a TRE_G15 code, ``"10"`` (an int such as ``10`` is accepted too).
    :returns: the label (``"Médecin"``), or ``None`` for an unknown code.
    """
    entry = profession(code)
    return entry.label if entry is not None else None


@functools.lru_cache(maxsize=512)  # titles repeat: a server sees the same few
def code_for(label: str) -> Optional[str]:
    """The TRE_G15 code of a profession label, ignoring case, accents and punctuation.

    ``code_for("Médecin") == code_for("MEDECIN") == "10"``. A few feminine
    and long forms are also understood (see :data:`ALIASES`). Deprecated
    codes are returned too (check :attr:`Profession.deprecated`).

    :param label: a label as found in a certificate ``title`` or ``OU``.
    :returns: the two-digit code, or ``None`` when the label is not a known
        profession (e.g. ``"Personnel santé ou social"``).
    """
    if not isinstance(label, str):
        return None
    key = normalize_label(label)
    return _BY_KEY.get(key) if key else None
