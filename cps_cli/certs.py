"""`cps certs`: list and export the card's certificates."""

from __future__ import annotations

from typing import Any

import click

from .card import cert_lines
from .util import (
    emit,
    json_option,
    with_card,
    write_output,
)

__all__ = ["certs"]


@click.group()
def certs() -> None:
    """the card's certificates: list, export"""


@certs.command("list")
@with_card
@json_option
def certs_list(card: Any, as_json: bool) -> None:
    """certificates with dates and fingerprints"""
    from .view import card_roles, certificate_summary

    data = [certificate_summary(card.certificate(role), role) for role in card_roles(card)]
    emit(data, as_json, "\n".join(line for c in data for line in cert_lines(c, "")))


@certs.command("export")
@with_card
@click.option("--role", type=click.Choice(["auth", "sign", "tech"]), default="auth",
              show_default=True, help="Which certificate (tech: contactless interface).")
@click.option("-F", "--format", "fmt", type=click.Choice(["PEM", "DER"], case_sensitive=False),
              default="PEM", show_default=True)
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE|-",
              help="Where to write it (- is standard output).")
def certs_export(card: Any, role: str, fmt: str, output: str) -> None:
    """write a certificate (PEM or DER)"""
    from cryptography.hazmat.primitives.serialization import Encoding

    from cps import KeyRole, errors

    if (role == "tech") != card.contactless:
        # (Cps3Card would hand the authentication certificate for "tech" on the
        # contact interface: its usage-bit fallback matches the auth key.)
        mode = "contactless" if card.contactless else "contact"
        raise errors.NotSupported(f"no {role} certificate on the {mode} interface")
    cert = card.certificate(KeyRole(role))
    data = cert.public_bytes(Encoding.PEM if fmt.upper() == "PEM" else Encoding.DER)
    write_output(output, data)


