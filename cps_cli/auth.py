"""`cps auth test`: a challenge-response login, the way a server would run it."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import click

from .card import practitioner_text
from .pinflow import pin_option, verify_pin_for
from .trustcmd import (
    DownloadProgress,
    fail_with_json,
    trust_options,
    validator_from,
)
from .util import (
    emit,
    force_option,
    json_option,
    style_ok,
    with_card,
)

__all__ = ["auth"]


@click.group()
def auth() -> None:
    """challenge-response authentication with the card"""


@auth.command("test")
@with_card
@click.option("--origin", default="https://localhost", show_default=True,
              help="The origin signed over (scheme://host[:port]), as a server would ask.")
@trust_options
@pin_option
@force_option
@json_option
def auth_test(card: Any, origin: str, anchors: Sequence[str], crls: Sequence[str],
              revocation: str, online: bool, cache_dir: Optional[str], pin_spec: Optional[str],
              force: bool, as_json: bool) -> None:
    """log in locally with the card, as a server would

    Does challenge-response work with this card?

    Runs a whole round as a server would: a fresh nonce, the card's answer
    (PIN needed on the contact interface), then the verifier's checks:
    signature, purpose, chain, revocation. Exit code 13 when the token is
    refused, 9/10/11 for the certificate.
    """
    from cps import errors

    from .view import auth_round

    progress = DownloadProgress() if online else None
    try:
        validator = validator_from(anchors, crls, revocation, online, cache_dir, progress)
        if not card.contactless:
            verify_pin_for(card, pin_spec, force)
        data = auth_round(card, validator, origin)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"authenticated": False, "origin": origin})
        raise
    finally:
        if progress is not None:
            progress.close()
    p = data["practitioner"]
    text = "\n".join([
        style_ok("Authenticated") + f": {practitioner_text(p)}",
        f"  idnat {p['idnat']} ({p['id_type_name']} {p['national_id']}), card "
        f"{p.get('card_number') or card.card_number}, validated against "
        f"{data['validation']['anchor']}",
        f"  origin {origin}; card {data['timings']['card_ms']} ms, "
        f"verification {data['timings']['verify_ms']} ms"])
    emit(data, as_json, text)
