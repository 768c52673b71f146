"""Declarative profiles of emulated CPS cards.

A profile describes one card: its holder, its PIN state and the state of its
certificates. Profiles are TOML files shipped in ``cps/emulator/card-profiles/``
(``cps3-medecin.toml`` is the profile ``"cps3-medecin"``); users may load
their own with :func:`load_profile_file`. The card OS builds the card from
a profile; :class:`cps.emulator.pki.TestPKI` issues its keys and certificates.

Schema (every key is checked; unknown keys are errors, so typos do not pass
silently)::

    description = "Médecin libéral (RPPS), carte CPS3 en bon état"
    generation = "cps3"          # optional: "cps3" (default) | "cps4" (contact only:
                                 # an NXP ChipDoc, reached through PKCS#11 only)
    interface = "contact"        # "contact" | "contactless"
    card_type = "CPS"            # CPS | CPF | CPE | CPA
    card_number = "2990000101"   # 8-10 digits, without the 8025000001 issuer
                                 # prefix and without the Luhn check digit
    pin = "1234"                 # 4 digits   } required on contact cards,
    puk = "12345678"             # 8 digits   } forbidden on contactless ones

    [counters]                   # optional, contact cards only; defaults = full
    pin_tries_left = 3           # 0..3   (0: PIN blocked)
    puk_tries_left = 10          # 0..10  (0: unblocking code blocked)
    unblock_uses_left = 100      # 0..100 (usage counter of the unblocking code)

    [holder]
    idnat = "810101234563"       # idNat_PS: type digit + identifier (CN)
    last_name = "MARCHAND"       # SN (UTF-8, accents welcome)
    first_name = "ÉLODIE"        # GN
    profession_code = "10"       # TRE_G15 code; optional (staff cards have none)
    profession_label = "Médecin" # certificate title
    structure_id = "10B0012345"  # optional: OU, idNat_Struct of the structure
    structure_name = "HÔPITAL…"  # optional: O
    locality = "Paris (75)"      # optional: ST

    [certificates]               # optional; defaults shown
    issuer = "FORT PERSONNES"    # CPS/CPF: FORT PERSONNES, CPE/CPA: STANDARD PERSONNES
    validity = "valid"           # "valid" | "expired" (see TestPKI for dates)
    revoked = false
    revocation_reason = "keyCompromise"  # RFC 5280 CRLReason name, when revoked
    revoked_days_ago = 30        # days before the PKI reference time (> 0, < 365;
                                 # fractions allowed), when revoked

    [behaviour]                  # optional; what no real-card trace settles
    over_long_le = "6700"        # READ BINARY past the end: "6700" | "6Cxx" | "6282"
    get_response_max = 231       # largest Le of a GET RESPONSE (0xE7 .. 256)
    pkcs15_paths = "fid"         # ODF/CDF paths: "fid" | "app-path" | "absolute"

Revocation dates are relative to the PKI *reference time* (see
:mod:`cps.emulator.pki`), not to the wall clock, so that CRLs and OCSP answers
are reproducible. PIN and PUK never appear in a profile's ``repr``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .. import luhn
from ..errors import CpsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CARD_ISSUER_ID",
    "CARD_TYPE_CODES",
    "Behaviour",
    "REVOCATION_REASONS",
    "CardProfile",
    "GENERATIONS",
    "CertificateSpec",
    "Holder",
    "ProfileError",
    "load_profile",
    "load_profile_file",
    "luhn_check_digit",
    "luhn_valid",
    "profile_names",
]

#: IAS issuer number of the ANS, prefix of the card PAN in EF.SN.ICC.
CARD_ISSUER_ID = "8025000001"

#: card generations a profile may name
GENERATIONS = ("cps3", "cps4")

PIN_MAX_TRIES = 3
PUK_MAX_TRIES = 10
UNBLOCK_MAX_USES = 100

#: Value of the private certificate extension 1.2.250.1.71.1.2.2 per card type.
#: Inferred, not documented: the one observed TEST CPE certificate carries 2,
#: which matches the order CPS, CPF, CPE, CPA of the card type table
#: (TRE_R87-TypeCarte).
CARD_TYPE_CODES: Mapping[str, int] = {"CPS": 0, "CPF": 1, "CPE": 2, "CPA": 3}

#: Default issuing CA per card type (practitioners under FORT, staff under STANDARD).
DEFAULT_ISSUER: Mapping[str, str] = {
    "CPS": "FORT PERSONNES",
    "CPF": "FORT PERSONNES",
    "CPE": "STANDARD PERSONNES",
    "CPA": "STANDARD PERSONNES",
}

#: CRLReason names accepted in profiles (those of RFC 5280, as spelled by
#: ``cryptography.x509.ReasonFlags`` values).
REVOCATION_REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
)

_IDNAT = re.compile(r"^(0|1|3|4|5|6|8)[0-9A-Z]+(/[0-9A-Za-z]+)?$")
_ISSUERS = ("FORT PERSONNES", "STANDARD PERSONNES", "ELEMENTAIRE PERSONNES")


class ProfileError(CpsError):
    """A card profile is unknown or malformed.

    :param message: what is wrong.
    :param profile: name of the profile (or path of its file).
    """

    def __init__(self, message: str, profile: str | None = None) -> None:
        super().__init__(f"{profile}: {message}" if profile else message)
        self.profile = profile


# the one Luhn implementation, under the names this module has always offered
luhn_check_digit = luhn.check_digit
luhn_valid = luhn.is_valid


@dataclass(frozen=True)
class Holder:
    """The card holder, as written in the certificates' subject."""

    #: idNat_PS (subject CN, UPN local part): ``8``+RPPS, ``0``+ADELI, ``3``+FINESS/id…
    idnat: str
    #: surname (SN)
    last_name: str
    #: given name (GN)
    first_name: str
    #: profession label (subject ``title``), e.g. "Médecin"
    profession_label: str
    #: TRE_G15 profession code, e.g. "10"; ``None`` for establishment staff
    profession_code: str | None = None
    #: idNat_Struct of the structure (subject OU), e.g. "10B0012345"
    structure_id: str | None = None
    #: structure name (subject O)
    structure_name: str | None = None
    #: locality of the structure (subject ST), e.g. "Paris (75)"
    locality: str | None = None


