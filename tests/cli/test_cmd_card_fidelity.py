"""Issue 14 through the real `cps` command: what it sends, and where the card was left.

- `cps pin verify` costs at most two APDUs more than the library's `verify_pin`;
- `cps doctor` and `cps card info` find EF.SN.ICC wherever the card was left
  (a real card answers an SFI read from DF 0001 with 6A82);
- `cps pin unblock --force` may use the last unblock-code try (docs/cli.md);
- the PIN verification of `cps pin verify` does not outlive the command.
"""

from __future__ import annotations

import json

import cps
from cps import errors


def test_pin_verify_costs_at_most_two_apdus_more_than_the_library(cli, serve,
                                                                   cps_card_factory):
    reference = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=reference.connection()) as card:
        before = reference.apdu_count
        card.verify_pin(reference.pin)
        library = reference.apdu_count - before
    with serve("cps3-medecin") as emu:
        before = emu.apdu_count
        out = cli("pin", "verify", "-r", emu.reader, input=emu.pin + "\n")
        used = emu.apdu_count - before
    assert out.returncode == 0, out.stderr
    assert "PIN verified" in out.stdout and "Before: PIN: 3 of 3" in out.stderr
    assert used <= library + 2, (used, library)


def test_doctor_and_card_info_find_the_serial_after_a_signature(cli, serve):
    with serve("cps3-medecin") as emu:
        # a program that signed and left the card as it was (DF 0001 current),
        # as the Cryptolib or a browser does
        with cps.open_card(reader=emu.reader) as card:
            card.logout_on_close = False
            card.verify_pin(emu.pin)
            card.sign(b"ordonnance")
        assert emu.os.current_df.fid == 0x0001
        info = cli("card", "info", "-r", emu.reader, "--json")
        doctor = cli("doctor", "-r", emu.reader, "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["card_number"] == emu.profile.card_number
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["application"]["status"] == "ok", checks["application"]
    assert checks["application"]["data"]["card_number"] == emu.profile.card_number


def test_pin_verify_leaves_no_verified_card_behind(cli, serve):
    with serve("cps3-medecin") as emu:
        out = cli("pin", "verify", "-r", emu.reader, input=emu.pin + "\n")
        assert out.returncode == 0, out.stderr
        with cps.open_card(reader=emu.reader) as card:
            try:
                card.sign(b"without the PIN")
            except errors.SecurityStatusNotSatisfied:
                pass
            else:
                raise AssertionError("the card signed without the PIN after `cps pin verify`")


def test_unblock_force_uses_the_last_unblock_code_try(cli, serve):
    def one_unblock_try(emu):
        emu.os.chvs[1].tries_left = 0
        emu.os.chvs[2].tries_left = 1

    with serve("cps3-medecin", mutate=one_unblock_try) as emu:
        env = {"PUK": emu.puk, "NEW": "2468"}
        refused = cli("pin", "unblock", "-r", emu.reader, "--puk", "env:PUK",
                      "--new-pin", "env:NEW", env=env)
        assert refused.returncode == 15, refused.stderr
        assert "--force" in refused.stderr and emu.os.chvs[2].tries_left == 1
        forced = cli("pin", "unblock", "-r", emu.reader, "--puk", "env:PUK",
                     "--new-pin", "env:NEW", "--force", env=env)
        assert forced.returncode == 0, forced.stderr
        assert emu.pin == "2468" and emu.os.chvs[2].tries_left == 10
