"""`make demo`: the main job on the emulated card, told on one screen.

It grows with the project. Today: an emulated CPS3 plugged into pcscd through
vsmartcard-vpcd, identified from its ATR, opened with the Card API, the
practitioner read from its certificate, the PIN status read without spending
a try, a signature made with the last hash step on the card and an
authentication, both verified, and Debian's OpenSC seeing the same card.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import cps
from cps import errors


def section(title: str) -> None:
    print(f"\n== {title}")


def main() -> int:
    print(f"cps {cps.__version__} — CPS card middleware demo (emulated card, real PC/SC stack)")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from cps.emulator import EmulatedCard, default_pki

    emu = EmulatedCard.from_profile("cps3-medecin", pki=default_pki())
    with emu.serve_vpcd() as att:
        section("PC/SC readers (pcscd)")
        for i, r in enumerate(cps.list_readers()):
            state = (f"{r.card_kind.value if r.card_kind else '?'}  ATR {r.atr.hex(' ').upper()}"
                     if r.card_present else "no card")
            print(f"  {i}: {r.name}  [{state}]")

        before = emu.apdu_count
        with cps.open_card(reader=att.reader_name) as card:
            section(f"The card in {att.reader_name}")
            p = card.practitioner
            print(f"  card {card.card_number} ({p.card_type.value})")
            print(f"  {p.first_name} {p.last_name}, {p.profession_label} "
                  f"(code {p.profession_code}), {p.id_type.name} {p.national_id}")
            print("  (what the certificate says: to be trusted once the chain is validated)")
            status = card.pin_status()
            print(f"  PIN: {status.tries_left}/{status.max_tries} tries left; unblock code "
                  f"{status.unblock_tries_left}/{status.unblock_max_tries}, "
                  f"{status.unblock_uses_left} unblocks left — no try spent")
            print(f"  {emu.apdu_count - before} APDUs so far (OpenSC needs about 110 for the same "
                  "facts: docs/performance.md)")

            section("Signing and authenticating")
            card.verify_pin(emu.pin)   # the test card's PIN; never printed
            document = b"Ordonnance du 29 novembre 2026\n" * 10
            signature = card.sign(document)
            card.certificate(cps.KeyRole.SIGN).public_key().verify(
                signature, document, padding.PKCS1v15(), hashes.SHA256())
            print(f"  signature key: {len(signature)}-byte PKCS#1 v1.5 signature "
                  "(last SHA-256 block hashed by the card), verified")
            answer = card.authenticate(b"server challenge", hash="sha256")
            card.certificate(cps.KeyRole.AUTH).public_key().verify(
                answer, b"server challenge", padding.PKCS1v15(), hashes.SHA256())
            print("  authentication key: INTERNAL AUTHENTICATE, verified")
            try:
                card.verify_pin("0000")
            except errors.WrongPin as exc:
                print(f"  a wrong PIN: {exc} (never retried)")

        if shutil.which("pkcs15-tool"):
            section("Debian's OpenSC sees a CPx card")
            out = subprocess.run(["pkcs15-tool", "-r", att.reader_name, "--list-certificates"],
                                 capture_output=True, text=True, timeout=60)
            for line in out.stdout.splitlines():
                if line.startswith("X.509 Certificate"):
                    print(f"  {line}")
    print("\n(card removed; trust, challenge-response and the full CLI come with the next issues)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except errors.CpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
