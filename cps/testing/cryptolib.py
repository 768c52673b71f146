"""A prepared file tree in which "the ANS Cryptolib CPS" is installed: a PKCS#11
module of the tests' choosing (SoftHSM2 holding an emulated CPS4 token) at the
Cryptolib's Linux path, with the version its installer records.

:func:`cps.cryptolib.find_cryptolib` given ``root=`` (and ``cps doctor``'s
``--root``, or :class:`cps.diagnostics.machine.Machine`) then finds it, as on a
workstation where the Cryptolib is installed::

    root = install_fake_cryptolib(tmp_path / "root", token.module, "5.2.2")
    find_cryptolib(platform="linux", bits=64, root=root).version    # "5.2.2"
"""

from __future__ import annotations

import os
from pathlib import Path

from ..cryptolib import parse_version
from ..pkcs11_modules import CRYPTOLIB, candidate_paths

__all__ = ["install_fake_cryptolib"]

#: Where the Linux installer (5.2.x RPM) keeps its inventory record.
ADM_RECORD = "var/opt/santesocial/commun/adm/155.adm"


def install_fake_cryptolib(root: str | os.PathLike[str], module: str,
                           version: str | None = "5.2.2") -> Path:
    """Lay out a Linux tree under ``root``: the Cryptolib's module path is a symbolic
    link to ``module``, and the installer's record says ``version`` (``None``: no
    record, a version nothing on the machine tells).

    :returns: ``root``, as a :class:`~pathlib.Path`.
    :raises ValueError: a ``version`` that is not dotted numbers.
    """
    base = Path(root)
    link = base / candidate_paths(CRYPTOLIB, platform="linux", bits=64)[0].lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(module)
    if version is not None:
        parts = parse_version(version)
        if parts is None or ".".join(map(str, parts)) != version:
            raise ValueError(f"version must be dotted numbers such as 5.2.2, not {version!r}")
        record = base / ADM_RECORD
        record.parent.mkdir(parents=True, exist_ok=True)
        # the record's first line: two digits per part (5.2.2 -> 050202)
        record.write_text("".join(f"{n:02d}" for n in (parts + (0, 0))[:3]) + "\nCryptolib CPS\n")
    return base
