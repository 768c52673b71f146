"""Declarative card profiles: bundled data and the loader's checks."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from cps.emulator.profiles import (
    CARD_ISSUER_ID,
    CardProfile,
    ProfileError,
    load_profile,
    load_profile_file,
    luhn_check_digit,
    luhn_valid,
    parse_profile,
    profile_names,
)
from cps.errors import CpsError

REQUIRED = {
    "cps3-medecin", "cps3-pharmacien", "cps3-adeli", "cps3-cpe", "cps3-pin-blocked",
    "cps3-expired", "cps3-revoked", "cps3-contactless",
}
ALL = profile_names()

MINIMAL = """
description = "test"
interface = "contact"
card_type = "CPS"
card_number = "12345678"
pin = "0000"
puk = "00000000"

[holder]
idnat = "810002813839"
last_name = "X"
first_name = "Y"
profession_label = "Médecin"
"""


def test_bundled_profiles_are_present():
    assert REQUIRED <= set(ALL)
    assert ALL == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_profile_loads(name: str):
    profile = load_profile(name)
    assert isinstance(profile, CardProfile) and profile.name == name
    assert profile.description
    assert profile.pan.startswith(CARD_ISSUER_ID) and luhn_valid(profile.pan)
    assert profile.issuer_card_id == f"8025000001/{profile.card_number}"
    assert profile.holder.idnat[0] in "0134568"
    if profile.contactless:
        assert profile.pin is None and profile.puk is None
    else:
        assert re.fullmatch(r"\d{4}", profile.pin or "")
        assert re.fullmatch(r"\d{8}", profile.puk or "")


@pytest.mark.parametrize("name", ALL)
def test_secrets_stay_out_of_repr(name: str):
    profile = load_profile(name)
    text = repr(profile)
    assert "pin=" not in text and "puk=" not in text
    if profile.puk:
        assert profile.puk not in text
    assert "pin_tries_left" in text  # counters are not secrets


def test_profiles_are_distinct_cards_and_people():
    profiles = [load_profile(n) for n in ALL]
    for attribute in ("card_number", "pan"):
        values = [getattr(p, attribute) for p in profiles]
        assert len(set(values)) == len(values), attribute
    idnats = [p.holder.idnat for p in profiles]
    names = [(p.holder.first_name, p.holder.last_name) for p in profiles]
    assert len(set(idnats)) == len(idnats) and len(set(names)) == len(names)
    # Accented UTF-8 names are part of the data set on purpose.
    assert any(not (p.holder.first_name + p.holder.last_name).isascii() for p in profiles)


def test_rpps_practitioners():
    for name in ("cps3-medecin", "cps3-pharmacien"):
        holder = load_profile(name).holder
        assert re.fullmatch(r"8\d{11}", holder.idnat)
        assert luhn_valid(holder.idnat[1:])  # the RPPS number itself
    medecin = load_profile("cps3-medecin")
    assert (medecin.holder.profession_code, medecin.holder.profession_label) == ("10", "Médecin")
    assert medecin.card_type == "CPS" and medecin.certificates.issuer == "FORT PERSONNES"
    assert (medecin.pin_tries_left, medecin.puk_tries_left, medecin.unblock_uses_left) == \
        (3, 10, 100)
    pharmacien = load_profile("cps3-pharmacien").holder
    assert (pharmacien.profession_code, pharmacien.profession_label) == ("21", "Pharmacien")


def test_adeli_practitioner():
    holder = load_profile("cps3-adeli").holder
    assert re.fullmatch(r"0[0-9AB]{9}", holder.idnat)
    assert (holder.profession_code, holder.profession_label) == ("70",
                                                                 "Masseur-Kinésithérapeute")


def test_establishment_staff_card():
    profile = load_profile("cps3-cpe")
    holder = profile.holder
    assert profile.card_type == "CPE" and profile.card_type_code == 2
    assert profile.certificates.issuer == "STANDARD PERSONNES"
    finess = holder.structure_id[1:]
    assert holder.structure_id == "1" + finess
    assert re.fullmatch(rf"3{finess}/\w+", holder.idnat)
    assert holder.profession_label == "Personnel santé ou social"
    assert holder.profession_code is None
    assert holder.structure_name and holder.locality


def test_state_profiles():
    blocked = load_profile("cps3-pin-blocked")
    assert blocked.pin_tries_left == 0 and blocked.pin_blocked
    assert blocked.puk_tries_left > 0
    assert not load_profile("cps3-medecin").pin_blocked
    assert load_profile("cps3-expired").certificates.validity == "expired"
    revoked = load_profile("cps3-revoked").certificates
    assert revoked.revoked and revoked.revocation_reason == "keyCompromise"
    assert revoked.revoked_days_ago == 30
    contactless = load_profile("cps3-contactless")
    assert contactless.contactless and contactless.interface == "contactless"
    assert not contactless.pin_blocked


def test_profiles_are_frozen():
    profile = load_profile("cps3-medecin")
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.pin = "0000"  # type: ignore[misc]
    assert dataclasses.replace(profile, pin="0000").pin == "0000"
    assert hash(profile) == hash(load_profile("cps3-medecin"))


def test_luhn():
    assert luhn_valid("8025000001992138450")  # PAN of the public CPS3 trace
    assert luhn_valid("10002813839") and luhn_valid("99700075122")  # RPPS from real DNs
    assert not luhn_valid("10003461033")
    assert luhn_check_digit("7992739871") == "3"
    assert not luhn_valid("") and not luhn_valid("1a")


def test_minimal_profile_defaults(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    profile = load_profile_file(path)
    assert profile.name == "mine"
    assert profile.certificates.issuer == "FORT PERSONNES"
    assert profile.certificates.validity == "valid" and not profile.certificates.revoked
    assert profile.pin_tries_left == 3 and profile.holder.structure_id is None
    staff = parse_profile(MINIMAL.replace('"CPS"', '"CPA"'), "staff")
    assert staff.certificates.issuer == "STANDARD PERSONNES" and staff.card_type_code == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t + 'colour = "blue"\n', "unknown key"),
        (lambda t: t.replace('interface = "contact"', 'interface = "nfc"'), "interface"),
        (lambda t: t.replace('"CPS"', '"XYZ"'), "card_type"),
        (lambda t: t.replace('pin = "0000"', 'pin = "12a4"'), "pin must be"),
        (lambda t: t.replace('puk = "00000000"', "puk = 12345678"), "puk must be"),
        (lambda t: t.replace('"12345678"', '"12"'), "card_number"),
        (lambda t: t.replace('"810002813839"', '"710002813839"'), "idNat_PS"),
        (lambda t: t.replace('interface = "contact"', 'interface = "contactless"'),
         "contactless"),
        (lambda t: t + "[counters]\npin_tries_left = 4\n", "between 0 and 3"),
        (lambda t: t + "[certificates]\nissuer = \"FORT\"\n", "issuer"),
        (lambda t: t + "[certificates]\nrevoked = true\n", "revoked_days_ago"),
        (lambda t: t + "[certificates]\nrevoked = true\nrevoked_days_ago = 3\n"
                       "revocation_reason = \"lost\"\n", "revocation_reason"),
        (lambda t: t + "[certificates]\nrevocation_reason = \"superseded\"\n", "revoked = true"),
        (lambda t: t.replace("[holder]", "[holder]\nnickname = 'x'"), "unknown key"),
        (lambda t: t + "[[oops", "invalid TOML"),
    ],
)
def test_malformed_profiles_are_rejected(change, message: str):
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile(change(MINIMAL), "bad")
    assert isinstance(info.value, CpsError) and not isinstance(info.value, ValueError)
    assert info.value.profile == "bad"
    assert "12a4" not in str(info.value)  # a bad PIN is not echoed


def test_unknown_names():
    with pytest.raises(ProfileError, match="cps3-medecin"):
        load_profile("cps3-nobody")
    with pytest.raises(ProfileError, match="invalid profile name"):
        load_profile("../pki")
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile_file("/nonexistent/profile.toml")
