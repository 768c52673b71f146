"""Shared machinery of the ``cps`` command: options, PIN input, output, confirmation.

Commands call library functions that return data, then :func:`emit` renders
it as text or ``--json``. Nothing here touches a reader until a command runs.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable, Optional

import click

__all__ = ["emit", "json_option", "card_options", "open_card_from", "read_secret",
           "force_option", "confirm", "CliFail", "style_ok", "style_bad"]


class CliFail(click.ClickException):
    """An expected failure: one line on stderr and a stable exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as JSON (sorted keys, UTF-8), or the human ``text``."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str))
    else:
        click.echo(text)


def style_ok(text: str) -> str:
    # click strips styles when stdout is not a terminal: colour only on a TTY.
    return click.style(text, fg="green")


def style_bad(text: str) -> str:
    return click.style(text, fg="red", bold=True)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Machine-readable output (schema: docs/cli.md).")(f)


def force_option(f: Callable) -> Callable:
    return click.option("-f", "--force", is_flag=True,
                        help="Do not ask for confirmation (and allow the last PIN try).")(f)


def card_options(f: Callable) -> Callable:
    """``-r/--reader``, ``--backend``, ``--module``."""
    f = click.option("--module", metavar="PATH",
                     help="PKCS#11 module for --backend pkcs11 (default: ANS Cryptolib, "
                          "then OpenSC).")(f)
    f = click.option("--backend", type=click.Choice(["pcsc", "pkcs11"]), default="pcsc",
                     show_default=True, help="Talk to the card directly (pcsc) or through "
                                             "a PKCS#11 module.")(f)
    f = click.option("-r", "--reader", metavar="READER",
                     help="Reader index, name substring or ATR (default: the first reader "
                          "holding a CPS card).")(f)
    return f


def open_card_from(reader: Optional[str], backend: str, module: Optional[str]) -> Any:
    import cps

    return cps.open_card(reader=reader, backend=backend, module=module)


def read_secret(spec: Optional[str], what: str = "PIN", confirm_twice: bool = False) -> str:
    """A PIN from ``--pin env:VAR``, else stdin when it is not a TTY, else a hidden prompt.

    The value is never echoed, logged or put in an error message.
    """
    if spec:
        if spec.startswith("env:"):
            value = os.environ.get(spec[4:])
            if value is None:
                raise CliFail(f"environment variable {spec[4:]} is not set", 2)
            return value.strip()
        raise CliFail(f"--{what.lower().replace(' ', '-')} takes env:VARIABLE (a PIN on the "
                      "command line would be visible to every user)", 2)
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise CliFail(f"no {what} on standard input", 2)
        return line.strip()
    # getpass writes its prompt to the terminal device unless told otherwise:
    # the prompt goes to stderr, the typed digits are not echoed.
    import getpass

    while True:
        try:
            value = getpass.getpass(f"Enter {what}: ", stream=sys.stderr)
            if confirm_twice and getpass.getpass(f"Repeat {what}: ", stream=sys.stderr) != value:
                click.echo("The two entries differ: try again.", err=True)
                continue
        except (EOFError, KeyboardInterrupt):
            click.echo("", err=True)
            raise click.Abort() from None
        return value.strip()


def confirm(message: str, force: bool) -> None:
    """Ask before a destructive action; ``--force`` skips the question.

    Without a terminal and without --force the answer is no (never hang in CI).
    """
    if force:
        return
    if not sys.stdin.isatty():
        raise CliFail(f"{message} Use --force to confirm without a terminal.", 16)
    try:
        answer = click.confirm(message, err=True, default=False)
    except click.exceptions.Abort:  # Ctrl-C or end of input at the question
        answer = False
    if not answer:
        raise CliFail("aborted", 16)


def with_card(f: Callable) -> Callable:
    """Decorate a command taking ``card`` as first argument: opens and closes it."""

    @card_options
    @functools.wraps(f)
    def wrapper(reader: Optional[str], backend: str, module: Optional[str], **kwargs: Any) -> Any:
        with open_card_from(reader, backend, module) as card:
            return f(card, **kwargs)

    return wrapper
