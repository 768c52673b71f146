"""`cps emulator ...`: run the emulated CPS3 card."""

from __future__ import annotations

import signal
import threading
from typing import Optional

import click


@click.group()
def emulator() -> None:
    """emulated CPS3 cards for tests and demos"""


@emulator.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_profiles(as_json: bool) -> None:
    """list the bundled card profiles"""
    from cps.emulator.profiles import load_profile, profile_names

    from .__main__ import emit

    data = []
    for name in profile_names():
        p = load_profile(name)
        data.append({"profile": name, "description": p.description, "interface": p.interface,
                     "card_type": p.card_type, "card_number": p.card_number})
    emit(data, as_json, "\n".join(f"{d['profile']:<22} {d['description']}" for d in data))


@emulator.command()
@click.option("-p", "--profile", default="cps3-medecin", show_default=True,
              help="Card profile (see `cps emulator list`).")
@click.option("--port", type=click.IntRange(1, 65535), default=35963, show_default=True,
              help="vpcd port: 35963 is reader 'Virtual PCD 00 00', 35964 '... 00 01'.")
@click.option("--pki-dir", type=click.Path(file_okay=False), default=None,
              help="Test PKI directory (default: ~/.cache/cps/test-pki, seed 1).")
def serve(profile: str, port: int, pki_dir: Optional[str]) -> None:
    """insert an emulated card into pcscd's virtual reader until interrupted"""
    from cps.emulator.card import EmulatedCard, default_pki
    from cps.emulator.pki import TestPKI

    pki = TestPKI.generate(pki_dir, seed=1) if pki_dir else default_pki()
    card = EmulatedCard.from_profile(profile, pki=pki)
    stop = threading.Event()
    # Ctrl-C or SIGTERM ends the loop; a handler (not KeyboardInterrupt) so that a
    # signal arriving at any point still removes the card cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with card.serve_vpcd(port=port) as attachment:
        click.echo(f"Card {profile} ({card.profile.card_number}) inserted in "
                   f"'{attachment.reader_name}'. Ctrl-C to remove it.", err=True)
        while not stop.wait(0.5):
            pass
    click.echo("Card removed.", err=True)