@dataclass(frozen=True)
class CertificateSpec:
    """What the test PKI must issue for a card."""

    #: short name of the issuing CA, e.g. "FORT PERSONNES"
    issuer: str
    #: "valid" or "expired" (dates relative to the PKI reference time)
    validity: str = "valid"
    #: whether the card certificates are revoked
    revoked: bool = False
    #: CRLReason name (see :data:`REVOCATION_REASONS`) when revoked
    revocation_reason: str | None = None
    #: revocation date = PKI reference time minus this many days, when revoked
    revoked_days_ago: float | None = None


#: READ BINARY asking past the end of a file: what a card may answer.
OVER_LONG_LE = ("6700", "6Cxx", "6282")
#: How the PKCS#15 files name the files they point to.
PKCS15_PATHS = ("fid", "app-path", "absolute")


@dataclass(frozen=True)
class Behaviour:
    """Card behaviour no real-card trace settles (docs/emulator.md, "Variants").

    The defaults are the strictest: the library must work with every variant,
    so it can depend on none of them.
    """

    #: READ BINARY past the end of the file: ``"6700"`` refused (default),
    #: ``"6Cxx"`` the number of bytes left, ``"6282"`` the bytes left with
    #: "end of file reached"
    over_long_le: str = "6700"
    #: the largest Le a GET RESPONSE may ask; more is refused with ``6700``.
    #: Default 231 (0xE7), what the Cryptolib asks in a real trace; up to 256
    get_response_max: int = 0xE7
    #: paths in the ODF and the CDF: ``"fid"`` a FID of the application DF
    #: (default), ``"app-path"`` ``0001xxxx``, ``"absolute"`` ``3F000001xxxx``
    pkcs15_paths: str = "fid"


