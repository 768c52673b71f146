"""`cps validate`, `cps crl fetch|show|status` (offline and against a real HTTP PKI
server) and `cps auth test` through pcscd."""

from __future__ import annotations

from datetime import datetime

import pytest
from cli_helpers import write_cert

pytestmark = pytest.mark.pcsc

PIN = "7395"
PATH_KEYS = {"position", "subject", "issuer", "serial", "not_before", "not_after", "sha256"}


def test_validate_offline_json(cli, cps_pki, tmp_path, crl_dir):
    cert = write_cert(tmp_path / "auth.pem", cps_pki.issue_card("cps3-cpe").auth_cert)
    data = cli.json("validate", cert, "--anchors", "test", "--crl", crl_dir, "--purpose", "auth")
    assert data["valid"] is True and data["purpose"] == "auth"
    assert data["certificate"] == cert
    assert len(data["path"]) == 3 and set(data["path"][0]) == PATH_KEYS
    assert data["anchor"].startswith("CN=TEST AC RACINE IGC-SANTE STANDARD")
    assert [r["status"] for r in data["revocation"]] == ["good", "good", "not-checked"]
    assert data["revocation"][0]["source"].endswith("ACI-ST-PP-TEST.crl")
    assert data["policies"] == ["1.2.250.1.213.1.7.2.1.1.1.1"]
    text = cli("validate", cert, "--anchors", "test", "--crl", crl_dir)
    assert text.returncode == 0 and text.stdout.startswith("VALID")


def test_validate_purpose_soft_fail_and_time(cli, cps_pki, tmp_path, crl_dir):
    creds = cps_pki.issue_card("cps3-medecin")
    sign = write_cert(tmp_path / "sign.pem", creds.sign_cert)
    wrong = cli.json("validate", sign, "--anchors", "test", "--crl", crl_dir,
                     "--purpose", "auth", code=9)
    assert wrong["error"]["type"] == "CertificatePurposeError"
    soft = cli.json("validate", sign, "--anchors", "test", "--revocation", "soft-fail")
    assert soft["valid"] is True and soft["revocation"][0]["status"] == "unknown"
    later = cli.json("validate", sign, "--anchors", "test", "--revocation", "off",
                     "--at", "2100-01-01", code=9)
    assert later["error"]["type"] == "CertificateExpired"
    bad_time = cli("validate", sign, "--at", "yesterday")
    assert bad_time.returncode == 2
    untrusted = cli("validate", sign)  # the production anchors do not know the TEST PKI
    assert untrusted.returncode == 9 and "no path to a trust anchor" in untrusted.stderr


def test_crl_show(cli, cps_pki, tmp_path, crl_dir):
    delta = cli.json("crl", "show", f"{crl_dir}/ACI-FO-PP-TEST-delta.crl")
    assert delta["delta"] is True and delta["base_crl_number"] < delta["crl_number"]
    # One numbering for complete (2 t) and delta (2 t + 1) CRLs, RFC 5280 5.2.4.
    issued = int(datetime.fromisoformat(delta["this_update"]).timestamp())
    assert delta["crl_number"] == 2 * issued + 1
    assert delta["base_crl_number"] == 2 * int(cps_pki.delta_base_time.timestamp())
    complete = cli.json("crl", "show", f"{crl_dir}/ACI-FO-PP-TEST.crl", "--entries", "1")
    assert complete["delta"] is False and complete["fresh"] is True
    assert complete["crl_number"] == delta["crl_number"] - 1  # published at the same instant
    assert complete["entry_count"] >= 2 and len(complete["entries"]) == 1
    assert complete["freshest_crl_urls"] == [
        f"{cps_pki.base_url}/crl/ACI-FO-PP-TEST-delta.crl"]
    assert set(complete["entries"][0]) == {"serial", "revocation_date", "reason",
                                           "invalidity_date"}
    # PEM works too
    import base64

    der = open(f"{crl_dir}/ACI-FO-PP-TEST.crl", "rb").read()
    pem = tmp_path / "crl.pem"
    pem.write_text("-----BEGIN X509 CRL-----\n" + base64.encodebytes(der).decode()
                   + "-----END X509 CRL-----\n")
    text = cli("crl", "show", str(pem))
    assert text.returncode == 0 and "complete CRL" in text.stdout and "keyCompromise" in text.stdout
    garbage = tmp_path / "garbage.crl"
    garbage.write_bytes(b"\x30\x03\x02\x01\x01")
    assert cli("crl", "show", str(garbage)).returncode == 11


