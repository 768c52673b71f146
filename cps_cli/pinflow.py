"""PIN options and the PIN-consuming flow shared by `cps pin`, `cps sign` and `cps auth`.

PIN rules (docs/cli.md): ``--pin env:VAR``, else a line of stdin when it is
not a terminal, else the reader's keypad when it has one (PC/SC part 10 PIN
pad, PKCS#11 protected authentication path), else a hidden prompt on stderr.
The tries left are shown before and after every PIN operation; the last try
is refused without ``--force``; a PIN never appears in any output.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Optional

import click

from . import exitcodes
from .util import (
    CliFail,
    F,
    emit,
    env_name_problem,
    note,
    read_secret,
    style_ok,
)

__all__ = ["secret_option", "pin_option", "pin_operation", "verify_with_tries",
           "verify_pin_for", "KEYPAD_PROMPT", "KEYPAD_CHANGE_PROMPT", "keypad_entry",
           "keypad_change"]

#: What the holder is told (stderr) before a PIN is asked on the reader's keypad.
KEYPAD_PROMPT = "Enter your PIN on the reader's keypad."
KEYPAD_CHANGE_PROMPT = ("Enter your current PIN, then the new PIN twice, on the reader's "
                        "keypad.")


def _env_spec(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """Refuse a code given on the command line before anything else happens."""
    if value is None:
        return value
    # The value itself is never repeated: it may be a real PIN (`--pin 7391`), or a
    # code typed where the variable's name was expected (`--pin env:7391`).
    if not value.startswith("env:"):
        raise click.BadParameter("takes env:VARIABLE (a code on the command line would be "
                                 "visible to every user of the machine; it is not "
                                 "repeated here)", ctx, param)
    problem = env_name_problem(value[4:])
    if problem is not None:
        raise click.BadParameter(problem, ctx, param)
    return value


def secret_option(name: str, dest: str, what: str) -> Callable[[F], F]:
    return click.option(name, dest, metavar="env:VAR", callback=_env_spec, expose_value=True,
                        help=f"Read the {what} from this environment variable (else a line of "
                             "stdin when it is not a terminal, else a hidden prompt).")


def pin_option(f: F) -> F:
    return secret_option("--pin", "pin_spec", "PIN")(f)


def _prompts(spec: Optional[str]) -> bool:
    """The PIN will be typed at a prompt (not ``env:``, not piped)."""
    return not spec and sys.stdin.isatty()


def keypad_entry(card: Any, spec: Optional[str]) -> bool:
    """The PIN is entered on the reader's keypad: none from ``env:`` or a pipe (where
    a prompt would be shown) and the card's reader has a keypad."""
    return _prompts(spec) and bool(getattr(card, "has_pinpad", False))


def keypad_change(card: Any, *specs: Optional[str]) -> bool:
    """The old and new PINs are entered on the keypad: as :func:`keypad_entry`, and
    the reader can change a PIN (PC/SC ``FEATURE_MODIFY_PIN_DIRECT``); a reader
    that verifies only leaves the new PIN to the prompt."""
    if not all(_prompts(spec) for spec in specs) or not getattr(card, "has_pinpad", False):
        return False
    connection = getattr(card, "connection", None)
    pinpad_features = getattr(connection, "pinpad_features", None)
    return pinpad_features is not None and bool(pinpad_features().can_modify)


def _pin_for(card: Any, spec: Optional[str], force: bool) -> str:
    """The PIN to verify. Without one, a card that is blocked (or at its last
    try) is the problem to report, not the missing PIN."""
    try:
        return read_secret(spec, "PIN")
    except CliFail:
        from cps.card import check_last_try

        status = card.pin_status()
        check_last_try(status.tries_left, None, "PIN", force)
        raise


def verify_with_tries(card: Any, spec: Optional[str], force: bool, as_json: bool,
            report: bool = True) -> None:
    # A prompt comes after the counters are shown (no PIN typed for a blocked
    # card); a PIN from env: or stdin costs no APDU beyond the library call.
    keypad = keypad_entry(card, spec)

    def action() -> None:
        if keypad:
            # Said before the call, which returns once the holder has typed: the
            # counters and the last-try rule were checked already (read_before).
            note(KEYPAD_PROMPT)
            card.verify_pin(None, allow_last_try=force)
        else:
            card.verify_pin(_pin_for(card, spec, force), allow_last_try=force)

    pin_operation(card, "verify", action, as_json, force=force, report=report,
                  read_before=_prompts(spec))


def pin_operation(card: Any, operation: str, action: Callable[[], None], as_json: bool, *,
                  force: bool = False, report: bool = True, read_before: bool = False,
                  before_action: Optional[Callable[[Any], None]] = None) -> Dict[str, Any]:
    """Run one PIN operation with the tries shown before and after.

    The library applies the last-try rule and reads the counter it needs
    (:meth:`cps.card.Card.last_pin_check`); "after" is what the card's answer
    taught (:attr:`cps.card.Card.pin_status_seen`), so a verification costs no
    APDU beyond the library call. ``read_before`` reads every counter first (for
    a confirmation that names the unblocks left). On failure the tries go to
    stderr (or the JSON to stdout) and the error propagates to its exit code.
    """
    from cps import errors
    from cps.card import LastTryRefused, check_last_try

    from .view import describe_pin_status, error_to_dict, pin_status_dict

    before = card.pin_status() if read_before else None
    if before is not None:
        note(f"Before: {describe_pin_status(before)}")

    def run() -> None:
        try:
            if before is not None:
                # The library's rule, applied before a confirmation is asked (the
                # library applies it again, on a fresh counter, before sending).
                unblock = operation == "unblock"
                check_last_try(before.unblock_tries_left if unblock else before.tries_left,
                               before.unblock_uses_left if unblock else None,
                               "unblock code" if unblock else "PIN", force)
            if before_action is not None:
                before_action(before)
            action()
        except LastTryRefused as refused:  # the library's words name its keyword
            raise CliFail(f"only one {refused.what} try left: refusing to risk it without "
                          "--force", exitcodes.LAST_TRY_REFUSED) from refused

    try:
        run()
    except (errors.CpsError, CliFail) as exc:
        checked = before or card.last_pin_check
        if before is None and checked is not None:
            note(f"Before: {describe_pin_status(checked)}")
        after = card.pin_status_seen
        data = {"operation": operation, "ok": False, "before": pin_status_dict(checked),
                "after": pin_status_dict(after)}
        if as_json:
            code = exc.exit_code if isinstance(exc, CliFail) else exitcodes.exit_code_for(exc)
            emit({**data, "error": error_to_dict(exc), "exit_code": code}, True, "")
        else:
            note(f"After:  {describe_pin_status(after)}")
        raise
    checked = before or card.last_pin_check
    if before is None and checked is not None:
        note(f"Before: {describe_pin_status(checked)}")
    after = card.pin_status_seen
    data = {"operation": operation, "ok": True, "before": pin_status_dict(checked),
            "after": pin_status_dict(after)}
    if report:
        done = {"verify": "PIN verified", "change": "PIN changed",
                "unblock": "PIN unblocked"}[operation]
        emit(data, as_json, f"{style_ok(done)}. {describe_pin_status(after)}")
    else:
        note(f"After:  {describe_pin_status(after)}")
    return data


def verify_pin_for(card: Any, pin_spec: Optional[str], force: bool) -> None:
    """Verify the PIN before a key operation (tries shown on stderr before and after;
    the calling command reports a failure in its own --json output)."""
    verify_with_tries(card, pin_spec, force, False, report=False)


