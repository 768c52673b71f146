"""Entry point of the ``cps`` command.

Command modules are imported only when their command runs (a lazy group with
the short helps written here): ``cps --help`` and ``cps --version`` load
click and nothing heavy, and start almost as fast as a bare click program.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from cps._version import __version__

from .util import emit  # noqa: F401 - kept importable here for command modules

TRAFFIC = 5  # cps.logs.TRAFFIC, without importing logging for --help
_LEVELS = {"error": 40, "warning": 30, "info": 20, "debug": 10, "traffic": TRAFFIC}
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# command -> (module, attribute, short help, hidden)
COMMANDS: Dict[str, Tuple[str, str, str, bool]] = {
    "readers": ("cps_cli.readers", "readers", "list PC/SC readers, their cards and ATRs", False),
    "doctor": ("cps_cli.doctor", "doctor", "check the whole stack, stop at the first broken "
               "layer", False),
    "card": ("cps_cli.card", "card", "the card: info, wait for it, watch it", False),
    "pin": ("cps_cli.pin", "pin", "PIN status, verify, change, unblock", False),
    "certs": ("cps_cli.certs", "certs", "list and export the card's certificates", False),
    "sign": ("cps_cli.signing", "sign", "sign a file with the card (CMS or raw PKCS#1)", False),
    "verify": ("cps_cli.signing", "verify", "verify a signature", False),
    "auth": ("cps_cli.auth", "auth", "challenge-response login test", False),
    "validate": ("cps_cli.trustcmd", "validate", "validate a certificate (chain, revocation)",
                 False),
    "crl": ("cps_cli.trustcmd", "crl", "fetch, show and check CRLs", False),
    "tls": ("cps_cli.tlscmd", "tls", "TLS client authentication with the card: does this "
            "card open this service?", False),
    "emulator": ("cps_cli.emulator", "emulator", "emulated CPS3 cards for tests and demos",
                 False),
    "apdu": ("cps_cli.apdu", "apdu", "send raw APDUs (experts)", True),
}


class LazyGroup(click.Group):
    """A group whose commands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        command = super().get_command(ctx, name)
        if command is not None or name not in COMMANDS:
            return command
        module, attribute, _, _ = COMMANDS[name]
        try:
            loaded: click.Command = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            return None
        self.add_command(loaded, name)
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The short helps come from the table: listing them imports nothing.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)
                if name in COMMANDS and not COMMANDS[name][3]]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="cps", message="%(prog)s %(version)s")
@click.option("-l", "--log-level", type=click.Choice(sorted(_LEVELS), case_sensitive=False),
              help="Log to stderr at this level (traffic = raw APDUs, PINs redacted).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(log_level: Optional[str], verbose: int) -> None:
    """Diagnose and use French health-professional cards (CPS3)."""
    level = _LEVELS[log_level.lower()] if log_level else {0: None, 1: 20}.get(verbose, 10)
    if level is not None:
        from cps.logs import enable

        enable(level)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command; expected failures print one ``error:`` line and a stable exit code."""
    from cps.errors import CpsError

    from .util import CliFail, scrub_usage_message

    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        rv: Any = cli.main(args=args, prog_name="cps", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError) or (isinstance(exc, CliFail)
                                                 and exc.exit_code == 2):
            # A code typed in the wrong place (an extra argument, `--pin7391`...)
            # is never repeated, whoever wrote the message (click included).
            # click marks ``message`` Final, but show() and format_message() read it
            # from the instance: rewriting it is how click's own text gets scrubbed.
            exc.message = scrub_usage_message(exc.message, args)  # type: ignore[misc]
        exc.show()
        return exc.exit_code
    except CpsError as exc:
        from .exitcodes import exit_code_for
        from .util import printable

        # an error may quote what a peer sent (a server certificate's subject):
        # one line, no control characters
        click.echo(f"error: {printable(str(exc))}", err=True)
        return exit_code_for(exc)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    # ctx.exit(n) inside a command comes back as the return value in this mode
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
