"""`cps readers`."""

from __future__ import annotations

import click

from .util import emit, json_option


@click.command()
@json_option
def readers(as_json: bool) -> None:
    """list PC/SC readers, their cards and ATRs"""
    import cps

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
