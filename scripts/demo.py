"""`make demo`: the main job on the emulated card, told on one screen.

It grows with the project. Today: the PC/SC service and its readers, an
emulated CPS3 plugged into pcscd through vsmartcard-vpcd, identified from its
ATR, read through the library's APDU stack, seen by Debian's OpenSC, and used
to authenticate (INTERNAL AUTHENTICATE) with a signature checked against its
certificate.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import cps
from cps import errors

PIN_PADDED = 8


def section(title: str) -> None:
    print(f"\n== {title}")


def main() -> int:
    print(f"cps {cps.__version__} — CPS card middleware demo (emulated card, real PC/SC stack)")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    from cps.apdu import ApduChannel, CommandApdu
    from cps.emulator import EmulatedCard, default_pki
    from cps.pcsc import PcscConnection

    section("Test PKI and card")
    pki = default_pki()
    emu = EmulatedCard.from_profile("cps3-medecin", pki=pki)
    subject = emu.credentials.auth_cert.subject.rfc4514_string()
    print(f"  profile cps3-medecin, card {emu.profile.card_number}: {subject}")

    with emu.serve_vpcd() as att:
        section("PC/SC readers (pcscd)")
        for i, r in enumerate(cps.list_readers()):
            state = (f"{r.card_kind.value if r.card_kind else '?'}  ATR {r.atr.hex(' ').upper()}"
                     if r.card_present else "no card")
            print(f"  {i}: {r.name}  [{state}]")

        section(f"Reading the card through pyscard → pcscd → vpcd ({att.reader_name})")
        with PcscConnection(att.reader_name) as conn:
            channel = ApduChannel(conn)
            with channel.transaction():
                sn = channel.send(0x00, 0xB0, 0x9C, 0x00, ne=256)   # EF.SN.ICC by SFI
                digits = sn[2:2 + sn[1]].hex().rstrip("f")
                print(f"  EF.SN.ICC: issuer {digits[:10]}, card number {digits[10:-1]}, "
                      f"Luhn digit {digits[-1]}  ({emu.os.apdu_count} APDUs so far)")
                channel.send(0x00, 0xA4, 0x00, 0x0C, bytes.fromhex("3F00"))
                docp = channel.send(0x00, 0xCB, 0x3F, 0xFF,
                                    bytes.fromhex("4D087006BF810102A080"), ne=256)
                i = docp.index(b"\x9b\x01")
                print(f"  PIN tries left (DOCP, no try spent): {docp[i + 2]} of {docp[i - 1]}")
                pin = emu.pin.encode().ljust(PIN_PADDED, b"\xff")
                channel.transmit(CommandApdu(0x00, 0x20, 0x00, 0x01, pin))
                challenge = hashlib.sha256(b"demo challenge").digest()
                digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + challenge
                channel.send(0x00, 0x22, 0x41, 0xA4, bytes.fromhex("800102840182"))
                signature = channel.send(0x00, 0x88, 0x00, 0x00, digest_info, ne=256)
            emu.credentials.auth_cert.public_key().verify(
                signature, challenge, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            print(f"  INTERNAL AUTHENTICATE with CPS_PRIV_AUT: {len(signature)}-byte signature, "
                  "verified with the authentication certificate")

        if shutil.which("pkcs15-tool"):
            section("Debian's OpenSC sees a CPx card")
            out = subprocess.run(["pkcs15-tool", "-r", att.reader_name, "--list-certificates"],
                                 capture_output=True, text=True, timeout=60)
            for line in out.stdout.splitlines():
                if line.startswith("X.509 Certificate"):
                    print(f"  {line}")
    print("\n(card removed; trust, the Card API and the CLI come with the next issues)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except errors.CpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
