"""`make demo`: the whole story on an emulated CPS3 served through the real PC/SC stack.

On one screen: the `cps doctor` report of the workstation (library call,
rendered like the command), what the card says and its PIN counters, a
practitioner logging in to a server by challenge-response (token checked by
`cps.auth.Verifier`, chain and CRLs by `cps.trust`), a CAdES-BES signature
made on the card and verified, then a revoked card refused at login, with the
reason. Everything runs against the emulator's TEST PKI; no PIN is printed.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import textwrap

import click

import cps
from cps import errors

ORIGIN = "https://dmp.example"
DOCUMENT = ("Ordonnance du 29 novembre 2026\n"
            "Paracétamol 1 g, 3 fois par jour pendant 5 jours.\n").encode()


def section(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True))


def good(text: str) -> str:
    return click.style(text, fg="green")


def bad(text: str) -> str:
    return click.style(text, fg="red", bold=True)


def who(p: cps.Practitioner) -> str:
    return f"{p.first_name} {p.last_name}, {p.profession_label}, {p.id_type.name} {p.national_id}"


def main() -> int:
    from cps.auth import ChallengeIssuer, Verifier
    from cps.diagnostics import diagnose
    from cps.emulator import EmulatedCard, default_pki
    from cps.emulator.vpcd import reader_name_for_port
    from cps.sign import DigestMismatch, sign_cms, verify_cms
    from cps.trust import TrustStore, Validator
    from cps_cli.doctor import render, verdict

    # The first virtual reader, as the README says; CPS_VPCD_PORT=35964 picks the
    # second, like the pytest plugin's fixtures.
    port = int(os.environ.get("CPS_VPCD_PORT", "35963"))
    reader = reader_name_for_port(port)
    if any(r.name == reader and r.card_present for r in cps.list_readers()):
        click.echo(f"error: {reader} already holds a card (another emulator or test is using "
                   "it): remove it, or set CPS_VPCD_PORT=35964 for the second reader", err=True)
        return 1
    pki = default_pki()
    store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values(),
                                         name="TEST PKI")
    now = dt.datetime.now(dt.timezone.utc)
    crls = [pki.crl(name, at=now) for name in (*pki.roots, *pki.intermediates)]
    validator = Validator(store, crls=crls)                      # hard-fail revocation
    issuer = ChallengeIssuer()                                   # nonces: memory, 5 min
    verifier = Verifier(validator, issuer.store, allowed_origins=[ORIGIN])

    click.echo(f"cps {cps.__version__}: an emulated CPS3 behind pcscd + vsmartcard-vpcd, "
               "TEST PKI (never trust it outside tests)")
    emu = EmulatedCard.from_profile("cps3-medecin", pki=pki)
    with emu.serve_vpcd(port=port) as att:
        section(f"cps doctor -r '{att.reader_name}' --anchors test --crl ... (9 CRLs)")
        report = diagnose(att.reader_name, anchors=store, crls=crls)
        click.echo(render(report, advice=False, indent="  "))
        click.echo(f"  {verdict(report)}")

        before = emu.apdu_count
        with cps.open_card(reader=att.reader_name) as card:
            section("The card")
            p = card.practitioner
            status = card.pin_status()
            click.echo(f"  card {card.card_number} ({p.card_type.value}): {who(p)}")
            click.echo(f"  PIN {status.tries_left}/{status.max_tries} tries, unblock code "
                       f"{status.unblock_tries_left}/{status.unblock_max_tries}, "
                       f"{status.unblock_uses_left} unblocks left (no try spent; "
                       f"{emu.apdu_count - before} APDUs so far)")

            section(f"Login by challenge-response to {ORIGIN}")
            challenge = issuer.issue()
            click.echo(f"  server  nonce {challenge.nonce[:16]}... (32 random bytes, single use,"
                       f" expires {challenge.expires_at:%H:%M:%S} UTC)")
            card.verify_pin(emu.pin or "")  # the TEST card's PIN (its profile's); never printed
            token = card.auth_token(challenge.nonce, ORIGIN)
            click.echo("  card    PIN verified once; SHA-256(origin) || SHA-256(nonce) signed "
                       "with the authentication key")
            result = verifier.verify(token, origin=ORIGIN)
            cas = [c.subject.rfc4514_string().split("CN=")[-1].split(",")[0]
                   for c in result.validation.path[1:]]
            click.echo(f"  server  {good('accepted')}: {who(result.practitioner)}")
            click.echo(f"          chain {' <- '.join(cas)}; CRL: "
                       f"{result.validation.revocation[0].status}")
            try:
                verifier.verify(token, origin=ORIGIN)
            except errors.NonceReplayed as exc:
                click.echo(f"  replay  {bad('refused')}: {exc}")

            section("A signed prescription (CMS, CAdES-BES, detached)")
            p7s = sign_cms(card, DOCUMENT)
            click.echo(f"  card    {len(DOCUMENT)}-byte document -> {len(p7s)}-byte .p7s "
                       "(signature key, last SHA-256 block hashed on the card)")
            checked = verify_cms(p7s, DOCUMENT, validator)
            signer = checked.practitioner
            assert signer is not None  # noqa: S101 - a CPS certificate names its holder
            click.echo(f"  anyone  {good('valid')}: {signer.first_name} {signer.last_name} "
                       f"({signer.id_type.name} {signer.national_id}) signed at "
                       f"{checked.signing_time:%H:%M:%S} UTC; chain + CRL ok")
            try:
                verify_cms(p7s, DOCUMENT.replace(b"5 jours", b"50 jours"), validator)
            except DigestMismatch:
                click.echo(f"  tamper  {bad('refused')}: \"5 jours\" -> \"50 jours\" no longer "
                           "matches the signed digest")

    section("A revoked card (cps3-revoked) tries to log in")
    revoked = EmulatedCard.from_profile("cps3-revoked", pki=pki)
    with revoked.serve_vpcd(port=port) as att:
        with cps.open_card(reader=att.reader_name) as card:
            challenge = issuer.issue()
            card.verify_pin(revoked.pin or "")
            token = card.auth_token(challenge.nonce, ORIGIN)
            click.echo(f"  card    {who(card.practitioner)}: PIN right, token signed")
        try:
            verifier.verify(token, origin=ORIGIN)
            click.echo(f"  server  {bad('accepted a revoked card!')}")
            return 1
        except errors.CertificateRevoked as exc:
            click.echo(f"  server  {bad('refused')}: {type(exc).__name__}, {exc}")
        failure = diagnose(att.reader_name, anchors=store, crls=crls).failure
        if failure is not None:
            click.echo(f"  doctor  {bad(failure.title)}: {failure.summary}")
            click.echo(textwrap.fill(failure.advice, 96, initial_indent=" " * 10,
                                     subsequent_indent=" " * 10))
    click.echo("\n(cards removed; by hand: `cps emulator serve`, then `cps doctor --anchors "
               "test`; docs/sysadmin.md)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except errors.CpsError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
