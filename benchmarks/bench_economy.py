"""APDU economy: what opening a card and reading the practitioner, both
certificates and the PIN status costs, counted at the emulated card.

Ours: ``cps.open_card`` through pyscard -> pcscd -> vpcd -> the emulator.
Anchor, on the same card in the same run: OpenSC 0.23 as one process doing
the same work, ``pkcs15-tool --list-certificates --list-pins`` (which reads
both certificates to list them, and the PIN objects): card detection is paid
once, as in ours. Target (issue 4): lower. Every file is selected with its FCP
and read at most 0xE7 bytes at a time, as the Cryptolib does on a real card
(docs/emulator.md), which costs a few APDUs more than reading 256 at a time.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import List

from .common import Figure


def _ours(emu, reader: str) -> int:
    import cps

    before = emu.apdu_count
    with cps.open_card(reader=reader) as card:
        _ = card.card_number                # EF.SN.ICC, as OpenSC reads it at every start
        _ = card.practitioner
        card.certificate(cps.KeyRole.AUTH)
        card.certificate(cps.KeyRole.SIGN)
        card.pin_status()
    return emu.apdu_count - before


def _opensc(emu, reader: str) -> int:
    before = emu.apdu_count
    subprocess.run(["pkcs15-tool", "-r", reader, "--list-certificates", "--list-pins"],
                   check=True, capture_output=True, timeout=60)
    return emu.apdu_count - before


def run() -> List[Figure]:
    from cps.emulator import EmulatedCard, default_pki

    emu = EmulatedCard.from_profile("cps3-medecin", pki=default_pki())
    with emu.serve_vpcd() as att:
        ours = _ours(emu, att.reader_name)
        anchor = _opensc(emu, att.reader_name) if shutil.which("pkcs15-tool") else None
    return [Figure("APDUs to open a card and read practitioner, both certificates, PIN status",
                   "APDUs", ours,
                   {"OpenSC 0.23 pkcs15-tool --list-certificates --list-pins (one process)":
                        anchor},
                   target=anchor - 1 if anchor else None,
                   note="counted at the emulated card, GET RESPONSE included")]
