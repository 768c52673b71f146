"""Entry point of the ``cps`` command."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional, Sequence

import click

import cps
from cps import errors
from cps.logs import TRAFFIC

from .exitcodes import exit_code_for

_LEVELS = {"error": 40, "warning": 30, "info": 20, "debug": 10, "traffic": TRAFFIC}
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


from .util import emit  # noqa: E402,F401 - re-exported for command modules


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(cps.__version__, "--version", prog_name="cps",
                      message="%(prog)s %(version)s")
@click.option("-l", "--log-level", type=click.Choice(sorted(_LEVELS), case_sensitive=False),
              help="Log to stderr at this level (traffic = raw APDUs, PINs redacted).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(log_level: Optional[str], verbose: int) -> None:
    """Diagnose and use French health-professional cards (CPS3)."""
    level = _LEVELS[log_level.lower()] if log_level else {0: None, 1: 20}.get(verbose, 10)
    if level is not None:
        from cps.logs import enable

        enable(level)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def readers(as_json: bool) -> None:
    """list PC/SC readers, their cards and ATRs"""
    infos = cps.list_readers()
    data = [{"index": i, "name": r.name, "card_present": r.card_present,
             "atr": r.atr.hex().upper() or None,
             "card_kind": r.card_kind.value if r.card_kind else None}
            for i, r in enumerate(infos)]
    lines = []
    for d in data:
        state = f"{d['card_kind']}  {d['atr']}" if d["card_present"] else "no card"
        lines.append(f"{d['index']}: {d['name']}  [{state}]")
    emit(data, as_json, "\n".join(lines) or "no readers")


# Commands register after the group exists; each module imports heavy
# libraries inside its commands only, so `cps --help` stays fast.
from .emulator import emulator  # noqa: E402

cli.add_command(emulator)
for _module, _names in (("card", ("card", "pin", "certs", "sign", "verify", "auth")),
                        ("trustcmd", ("validate", "crl")),
                        ("doctor", ("doctor",)),
                        ("apdu", ("apdu",))):
    try:
        _mod = __import__(f"cps_cli.{_module}", fromlist=list(_names))
    except ImportError:  # a command module not written yet
        continue
    for _name in _names:
        if hasattr(_mod, _name):
            cli.add_command(getattr(_mod, _name))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command; expected failures print one ``error:`` line and a stable exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="cps",
                 standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except errors.CpsError as exc:
        click.echo(f"error: {exc}", err=True)
        return exit_code_for(exc)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
