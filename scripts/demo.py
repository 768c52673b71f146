"""`make demo`: the main job, on the emulated card, told on one screen.

It grows with the project. Today: the library's version, the PC/SC service
and its readers, and — when the emulator is available — an emulated CPS3 card
served through pcscd and identified from its ATR.
"""

from __future__ import annotations

import sys

import cps
from cps import errors


def section(title: str) -> None:
    print(f"\n== {title}")


def main() -> int:
    print(f"cps {cps.__version__} — CPS card middleware demo")
    section("PC/SC readers (pcscd)")
    try:
        readers = cps.list_readers()
    except errors.CpsError as exc:
        print(f"  error: {exc}")
        return 1
    for i, r in enumerate(readers):
        state = (f"{r.card_kind.value if r.card_kind else '?'}  ATR {r.atr.hex(' ').upper()}"
                 if r.card_present else "no card")
        print(f"  {i}: {r.name}  [{state}]")
    try:
        from cps.emulator import demo as emulator_demo  # arrives with the emulator
    except ImportError:
        print("\n(the emulated card is not built yet: see the issues)")
        return 0
    return emulator_demo.run()


if __name__ == "__main__":
    sys.exit(main())
