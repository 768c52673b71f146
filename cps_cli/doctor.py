"""`cps doctor`: diagnose the workstation, layer by layer (cps.diagnostics).

The exit code is 0 when nothing failed (warnings allowed), else the code of
the first broken layer (cps_cli/exitcodes.py): 3 no PC/SC service, 4 no reader,
5 no card, 6 unsupported card, 9 invalid certificate, 10 revoked, 11
revocation unavailable, 8 PIN blocked, 12 card error...
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional, Sequence, Tuple

import click

from . import exitcodes
from .util import CliFail, emit, json_option, style_bad, style_ok

#: Exit code of a failed check when its error gives no more specific one.
CHECK_EXIT_CODES = {
    "pcsc-service": exitcodes.NO_SERVICE,
    "readers": exitcodes.NO_READER,
    "card": exitcodes.NO_CARD,
    "atr": exitcodes.UNSUPPORTED_CARD,
    "application": exitcodes.CARD_ERROR,
    "certificates": exitcodes.CARD_ERROR,
    "chain": exitcodes.CERT_INVALID,
    "revocation": exitcodes.REVOCATION_UNAVAILABLE,
    "pin": exitcodes.PIN_BLOCKED,
    "pkcs11": exitcodes.FAILURE,
}

_MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skipped": "-"}
_ASCII_MARKS = {"ok": "+", "warn": "!", "fail": "x", "skipped": "-"}


def exit_code(report: Any) -> int:
    """0 when the report is ok, else the exit code of its first failure."""
    check = report.failure
    if check is None:
        return exitcodes.OK
    if check.error is not None:
        code = exitcodes.exit_code_for(check.error)
        if code != exitcodes.FAILURE:
            return code
    return CHECK_EXIT_CODES.get(check.name, exitcodes.FAILURE)


class DoctorVerdict(click.ClickException):
    """Ends the command with the report's exit code; prints nothing (the report said it all)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit code {code}")
        # click declares exit_code a ClassVar, yet reads it from the instance.
        self.exit_code = code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        pass


def _unicode_ok(stream: Any) -> bool:
    try:
        "✓✗→".encode(getattr(stream, "encoding", None) or "ascii")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def render(report: Any, *, advice: bool = True, color: bool = True,
           unicode: Optional[bool] = None, indent: str = " ") -> str:
    """The report as text for one screen: a line per check, advice under problems.

    Checks skipped because a layer below failed are folded into one line.
    Colours are click styles (click strips them when the output is not a terminal).
    """
    if unicode is None:
        unicode = _unicode_ok(sys.stdout)
    marks = _MARKS if unicode else _ASCII_MARKS
    arrow = "→" if unicode else "->"
    width = max(len(c.title) for c in report.checks) + 2

    def paint(status: str, text: str) -> str:
        if not color:
            return text
        if status == "ok":
            return style_ok(text)
        if status == "fail":
            return style_bad(text)
        if status == "warn":
            return click.style(text, fg="yellow", bold=True)
        return click.style(text, dim=True)

    lines: List[str] = []
    folded: List[str] = []
    for c in report.checks:
        if c.status == "skipped" and "after" in c.data:
            folded.append(c.title)
            continue
        lines.append(f"{indent}{paint(c.status, marks[c.status])} {c.title:<{width}}{c.summary}")
        if advice and c.advice and c.status in ("warn", "fail"):
            lines.append(f"{indent}  {' ' * width}{arrow} {c.advice}")
    if folded:
        lines.append(f"{indent}{paint('skipped', marks['skipped'])} "
                     + paint("skipped", f"not checked after the failure: {', '.join(folded)}"))
    return "\n".join(lines)


def verdict(report: Any, *, color: bool = True) -> str:
    """One closing line: healthy (with the number of warnings) or where it broke."""
    n = len(report.warnings)
    warned = f", {n} warning{'s' * (n != 1)}" if n else ""
    if report.ok:
        text = f"healthy{warned} ({report.elapsed:.2f} s)"
        return style_ok(text) if color else text
    text = (f"broken at {report.failure.title}{warned} (exit code {exit_code(report)}, "
            f"{report.elapsed:.2f} s)")
    return style_bad(text) if color else text


# --------------------------------------------------------------------------- inputs
def trust_store(specs: Sequence[str]) -> Any:
    """``--anchors`` values -> a TrustStore (``None``: the library's default, IGC-Santé)."""
    from cps.errors import CpsError

    from .view import trust_store as build

    if not specs:
        return None
    try:
        return build(specs)
    except CpsError as exc:
        raise CliFail(f"--anchors: {exc}", exitcodes.USAGE) from None


@click.command()
@click.option("-r", "--reader", metavar="READER",
              help="Reader index, name substring or ATR (default: the first reader holding "
                   "a CPS card).")
@click.option("--module", metavar="PATH",
              help="PKCS#11 module to check (default: the ANS Cryptolib and OpenSC in their "
                   "usual places).")
@click.option("--anchors", "anchor_specs", multiple=True, metavar="igc-sante|test|FILE",
              help="Trust anchors: igc-sante (default), test (the emulator's TEST PKI), or "
                   "certificate files; repeat to combine.")
@click.option("--crl", "crls", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="A CRL (DER or PEM) for revocation checking; repeat for each CA.")
@click.option("--online", is_flag=True,
              help="Download the CRLs the certificates name (time-limited), OCSP as fallback.")
@json_option
def doctor(reader: Optional[str], module: Optional[str], anchor_specs: Tuple[str, ...],
           crls: Tuple[str, ...], online: bool, as_json: bool) -> None:
    """diagnose the workstation, layer by layer, with advice

    Checks in order the PC/SC service, the readers, the card and its ATR, the
    CPS3 application, the certificates, their chain and revocation, the PIN
    counters (no try spent) and the PKCS#11 modules; stops at the first broken
    layer. Exit code 0 when nothing failed (warnings allowed), else the code of
    the first failure (docs/sysadmin.md).
    """
    from cps.diagnostics import diagnose

    store = trust_store(anchor_specs)
    report = diagnose(reader, module=module, anchors=store, crls=list(crls), online=online)
    code = exit_code(report)
    if as_json:
        emit(dict(report.as_dict(), exit_code=code), True, "")
    else:
        import cps

        at = f"{report.at:%Y-%m-%d %H:%M:%S} UTC" if report.at else ""
        click.echo(f"cps {cps.__version__} doctor — {at}")
        click.echo(render(report))
        click.echo(verdict(report))
    if code:
        raise DoctorVerdict(code)
