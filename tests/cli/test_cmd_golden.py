"""`cps card info --json` for every bundled profile, compared with committed golden files.

The card is served through the real pcscd and read by the installed `cps`
script. What legitimately varies is normalised, after being checked:

* ``reader``: the virtual reader depends on CPS_VPCD_PORT -> ``"<reader>"``;
* certificate ``not_before`` / ``not_after``: the test PKI's reference time is
  1 January of the current year, so the dates move every year. Each is
  checked to be the reference time plus a whole number of years (and equal
  to the date of the certificate the test PKI issued), then written
  relative to it: ``"reference_time-1y"``, ``"reference_time+3y"``...
* certificate ``sha256``: the DER changes with the dates. It is checked
  against the certificate the test PKI issued, then replaced by
  ``"<sha256 of the test PKI certificate>"``.

Everything else (practitioner, serials, policies, URLs, PIN counters...) is
compared as is. Set ``CPS_UPDATE_GOLDEN=1`` to rewrite the files after a
deliberate change, and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cps.emulator import profile_names

GOLDEN = Path(__file__).with_name("golden")
pytestmark = pytest.mark.pcsc


def _relative(value: str, reference) -> str:
    import datetime as dt

    moment = dt.datetime.fromisoformat(value)
    years = moment.year - reference.year
    assert moment.replace(year=reference.year) == reference, \
        f"{value} is not the reference time plus whole years"
    return f"reference_time{years:+d}y"


def normalise(data: dict, pki, profile: str, reader: str) -> dict:
    assert data["reader"] == reader
    data["reader"] = "<reader>"
    credentials = pki.issue_card(profile)
    issued = {"auth": credentials.auth_cert, "sign": credentials.sign_cert,
              "tech": credentials.tech_cert}
    for cert in data["certificates"]:
        expected = issued[cert["role"]]
        assert cert["sha256"] == hashlib.sha256(expected.public_bytes(Encoding.DER)).hexdigest() \
            .upper()
        assert cert["not_before"] == expected.not_valid_before_utc.isoformat()
        assert cert["not_after"] == expected.not_valid_after_utc.isoformat()
        cert["sha256"] = "<sha256 of the test PKI certificate>"
        cert["not_before"] = _relative(cert["not_before"], pki.reference_time)
        cert["not_after"] = _relative(cert["not_after"], pki.reference_time)
    return data


@pytest.mark.parametrize("profile", profile_names())
def test_card_info_json_matches_golden(profile, cli, serve, cps_pki):
    with serve(profile) as emu:
        data = cli.json("card", "info", "-r", emu.reader)
    data = normalise(data, cps_pki, profile, emu.reader)
    golden = GOLDEN / f"card-info-{profile}.json"
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("CPS_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing {golden.name}: run with CPS_UPDATE_GOLDEN=1"
    assert json.loads(golden.read_text(encoding="utf-8")) == data
    # the practitioner is never presented as validated by `card info`
    assert data["practitioner"]["validated"] is False


def test_every_profile_has_a_golden_file():
    expected = {f"card-info-{p}.json" for p in profile_names()}
    assert {p.name for p in GOLDEN.glob("card-info-*.json")} == expected


def test_card_info_text_says_not_validated(cli, serve):
    with serve("cps3-pharmacien") as emu:
        out = cli("card", "info", "-r", emu.reader)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for expected in ("Card number:   2990000102", "FRANÇOIS GAUTHIER, Pharmacien (21)",
                     "PHARMACIE DU VIEUX-PORT", "not validated", "run `cps validate`",
                     "PIN:           3 of 3 tries left", "auth: ", "sign: "):
        assert expected in text, (expected, text)
    assert "\x1b[" not in text  # no colour when stdout is not a terminal
