"""No PIN or unblock code comes back from the `cps` command, on any error path.

Every option that takes a code or a reference to one (``--pin``, ``--new-pin``,
``--puk``: ``env:VAR``), the codes read from the environment, standard input
and the prompt, and the hex of ``cps apdu`` (VERIFY, CHANGE REFERENCE DATA,
RESET RETRY COUNTER bodies) are driven into each error we can provoke with a
distinctive PIN-shaped value; that value must appear nowhere in stdout or
stderr (text, ``--json``, and logs at TRAFFIC level), neither as digits nor as
the ASCII hex that carries it in an APDU.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Sequence

import pytest
from cli_helpers import my_reader

pytestmark = pytest.mark.pcsc

PIN4, PIN6, PIN8 = "7391", "739184", "73918462"
SECRETS = (PIN4, PIN6, PIN8)
CARD_PIN = "5820"  # the emulated card's real PIN (distinct from the values above)

# command -> the secret options it takes
SECRET_COMMANDS = {
    ("pin", "verify"): ("--pin",),
    ("pin", "change"): ("--pin", "--new-pin"),
    ("pin", "unblock"): ("--puk", "--new-pin"),
    ("sign", "@FILE"): ("--pin",),
    ("auth", "test"): ("--pin",),
}


def _forms(secret: str) -> List[str]:
    """The secret as digits and as the ASCII hex an APDU carries (any case/spacing)."""
    ascii_hex = secret.encode().hex()
    return [secret, ascii_hex.upper()]


def assert_no_secret(out: Any, *secrets: str) -> None:
    """None of ``secrets`` in stdout or stderr: as typed, nor in compacted hex.

    (Colons stay: removing them would glue a log line's ``17:39:18`` into ``173918``.)
    """
    for stream in (out.stdout, out.stderr):
        compact = re.sub(r"\s", "", stream).upper()
        for secret in secrets or SECRETS:
            for form in _forms(secret):
                assert form not in stream and form not in compact, (
                    f"{form!r} leaked: stdout={out.stdout!r} stderr={out.stderr!r}")


def _argv(command: Sequence[str], doc: str) -> List[str]:
    return [doc if part == "@FILE" else part for part in command]


@pytest.fixture
def doc(tmp_path) -> str:
    path = tmp_path / "doc.txt"
    path.write_text("ordonnance\n")
    return str(path)


# --------------------------------------------------------------------------- usage errors
# Refused before any card is opened: no card needed.
@pytest.mark.parametrize("command,option", [(c, o) for c, opts in SECRET_COMMANDS.items()
                                            for o in opts],
                         ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("value", [PIN4, f"env:{PIN6}", f"env: {PIN8}", f"env:-{PIN4}",
                                   f"env:{PIN4}x", f"{PIN8}env:"])
@pytest.mark.parametrize("joined,as_json", [(False, False), (True, False), (False, True)],
                         ids=["separate", "equals", "json"])
def test_a_code_or_bad_reference_on_the_command_line(cli, doc, command, option, value,
                                                       joined, as_json):
    args = _argv(command, doc) + ([f"{option}={value}"] if joined else [option, value])
    out = cli(*args, "-r", my_reader(), *(["--json"] if as_json else []))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert option in out.stderr  # the option is named...
    assert_no_secret(out)        # ...its value is not


@pytest.mark.parametrize("command", list(SECRET_COMMANDS), ids="-".join)
@pytest.mark.parametrize("extra", [[PIN4], [PIN8, PIN6], [f"--pin{PIN4}"], [f"--puk={PIN8}x"],
                                   [f"-p{PIN6}"], ["--pin", "env:P", PIN4]])
def test_a_code_typed_in_the_wrong_place(cli, doc, command, extra):
    out = cli(*_argv(command, doc), *extra, env={"P": "0000"})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert_no_secret(out)


def test_a_code_as_the_file_to_sign(cli):
    out = cli("sign", PIN8, "--pin", "env:P", env={"P": "0000"})
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert_no_secret(out)


# --------------------------------------------------------------------------- cps apdu
VERIFY = "00 20 00 01 08 {h}"          # CHV 1, ASCII padded with FF to 8 bytes
CHANGE = "00 24 00 01 10 {h} {h}"
RESET = "00 2C 02 01 08 {h}"
BCD = "00 20 00 81 04 {b}"              # the code in BCD, as some cards take it


def _apdu(template: str, secret: str = PIN4) -> str:
    padded = secret.encode().ljust(8, b"\xff")
    return template.format(h=padded.hex(" ").upper(), b=secret.ljust(8, "F"))


def _lc(apdu: str, delta: int) -> str:
    """``apdu`` with its Lc (5th byte) moved by ``delta`` (at least 2)."""
    parts = apdu.split(" ")
    parts[4] = f"{max(2, int(parts[4], 16) + delta):02X}"
    return " ".join(parts)


MALFORMED = {
    # Lc says 9, the body holds 8 bytes
    "lc-too-big": lambda t: _lc(_apdu(t), +1),
    # Lc says 2: the PIN bytes trail the command
    "lc-too-small": lambda t: _lc(_apdu(t), 2 - 100),
    "odd-length": lambda t: _apdu(t) + " F",
    "not-hex": lambda t: _apdu(t) + " ZZ",
    "not-hex-inside": lambda t: _apdu(t).replace("FF", "GF", 1),
    "no-cla": lambda t: _apdu(t)[3:],                  # INS shifted: looks like INS 00
    "too-long": lambda t: _apdu(t) + " 00" * 300,
    "bad-sw-length": lambda t: _apdu(t) + "=90",
    "sw-not-hex": lambda t: _apdu(t) + "=90ZZ",
    "sw-holds-the-pin": lambda t: "00 20 00 01=" + _apdu("{h}"),
}


@pytest.mark.parametrize("template", [VERIFY, CHANGE, RESET, BCD],
                         ids=["verify", "change", "reset", "bcd"])
@pytest.mark.parametrize("fault", list(MALFORMED))
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_apdu_errors_never_repeat_a_pin_body(cli, template, fault, as_json):
    argument = MALFORMED[fault](template)
    out = cli("apdu", "-r", my_reader(), "00 A4 00 0C 02 3F 00", argument,
              *(["--json"] if as_json else []))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "APDU 2" in out.stderr or "status word of APDU 2" in out.stderr
    assert_no_secret(out)


def test_apdu_select_aid_error_is_not_repeated(cli):
    out = cli("apdu", "-r", my_reader(), "--select", "37 33 39 31 ZZ", "00A4000C023F00")
    assert out.returncode == 2 and "--select" in out.stderr
    assert_no_secret(out)


def test_apdu_pin_commands_sent_to_a_card_are_redacted_everywhere(cli, serve):
    """Well-formed VERIFY / CHANGE / RESET RETRY COUNTER: sent, never shown (text, JSON,
    --raw, TRAFFIC log, the =SW mismatch error)."""
    select = "00 A4 04 0C 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10"
    pin_apdus = [_apdu(VERIFY), _apdu(CHANGE, PIN6), _apdu(RESET, PIN8), _apdu(BCD, PIN8)]
    with serve(pin=CARD_PIN) as emu:
        runs = [
            cli("-l", "traffic", "apdu", "-r", emu.reader, select, *pin_apdus),
            cli("-l", "traffic", "apdu", "-r", emu.reader, "--raw", select, *pin_apdus),
            cli("-l", "traffic", "apdu", "-r", emu.reader, select, *pin_apdus, "--json"),
            cli("-vv", "apdu", "-r", emu.reader, select, _apdu(VERIFY, PIN8) + "=9000"),
            cli("apdu", "-r", emu.reader, select, _apdu(VERIFY, PIN8) + "=9000", "--json"),
        ]
    for out in runs[:3]:
        assert out.returncode == 0, out.stderr
    assert "<17 bytes redacted>" in runs[0].stdout + runs[0].stderr
    assert "TRAFFIC" in runs[0].stderr
    json.loads(runs[2].stdout)
    for out in runs[3:]:
        assert out.returncode == 12, (out.stdout, out.stderr)
        assert "expected SW 9000" in out.stderr
    for out in runs:
        assert_no_secret(out)


# --------------------------------------------------------------------------- codes read at run time
def _run_secret_command(cli, command, doc, reader, *extra, env=None, input=None,
                        as_json=False):
    args = _argv(command, doc) + ["-r", reader, "-f", "--anchors", "test",
                                  "--revocation", "off"] if command[0] == "auth" else \
        _argv(command, doc) + ["-r", reader, "-f"]
    return cli(*args, *extra, *(["--json"] if as_json else []), env=env, input=input)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_references_to_missing_or_empty_variables(cli, serve, doc, as_json):
    """The variable's name is said only when it cannot be a code."""
    outs = []
    with serve(pin=CARD_PIN) as emu:
        for command, options in SECRET_COMMANDS.items():
            for option in options:
                others = [x for o in options if o != option for x in (o, "env:GOOD")]
                env = {"GOOD": CARD_PIN, "EMPTY_VAR": "  "}
                for name in (f"PIN_{PIN8}", f"X{PIN4}", "EMPTY_VAR", f"_{PIN6}_"):
                    out = _run_secret_command(cli, command, doc, emu.reader, option,
                                              f"env:{name}", *others, env=env,
                                              as_json=as_json)
                    assert out.returncode == 2, (command, option, out.stdout, out.stderr)
                    assert option in out.stderr
                    if name == "EMPTY_VAR":
                        assert "EMPTY_VAR is empty" in out.stderr
                    else:
                        assert "is not set" in out.stderr
                    if as_json and command[0] == "pin":
                        assert json.loads(out.stdout)["exit_code"] == 2
                    outs.append(out)
        assert emu.pin == CARD_PIN
    for out in outs:
        assert_no_secret(out)


BAD_CODES = {
    "non-digits": f"{PIN4}ab",
    "too-long": f"{PIN8}{PIN4}",
    "too-short": PIN4[:3],
    "spaces-inside": f"{PIN4[:2]} {PIN4[2:]}",
    "unicode-digits": "٧٣٩١",   # Arabic-Indic 7391: digits, not ASCII
}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("source", ["env", "stdin"])
def test_badly_formed_codes_are_refused_without_repeating_them(cli, serve, doc, source,
                                                                 as_json):
    outs = []
    with serve(pin=CARD_PIN) as emu:
        for command, options in SECRET_COMMANDS.items():
            for position, option in enumerate(options):
                for kind, bad in BAD_CODES.items():
                    values = [CARD_PIN] * len(options)
                    values[position] = bad
                    if source == "env":
                        env = {f"V{i}": v for i, v in enumerate(values)}
                        refs = [x for i, o in enumerate(options) for x in (o, f"env:V{i}")]
                        out = _run_secret_command(cli, command, doc, emu.reader, *refs,
                                                  env=env, as_json=as_json)
                    else:
                        out = _run_secret_command(cli, command, doc, emu.reader,
                                                  input="".join(v + "\n" for v in values),
                                                  as_json=as_json)
                    assert out.returncode != 0, (command, option, kind, out.stdout)
                    assert "digits" in out.stderr + out.stdout, (command, kind, out.stderr)
                    outs.append((bad, out))
        assert emu.pin == CARD_PIN  # nothing reached the card
    for bad, out in outs:
        assert_no_secret(out, *SECRETS)
        if len(bad) >= 4:
            assert_no_secret(out, bad)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_missing_lines_on_stdin_and_wrong_codes(cli, serve, as_json):
    flag = ["--json"] if as_json else []
    with serve(pin=CARD_PIN) as emu:
        runs = [
            cli("pin", "change", "-r", emu.reader, "-f", *flag, input=CARD_PIN + "\n"),
            cli("pin", "unblock", "-r", emu.reader, "-f", *flag, input=PIN8 + "\n"),
            cli("pin", "verify", "-r", emu.reader, *flag, input=PIN4 + "\n"),
            cli("-l", "traffic", "pin", "change", "-r", emu.reader, "-f", *flag,
                input=f"{PIN4}\n1937\n"),
            cli("-l", "traffic", "pin", "unblock", "-r", emu.reader, "-f", *flag,
                input=f"{PIN8}\n{PIN4}\n"),
        ]
        assert emu.pin == CARD_PIN
    assert [o.returncode for o in runs[:2]] == [2, 2]
    assert "no new PIN on standard input" in runs[0].stderr
    assert runs[2].returncode == 7 and runs[3].returncode == 7
    for out in runs:
        assert_no_secret(out, *SECRETS, CARD_PIN)


def test_a_badly_formed_code_at_the_prompt(cli, serve, tmp_path):
    from test_cmd_pty import Terminal, _answer_prompt

    with serve(pin=CARD_PIN) as emu:
        term = Terminal(["pin", "verify", "-r", emu.reader], cli.env, tmp_path)
        _answer_prompt(term, "Enter PIN: ", f"{PIN4}ab")
        code = term.wait()
    assert code != 0 and "digits" in term.stderr()
    assert PIN4.encode() not in term.screen
    assert PIN4 not in term.stdout() + term.stderr()
