"""`cps doctor` / cps.diagnostics.diagnose: one test per finding, through the real pcscd.

Each emulated card is served over vsmartcard-vpcd; the library function runs
in process and the installed console script (`cps doctor --json`) in a
subprocess, and both must report the same thing. The vpcd port follows
CPS_VPCD_PORT like the plugin's fixtures (35963: reader "Virtual PCD 00 00").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import cps
from cps import errors
from cps.cryptolib import find_cryptolib
from cps.diagnostics import CHECKS, diagnose
from cps.diagnostics.report import CARD_CHECKS
from cps.emulator.vpcd import reader_name_for_port
from cps.testing.cryptolib import install_fake_cryptolib

CPS = str(Path(sys.executable).with_name("cps"))
PORT = int(os.environ.get("CPS_VPCD_PORT", "35963"))
READER = reader_name_for_port(PORT)
CPS4_ATR = bytes.fromhex("3BDC18FF00001225006480000401009000")
YUBIKEY_ATR = bytes.fromhex("3BFD1300008131FE158073C021C057597562694B657940")

pytestmark = pytest.mark.pcsc


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def pki_store(cps_pki):
    from cps.trust import TrustStore

    return TrustStore.from_certificates(cps_pki.anchors(), cps_pki.intermediates.values(),
                                        name="TEST PKI")


@pytest.fixture(scope="module")
def crl_files(cps_pki, tmp_path_factory) -> List[str]:
    """Fresh CRLs of every TEST CA, one DER file each (as a sysadmin would pass them)."""
    folder = tmp_path_factory.mktemp("crls")
    paths = []
    for name in list(cps_pki.roots) + list(cps_pki.intermediates):
        path = folder / f"{name.replace(' ', '-')}.crl"
        path.write_bytes(cps_pki.crl(name))
        paths.append(str(path))
    return paths


def run_cli(args: List[str], pki: Any = None, env: Optional[Dict[str, str]] = None,
            as_json: bool = True) -> Tuple[int, Any, str]:
    environ = dict(os.environ, **(env or {}))
    if pki is not None:   # `--anchors test` finds the session's TEST PKI there
        environ["CPS_TEST_PKI_DIR"] = str(pki.directory)
    done = subprocess.run([CPS, "doctor", *(["--json"] if as_json else []), *args],  # noqa: S603
                          capture_output=True, text=True, env=environ, timeout=60)
    if as_json:
        try:
            return done.returncode, json.loads(done.stdout), done.stderr
        except ValueError:
            pytest.fail(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr!r}")
    return done.returncode, done.stdout, done.stderr


def statuses(report_or_json: Any) -> Dict[str, str]:
    if isinstance(report_or_json, dict):
        return {c["name"]: c["status"] for c in report_or_json["checks"]}
    return {c.name: c.status for c in report_or_json.checks}


def both(reader: str, cli_args: List[str], pki: Any = None, **kwargs: Any):
    """The library report and the CLI's (exit code, JSON): they must agree."""
    report = diagnose(reader, **kwargs)
    code, data, stderr = run_cli(["-r", reader, *cli_args], pki=pki)
    assert statuses(data) == statuses(report), stderr
    assert data["first_failure"] == report.first_failure
    assert data["ok"] is report.ok
    assert data["exit_code"] == code
    assert [c["name"] for c in data["checks"]] == list(CHECKS)
    return report, code, data


def skipped_after(report: Any, name: str) -> None:
    # the card walk stops there; the workstation checks run whatever it found
    after = list(CARD_CHECKS)[list(CARD_CHECKS).index(name) + 1:]
    assert all(report.check(n).status == "skipped" for n in after)


def _trusted(pki: Any, crls: List[str]) -> List[str]:
    return ["--anchors", "test", *[a for c in crls for a in ("--crl", c)]]