def test_online_fetch_status_validate(cli, cps_pki_server, tmp_path):
    pki, server = cps_pki_server
    cache = str(tmp_path / "cache")
    creds = pki.issue_card("cps3-medecin")
    cert = write_cert(tmp_path / "auth.pem", creds.auth_cert)

    first = cli.json("crl", "fetch", "--cert", cert, "--cache-dir", cache, "--anchors", "test")
    assert [c["url"].rsplit("/", 1)[1] for c in first["crls"]] == [
        "ACI-FO-PP-TEST.crl", "ACI-FO-PP-TEST-delta.crl"]
    assert not any(c["from_cache"] for c in first["crls"])
    assert first["crls"][1]["delta"] is True
    again = cli.json("crl", "fetch", "--cert", cert, "--cache-dir", cache, "--anchors", "test")
    assert all(c["from_cache"] for c in again["crls"])

    status = cli.json("crl", "status", "--cache-dir", cache)
    assert status["cache_dir"] == cache and len(status["entries"]) == 2
    assert {e["state"] for e in status["entries"]} == {"fresh"}
    text = cli("crl", "status", "--cache-dir", cache)
    assert "[fresh" in text.stdout and "ACI-FO-PP-TEST.crl" in text.stdout
    assert "no cached CRL" in cli("crl", "status", "--cache-dir", str(tmp_path / "x")).stdout

    anchors = []
    for name, root in pki.roots.items():
        anchors += ["--anchors", write_cert(tmp_path / f"{name}.pem", root)]
    for name, ca in pki.intermediates.items():  # a card presents only its own certificate
        anchors += ["--intermediate", write_cert(tmp_path / f"{name}.pem", ca)]
    ok = cli.json("validate", cert, *anchors, "--online", "--cache-dir", cache)
    assert ok["revocation"][0]["source"].startswith(server.base_url)
    assert ok["revocation"][0]["status"] == "good"

    # revoked 12 hours before the reference time: only the delta CRL says so
    recent = write_cert(tmp_path / "recent.pem", pki.issue_card("cps3-revoked-recent").auth_cert)
    revoked = cli.json("validate", recent, *anchors, "--online", "--cache-dir", cache, code=10)
    assert revoked["error"]["revocation_reason"] == "superseded"

    # nothing cached for this issuer and the server is down: no status, hard-fail
    cpe = write_cert(tmp_path / "cpe.pem", pki.issue_card("cps3-cpe").auth_cert)
    server.faults.down = True
    try:
        down = cli("validate", cpe, *anchors, "--online", "--cache-dir",
                   str(tmp_path / "empty-cache"))
    finally:
        server.faults.down = False
    assert down.returncode == 11, down.stderr


def test_crl_fetch_over_ldap(cli, cps_pki, cps_pki_ldap, tmp_path):
    """`cps crl fetch ldap://...`: a delta CRL from a directory, as IGC-Santé publishes them."""
    url = cps_pki_ldap.crl_url(cps_pki, "FORT PERSONNES", delta=True)
    cache = str(tmp_path / "ldap-cache")
    first = cli.json("crl", "fetch", url, "--cache-dir", cache, "--anchors", "test")["crls"][0]
    assert first["url"] == url and first["delta"] is True and not first["from_cache"]
    assert "FORT PERSONNES" in first["issuer"]
    missing = cli("crl", "fetch", cps_pki_ldap.url("CN=NOBODY,C=FR", "deltaRevocationList;binary"),
                  "--cache-dir", cache, "--anchors", "test")
    assert missing.returncode == 11 and "noSuchObject" in missing.stderr  # revocation unavailable


def test_auth_test(cli, serve, crl_dir):
    with serve(pin=PIN) as emu:
        data = cli.json("auth", "test", "-r", emu.reader, "--anchors", "test", "--crl", crl_dir,
                        "--origin", "https://dmp.example.fr", "--pin", "env:P", env={"P": PIN})
    assert data["authenticated"] is True and data["origin"] == "https://dmp.example.fr"
    assert data["practitioner"]["validated"] is True
    assert data["practitioner"]["profession_label"] == "Médecin"
    assert data["certificate"]["role"] == "auth" and data["validation"]["valid"] is True
    assert set(data["timings"]) == {"card_ms", "verify_ms"}


def test_auth_test_contactless_needs_no_pin(cli, serve, crl_dir):
    with serve("cps3-contactless") as emu:
        out = cli("auth", "test", "-r", emu.reader, "--anchors", "test", "--crl", crl_dir)
    assert out.returncode == 0, out.stderr
    assert "Authenticated: LOUIS FAURE, Médecin (10)" in out.stdout
    assert "PIN" not in out.stderr


def test_auth_test_revoked_card(cli, serve, crl_dir):
    with serve("cps3-revoked", pin=PIN) as emu:
        data = cli.json("auth", "test", "-r", emu.reader, "--anchors", "test", "--crl", crl_dir,
                        input=PIN + "\n", code=10)
    assert data["authenticated"] is False and data["error"]["type"] == "CertificateRevoked"
