"""pyHanko command-line plugin: ``pyhanko sign addsig cps IN.pdf OUT.pdf`` signs with a CPS card.

Registered under the entry point group ``pyhanko.cli_plugin.signing``
(pyproject.toml), discovered by the ``pyhanko`` command (the ``pyhanko-cli``
distribution). The card is opened with :func:`cps.open_card` (``--reader``,
``--backend pcsc|pkcs11``, ``--module``), its PIN verified once with the
rules of the ``cps`` command (``cps_cli.pinflow``): ``--pin env:VAR``, else
a line of stdin when it is not a terminal, else a hidden prompt; never a PIN
on the command line; the tries shown before and after on stderr; the last
try refused without ``--force``. The signer is :class:`cps.pades.CardSigner`.

This is CLI code: it imports click, the ``cps`` command's helpers and pyHanko's
CLI, unlike :mod:`cps.pades`, which imports none of them.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional, Sequence

import click
from pyhanko.cli.plugin_api import CLIContext, SigningCommandPlugin

from cps.errors import CpsError

from . import exitcodes
from .pinflow import _env_spec, verify_pin_for
from .util import CliFail

__all__ = ["CpsSigningPlugin"]


class CpsSigningPlugin(SigningCommandPlugin):
    """``pyhanko sign addsig cps``: PAdES signatures with a CPS card's signature key."""

    subcommand_name = "cps"
    help_summary = ("sign with a CPS card (French health professionals): the card's "
                    "signature key, PIN verified once")

    def click_options(self) -> List[click.Option]:
        return [
            click.Option(("--reader",), default=None, metavar="READER",
                         help="PC/SC reader (index, name substring or ATR prefix), or the "
                              "PKCS#11 token with --backend pkcs11; default: the first "
                              "holding a CPS card."),
            click.Option(("--backend",), type=click.Choice(["pcsc", "pkcs11"]),
                         default="pcsc", show_default=True,
                         help="pcsc: the cps library speaks to the card; pkcs11: through "
                              "a PKCS#11 module (ANS Cryptolib, SoftHSM2...)."),
            click.Option(("--module",), default=None, metavar="PATH",
                         help="PKCS#11 module (--backend pkcs11); default: the ANS "
                              "Cryptolib, then OpenSC, in their usual places."),
            click.Option(("--pin", "pin_spec"), metavar="env:VAR", callback=_env_spec,
                         default=None,
                         help="Read the PIN from this environment variable (else a line "
                              "of stdin when it is not a terminal, else a hidden prompt). "
                              "A PIN itself is refused: the command line is visible to "
                              "every user of the machine."),
            click.Option(("--force",), is_flag=True, default=False,
                         help="Spend the PIN's last try."),
            click.Option(("--cps-chain", "chain"), multiple=True, metavar="FILE",
                         help="CA certificate(s) to embed (PEM/DER files; repeatable); "
                              "default: the card's IGC-Santé intermediate CA."),
        ]

    def create_signer(self, context: CLIContext, **kwargs: Any
                      ) -> contextlib.AbstractContextManager[Any]:
        return _card_signer(reader=kwargs.get("reader"), backend=kwargs.get("backend") or "pcsc",
                            module=kwargs.get("module"), pin_spec=kwargs.get("pin_spec"),
                            force=bool(kwargs.get("force")), chain=kwargs.get("chain") or ())


@contextlib.contextmanager
def _card_signer(*, reader: Optional[str], backend: str, module: Optional[str],
                 pin_spec: Optional[str], force: bool, chain: Sequence[str]) -> Iterator[Any]:
    """Open the card, verify its PIN once, yield a CardSigner; close the card after."""
    import cps
    from cps.pades import CardSigner
    from cps.trust.files import load_certificates_der

    try:
        certificates = [der for path in chain
                        for der in load_certificates_der(_read_file(path))] if chain else None
        card = cps.open_card(reader=reader, backend=backend, module=module)
    except CpsError as exc:
        raise CliFail(str(exc), exitcodes.exit_code_for(exc)) from exc
    try:
        try:
            verify_pin_for(card, pin_spec, force)
            signer = CardSigner(card, chain=certificates)
        except CpsError as exc:
            raise CliFail(str(exc), exitcodes.exit_code_for(exc)) from exc
        try:
            yield signer
        except CpsError as exc:  # the card refused while pyHanko signed
            raise CliFail(str(exc), exitcodes.exit_code_for(exc)) from exc
    finally:
        card.close()


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1024 * 1024)
    except OSError as exc:
        raise CliFail(f"--cps-chain {path}: {exc.strerror}", 2) from None
