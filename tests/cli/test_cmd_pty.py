"""On a real terminal (a pty): the PIN prompt goes to stderr and hides what is typed,
colour appears only on a terminal, CRL downloads show a progress bar."""

from __future__ import annotations

import os
import pty
import select
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest
from cli_helpers import CPS, write_cert

pytestmark = pytest.mark.pcsc

PIN = "7395"


class Terminal:
    """`cps` with a pty as stdin and controlling terminal; stdout and stderr go to files
    unless put on the terminal too."""

    def __init__(self, args: Sequence[str], env: Dict[str, str], tmp: Path, *,
                 stdout_on_tty: bool = False, stderr_on_tty: bool = False) -> None:
        self.out_path, self.err_path = tmp / "stdout", tmp / "stderr"
        self.screen = b""
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its stdin, stdout, stderr and /dev/tty
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                if not stdout_on_tty:
                    os.dup2(os.open(self.out_path, flags), 1)
                if not stderr_on_tty:
                    os.dup2(os.open(self.err_path, flags), 2)
                # S606: exec the installed `cps` directly (fixed path, argument list, no shell).
                os.execve(CPS, [CPS, *args], dict(env, TERM="xterm", COLUMNS="100"))  # noqa: S606
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.status: Optional[int] = None

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.screen += os.read(self.fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                time.sleep(timeout)

    def expect(self, where: str, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            seen = {"stderr": self.stderr, "screen": lambda: self.screen.decode("utf-8", "replace")
                    }[where]()
            if text in seen:
                return
            assert time.monotonic() < deadline, f"{text!r} never appeared on {where}: {seen!r}"
            self._pump(0.05)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._pump(0.05)
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            assert time.monotonic() < deadline, "the command did not finish"
            self._pump(0.05)


def _answer_prompt(term: Terminal, prompt: str, secret: str, occurrence: int = 1) -> None:
    """Wait for the prompt (its n-th occurrence) on stderr, then type.

    getpass turns echo off (and flushes pending input) *before* it writes the
    prompt: once the prompt is there, what is typed goes to the hidden read.
    """
    import termios

    deadline = time.monotonic() + 20
    while term.stderr().count(prompt) < occurrence:
        assert time.monotonic() < deadline, f"{prompt!r} #{occurrence} never came: " \
            f"{term.stderr()!r}"
        term._pump(0.02)
    assert not termios.tcgetattr(term.fd)[3] & termios.ECHO, "echo is on at the PIN prompt"
    term.type(secret + "\n")


def test_pin_prompt_is_on_stderr_and_hidden(cli, serve, tmp_path):
    with serve(pin=PIN) as emu:
        term = Terminal(["pin", "verify", "-r", emu.reader], cli.env, tmp_path)
        _answer_prompt(term, "Enter PIN: ", PIN)
        code = term.wait()
    assert code == 0, (term.stdout(), term.stderr())
    assert "Enter PIN: " in term.stderr()          # the prompt is on stderr...
    assert "Enter PIN" not in term.stdout()        # ...not on stdout
    assert "PIN verified. PIN: 3 of 3 tries left" in term.stdout()
    assert "Before: PIN: 3 of 3 tries left" in term.stderr()
    # nothing typed was echoed: the terminal shows no digit of the PIN
    assert PIN.encode() not in term.screen, term.screen
    for text in (term.stdout(), term.stderr()):
        assert PIN not in text


def test_pin_change_on_a_terminal(cli, serve, tmp_path):
    new = "2468"
    with serve(pin=PIN) as emu:
        term = Terminal(["pin", "change", "-r", emu.reader], cli.env, tmp_path)
        term.expect("stderr", "Change the PIN of card 2990000101")
        term.type("y\n")  # the confirmation (visible, that is fine)
        _answer_prompt(term, "Enter PIN: ", PIN)
        _answer_prompt(term, "Enter new PIN: ", new)
        _answer_prompt(term, "Repeat new PIN: ", "1111")   # a typo: asked again
        _answer_prompt(term, "Enter new PIN: ", new, occurrence=2)
        _answer_prompt(term, "Repeat new PIN: ", new, occurrence=2)
        code = term.wait()
        assert emu.pin == new
    assert code == 0, term.stderr()
    assert "PIN changed." in term.stdout()
    assert "The two entries differ: try again." in term.stderr()
    for secret in (PIN, new, "1111"):
        assert secret.encode() not in term.screen
        assert secret not in term.stdout() + term.stderr()


def test_colour_only_on_a_terminal(cli, serve, tmp_path):
    with serve("cps3-pin-blocked") as emu:
        term = Terminal(["pin", "status", "-r", emu.reader], cli.env, tmp_path,
                        stdout_on_tty=True)
        assert term.wait() == 0
        piped = cli("pin", "status", "-r", emu.reader)
    assert b"\x1b[31m" in term.screen and b"BLOCKED" in term.screen
    assert "BLOCKED" in piped.stdout and "\x1b[" not in piped.stdout


def test_crl_download_progress_bar(cli, cps_pki_server, tmp_path):
    pki, _server = cps_pki_server
    cert = write_cert(tmp_path / "auth.pem", pki.issue_card("cps3-adeli").auth_cert)
    term = Terminal(["crl", "fetch", "--cert", cert, "--cache-dir", str(tmp_path / "cache"),
                     "--anchors", "test"],
                    cli.env, tmp_path, stderr_on_tty=True)
    assert term.wait() == 0, term.screen
    assert b"100%" in term.screen and b"ACI-FO-PP-TEST.crl" in term.screen
    assert "downloaded" in term.stdout()
    # without a terminal: no bar
    again = cli("crl", "fetch", "--cert", cert, "--cache-dir", str(tmp_path / "cache2"),
                "--anchors", "test")
    assert again.returncode == 0 and "%" not in again.stderr
