"""APDU economy: what opening a card and reading the practitioner, both
certificates and the PIN status costs, counted at the emulated card.

Ours: ``cps.open_card`` through pyscard -> pcscd -> vpcd -> the emulator.
Anchor, on the same card in the same run: OpenSC 0.23's
``pkcs15-tool --list-certificates --list-pins`` plus reading both certificates
(``pkcs15-tool --read-certificate`` for each): what a sysadmin or an
application on OpenSC does to get the same facts. Target (issue 4): lower.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import List

from .common import Figure

AUTH_ID = "e828bd080f8025000001ff001002"
SIGN_ID = "e828bd080f8025000001ff001001"


def _ours(emu, reader: str) -> int:
    import cps

    before = emu.apdu_count
    with cps.open_card(reader=reader) as card:
        card.card_number                    # EF.SN.ICC, as OpenSC reads it at every start
        card.practitioner
        card.certificate(cps.KeyRole.AUTH)
        card.certificate(cps.KeyRole.SIGN)
        card.pin_status()
    return emu.apdu_count - before


def _opensc(emu, reader: str) -> int:
    before = emu.apdu_count
    commands = [["pkcs15-tool", "-r", reader, "--list-certificates", "--list-pins"],
                ["pkcs15-tool", "-r", reader, "--read-certificate", AUTH_ID],
                ["pkcs15-tool", "-r", reader, "--read-certificate", SIGN_ID]]
    for cmd in commands:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return emu.apdu_count - before


def run() -> List[Figure]:
    from cps.emulator import EmulatedCard, default_pki

    emu = EmulatedCard.from_profile("cps3-medecin", pki=default_pki())
    with emu.serve_vpcd() as att:
        ours = _ours(emu, att.reader_name)
        anchor = _opensc(emu, att.reader_name) if shutil.which("pkcs15-tool") else None
    return [Figure("APDUs to open a card and read practitioner, both certificates, PIN status",
                   "APDUs", ours, {"OpenSC 0.23 pkcs15-tool (list + 2 reads)": anchor},
                   target=anchor - 1 if anchor else None,
                   note="counted at the emulated card, GET RESPONSE included")]
