"""The ANS Cryptolib CPS installed on this machine: where, and which version.

CPS4 cards speak only to the Cryptolib 5.2 or later (ANS). ``open_card()`` on a
CPS4 and ``cps doctor`` both ask here::

    from cps.cryptolib import find_cryptolib, CPS4_MIN_VERSION

    install = find_cryptolib()          # None: not installed
    install.module, install.version, install.supports_cps4

The platform facts are keyword arguments defaulting to the running process, as
in :mod:`cps.pkcs11_modules` (``platform``, ``bits``, ``environ``, ``root``: a
directory standing for the file system's root, for tests on prepared trees).
Nothing here loads the module: the version is read from what the installer
left behind, so that looking never touches a card.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .pkcs11_modules import CRYPTOLIB, module_candidates

__all__ = ["CPS4_MIN_VERSION", "CryptolibInstall", "find_cryptolib", "parse_version"]

#: The first Cryptolib that speaks to CPS4 cards (ANS, July 2024).
CPS4_MIN_VERSION = (5, 2)


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"5.2.6"`` -> ``(5, 2, 6)``; ``None`` for nothing readable."""
    if not text:
        return None
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


@dataclass(frozen=True)
class CryptolibInstall:
    """An installed Cryptolib CPS.

    :ivar module: the PKCS#11 module's path (under ``root`` when one was given).
    :ivar version: the product version (``"5.2.6"``), ``None`` when nothing on
        the machine says it.
    :ivar version_source: where the version was read (``"rpm"``, ``"dpkg"``,
        ``"registry"``, ``"receipt"``...), ``"unknown"`` when it was not.
    """

    module: str
    version: str | None = None
    version_source: str = "unknown"

    @property
    def version_tuple(self) -> tuple[int, ...] | None:
        return parse_version(self.version)

    @property
    def supports_cps4(self) -> bool | None:
        """Whether this version speaks to CPS4 cards; ``None`` when the version is unknown."""
        v = self.version_tuple
        return None if v is None else v[:2] >= CPS4_MIN_VERSION


def find_cryptolib(*, platform: str | None = None, bits: int | None = None,
                   environ: Mapping[str, str] | None = None,
                   root: str | os.PathLike[str] | None = None) -> CryptolibInstall | None:
    """The Cryptolib installed for this process's width, or ``None``."""
    for candidate in module_candidates(platform=platform, bits=bits, environ=environ, root=root):
        if candidate.kind == CRYPTOLIB and candidate.exists:
            return CryptolibInstall(candidate.path)
    return None
