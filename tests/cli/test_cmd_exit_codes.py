"""Every exit code of cps_cli/exitcodes.py, provoked through the installed `cps` and pcscd.

Each scenario is a real situation a sysadmin meets (docs/cli.md has the
table); ``test_every_exit_code_is_provoked`` fails when a code is added to
exitcodes.py without a scenario here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
from cli_helpers import my_reader, write_cert

from cps_cli import exitcodes

pytestmark = pytest.mark.pcsc

CPS4_ATR = bytes.fromhex("3BDC18FF0000122500648000040100" "9000")


def _ok(t: "Scenario") -> Any:
    with t.serve("cps3-medecin") as emu:
        return t.cli("card", "info", "-r", emu.reader)


def _failure(t: "Scenario") -> Any:
    # An error with no more specific code: an emulator profile that does not exist.
    return t.cli("emulator", "serve", "--profile", "cps3-nobody", "--port", "35999")


def _signature_invalid(t: "Scenario") -> Any:
    # A CMS signature that does not match the document.
    from cps.emulator.pki import TestPKI  # noqa: F401 - the session PKI type
    from cps.sign import SoftwareSigner, sign_cms

    creds = t.pki.issue_card("cps3-medecin")
    doc = t.tmp / "doc.txt"
    doc.write_bytes(b"original")
    p7s = t.tmp / "doc.p7s"
    p7s.write_bytes(sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), b"original"))
    doc.write_bytes(b"tampered")
    return t.cli("verify", str(doc), str(p7s), "--anchors", "test", "--crl", t.crl_dir)


def _usage(t: "Scenario") -> Any:
    # A PIN on the command line is refused before anything else happens.
    out = t.cli("pin", "verify", "--pin", "1234")
    assert "1234" not in out.stdout + out.stderr
    assert t.cli("card", "info", "--no-such-option").returncode == exitcodes.USAGE
    return out


def _no_service(t: "Scenario") -> Any:
    return t.cli("card", "info", env={"PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"})


def _no_reader(t: "Scenario") -> Any:
    return t.cli("card", "info", "-r", "no reader has this name")


def _no_card(t: "Scenario") -> Any:
    return t.cli("card", "info", "-r", my_reader())  # nothing served on our port


def _unsupported(t: "Scenario") -> Any:
    def cps4(emu: Any) -> None:
        emu.os.atr = CPS4_ATR

    with t.serve("cps3-medecin", mutate=cps4) as emu:
        out = t.cli("card", "info", "-r", emu.reader)
    assert "CPS4" in out.stderr
    return out


def _wrong_pin(t: "Scenario") -> Any:
    with t.serve("cps3-medecin") as emu:
        out = t.cli("pin", "verify", "-r", emu.reader, input="9999\n")
    assert "2 tries left" in out.stderr
    return out


def _pin_blocked(t: "Scenario") -> Any:
    with t.serve("cps3-pin-blocked") as emu:
        # refused before any PIN is asked (stdin is empty)
        return t.cli("pin", "verify", "-r", emu.reader)


def _export(t: "Scenario", profile: str) -> str:
    creds = t.pki.issue_card(profile)
    return write_cert(t.tmp / f"{profile}.pem", creds.auth_cert)


def _cert_invalid(t: "Scenario") -> Any:
    with t.serve("cps3-expired") as emu:
        pem = t.cli("certs", "export", "-r", emu.reader, "--role", "auth")
    path = t.tmp / "expired.pem"
    path.write_text(pem.stdout)
    out = t.cli("validate", str(path), "--anchors", "test", "--crl", t.crl_dir)
    assert "expired" in out.stderr
    return out


def _revoked(t: "Scenario") -> Any:
    out = t.cli("validate", _export(t, "cps3-revoked"), "--anchors", "test", "--crl", t.crl_dir)
    assert "revoked" in out.stderr
    return out


def _revocation_unavailable(t: "Scenario") -> Any:
    # hard-fail (the default) and no CRL given, nothing fetched
    return t.cli("validate", _export(t, "cps3-medecin"), "--anchors", "test")


def _card_error(t: "Scenario") -> Any:
    with t.serve("cps3-medecin") as emu:
        return t.cli("apdu", "-r", emu.reader, "--select", "A0000000000000", "00B0000004")


def _auth_failed(t: "Scenario") -> Any:
    # A faulty card: its authentication key is not its certificate's.
    from cps.emulator.security import KEY_AUTH, CardKey

    other = t.pki.issue_card("cps3-pharmacien").auth_key

    def swap(emu: Any) -> None:
        emu.os.keys[KEY_AUTH] = CardKey(KEY_AUTH, other, "CPS_PRIV_AUT")

    with t.serve("cps3-medecin", mutate=swap, pin="7395") as emu:
        out = t.cli("auth", "test", "-r", emu.reader, "--anchors", "test", "--crl", t.crl_dir,
                    input="7395\n")
    assert "signature" in out.stderr
    return out


def _not_supported(t: "Scenario") -> Any:
    doc = t.tmp / "doc.txt"
    doc.write_text("x")
    with t.serve("cps3-contactless") as emu:
        return t.cli("sign", "-r", emu.reader, str(doc))


def _last_try(t: "Scenario") -> Any:
    def one_try_left(emu: Any) -> None:
        emu.os.chvs[1].tries_left = 1

    with t.serve("cps3-medecin", mutate=one_try_left, pin="7395") as emu:
        out = t.cli("pin", "verify", "-r", emu.reader, input="7395\n")
        assert "--force" in out.stderr
        # with --force the last try is used (and the right PIN resets the counter)
        forced = t.cli("pin", "verify", "-r", emu.reader, "--force", input="7395\n")
        assert forced.returncode == 0, forced.stderr
        assert "3 of 3 tries left" in forced.stdout
    return out


def _aborted(t: "Scenario") -> Any:
    with t.serve("cps3-medecin") as emu:
        # no terminal and no --force: refuse at once rather than hang
        out = t.cli("pin", "change", "-r", emu.reader, input="1234\n5678\n")
        assert emu.pin == "1234"
    return out


def _tls_server(t: "Scenario", **options: Any) -> Any:
    from cps.testing.tlspeers import OpensslServer

    cas = [*t.pki.roots.values(), *t.pki.intermediates.values()]
    return OpensslServer(t.pki.issue_server(("localhost", "127.0.0.1")), cas,
                         directory=t.tmp / "s_server", **options)


def _tls_get(t: "Scenario", emu: Any, port: int, *extra: str) -> Any:
    root = write_cert(t.tmp / "server-root.pem", t.pki.issue_server().root)
    return t.cli("tls", "get", f"https://localhost:{port}/", "-r", emu.reader, "--ca", root,
                 *extra, input=emu.pin + "\n")


def _tls_failed(t: "Scenario") -> Any:
    # a server that speaks only TLS 1.3, which a CPS3 key cannot do
    with t.serve("cps3-medecin") as emu, _tls_server(t, versions="1.3") as server:
        return _tls_get(t, emu, server.port)


def _server_untrusted(t: "Scenario") -> Any:
    # the server's certificate does not chain to the CA given with --ca
    with t.serve("cps3-medecin") as emu, _tls_server(t) as server:
        other = write_cert(t.tmp / "other.pem", t.pki.ca("FORT").cert)
        return t.cli("tls", "get", f"https://localhost:{server.port}/", "-r", emu.reader,
                     "--ca", other, input=emu.pin + "\n")


def _http_error(t: "Scenario") -> Any:
    # the TLS connection works, the service refuses the revoked card: 403
    from tls_helpers import load_tls_app

    from cps.testing.tlspeers import Nginx

    app = load_tls_app().serve(t.pki.validator(), trusted_proxies=("127.0.0.1",))
    cas = [*t.pki.roots.values(), *t.pki.intermediates.values()]
    try:
        with t.serve("cps3-revoked") as emu, Nginx(
                t.pki.issue_server(("localhost", "127.0.0.1")), cas,
                upstream=f"127.0.0.1:{app.server_address[1]}",
                directory=t.tmp / "nginx") as nginx:
            return _tls_get(t, emu, nginx.port)
    finally:
        app.shutdown()
        app.server_close()


SCENARIOS: Dict[int, Callable[["Scenario"], Any]] = {
    exitcodes.OK: _ok,
    exitcodes.FAILURE: _failure,
    exitcodes.USAGE: _usage,
    exitcodes.NO_SERVICE: _no_service,
    exitcodes.NO_READER: _no_reader,
    exitcodes.NO_CARD: _no_card,
    exitcodes.UNSUPPORTED_CARD: _unsupported,
    exitcodes.WRONG_PIN: _wrong_pin,
    exitcodes.PIN_BLOCKED: _pin_blocked,
    exitcodes.CERT_INVALID: _cert_invalid,
    exitcodes.CERT_REVOKED: _revoked,
    exitcodes.REVOCATION_UNAVAILABLE: _revocation_unavailable,
    exitcodes.CARD_ERROR: _card_error,
    exitcodes.AUTH_FAILED: _auth_failed,
    exitcodes.NOT_SUPPORTED: _not_supported,
    exitcodes.LAST_TRY_REFUSED: _last_try,
    exitcodes.ABORTED: _aborted,
    exitcodes.SIGNATURE_INVALID: _signature_invalid,
    exitcodes.TLS_FAILED: _tls_failed,
    exitcodes.SERVER_UNTRUSTED: _server_untrusted,
    exitcodes.HTTP_ERROR: _http_error,
}


class Scenario:
    def __init__(self, cli: Any, serve: Any, pki: Any, tmp: Path, crl_dir: str) -> None:
        self.cli, self.serve, self.pki, self.tmp, self.crl_dir = cli, serve, pki, tmp, crl_dir


def test_every_exit_code_is_provoked():
    codes = {value for name, value in vars(exitcodes).items()
             if name.isupper() and isinstance(value, int)}
    assert codes == set(SCENARIOS), "an exit code has no scenario (or the reverse)"


@pytest.mark.parametrize("code", sorted(SCENARIOS),
                         ids=[SCENARIOS[c].__name__.strip("_") for c in sorted(SCENARIOS)])
def test_exit_code(code, cli, serve, cps_pki, tmp_path, crl_dir):
    out = SCENARIOS[code](Scenario(cli, serve, cps_pki, tmp_path, crl_dir))
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    if code not in (exitcodes.OK, exitcodes.USAGE):
        # an expected failure is one line on stderr, never a traceback
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("error: "), out.stderr


def test_json_failures_carry_the_exit_code(cli, cps_pki, tmp_path, crl_dir):
    path = write_cert(tmp_path / "revoked.pem", cps_pki.issue_card("cps3-revoked").auth_cert)
    data = cli.json("validate", path, "--anchors", "test", "--crl", crl_dir,
                    code=exitcodes.CERT_REVOKED)
    assert data["valid"] is False and data["exit_code"] == exitcodes.CERT_REVOKED
    error = data["error"]
    assert error["type"] == "CertificateRevoked" and error["revocation_reason"] == "keyCompromise"
    revoked_at = dt.datetime.fromisoformat(error["revocation_date"])
    assert revoked_at == cps_pki.reference_time - dt.timedelta(days=30)
