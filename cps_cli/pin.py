"""`cps pin`: status, verify, change, unblock (rules in :mod:`cps_cli.pinflow`)."""

from __future__ import annotations

from typing import Any, Optional

import click

from .pinflow import (
    KEYPAD_CHANGE_PROMPT,
    keypad_change,
    pin_operation,
    pin_option,
    secret_option,
    verify_with_tries,
)
from .util import (
    confirm,
    emit,
    force_option,
    json_option,
    note,
    read_secret,
    style_bad,
    with_card,
)

__all__ = ["pin"]


@click.group()
def pin() -> None:
    """PIN counters, verification, change and unblocking"""


@pin.command("status")
@with_card
@json_option
def pin_status(card: Any, as_json: bool) -> None:
    """tries left for the PIN and unblock code

    Reads the counters without spending a try.
    """
    from .view import describe_pin_status, pin_status_dict

    status = card.pin_status()
    data = pin_status_dict(status)
    text = describe_pin_status(status)
    emit(data, as_json, style_bad(text) if status.blocked or status.last_try else text)


@pin.command("verify")
@with_card
@pin_option
@force_option
@json_option
def pin_verify(card: Any, pin_spec: Optional[str], force: bool, as_json: bool) -> None:
    """present the PIN once (never retried)"""
    verify_with_tries(card, pin_spec, force, as_json)


def _holder(card: Any) -> str:
    try:
        who = card.practitioner
        name = " ".join(x for x in (who.first_name, who.last_name) if x)
    except Exception:  # noqa: BLE001 - a confirmation prompt must not fail on a name
        name = ""
    return f"card {card.card_number}" + (f" ({name})" if name else "")


@pin.command("change")
@with_card
@pin_option
@secret_option("--new-pin", "new_pin_spec", "new PIN (asked twice at a prompt)")
@force_option
@json_option
def pin_change(card: Any, pin_spec: Optional[str], new_pin_spec: Optional[str], force: bool,
               as_json: bool) -> None:
    """change the PIN

    Asks for confirmation (-f to skip it).
    """
    def ask(_: Any) -> None:
        confirm(f"Change the PIN of {_holder(card)}?", force)

    keypad = keypad_change(card, pin_spec, new_pin_spec)

    def action() -> None:
        if keypad:  # the reader asks the new PIN twice and compares
            note(KEYPAD_CHANGE_PROMPT)
            card.change_pin(None, None, allow_last_try=force)
            return
        old = read_secret(pin_spec, "PIN")
        new = read_secret(new_pin_spec, "new PIN", confirm_twice=True)
        card.change_pin(old, new, allow_last_try=force)

    pin_operation(card, "change", action, as_json, force=force, read_before=True,
                  before_action=ask)


@pin.command("unblock")
@with_card
@secret_option("--puk", "puk_spec", "unblock code")
@secret_option("--new-pin", "new_pin_spec", "new PIN (asked twice at a prompt)")
@force_option
@json_option
def pin_unblock(card: Any, puk_spec: Optional[str], new_pin_spec: Optional[str], force: bool,
                as_json: bool) -> None:
    """unblock the PIN with the unblock code

    Asks for confirmation (-f to skip it) and uses one of the card's unblocks.
    The codes are typed on the computer even on a PIN-pad reader (the CPS3
    unblock is two commands, which a keypad entry does not cover).
    """
    def ask(status: Any) -> None:
        uses = (f" This uses one of the {status.unblock_uses_left} unblocks left."
                if status.unblock_uses_left is not None else "")
        confirm(f"Unblock the PIN of {_holder(card)}?{uses}", force)

    def action() -> None:
        puk = read_secret(puk_spec, "unblock code")
        new = read_secret(new_pin_spec, "new PIN", confirm_twice=True)
        card.unblock_pin(puk, new, allow_last_try=force)

    pin_operation(card, "unblock", action, as_json, force=force, read_before=True,
                  before_action=ask)


