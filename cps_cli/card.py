"""`cps card`: info, wait, watch (and the text rendering of a card's facts).

Each command parses its options, calls the library (:mod:`cps_cli.view` and the
Card API), builds data and hands it to :func:`~cps_cli.util.emit`. Heavy
libraries are imported inside the commands, so `cps --help` stays fast.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import click

from . import exitcodes
from .util import (
    CliFail,
    F,
    emit,
    json_option,
    note,
    style_bad,
    style_ok,
    with_card,
)

__all__ = ["card", "render_card_info", "practitioner_text", "cert_lines"]


def practitioner_text(practitioner: Dict[str, Any]) -> str:
    name = " ".join(p for p in (practitioner.get("first_name"), practitioner.get("last_name"))
                    if p) or practitioner.get("pseudonym") or "?"
    profession = practitioner.get("profession_label")
    code = practitioner.get("profession_code")
    if profession:
        name += f", {profession}" + (f" ({code})" if code else "")
    return name


def cert_lines(cert: Dict[str, Any], indent: str = "  ") -> List[str]:
    role = f"{cert['role']}: " if cert.get("role") else ""
    return [f"{indent}{role}{cert['subject']}",
            f"{indent}  issuer   {cert['issuer']}",
            f"{indent}  serial   {cert['serial']}",
            f"{indent}  valid    {cert['not_before']} -> {cert['not_after']}",
            f"{indent}  SHA-256  {cert['sha256']}"]


def render_card_info(d: Dict[str, Any]) -> str:
    p = d["practitioner"]
    where = f"{d['reader']} ({d['backend']}"
    where += f", token {d['token_label']})" if d.get("token_label") else ")"
    card_line = d["card_name"] or "CPS card"
    if d["atr"]:
        card_line += f", ATR {d['atr']}"
    idnat = f"{p['idnat']} ({p['id_type_name']} {p['national_id']})"
    lines = [f"Reader:        {where}",
             f"Card:          {card_line}",
             f"Interface:     {d['interface']}",
             f"Card number:   {d['card_number']} ({p['card_type']})",
             f"Practitioner:  {practitioner_text(p)}",
             f"  idnat:       {idnat}"]
    if p.get("structure_name") or p.get("structure_id"):
        lines.append(f"  structure:   {p.get('structure_name') or ''} "
                     f"{p.get('structure_id') or ''}".rstrip())
    lines.append("  " + click.style("not validated", fg="yellow")
                 + ": what the certificate claims; run `cps validate` (or `cps auth test`)")
    lines.append("Certificates:")
    for cert in d["certificates"]:
        lines += cert_lines(cert)
    pin_text = _pin_line(d["pin"])
    lines.append(f"PIN:           {pin_text}")
    return "\n".join(lines)


def _pin_line(status: Optional[Dict[str, Any]]) -> str:
    if status is None:
        return "none on this interface"
    from cps.card import PinStatus

    from .view import describe_pin_status

    fields = {k: v for k, v in status.items() if k != "last_try"}
    text = describe_pin_status(PinStatus(**fields)).removeprefix("PIN: ")
    return style_bad(text) if status["blocked"] or status["last_try"] else text


# --------------------------------------------------------------------------- cps card
@click.group()
def card() -> None:
    """the card in the reader: info, wait for one, watch insertions"""


@card.command("info")
@with_card
@json_option
def card_info(card: Any, as_json: bool) -> None:
    """ATR, card number, holder, certificates, PIN

    Reads everything without a PIN and without spending a try.
    """
    from .view import card_info as gather

    data = gather(card)
    emit(data, as_json, render_card_info(data))


def _reader_option(f: F) -> F:
    return click.option("-r", "--reader", metavar="READER",
                        help="Reader index or name substring (default: every reader).")(f)


def _matching(readers: Sequence[Any], selector: Optional[str]) -> List[Any]:
    """The readers a ``-r`` selector designates (empty when none matches yet)."""
    from cps import errors
    from cps.readers import select_reader

    if not selector:
        return list(readers)
    try:
        return [select_reader(list(readers), selector)]
    except (errors.NoReaders, errors.ReaderNotFound):
        return []


@card.command("wait")
@_reader_option
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=None,
              help="Give up after this many seconds (exit code 5). Default: wait forever.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.25, show_default=True,
              help="Seconds between two looks at the readers.")
@json_option
def card_wait(reader: Optional[str], timeout: Optional[float], interval: float,
              as_json: bool) -> None:
    """wait until a CPS card is in a reader"""
    import cps
    from cps import errors
    from cps.atr import identify

    start = time.monotonic()
    announced = False
    while True:
        candidates = _matching(cps.list_readers(), reader)
        for r in candidates:
            if not r.card_present:
                continue
            if r.card_kind is not None and r.card_kind.supported:
                entry = identify(r.atr)
                data = {"reader": r.name, "atr": r.atr.hex().upper(),
                        "card_kind": r.card_kind.value, "card_name": entry.name if entry else None,
                        "waited_seconds": round(time.monotonic() - start, 2)}
                emit(data, as_json, f"{data['card_name']} in {r.name}")
                return
            if reader:  # the one reader asked for holds another card: say so, do not hang
                kind = r.card_kind.value if r.card_kind else "unknown"
                raise errors.UnsupportedCard(f"the card in {r.name} is not a CPS3 ({kind}, "
                                             f"ATR {r.atr.hex().upper()})", atr=r.atr)
        if timeout is not None and time.monotonic() - start >= timeout:
            where = f" in {candidates[0].name}" if reader and candidates else ""
            raise CliFail(f"no CPS card inserted{where} within {timeout:g} s", exitcodes.NO_CARD)
        if not announced:
            note("Waiting for a CPS card... (Ctrl-C to stop)")
            announced = True
        time.sleep(interval)


@card.command("watch")
@_reader_option
@click.option("-n", "--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many insert/remove events (default: until Ctrl-C).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.25, show_default=True,
              help="Seconds between two looks at the readers.")
@json_option
def card_watch(reader: Optional[str], count: Optional[int], interval: float,
               as_json: bool) -> None:
    """print card insertions and removals as they happen

    The current state comes first (event "present"); with --json, one JSON
    object per line (JSON Lines).
    """
    import datetime as dt
    import json

    import cps

    from .view import reader_events, reader_states

    def show(event: Dict[str, Any]) -> None:
        event = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 **event}
        if as_json:
            click.echo(json.dumps(event, ensure_ascii=False, sort_keys=True))
        else:
            kind = f"  {event['card_kind']}  {event['atr']}" if event["atr"] else ""
            label = {"inserted": style_ok("inserted"), "removed": style_bad("removed")}.get(
                event["event"], event["event"])
            click.echo(f"{event['time']}  {event['reader']}: {label}{kind}")
        sys.stdout.flush()

    state = reader_states(_matching(cps.list_readers(), reader))
    for s in state.values():
        if s["card_present"]:
            show({"event": "present", "reader": s["reader"], "atr": s["atr"],
                  "card_kind": s["card_kind"]})
    note(f"Watching {len(state)} reader(s)... (Ctrl-C to stop)")
    seen = 0
    try:
        while count is None or seen < count:
            time.sleep(interval)
            new = reader_states(_matching(cps.list_readers(), reader))
            for event in reader_events(state, new):
                show(event)
                if event["event"] in ("inserted", "removed"):
                    seen += 1
                    if count is not None and seen >= count:
                        break
            state = new
    except KeyboardInterrupt:
        pass


