"""`cps emulator ...`: run the emulated CPS3 card."""

from __future__ import annotations

import signal
import threading
from typing import Any, Optional

import click


@click.group()
def emulator() -> None:
    """emulated CPS3 cards for tests and demos"""


@emulator.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_profiles(as_json: bool) -> None:
    """list the bundled card profiles"""
    from cps.emulator.profiles import load_profile, profile_names

    from .util import emit

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
              help="Test PKI directory (default: test-pki in the user cache, "
                   "~/.cache/cps on Linux; seed 1).")
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


def _pki(pki_dir: Optional[str]) -> Any:
    from cps.emulator.card import default_pki
    from cps.emulator.pki import TestPKI

    return TestPKI.generate(pki_dir, seed=1) if pki_dir else default_pki()


@emulator.command()
@click.option("-d", "--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Where the PKI lives (default: $CPS_TEST_PKI_DIR, else "
                   "test-pki in the user cache, ~/.cache/cps on Linux). Created on first "
                   "use, reused after.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="PKI seed: same seed, same keys and certificates.")
@click.option("--base-url", default=None, metavar="URL",
              help="HTTP root written in the certificates for CRLs, OCSP and CA "
                   "certificates (default http://127.0.0.1:18080).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
def pki(directory: Optional[str], seed: int, base_url: Optional[str], as_json: bool) -> None:
    """generate or show the emulator's TEST PKI

    Anchors, intermediates, CRLs and the URLs the certificates name.

    Everything in it is derived from a public seed: TEST ONLY, never trust it
    outside tests. Give its roots to other tools, or use `--anchors test`.
    """
    import os

    from cps.emulator.card import default_pki
    from cps.emulator.pki import DEFAULT_BASE_URL, TestPKI

    from .util import emit
    from .view import test_pki_summary

    if directory is None and seed == 1 and base_url is None:
        test_pki = default_pki()
    else:
        directory = directory or os.environ.get("CPS_TEST_PKI_DIR") or os.path.expanduser(
            "test-pki in the user cache, ~/.cache/cps on Linux")
        test_pki = TestPKI.generate(directory, seed=seed, base_url=base_url or DEFAULT_BASE_URL)
    data = test_pki_summary(test_pki)
    lines = [click.style("TEST PKI: for tests only, its keys are public", fg="yellow"),
             f"Directory:       {data['directory']}",
             f"Seed:            {data['seed']}",
             f"Reference time:  {data['reference_time']}",
             f"Base URL:        {data['base_url']} (OCSP {data['ocsp_url']})",
             f"CRLs:            {data['crl_directory']}",
             "Anchors (roots):"]
    lines += [f"  {r['certificate']}\n    {r['subject']}" for r in data["roots"]]
    lines.append("Intermediates:")
    lines += [f"  {i['certificate']}\n    {i['subject']}" for i in data["intermediates"]]
    emit(data, as_json, "\n".join(lines))


@emulator.command()
@click.option("-p", "--profile", default="cps3-medecin", show_default=True,
              help="Card profile (see `cps emulator list`).")
@click.option("-d", "--dir", "directory", type=click.Path(file_okay=False), required=True,
              help="Token directory: softhsm2.conf and tokens/ go there.")
@click.option("--pki-dir", type=click.Path(file_okay=False), default=None,
              help="Test PKI directory (default: $CPS_TEST_PKI_DIR, else test-pki in the "
                   "user cache, ~/.cache/cps on Linux).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
def softhsm(profile: str, directory: str, pki_dir: Optional[str], as_json: bool) -> None:
    """put a card's keys in a SoftHSM2 token

    A PKCS#11 stand-in for the card, with the ANS Cryptolib labels.

    Prints the SOFTHSM2_CONF line to export; the token's user PIN is the
    profile's PIN (read it from the profile file: it is never printed).
    """
    from cps.emulator.card import EmulatedCard
    from cps.emulator.softhsm import provision_softhsm

    from .util import emit

    card = EmulatedCard.from_profile(profile, pki=_pki(pki_dir))
    token = provision_softhsm(card, directory)
    data = {"profile": profile, "token_label": token.token_label, "serial": token.serial,
            "module": token.module, "conf": str(token.conf),
            "env": {"SOFTHSM2_CONF": str(token.conf)},
            "pin_is_placeholder": token.pin_is_placeholder}
    if not as_json:
        click.echo(f"Token {token.token_label} (serial {token.serial}) in {directory}; "
                   f"module {token.module}. User PIN: the profile's.", err=True)
    emit(data, as_json, f"export SOFTHSM2_CONF={token.conf}")
