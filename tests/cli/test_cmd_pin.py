"""`cps pin status|verify|change|unblock` through pcscd: tries before and after, the
PIN input rules (env:VAR, stdin), confirmations, and no PIN in any output or log."""

from __future__ import annotations

import pytest
from cli_helpers import no_secret

pytestmark = pytest.mark.pcsc

PIN, NEW, PUK = "7395", "2468", "86420975"
STATUS_KEYS = {"tries_left", "max_tries", "blocked", "last_try", "unblock_tries_left",
               "unblock_max_tries", "unblock_uses_left", "unblock_blocked"}


def test_status_json(cli, serve):
    with serve("cps3-pin-blocked") as emu:
        data = cli.json("pin", "status", "-r", emu.reader)
    assert set(data) == STATUS_KEYS
    assert data["blocked"] is True and data["tries_left"] == 0
    assert data["unblock_uses_left"] == 97 and data["unblock_blocked"] is False


def test_status_on_contactless_is_not_supported(cli, serve):
    with serve("cps3-contactless") as emu:
        out = cli("pin", "status", "-r", emu.reader)
    assert out.returncode == 14 and "no PIN" in out.stderr


def test_verify_from_env_and_stdin_shows_tries_before_and_after(cli, serve):
    with serve(pin=PIN) as emu:
        by_env = cli("pin", "verify", "-r", emu.reader, "--pin", "env:CARD_PIN",
                     env={"CARD_PIN": PIN})
        wrong = cli("pin", "verify", "-r", emu.reader, input="0000\n")
        by_stdin = cli("pin", "verify", "-r", emu.reader, input=PIN + "\n")
    assert by_env.returncode == 0, by_env.stderr
    assert "Before: PIN: 3 of 3 tries left" in by_env.stderr
    assert by_env.stdout.startswith("PIN verified. PIN: 3 of 3 tries left")
    assert wrong.returncode == 7
    assert "Before: PIN: 3 of 3" in wrong.stderr and "After:  PIN: 2 of 3" in wrong.stderr
    assert "error: wrong PIN, 2 tries left" in wrong.stderr
    assert by_stdin.returncode == 0 and "Before: PIN: 2 of 3" in by_stdin.stderr
    assert "3 of 3 tries left" in by_stdin.stdout  # a right PIN resets the counter
    no_secret([o.stdout + o.stderr for o in (by_env, wrong, by_stdin)], PIN, "0000")


def test_verify_json_schema(cli, serve):
    with serve(pin=PIN) as emu:
        ok = cli.json("pin", "verify", "-r", emu.reader, input=PIN + "\n")
        bad = cli.json("pin", "verify", "-r", emu.reader, input="1111\n", code=7)
    assert ok["ok"] is True and ok["operation"] == "verify" and "error" not in ok
    assert set(ok["before"]) == set(ok["after"]) == STATUS_KEYS
    assert bad["ok"] is False and bad["exit_code"] == 7
    assert bad["before"]["tries_left"] == 3 and bad["after"]["tries_left"] == 2
    assert bad["error"]["type"] == "WrongPin" and bad["error"]["tries_left"] == 2


def test_missing_env_variable_is_a_usage_error(cli, serve):
    with serve() as emu:
        out = cli("pin", "verify", "-r", emu.reader, "--pin", "env:NOT_SET_ANYWHERE")
    assert out.returncode == 2 and "NOT_SET_ANYWHERE" in out.stderr


def test_change_with_force_from_env_then_stdin(cli, serve):
    with serve(pin=PIN) as emu:
        out = cli("pin", "change", "-r", emu.reader, "-f", "--pin", "env:OLD",
                  "--new-pin", "env:NEW", env={"OLD": PIN, "NEW": NEW})
        assert out.returncode == 0, out.stderr
        assert emu.pin == NEW
        back = cli.json("pin", "change", "-r", emu.reader, "--force", input=f"{NEW}\n{PIN}\n")
        assert emu.pin == PIN
    assert "PIN changed. PIN: 3 of 3 tries left" in out.stdout
    assert back["ok"] is True and back["operation"] == "change"
    no_secret([out.stdout + out.stderr], PIN, NEW)


def test_change_wrong_old_pin_counts_a_try(cli, serve):
    with serve(pin=PIN) as emu:
        out = cli("pin", "change", "-r", emu.reader, "-f", input=f"0000\n{NEW}\n")
        assert emu.pin == PIN
    assert out.returncode == 7 and "After:  PIN: 2 of 3 tries left" in out.stderr


def test_unblock_a_blocked_card(cli, serve):
    with serve("cps3-pin-blocked", puk=PUK) as emu:
        refused = cli("pin", "unblock", "-r", emu.reader, "--puk", "env:PUK",
                      "--new-pin", "env:NEW", env={"PUK": PUK, "NEW": NEW})
        assert refused.returncode == 16  # no terminal, no --force: no unblock spent
        data = cli.json("pin", "unblock", "-r", emu.reader, "-f", "--puk", "env:PUK",
                        "--new-pin", "env:NEW", env={"PUK": PUK, "NEW": NEW})
        assert emu.pin == NEW
        verified = cli("pin", "verify", "-r", emu.reader, "--pin", "env:NEW", env={"NEW": NEW})
    assert data["before"]["blocked"] is True and data["after"]["tries_left"] == 3
    assert data["after"]["unblock_uses_left"] == data["before"]["unblock_uses_left"] - 1
    assert verified.returncode == 0
    no_secret([refused.stdout + refused.stderr, verified.stdout + verified.stderr], PUK, NEW)


def test_unblock_with_a_wrong_code(cli, serve):
    with serve("cps3-pin-blocked", puk=PUK) as emu:
        out = cli("pin", "unblock", "-r", emu.reader, "-f", input="11111111\n" + NEW + "\n")
    assert out.returncode == 7
    assert "wrong unblock code, 9 tries left" in out.stderr
    assert "unblock code: 9 of 10 tries left" in out.stderr


def test_traffic_log_redacts_the_pin(cli, serve):
    with serve(pin=PIN) as emu:
        out = cli("--log-level", "traffic", "pin", "verify", "-r", emu.reader,
                  "--pin", "env:P", env={"P": PIN})
    assert out.returncode == 0, out.stderr
    assert "TRAFFIC cps.traffic: > 00 20 00 01 <" in out.stderr and "redacted>" in out.stderr
    assert "TRAFFIC cps.traffic: > 00 A4" in out.stderr  # the other APDUs are logged
    no_secret([out.stdout, out.stderr], PIN, PIN.encode().hex(" ").upper(), PIN.encode().hex())
