"""Shared machinery of the ``cps`` command: options, PIN input, output, confirmation.

Commands call library functions that return data, then :func:`emit` renders
it as text or ``--json``. Nothing here touches a reader until a command runs.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar

import click

__all__ = ["emit", "json_option", "card_options", "open_card_from", "read_secret",
           "force_option", "confirm", "CliFail", "style_ok", "style_bad", "env_name_problem",
           "nameable_env_name", "scrub_usage_message", "REDACTED", "note", "write_output"]

#: What replaces a value that may be a code, in a message.
REDACTED = "<redacted>"

# An environment variable name as a shell writes it.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A run of digits as long as the shortest PIN: a value holding one may be a code.
_CODE_LIKE = re.compile(r"[0-9]{4,}")

#: A function a click option decorator returns unchanged.
F = TypeVar("F", bound=Callable[..., Any])


class CliFail(click.ClickException):
    """An expected failure: one line on stderr and a stable exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        # click declares exit_code a ClassVar, yet reads it from the instance
        # (ClickException.show callers use ``exc.exit_code``): per-failure codes.
        self.exit_code = exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def printable(text: str, limit: Optional[int] = None) -> str:
    """``text`` safe for a terminal: control characters (ESC, BEL, CR, LF...) of
    anything a peer chose -- a certificate's subject, a server's message -- as
    ``\\x1b``-style escapes, so that it can neither move the cursor nor retitle
    the window nor fake a line; cut at ``limit`` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return out if limit is None or len(out) <= limit else out[:limit - 1] + "…"


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


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Machine-readable output (schema: docs/cli.md).")(f)


def force_option(f: F) -> F:
    return click.option("-f", "--force", is_flag=True,
                        help="Do not ask for confirmation (and allow the last PIN try).")(f)


def card_options(f: F) -> F:
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


def env_name_problem(name: str) -> Optional[str]:
    """Why ``name`` (what follows ``env:``) is not a variable name, or None.

    The answer never contains ``name``: a code typed where a reference was
    expected (``--pin env:7391``) must not be repeated.
    """
    if not name:
        return "env: must be followed by the name of an environment variable"
    if not _ENV_NAME.match(name):
        return ("env: must be followed by the name of an environment variable (letters, "
                "digits and _, not starting with a digit); what follows it is not repeated: "
                "it may be a code")
    return None


def nameable_env_name(name: str) -> bool:
    """May an error message name this variable? Not when it could be a code (``PIN7391``)."""
    return bool(_ENV_NAME.match(name)) and not _CODE_LIKE.search(name)


def scrub_usage_message(message: str, argv: Sequence[str]) -> str:
    """``message`` with every digit run of 4 or more of the command line replaced.

    The last line of defence for usage errors (click's own included: "Got
    unexpected extra argument (7391)", "No such option: --pin7391"): a code typed
    in the wrong place must not come back on stderr.
    """
    runs = {run for arg in argv for run in _CODE_LIKE.findall(str(arg))}
    for run in sorted(runs, key=len, reverse=True):
        message = message.replace(run, REDACTED)
    return message


def read_secret(spec: Optional[str], what: str = "PIN", confirm_twice: bool = False,
                option: Optional[str] = None) -> str:
    """A PIN from ``--pin env:VAR``, else stdin when it is not a TTY, else a hidden prompt.

    The value is never echoed, logged or put in an error message; neither is
    a variable name that could be a code (``--pin env:7391``). ``option`` names
    the option in error messages (default: derived from ``what``).
    """
    option = option or {"unblock code": "--puk"}.get(what, "--" + what.lower().replace(" ", "-"))
    if spec:
        if spec.startswith("env:"):
            name = spec[4:]
            problem = env_name_problem(name)
            if problem is not None:
                raise CliFail(f"{option}: {problem}", 2)
            value = os.environ.get(name)
            variable = f"environment variable {name}" if nameable_env_name(name) else \
                "the environment variable it names (name not repeated: it may be a code)"
            if value is None:
                raise CliFail(f"{option}: {variable} is not set", 2)
            if not value.strip():
                raise CliFail(f"{option}: {variable} is empty", 2)
            return value.strip()
        raise CliFail(f"{option} takes env:VARIABLE (a code on the command line would be "
                      "visible to every user; it is not repeated here)", 2)
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


def with_card(f: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command taking ``card`` as first argument: opens and closes it."""

    @card_options
    @functools.wraps(f)
    def wrapper(reader: Optional[str], backend: str, module: Optional[str], **kwargs: Any) -> Any:
        with open_card_from(reader, backend, module) as card:
            return f(card, **kwargs)

    return wrapper


def note(message: str) -> None:
    """Information for the human, on stderr (stdout stays for results)."""
    click.echo(message, err=True)


def write_output(output: str, data: bytes) -> None:
    """Bytes to a file, or to stdout for ``-`` (``-o/--output``)."""
    if output == "-":
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise CliFail(f"cannot write {output}: {exc.strerror}") from None