# --------------------------------------------------------------------------- findings
def test_no_pcsc_service(monkeypatch):
    env = {"PCSCLITE_CSOCK_NAME": "/nonexistent"}
    code, data, _ = run_cli([], env=env)
    assert code == 3 and data["exit_code"] == 3
    assert data["first_failure"] == "pcsc-service" and not data["ok"]
    assert [statuses(data)[n] for n in CARD_CHECKS] == \
        ["fail"] + ["skipped"] * (len(CARD_CHECKS) - 1)
    service = data["checks"][0]
    assert service["data"]["code"] == "0x8010001D"
    assert "PCSCLITE_CSOCK_NAME" in service["advice"]
    # the library function, in a process of its own (libpcsclite reads the variable once)
    lib = subprocess.run([sys.executable, "-c", "import json; from cps.diagnostics import "
                          "diagnose; print(json.dumps(diagnose().as_dict()))"],
                         capture_output=True, text=True, env=dict(os.environ, **env),
                         timeout=60, check=True)
    assert json.loads(lib.stdout)["first_failure"] == "pcsc-service"
    # without the variable, the advice is to start the system's pcscd
    from cps.diagnostics.pcsc import _service_advice

    monkeypatch.delenv("PCSCLITE_CSOCK_NAME", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    advice = _service_advice(errors.PcscServiceUnavailable("down", code=0x8010001D),
                             "/run/pcscd/pcscd.comm")
    assert "systemctl" in advice and "pcscd" in advice


def test_card_access_not_installed_names_the_extra(monkeypatch):
    # A light install (no [card] extra): the doctor stops at the PC/SC layer and
    # says which install brings card access.
    import cps.readers
    from cps._extras import require
    from cps.diagnostics import diagnose

    def missing() -> list:
        return require("smartcard_not_here", "card", "pyscard")

    monkeypatch.setattr(cps.readers, "list_readers", missing)
    report = diagnose().as_dict()
    service = report["checks"][0]
    assert report["first_failure"] == "pcsc-service" and service["status"] == "fail"
    assert "cps-middleware[card]" in service["advice"]


def test_no_card_in_the_selected_reader(cps_pcscd):
    report, code, data = both(READER, [])
    assert report.first_failure == "card" and code == 5
    check = report.check("card")
    assert READER in check.summary and "upside down" in check.advice
    assert isinstance(check.error, errors.NoCard)
    skipped_after(report, "card")


def test_no_reader_matches_the_selector(cps_pcscd):
    report, code, _ = both("no such reader", [])
    assert report.first_failure == "readers" and code == 4
    assert "cps readers" in report.check("readers").advice


def test_cps4_is_recognised_and_refused(cps_pcscd, cps_card_factory):
    emu = cps_card_factory("cps3-medecin")
    emu.os.atr = CPS4_ATR
    with emu.serve_vpcd(port=PORT) as att:
        before = emu.apdu_count
        report, code, data = both(att.reader_name, [])
        assert emu.apdu_count == before     # nothing sent to a card we do not support
    assert report.first_failure == "atr" and code == 6
    atr = report.check("atr")
    assert atr.data["kind"] == "cps4" and "CPS4" in atr.summary
    assert "Cryptolib" in atr.advice and "5.2" in atr.advice
    assert isinstance(atr.error, errors.UnsupportedCard)
    skipped_after(report, "atr")


def test_cps4_read_through_the_cryptolib(cps_pcscd, cps_cps4_card, cps_softhsm_cps4,
                                         pki_store, crl_files, tmp_path):
    """A CPS4 in the reader and the Cryptolib 5.2.2 installed (its module: SoftHSM2 with
    the CPS4 token): the doctor reads the card through the module -- card number,
    certificates, chain, revocation, PIN -- and sends the card no APDU of its own."""
    from cps.diagnostics.machine import Machine

    root = install_fake_cryptolib(tmp_path / "root", cps_softhsm_cps4.module, "5.2.2")
    # The fake Cryptolib (SoftHSM2) is given deliberately: a root alone never lends the
    # card walk a module to load.
    machine = Machine("linux", root=root, environ={"HOME": "/home/alice"},
                      cryptolib=find_cryptolib(platform="linux", root=root))
    cps_softhsm_cps4.get_token()            # this process's SoftHSM2 configuration
    emu = cps_cps4_card
    with emu.serve_vpcd(port=PORT) as att:
        before = emu.apdu_count
        report = diagnose(att.reader_name, machine=machine, anchors=pki_store,
                          crls=crl_files)
        assert emu.apdu_count == before
    found = statuses(report)
    assert report.check("atr").status == "ok" and "5.2.2" in report.check("atr").summary
    application = report.check("application")
    assert application.status == "ok" and application.data["cps4"] is True, application
    assert application.data["card_number"] == emu.profile.card_number
    assert application.data["token"] == f"CPS4v1-{emu.profile.card_number}"
    for name in ("certificates", "chain", "revocation", "pin"):
        assert found[name] == "ok", report.check(name)
    certs = report.check("certificates").data["certificates"]
    auth = certs["auth"]
    years = (int(auth["not_after"][:4]) - int(auth["not_before"][:4]))
    assert years == 6                       # the CPS4's six-year certificates
    assert report.check("pin").data["tries_left"] == 3
    assert report.check("cryptolib").status == "ok"
    assert report.ok and report.first_failure is None


def test_cps4_with_a_cryptolib_of_unknown_version_blind_to_it(cps_pcscd, cps_cps4_card,
                                                              cps_softhsm_token, tmp_path):
    """A Cryptolib whose version nothing records, and whose module shows no CPS4 token
    (here: SoftHSM2 with a CPS3 token): a warning on the ATR, then the application
    check fails saying what to install; no APDU reaches the card."""
    from cps.diagnostics.machine import Machine

    root = install_fake_cryptolib(tmp_path / "root", cps_softhsm_token.module, None)
    # The fake Cryptolib (SoftHSM2) is given deliberately: a root alone never lends the
    # card walk a module to load.
    machine = Machine("linux", root=root, environ={"HOME": "/home/alice"},
                      cryptolib=find_cryptolib(platform="linux", root=root))
    cps_softhsm_token.get_token()
    emu = cps_cps4_card
    with emu.serve_vpcd(port=PORT) as att:
        before = emu.apdu_count
        report = diagnose(att.reader_name, machine=machine)
        assert emu.apdu_count == before
    assert report.check("atr").status == "warn"
    application = report.check("application")
    assert application.status == "fail" and report.first_failure == "application"
    assert isinstance(application.error, errors.CryptolibRequired)
    assert "5.2 or later" in application.advice
    skipped_after(report, "application")


def test_cps4_with_an_old_cryptolib_fails_on_the_atr(cps_pcscd, cps_cps4_card,
                                                     cps_softhsm_cps4, tmp_path):
    from cps.diagnostics.machine import Machine

    root = install_fake_cryptolib(tmp_path / "root", cps_softhsm_cps4.module, "5.1.4")
    # The fake Cryptolib (SoftHSM2) is given deliberately: a root alone never lends the
    # card walk a module to load.
    machine = Machine("linux", root=root, environ={"HOME": "/home/alice"},
                      cryptolib=find_cryptolib(platform="linux", root=root))
    emu = cps_cps4_card
    with emu.serve_vpcd(port=PORT) as att:
        report = diagnose(att.reader_name, machine=machine)
    atr = report.check("atr")
    assert atr.status == "fail" and "5.1.4" in atr.summary and "5.2" in atr.advice
    assert isinstance(atr.error, errors.CryptolibRequired)
    assert report.check("cryptolib").status in ("warn", "fail")
    skipped_after(report, "atr")


def test_unknown_atr(cps_pcscd, cps_card_factory):
    emu = cps_card_factory("cps3-medecin")
    emu.os.atr = YUBIKEY_ATR
    with emu.serve_vpcd(port=PORT) as att:
        report, code, data = both(att.reader_name, [])
    assert report.first_failure == "atr" and code == 6
    atr = report.check("atr")
    assert YUBIKEY_ATR.hex(" ").upper() in atr.summary
    assert "smartcard_list.txt" in atr.advice
    if atr.data["smartcard_list"]:          # pcsc-tools installed: its name for the card
        assert "YubiKey" in atr.summary
    assert isinstance(atr.error, errors.UnknownCard)


@pytest.mark.cps_profile("cps3-contactless")
def test_contactless_card_is_a_warning(cps_vpcd_card, cps_pki, pki_store, crl_files):
    reader = cps_vpcd_card.attachment.reader_name
    report, code, data = both(reader, _trusted(cps_pki, crl_files), pki=cps_pki,
                              anchors=pki_store, crls=crl_files)
    assert report.ok and code == 0
    assert report.check("atr").status == "warn"
    assert "no PIN" in report.check("atr").summary and "contact reader" in \
        report.check("atr").advice
    assert report.check("certificates").summary.startswith("tech:")
    assert report.check("chain").status == "ok"
    assert report.check("pin").status == "skipped"


@pytest.mark.cps_profile("cps3-expired")
def test_expired_certificate(cps_vpcd_card, cps_pki, pki_store):
    reader = cps_vpcd_card.attachment.reader_name
    report, code, data = both(reader, ["--anchors", "test"], pki=cps_pki, anchors=pki_store)
    assert report.first_failure == "chain" and code == 9
    chain = report.check("chain")
    assert isinstance(chain.error, errors.CertificateExpired)
    assert "expired" in chain.summary and "renewed" in chain.advice
    assert chain.data["not_after"] < report.at.isoformat()
    skipped_after(report, "chain")


@pytest.mark.cps_profile("cps3-revoked")
def test_revoked_certificate(cps_vpcd_card, cps_pki, pki_store, crl_files):
    reader = cps_vpcd_card.attachment.reader_name
    report, code, data = both(reader, _trusted(cps_pki, crl_files), pki=cps_pki,
                              anchors=pki_store, crls=crl_files)
    assert report.first_failure == "chain" and code == 10
    chain = report.check("chain")
    assert isinstance(chain.error, errors.CertificateRevoked)
    assert chain.data["revocation_reason"] == "keyCompromise"
    assert "revoked" in chain.summary and "replacement" in chain.advice


def test_test_card_against_the_production_anchors(cps_vpcd_card):
    report, code, _ = both(cps_vpcd_card.attachment.reader_name, [])
    assert report.first_failure == "chain" and code == 9
    assert "--anchors test" in report.check("chain").advice


def test_stale_crls(cps_vpcd_card, cps_pki, pki_store, tmp_path):
    old = cps_pki.reference_time     # CRLs issued then, valid one day: long expired
    paths = []
    for name in list(cps_pki.roots) + list(cps_pki.intermediates):
        path = tmp_path / f"{name.replace(' ', '-')}.crl"
        path.write_bytes(cps_pki.crl(name, at=old))
        paths.append(str(path))
    reader = cps_vpcd_card.attachment.reader_name
    report, code, _ = both(reader, _trusted(cps_pki, paths), pki=cps_pki, anchors=pki_store,
                           crls=paths)
    assert report.first_failure == "revocation" and code == 11
    revocation = report.check("revocation")
    assert "expired" in revocation.summary
    assert "07:00" in revocation.advice and "igc-sante.esante.gouv.fr" in revocation.advice


@pytest.mark.cps_profile("cps3-pin-blocked")
def test_pin_blocked(cps_vpcd_card, cps_pki, pki_store, crl_files):
    reader = cps_vpcd_card.attachment.reader_name
    report, code, data = both(reader, _trusted(cps_pki, crl_files), pki=cps_pki,
                              anchors=pki_store, crls=crl_files)
    assert report.first_failure == "pin" and code == 8
    pin = report.check("pin")
    assert pin.data["blocked"] and pin.data["unblock_uses_left"] == 97
    assert "cps pin unblock" in pin.advice
    assert cps_vpcd_card.pin not in json.dumps(data)     # never a PIN in the output


def test_last_pin_try(cps_pcscd, cps_card_factory, cps_pki, pki_store, crl_files):
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        for left in (2, 1):
            with pytest.raises(errors.WrongPin) as wrong:
                card.verify_pin("0000" if emu.pin != "0000" else "1111")
            assert wrong.value.tries_left == left
    with emu.serve_vpcd(port=PORT) as att:
        report, code, data = both(att.reader_name, _trusted(cps_pki, crl_files), pki=cps_pki,
                                  anchors=pki_store, crls=crl_files)
    assert report.ok and code == 0
    pin = report.check("pin")
    assert pin.status == "warn" and pin.data["tries_left"] == 1
    assert "blocks the card" in pin.summary and "cps pin unblock" in pin.advice
    assert emu.os.chvs[1].tries_left == 1      # the doctor spent no try


def test_all_good(cps_vpcd_card, cps_pki, pki_store, crl_files):
    reader = cps_vpcd_card.attachment.reader_name
    report, code, data = both(reader, _trusted(cps_pki, crl_files), pki=cps_pki,
                              anchors=pki_store, crls=crl_files)
    assert report.ok and report.first_failure is None and code == 0
    found = statuses(report)
    assert all(found[n] == "ok" for n in CARD_CHECKS
               if n not in ("pkcs11", "revocation-sources")), found
    assert found["pkcs11"] in ("ok", "warn")          # depends on what the machine has
    assert found["revocation-sources"] == "skipped"   # no network without --online
    assert "MARCHAND-LEFÈVRE" in report.check("certificates").summary
    assert report.check("pin").data["tries_left"] == 3
    assert report.check("revocation").data["seconds_left"] > 0
    assert cps_vpcd_card.os.chvs[1].tries_left == 3
    # the text output: one screen, marks, and no colour codes when not on a terminal
    code, text, _ = run_cli(["-r", reader, *_trusted(cps_pki, crl_files)], pki=cps_pki,
                            as_json=False)
    assert code == 0 and "\x1b[" not in text
    # one screen: a line per check (card walk and workstation), advice under problems
    assert text.count("\n") <= len(CHECKS) + 12, text
    assert "✓ PIN" in text and "healthy" in text


def test_pkcs11_modules_touch_no_card(cps_vpcd_card):
    """Loading OpenSC binds every card it sees; the probe hides PC/SC from it."""
    from cps.diagnostics.pkcs11 import _probe_module
    from cps.pkcs11 import OPENSC_PATHS

    path = next((p for p in OPENSC_PATHS if os.path.isfile(p)), None)
    if path is None:
        pytest.skip("OpenSC is not installed")
    before = cps_vpcd_card.apdu_count
    module = _probe_module(path)
    assert module["loadable"] and module["kind"] == "opensc", module
    assert cps_vpcd_card.apdu_count == before


def test_missing_pkcs11_module(cps_vpcd_card, pki_store, crl_files):
    report = diagnose(cps_vpcd_card.attachment.reader_name, anchors=pki_store,
                      crls=crl_files, module="/nonexistent/libcps3_pkcs11_lux.so")
    assert report.first_failure == "pkcs11"
    assert report.check("pin").status == "ok"