@dataclass(frozen=True)
class CardProfile:
    """An emulated card, loaded from a TOML profile (see the module docstring).

    The PIN and the unblocking code are excluded from ``repr`` so that they do
    not leak into logs or test reports.
    """

    #: profile name, e.g. "cps3-medecin"
    name: str
    #: one line for humans
    description: str
    #: "contact" or "contactless"
    interface: str
    #: CPS, CPF, CPE or CPA
    card_type: str
    #: card number without issuer prefix nor check digit, e.g. "2990000101"
    card_number: str
    holder: Holder
    certificates: CertificateSpec
    #: cardholder PIN ("code porteur"); ``None`` on contactless cards
    pin: str | None = field(default=None, repr=False)
    #: unblocking code ("code de déblocage"); ``None`` on contactless cards
    puk: str | None = field(default=None, repr=False)
    pin_tries_left: int = PIN_MAX_TRIES
    puk_tries_left: int = PUK_MAX_TRIES
    unblock_uses_left: int = UNBLOCK_MAX_USES
    #: what no trace settles (defaults: the strictest)
    behaviour: Behaviour = field(default_factory=Behaviour)
    #: card generation: ``"cps3"`` (IAS-ECC) or ``"cps4"`` (NXP ChipDoc: certificates
    #: valid six years, RSA-PSS, spoken to only through PKCS#11 -- docs/emulator.md)
    generation: str = "cps3"

    @property
    def cps4(self) -> bool:
        """True for a CPS4 profile."""
        return self.generation == "cps4"

    @property
    def contactless(self) -> bool:
        """True for a contactless profile (technical key, no PIN)."""
        return self.interface == "contactless"

    @property
    def pin_blocked(self) -> bool:
        """True when no PIN try is left."""
        return self.pin is not None and self.pin_tries_left == 0

    @property
    def pan(self) -> str:
        """Card PAN as stored in EF.SN.ICC: issuer id + card number + Luhn digit."""
        digits = CARD_ISSUER_ID + self.card_number
        return digits + luhn_check_digit(digits)

    @property
    def issuer_card_id(self) -> str:
        """Value of certificate extension 1.2.250.1.71.1.2.3: ``8025000001/<card number>``."""
        return f"{CARD_ISSUER_ID}/{self.card_number}"

    @property
    def card_type_code(self) -> int:
        """Value of certificate extension 1.2.250.1.71.1.2.2 (see :data:`CARD_TYPE_CODES`)."""
        return CARD_TYPE_CODES[self.card_type]


# -- loading -------------------------------------------------------------------


def _bundled() -> Any:
    # not "profiles": a sibling of profiles.py would look like a package
    return resources.files(__package__ or "cps.emulator").joinpath("card-profiles")


def profile_names(generation: str | None = "cps3") -> list[str]:
    """Names of the bundled profiles of one card generation, sorted.

    :param generation: ``"cps3"`` (default: the cards every APDU-level fixture,
        list and golden output of this project was written for), ``"cps4"``, or
        ``None`` for all. The generation is the name's prefix (checked by the
        profile tests).
    """
    if generation is not None and generation not in GENERATIONS:
        raise ValueError(f"generation must be one of {', '.join(GENERATIONS)} or None")
    return sorted(
        entry.name[: -len(".toml")]
        for entry in _bundled().iterdir()
        if entry.name.endswith(".toml")
        and (generation is None or entry.name.startswith(generation + "-"))
    )


def load_profile(name: str) -> CardProfile:
    """Load a bundled profile by name.

    :param name: profile name, e.g. ``"cps3-medecin"`` (see :func:`profile_names`).
    :raises ProfileError: unknown name or malformed profile.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name or ""):
        raise ProfileError("invalid profile name", name)
    entry = _bundled().joinpath(f"{name}.toml")
    if not entry.is_file():
        raise ProfileError(f"unknown profile; known: {', '.join(profile_names(None))}", name)
    return parse_profile(entry.read_text(encoding="utf-8"), name)


def load_profile_file(path: str | Path, name: str | None = None) -> CardProfile:
    """Load a profile from a TOML file of one's own.

    :param path: the file.
    :param name: profile name; defaults to the file name without ``.toml``.
    :raises ProfileError: unreadable or malformed profile.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot read profile: {exc.strerror}", str(path)) from exc
    return parse_profile(text, name or path.stem)


