"""`cps doctor`: diagnose the workstation, layer by layer (cps.diagnostics).

The exit code is 0 when nothing failed (warnings allowed), else the code of
the first broken layer (cps_cli/exitcodes.py): 3 no PC/SC service, 4 no reader,
5 no card, 6 unsupported card, 9 invalid certificate, 10 revoked, 11
revocation unavailable, 8 PIN blocked, 12 card error...
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
    "revocation-sources": exitcodes.REVOCATION_UNAVAILABLE,
    "chain": exitcodes.CERT_INVALID,
    "revocation": exitcodes.REVOCATION_UNAVAILABLE,
    "pin": exitcodes.PIN_BLOCKED,
    "pkcs11": exitcodes.FAILURE,
    # The workstation checks (reported first only when the card walk found nothing wrong).
    "cryptolib": exitcodes.UNSUPPORTED_CARD,    # a CPS4 in the reader, no Cryptolib >= 5.2
    "middleware": exitcodes.FAILURE,
    "browsers": exitcodes.FAILURE,
    "galss": exitcodes.FAILURE,
    "ccid": exitcodes.NO_READER,
    "remote": exitcodes.NO_READER,              # the card cannot reach this session
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
def read_env_file(path: str) -> Dict[str, str]:
    """``NAME=value`` lines (``#`` comments, blank lines) -> a dict; at most 64 KiB."""
    from cps.cryptolib import read_regular

    data = read_regular(path, 64 * 1024)       # a regular file: never blocks on a FIFO
    try:
        if data is None:
            raise OSError("not a readable regular file")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliFail(f"--env-file: cannot read {path}: {exc}", exitcodes.USAGE) from None
    env: Dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise CliFail(f"--env-file {path}, line {number}: expected NAME=value",
                          exitcodes.USAGE)
        env[name.strip()] = value
    return env


def _machine(root: Optional[str], platform: Optional[str], registry: Optional[str],
             env_file: Optional[str], ioreg: Optional[str]) -> Any:
    """The machine to look at: this one, or a prepared copy (hidden test options)."""
    if not any((root, platform, registry, env_file, ioreg)):
        return None
    from cps.diagnostics.machine import Machine
    from cps.errors import CpsError

    if root is None:
        raise CliFail("--platform, --registry, --env-file and --ioreg need --root",
                      exitcodes.USAGE)
    environ = read_env_file(env_file) if env_file else {}
    try:
        return Machine(platform, root=root, environ=environ, registry=registry, ioreg=ioreg)
    except CpsError as exc:
        raise CliFail(f"--registry: {exc}", exitcodes.USAGE) from None


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
              help="Probe the revocation sources the certificates name (a few seconds), then "
                   "download their CRLs (time-limited), OCSP as fallback.")
@click.option("--no-card", is_flag=True,
              help="Check the workstation only (Cryptolib, middleware, browsers, GALSS, "
                   "readers' drivers, remote session): no PC/SC, no card.")
# Hidden, for tests and support: look at a prepared copy of another machine.
@click.option("--root", "fake_root", hidden=True, type=click.Path(file_okay=False, exists=True),
              help="Read files under this directory instead of / (implies --no-card).")
@click.option("--platform", "fake_platform", hidden=True,
              type=click.Choice(["linux", "win32", "darwin"]),
              help="The platform the --root stands for (implies --no-card).")
@click.option("--registry", "registry_file", hidden=True,
              type=click.Path(dir_okay=False, exists=True),
              help="A regedit export (.reg) standing for the Windows registry (implies "
                   "--no-card).")
@click.option("--env-file", hidden=True, type=click.Path(dir_okay=False, exists=True),
              help="NAME=value lines standing for the environment (implies --no-card).")
@click.option("--ioreg", "ioreg_file", hidden=True, type=click.Path(dir_okay=False, exists=True),
              help="macOS: an `ioreg -p IOUSB -l -w 0` dump standing for the USB bus "
                   "(implies --no-card).")
@json_option
def doctor(reader: Optional[str], module: Optional[str], anchor_specs: Tuple[str, ...],
           crls: Tuple[str, ...], online: bool, no_card: bool, fake_root: Optional[str],
           fake_platform: Optional[str], registry_file: Optional[str],
           env_file: Optional[str], ioreg_file: Optional[str], as_json: bool) -> None:
    """diagnose the workstation, layer by layer, with advice

    Checks in order the PC/SC service, the readers, the card and its ATR, the
    card application (a CPS4 through the Cryptolib), the certificates, their
    chain and revocation, the PIN counters (no try spent) and the PKCS#11
    modules; stops at the first broken layer. Then checks the workstation
    (Cryptolib, middleware conflicts, browsers, GALSS, CCID driver, remote
    session) whatever the card walk found. Exit code 0 when nothing failed
    (warnings allowed), else the code of the first failure (docs/sysadmin.md).
    """
    from cps.diagnostics import diagnose

    store = trust_store(anchor_specs)
    machine = _machine(fake_root, fake_platform, registry_file, env_file, ioreg_file)
    # A prepared copy describes another machine: the live reader's card is not its
    # card, and nothing (no PKCS#11 module) is loaded from it.
    report = diagnose(reader, module=module, anchors=store, crls=list(crls), online=online,
                      machine=machine, card=not no_card and machine is None)
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