def parse_profile(text: str, name: str) -> CardProfile:
    """Parse and check the TOML text of a profile.

    :param text: TOML document following the schema of this module.
    :param name: the profile's name.
    :raises ProfileError: malformed profile.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"invalid TOML: {exc}", name) from exc
    return _Checker(name).profile(data)


class _Checker:
    """Turns a TOML mapping into a :class:`CardProfile`, with precise errors."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, message: str) -> ProfileError:
        return ProfileError(message, self.name)

    def keys(self, table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(f"unknown key(s) in {where}: {', '.join(unknown)}")

    def string(self, table: Mapping[str, Any], key: str, where: str, *,
               required: bool = True, pattern: str | None = None) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}.{key} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key} must be a non-empty string")
        if pattern and not re.fullmatch(pattern, value):
            raise self.fail(f"{where}.{key} = {value!r} does not match {pattern}")
        return value

    def integer(self, table: Mapping[str, Any], key: str, where: str, maximum: int) -> int:
        value = table.get(key, maximum)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise self.fail(f"{where}.{key} must be an integer between 0 and {maximum}")
        return value

    def profile(self, data: Mapping[str, Any]) -> CardProfile:
        self.keys(data, "profile", {"description", "generation", "interface", "card_type",
                                    "card_number", "pin", "puk", "counters", "holder",
                                    "certificates", "behaviour"})
        generation = data.get("generation", "cps3")
        if generation not in GENERATIONS:
            raise self.fail(f"generation must be one of {', '.join(GENERATIONS)}")
        interface = self.string(data, "interface", "profile") or ""
        if interface not in ("contact", "contactless"):
            raise self.fail("interface must be 'contact' or 'contactless'")
        if generation == "cps4" and interface != "contact":
            # The CPS4's contactless side (DESFire) has no PKCS#11 view we know of.
            raise self.fail("a cps4 profile is a contact card")
        card_type = self.string(data, "card_type", "profile") or ""
        if card_type not in CARD_TYPE_CODES:
            raise self.fail(f"card_type must be one of {', '.join(CARD_TYPE_CODES)}")
        # Secrets are checked without echoing them in error messages.
        pin, puk = data.get("pin"), data.get("puk")
        counters = data.get("counters", {})
        if interface == "contactless":
            if pin is not None or puk is not None or "counters" in data:
                raise self.fail("a contactless profile has no PIN, PUK nor counters")
        else:
            if not (isinstance(pin, str) and re.fullmatch(r"[0-9]{4}", pin)):
                raise self.fail("pin must be a string of 4 digits")
            if not (isinstance(puk, str) and re.fullmatch(r"[0-9]{8}", puk)):
                raise self.fail("puk must be a string of 8 digits")
        if not isinstance(counters, dict):
            raise self.fail("[counters] must be a table")
        self.keys(counters, "counters", {"pin_tries_left", "puk_tries_left",
                                         "unblock_uses_left"})
        holder = self.holder(data.get("holder"))
        return CardProfile(
            name=self.name,
            description=self.string(data, "description", "profile") or "",
            interface=interface,
            card_type=card_type,
            card_number=self.string(data, "card_number", "profile",
                                    pattern=r"[0-9]{8,10}") or "",
            holder=holder,
            certificates=self.certificates(data.get("certificates", {}), card_type),
            pin=pin,
            puk=puk,
            pin_tries_left=self.integer(counters, "pin_tries_left", "counters", PIN_MAX_TRIES),
            puk_tries_left=self.integer(counters, "puk_tries_left", "counters", PUK_MAX_TRIES),
            unblock_uses_left=self.integer(counters, "unblock_uses_left", "counters",
                                           UNBLOCK_MAX_USES),
            behaviour=self.behaviour(data.get("behaviour", {})),
            generation=generation,
        )

    def behaviour(self, table: Any) -> Behaviour:
        where = "behaviour"
        if not isinstance(table, dict):
            raise self.fail("[behaviour] must be a table")
        self.keys(table, where, {"over_long_le", "get_response_max", "pkcs15_paths"})
        default = Behaviour()
        over_long = table.get("over_long_le", default.over_long_le)
        if over_long not in OVER_LONG_LE:
            raise self.fail(f"behaviour.over_long_le must be one of {', '.join(OVER_LONG_LE)}")
        paths = table.get("pkcs15_paths", default.pkcs15_paths)
        if paths not in PKCS15_PATHS:
            raise self.fail(f"behaviour.pkcs15_paths must be one of {', '.join(PKCS15_PATHS)}")
        maximum = table.get("get_response_max", default.get_response_max)
        if isinstance(maximum, bool) or not isinstance(maximum, int) \
                or not 1 <= maximum <= 256:
            raise self.fail("behaviour.get_response_max must be an integer between 1 and 256")
        return Behaviour(over_long_le=over_long, get_response_max=maximum,
                         pkcs15_paths=paths)

    def holder(self, table: Any) -> Holder:
        if not isinstance(table, dict):
            raise self.fail("[holder] table is required")
        where = "holder"
        self.keys(table, where, {"idnat", "last_name", "first_name", "profession_code",
                                 "profession_label", "structure_id", "structure_name",
                                 "locality"})
        idnat = self.string(table, "idnat", where) or ""
        if not _IDNAT.fullmatch(idnat):
            raise self.fail(f"holder.idnat {idnat!r} is not an idNat_PS")
        return Holder(
            idnat=idnat,
            last_name=self.string(table, "last_name", where) or "",
            first_name=self.string(table, "first_name", where) or "",
            profession_label=self.string(table, "profession_label", where) or "",
            profession_code=self.string(table, "profession_code", where, required=False,
                                        pattern=r"[0-9]{2}"),
            structure_id=self.string(table, "structure_id", where, required=False),
            structure_name=self.string(table, "structure_name", where, required=False),
            locality=self.string(table, "locality", where, required=False),
        )

    def certificates(self, table: Any, card_type: str) -> CertificateSpec:
        where = "certificates"
        if not isinstance(table, dict):
            raise self.fail("[certificates] must be a table")
        self.keys(table, where, {"issuer", "validity", "revoked", "revocation_reason",
                                 "revoked_days_ago"})
        issuer = table.get("issuer", DEFAULT_ISSUER[card_type])
        if issuer not in _ISSUERS:
            raise self.fail(f"certificates.issuer must be one of {', '.join(_ISSUERS)}")
        validity = table.get("validity", "valid")
        if validity not in ("valid", "expired"):
            raise self.fail("certificates.validity must be 'valid' or 'expired'")
        revoked = table.get("revoked", False)
        if not isinstance(revoked, bool):
            raise self.fail("certificates.revoked must be true or false")
        reason = table.get("revocation_reason")
        days = table.get("revoked_days_ago")
        if revoked:
            reason = reason or "unspecified"
            if reason not in REVOCATION_REASONS:
                raise self.fail(f"certificates.revocation_reason must be one of "
                                f"{', '.join(REVOCATION_REASONS)}")
            # Certificates start one year before the reference time: a revocation
            # must fall inside their life.
            if isinstance(days, bool) or not isinstance(days, (int, float)) \
                    or not 0 < days < 365:
                raise self.fail("certificates.revoked_days_ago must be a number of days "
                                "in ]0, 365[ for a revoked profile")
            days = float(days)
        elif reason is not None or days is not None:
            raise self.fail("revocation_reason / revoked_days_ago need revoked = true")
        if revoked and validity == "expired":
            raise self.fail("an expired profile cannot also be revoked")
        return CertificateSpec(issuer=issuer, validity=validity, revoked=revoked,
                               revocation_reason=reason, revoked_days_ago=days)
