"""A TEST PKI shaped like IGC-Santé's TEST hierarchy, for the card emulator.

.. warning::
   TEST-ONLY. Every key is derived from a public seed (see
   :mod:`cps.emulator.keys`); the certificates are trusted by nothing but
   test trust stores built from :meth:`TestPKI.anchors`.

Hierarchy (DN ``C=FR, O=ASIP-SANTE, OU=0002 187512751, OU=IGC-SANTE TEST, CN=…``,
in that order, as in the real TEST card certificate)::

    TEST AC RACINE IGC-SANTE ELEMENTAIRE   "ELEMENTAIRE"   ACR-EL-TEST
      TEST AC IGC-SANTE ELEMENTAIRE PERSONNES / ORGANISATIONS
    TEST AC RACINE IGC-SANTE STANDARD      "STANDARD"      ACR-ST-TEST
      TEST AC IGC-SANTE STANDARD PERSONNES  (CPE/CPA cards)  ACI-ST-PP-TEST
      TEST AC IGC-SANTE STANDARD ORGANISATIONS               ACI-ST-ORG-TEST
    TEST AC RACINE IGC-SANTE FORT          "FORT"          ACR-FO-TEST
      TEST AC IGC-SANTE FORT PERSONNES      (CPS/CPF cards)  ACI-FO-PP-TEST
      TEST AC IGC-SANTE FORT ORGANISATIONS                   ACI-FO-ORG-TEST

Short names ("FORT", "FORT PERSONNES"…) index :attr:`TestPKI.roots`,
:attr:`TestPKI.intermediates` and :meth:`TestPKI.ca`; the file stems name the
published files: ``<base_url>/ca/<stem>.cer``, ``<base_url>/crl/<stem>.crl``
and, for intermediates, ``<base_url>/crl/<stem>-delta.crl``.

Design decisions (details in ``docs/emulator.md``):

* Key sizes: CA keys are RSA-4096 by default, as in production
  (``ca_key_bits=2048`` remains for speed); pure-Python prime generation
  costs ~0.2 s per 2048-bit key and a few seconds per 4096-bit key, paid once
  per user: keys are cached in the PKI directory and in the shared per-user
  cache of :func:`cps.emulator.keys.shared_key_cache`. Card and OCSP
  responder keys are RSA-2048, like CPS3 keys.
* Card certificates follow the real TEST card certificates: the
  authentication certificate has keyUsage digitalSignature (critical), EKU
  clientAuth + MS smartcardLogon and the UPN ``<idnat>@carte-cps.fr``
  (``5.<SIRET>.<id>@carte-cps.fr`` on a CPA card); the signature certificate
  has keyUsage nonRepudiation (critical), EKU emailProtection and no
  subjectAltName; both carry the private GIP-CPS extensions 1.2.250.1.71.1.2.5
  (OCTET STRING 0x80), .2 (card type), .3 (``8025000001/<card number>``) and,
  when the holder has a profession, .7 (its TRE_G15 code, INTEGER).
* Dates derive from a *reference time* (default: 1 January 00:00 UTC of the
  current year), never from the clock, so that a given seed gives the same DER
  all year: CAs span reference ± 10 years; valid card certificates
  reference - 1 year .. reference + 3 years (3-year life seen on real cards
  plus one year of margin before); expired ones reference - 4 years ..
  reference - 1 year. CPS4 profiles get six years (reference - 1 .. + 5;
  expired: - 7 .. - 1), the CPS4's announced life; revocations happen
  ``revoked_days_ago`` days before the reference time.
* Serial numbers: CAs ``0x1120`` + 16 bytes (the production prefix), cards 16
  bytes (like the real TEST card), all HMAC-DRBG output keyed by the seed, the
  card number and the certificate role.
* Revocation: each CA keeps a *timeline* per serial number: the revocation
  of a revoked profile (``revoked_days_ago``), plus the events recorded by
  :meth:`TestPKI.revoke`, :meth:`TestPKI.hold` and :meth:`TestPKI.release`.
  A CRL or OCSP answer issued at ``at`` reflects exactly the events dated at
  or before ``at``, so recording an event never changes what was issued
  before it. Complete CRLs list every certificate revoked or on hold at
  ``at``; delta CRLs list what changed since their base complete CRL (by
  default the one of ``reference - 1 day``, :attr:`TestPKI.delta_base_time`),
  including ``removeFromCRL`` entries for holds lifted since then (RFC 5280
  5.3.1). OCSP answers come from a delegated responder per intermediate CA
  (roots sign their own) and follow the same timeline.
* CRL numbers (:func:`crl_number`): complete and delta CRLs share one
  increasing sequence (RFC 5280 5.2.3, 5.2.4): ``2 * t`` for a complete CRL
  issued at Unix time ``t`` (seconds), ``2 * t + 1`` for a delta, so that a
  delta issued at the same instant as a complete CRL has the higher number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import core as asn1
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from .keys import cached_rsa_key, seed_bytes, write_atomic
from .profiles import (
    CardProfile,
    CertificateSpec,
    Holder,
    load_profile,
    luhn_check_digit,
    profile_names,
)

if TYPE_CHECKING:  # loaded by the helpers that return them
    from ..auth import ChallengeIssuer, Verifier
    from ..trust import TrustStore, Validator

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_NEXT_UPDATE",
    "DELTA_BASE_AGE",
    "OID_CARD_FLAGS",
    "OID_CARD_ISSUER_ID",
    "OID_CARD_TYPE",
    "OID_MS_SMARTCARD_LOGON",
    "OID_PROFESSION",
    "OID_MS_UPN",
    "POLICY_TEST_AUTH",
    "POLICY_TEST_SIGN",
    "POLICY_TEST_TECH",
    "POLICY_TEST_TSA",
    "TSA_POLICY_TEST",
    "CardCredentials",
    "CertificateAuthority",
    "TestPKI",
    "card_upn",
    "crl_number",
    "default_reference_time",
    "timestamp_rejection",
]

DEFAULT_BASE_URL = "http://127.0.0.1:18080"

#: Policy of the real TEST authentication certificate (IGC-Santé "PC TEST").
POLICY_TEST_AUTH = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.1")
#: Emulator choice, NOT an official OID: signature certificates (no public sample).
POLICY_TEST_SIGN = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.2")
#: Emulator choice, NOT an official OID: contactless technical certificates.
POLICY_TEST_TECH = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.3")
#: Emulator choice, NOT an official OID: certificate policy of the test TSA's certificate.
POLICY_TEST_TSA = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.4")
#: Emulator choice, NOT an official OID: the TSA policy (TSTInfo ``policy``) of
#: :meth:`TestPKI.timestamp_response` tokens.
TSA_POLICY_TEST = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.5")
#: CPS URI of the TEST certification policy (informational, never fetched).
TEST_CPS_URI = "http://igc-sante.esante.gouv.fr/PC%20TEST"

OID_MS_SMARTCARD_LOGON = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")
OID_MS_UPN = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
#: Private GIP-CPS extensions seen on the TEST card certificate (non-critical).
OID_CARD_FLAGS = x509.ObjectIdentifier("1.2.250.1.71.1.2.5")  # OCTET STRING 0x80
OID_CARD_TYPE = x509.ObjectIdentifier("1.2.250.1.71.1.2.2")  # INTEGER, see CARD_TYPE_CODES
OID_CARD_ISSUER_ID = x509.ObjectIdentifier("1.2.250.1.71.1.2.3")  # "8025000001/<card>"
#: TRE_G15 profession code (INTEGER, e.g. 60 for "Infirmier"), seen on real TEST
#: practitioner certificates; absent for staff without a profession.
OID_PROFESSION = x509.ObjectIdentifier("1.2.250.1.71.1.2.7")

UPN_DOMAIN = "carte-cps.fr"
#: The complete CRL that delta CRLs refer to is issued this long before the reference time.
DELTA_BASE_AGE = timedelta(days=1)
#: Default nextUpdate - thisUpdate of CRLs and OCSP answers (IGC-Santé publishes daily).
DEFAULT_NEXT_UPDATE = timedelta(days=1)

_FORMAT_VERSION = 1
_ROLES = ("auth", "sign", "tech")
#: extendedKeyUsage per certificate role (auth and sign as on real TEST cards;
#: the contactless technical certificate has no public sample).
_CARD_EKUS: Mapping[str, list[x509.ObjectIdentifier]] = {
    "auth": [ExtendedKeyUsageOID.CLIENT_AUTH, OID_MS_SMARTCARD_LOGON],
    "sign": [ExtendedKeyUsageOID.EMAIL_PROTECTION],
    "tech": [ExtendedKeyUsageOID.CLIENT_AUTH],
}


@dataclass(frozen=True)
class _CaSpec:
    name: str
    common_name: str
    stem: str
    parent: str | None


def _specs() -> tuple[_CaSpec, ...]:
    short = {"ELEMENTAIRE": "EL", "STANDARD": "ST", "FORT": "FO"}
    roots = [_CaSpec(r, f"TEST AC RACINE IGC-SANTE {r}", f"ACR-{s}-TEST", None)
             for r, s in short.items()]
    subs = [_CaSpec(f"{r} {d}", f"TEST AC IGC-SANTE {r} {d}", f"ACI-{s}-{ds}-TEST", r)
            for r, s in short.items()
            for d, ds in (("PERSONNES", "PP"), ("ORGANISATIONS", "ORG"))]
    return tuple(roots + subs)


_CA_SPECS = _specs()


@dataclass(frozen=True)
class CertificateAuthority:
    """One CA of the test PKI, with its TEST-ONLY private key."""

    #: short name: "FORT", "FORT PERSONNES", …
    name: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)
    #: file stem of its published objects, e.g. "ACI-FO-PP-TEST"
    stem: str
    #: URL of the complete CRL it issues
    crl_url: str
    #: URL of its delta CRL (intermediates only)
    delta_crl_url: str | None
    #: URL where its own certificate is published (caIssuers of its children)
    cert_url: str
    #: short name of the issuing root, ``None`` for a root
    parent: str | None = None

    @property
    def is_root(self) -> bool:
        """True for a self-signed root."""
        return self.parent is None


@dataclass(frozen=True)
class CardCredentials:
    """Keys and certificates of one emulated card (TEST-ONLY keys).

    Every profile gets the contact-side pair (authentication, signature), as a
    real CPS3 holds them whichever interface is used; contactless profiles also
    get the technical key and "Certificat Technique CPS".
    """

    profile: CardProfile
    #: short name of the issuing CA
    issuer: str
    auth_key: rsa.RSAPrivateKey = field(repr=False)
    auth_cert: x509.Certificate = field(repr=False)
    sign_key: rsa.RSAPrivateKey = field(repr=False)
    sign_cert: x509.Certificate = field(repr=False)
    #: (intermediate, root)
    chain: tuple[x509.Certificate, x509.Certificate] = field(repr=False)
    tech_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    tech_cert: x509.Certificate | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServerCredentials:
    """A TLS server certificate of the test PKI, with its TEST-ONLY key.

    :meth:`write` puts PEM files where a server (openssl s_server, nginx) can
    read them.
    """

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)
    #: the intermediate(s) to send after the certificate
    chain: tuple[x509.Certificate, ...]
    #: the root the chain ends at (what a client trusts)
    root: x509.Certificate

    def write(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``server.pem`` (certificate then chain), ``server.key`` (PKCS#8,
        unencrypted, mode 0600) and ``root.pem``; return their paths by those names.

        :param directory: an existing directory.
        """
        base = Path(directory)
        pem = serialization.Encoding.PEM
        paths = {"server.pem": base / "server.pem", "server.key": base / "server.key",
                 "root.pem": base / "root.pem"}
        paths["server.pem"].write_bytes(b"".join(
            c.public_bytes(pem) for c in (self.certificate, *self.chain)))
        key_path = paths["server.key"]
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        paths["root.pem"].write_bytes(self.root.public_bytes(pem))
        return paths


@dataclass(frozen=True)
class _Issued:
    """What a CA knows about a certificate it issued, without building it."""

    serial: int
    card_number: str
    role: str
    revoked_at: datetime | None
    reason: x509.ReasonFlags | None


@dataclass(frozen=True)
class _Event:
    """One change in the revocation status of a serial number, from ``at`` on."""

    at: datetime
    #: "revoke" (permanent), "hold" (certificateHold) or "release" (hold lifted)
    kind: str
    #: the CRLReason of a "revoke"
    reason: x509.ReasonFlags | None = None


#: (revocationDate, reason) of a CRL entry
_Entry = tuple[datetime, x509.ReasonFlags]


def _replay(events: Iterable[_Event], until: datetime | None = None, *, strict: bool = False
            ) -> tuple[_Entry | None, datetime | None]:
    """Play a serial's events up to ``until`` (included; ``None``: all of them).

    :returns: the CRL entry in force then (``None``: not revoked, not on hold)
        and the time of the last release of a hold (``None``: none).
    :raises ValueError: with ``strict``, an event that cannot happen in the
        state it finds (revoking twice, holding a revoked or held certificate,
        releasing one that is not on hold); otherwise such events are ignored.
    """
    state: _Entry | None = None
    permanent = False
    released: datetime | None = None
    for event in sorted(events, key=lambda e: e.at):  # stable: same instant, recording order
        if until is not None and event.at > until:
            break
        if event.kind == "revoke":
            if not permanent:
                state = (event.at, event.reason or x509.ReasonFlags.unspecified)
                permanent = True
                continue
            problem = f"already revoked on {state[0].isoformat()}" if state else "revoked"
        elif event.kind == "hold":
            if state is None:
                state = (event.at, x509.ReasonFlags.certificate_hold)
                continue
            problem = ("already revoked" if permanent else "already on hold") + \
                f" since {state[0].isoformat()}"
        else:
            if state is not None and not permanent:
                state, released = None, event.at
                continue
            problem = "revoked for good, a hold cannot be lifted" if permanent \
                else "not on hold"
        if strict:
            raise ValueError(f"cannot {event.kind} at {event.at.isoformat()}: {problem}")
    return state, released


def crl_number(moment: datetime, delta: bool = False) -> int:
    """cRLNumber of the test PKI's CRL issued at ``moment``.

    ``2 * t`` for a complete CRL, ``2 * t + 1`` for a delta CRL, ``t`` being
    the Unix time in whole seconds: one increasing sequence shared by complete
    and delta CRLs (RFC 5280 5.2.3), in which a delta issued at the same second
    as a complete CRL comes after it (5.2.4). A delta's deltaCRLIndicator is
    ``crl_number(base)`` of its base complete CRL.

    :param moment: the CRL's thisUpdate (aware datetime).
    :param delta: number a delta CRL.
    """
    return 2 * int(_utc(moment).timestamp()) + (1 if delta else 0)


def default_reference_time() -> datetime:
    """1 January 00:00:00 UTC of the current year: stable all year long."""
    return datetime(datetime.now(timezone.utc).year, 1, 1, tzinfo=timezone.utc)


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) datetime")
    # ASN.1 times carry whole seconds: truncating keeps our numbers and dates equal.
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "0002 187512751"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _holder_name(profile: CardProfile) -> x509.Name:
    """Subject of a card certificate, in the attribute order of the real TEST card."""
    h = profile.holder
    rdns = [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")])]
    for oid, value in ((NameOID.STATE_OR_PROVINCE_NAME, h.locality),
                       (NameOID.ORGANIZATION_NAME, h.structure_name),
                       (NameOID.ORGANIZATIONAL_UNIT_NAME, h.structure_id),
                       (NameOID.TITLE, h.profession_label)):
        if value:
            rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
    rdns.append(x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.GIVEN_NAME, h.first_name),
        x509.NameAttribute(NameOID.COMMON_NAME, h.idnat),
        x509.NameAttribute(NameOID.SURNAME, h.last_name),
    ]))
    return x509.Name(rdns)


def card_upn(profile: CardProfile) -> str:
    """User Principal Name of a card's authentication certificate.

    ``<idnat>@carte-cps.fr``, as on the real TEST card certificates; a CPA card
    whose idNat is ``5<SIRET>/<internal id>`` gets the form observed on real
    CPA certificates, ``5.<SIRET>.<internal id>@carte-cps.fr``.

    :param profile: the card profile.
    """
    idnat = profile.holder.idnat
    if profile.card_type == "CPA" and idnat.startswith("5") and "/" in idnat:
        siret, _, internal = idnat[1:].partition("/")
        return f"5.{siret}.{internal}@{UPN_DOMAIN}"
    return f"{idnat}@{UPN_DOMAIN}"


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def _uri_points(url: str) -> list[x509.DistributionPoint]:
    return [x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)],
                                   relative_name=None, reasons=None, crl_issuer=None)]


def _cert_identity(profile: CardProfile) -> tuple[object, ...]:
    """The parts of a profile its certificates depend on (not the PIN, not the counters)."""
    return (profile.card_number, profile.card_type, profile.interface, profile.holder,
            profile.certificates, profile.generation)


class TestPKI:
    """The emulator's TEST PKI: CAs, card certificates, CRLs and OCSP answers.

    Build it with :meth:`generate`. Card certificates are issued on demand by
    :meth:`issue_card` and are a pure function of (seed, reference time,
    base URL, profile). The CAs know every card of the registered profiles
    (all bundled profiles by default, plus any profile given to
    :meth:`issue_card`), so CRLs and OCSP answers cover cards that were never
    issued in this process.

    Revocation is a timeline: besides the revoked profiles, :meth:`revoke`,
    :meth:`hold` and :meth:`release` record dated events, and a CRL or OCSP
    answer issued at ``at`` reflects exactly the events dated at or before
    ``at``. :meth:`issue_leaf` issues many cheap card-like certificates to
    revoke, e.g. to simulate months of a CA's life::

        leaf, _ = pki.issue_leaf("FORT PERSONNES", 7)
        pki.revoke("FORT PERSONNES", leaf.serial_number, day(3), x509.ReasonFlags.superseded)
        pki.hold("FORT PERSONNES", other.serial_number, day(5))
        pki.release("FORT PERSONNES", other.serial_number, day(9))
        pki.revoke("FORT", pki.ca("FORT PERSONNES").cert.serial_number, day(20),
                   x509.ReasonFlags.ca_compromise)
        pki.crl("FORT PERSONNES", day(10), delta=True, base=day(4))  # removeFromCRL
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        *,
        seed: int | bytes,
        base_url: str,
        reference_time: datetime,
        authorities: Mapping[str, CertificateAuthority],
        profiles: Iterable[CardProfile],
        key_directory: Path | None,
    ) -> None:
        """Use :meth:`generate`; this constructor only assembles loaded parts."""
        self.seed = seed
        self.base_url = base_url
        self.reference_time = reference_time
        self._cas = dict(authorities)
        self._key_directory = key_directory
        #: the directory the PKI lives in (``None`` when kept in memory)
        self.directory: Path | None = key_directory.parent if key_directory else None
        self._lock = threading.RLock()
        self._profiles: dict[str, CardProfile] = {}
        self._registry: dict[str, dict[int, _Issued]] = {name: {} for name in self._cas}
        self._issued: dict[tuple[object, ...], CardCredentials] = {}
        self._responders: dict[str, tuple[x509.Certificate, rsa.RSAPrivateKey]] = {}
        #: revoke / hold / release events by CA name, then serial, in recording order
        self._events: dict[str, dict[int, list[_Event]]] = {name: {} for name in self._cas}
        self._leaves: dict[tuple[str, int, str], tuple[x509.Certificate, rsa.RSAPrivateKey]] = {}
        self._servers: dict[str, ServerCredentials] = {}
        self._tsas: dict[str, tuple[x509.Certificate, rsa.RSAPrivateKey]] = {}
        self._tsa_counter = 0
        for profile in profiles:
            self._register(profile)

    # -- construction ----------------------------------------------------------

    @classmethod
    def generate(
        cls,
        directory: str | os.PathLike[str] | None,
        seed: int | bytes = 1,
        base_url: str = DEFAULT_BASE_URL,
        *,
        reference_time: datetime | None = None,
        ca_key_bits: int = 4096,
        profiles: Iterable[CardProfile] | None = None,
    ) -> TestPKI:
        """Create the test PKI in ``directory``, or reuse what is already there.

        The directory receives ``manifest.json``, ``keys/`` (TEST-ONLY private
        keys, PEM), ``ca/<stem>.cer`` and ``crl/<stem>[-delta].crl`` (DER),
        laid out like the URLs under ``base_url`` so that a static HTTP server
        rooted there serves them. CA certificates are reused when the manifest
        records the same seed, base URL, reference time and key size; CRLs are
        re-issued at the current time on every call (it costs a few
        milliseconds).

        :param directory: where to keep files; ``None`` keeps everything in memory.
        :param seed: the PKI seed; same seed, same keys and certificates.
        :param base_url: HTTP root of the CRL / OCSP / CA certificate URLs
            written in certificates (no trailing slash needed).
        :param reference_time: aware datetime all validity and revocation
            dates derive from; default :func:`default_reference_time`.
        :param ca_key_bits: CA key size: 4096 (default, as in production;
            ~20-30 s for the nine keys on first use, then cached per user,
            see :func:`cps.emulator.keys.shared_key_cache`), 3072, or 2048
            (faster signatures, for tests that issue many objects).
        :param profiles: profiles whose revocations the CAs publish; default
            every bundled profile.
        """
        if ca_key_bits not in (2048, 3072, 4096):
            raise ValueError("ca_key_bits must be 2048, 3072 or 4096")
        seed_bytes(seed)  # type check early
        base_url = base_url.rstrip("/")
        reference = _utc(reference_time or default_reference_time())
        folder = Path(directory) if directory is not None else None
        key_dir = folder / "keys" if folder is not None else None
        manifest = {
            "format": _FORMAT_VERSION,
            "seed": {"int": seed} if isinstance(seed, int) else {"hex": seed.hex()},
            "base_url": base_url,
            "reference_time": reference.isoformat(),
            "ca_key_bits": ca_key_bits,
            "cas": {s.name: f"ca/{s.stem}.cer" for s in _CA_SPECS},
        }
        authorities = None
        if folder is not None:
            authorities = _load_authorities(folder, manifest, seed, base_url, ca_key_bits)
        if authorities is None:
            authorities = _create_authorities(seed, base_url, reference, ca_key_bits, key_dir)
            if folder is not None:
                for ca in authorities.values():
                    write_atomic(folder / "ca" / f"{ca.stem}.cer",
                                 ca.cert.public_bytes(serialization.Encoding.DER))
                write_atomic(folder / "manifest.json",
                             json.dumps(manifest, indent=2, sort_keys=True).encode())
        if profiles is None:
            profiles = [load_profile(name) for name in profile_names()]
        pki = cls(seed=seed, base_url=base_url, reference_time=reference,
                  authorities=authorities, profiles=profiles, key_directory=key_dir)
        if folder is not None:
            pki.publish(folder)
        return pki

    # -- CAs -------------------------------------------------------------------

    @property
    def roots(self) -> dict[str, x509.Certificate]:
        """Root certificates by short name (ELEMENTAIRE, STANDARD, FORT)."""
        return {n: ca.cert for n, ca in self._cas.items() if ca.is_root}

    @property
    def intermediates(self) -> dict[str, x509.Certificate]:
        """Intermediate CA certificates by short name ("FORT PERSONNES"…)."""
        return {n: ca.cert for n, ca in self._cas.items() if not ca.is_root}

    def ca(self, name: str) -> CertificateAuthority:
        """Return a CA by short name.

        :param name: e.g. ``"FORT"`` or ``"FORT PERSONNES"`` (case-insensitive).
        :raises KeyError: unknown name.
        """
        try:
            return self._cas[name.upper()]
        except KeyError:
            raise KeyError(f"unknown CA {name!r}; known: {', '.join(self._cas)}") from None

    def anchors(self) -> list[x509.Certificate]:
        """The three root certificates, to build a test trust store."""
        return list(self.roots.values())

    # -- ready-made trust objects (for tests, users' CI included) ----------------

    def trust_store(self, *, intermediates: bool = True, name: str = "TEST PKI") -> TrustStore:
        """A :class:`cps.trust.TrustStore` trusting this PKI's three roots.

        TEST-ONLY: never give it to production code. Equivalent to
        ``TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())``.

        :param intermediates: offer the six intermediate CAs to path building
            (default); ``False`` gives the roots only, so that the intermediate
            must come with the certificate (a CMS, ``intermediates=``, AIA).
        :param name: the store's label in messages.
        """
        from ..trust.anchors import TrustStore

        return TrustStore.from_certificates(
            self.anchors(), self.intermediates.values() if intermediates else (), name=name)

    def crls(self, at: datetime | None = None, *, deltas: bool = False,
             next_update: timedelta = DEFAULT_NEXT_UPDATE,
             base: datetime | None = None) -> list[bytes]:
        """The complete CRL (DER) of every CA, all issued at ``at``: the
        intermediates' first, then the roots'; with ``deltas``, then the delta
        CRL of each intermediate (the CAs that publish deltas).

        Equivalent to ``[pki.crl(n, at) for n in [*pki.intermediates, *pki.roots]]``
        (plus ``[pki.crl(n, at, delta=True) for n in pki.intermediates]``), with
        one issue time for all.

        :param at: issue time (thisUpdate); default now.
        :param deltas: add the delta CRLs.
        :param next_update: nextUpdate - thisUpdate, for every CRL.
        :param base: issue time of the deltas' base complete CRL (see :meth:`crl`);
            only with ``deltas``.
        :raises ValueError: ``base`` without ``deltas``, or after ``at``.
        """
        if base is not None and not deltas:
            raise ValueError("base is the base CRL of the delta CRLs: give deltas=True")
        at = _utc(at)
        names = list(self.intermediates) + list(self.roots)
        out = [self.crl(n, at, next_update=next_update) for n in names]
        if deltas:
            out += [self.crl(ca.name, at, delta=True, next_update=next_update, base=base)
                    for ca in self._cas.values() if ca.delta_crl_url]
        return out

    def validator(self, at: datetime | None = None, *, deltas: bool = False,
                  **kwargs: object) -> Validator:
        """A :class:`cps.trust.Validator` for this PKI: :meth:`trust_store` and
        :meth:`crls` issued at ``at`` (default now), hard-fail revocation.

        TEST-ONLY. ``at`` is when the CRLs are issued, not the validation time
        (``validate(at=...)``, or ``clock=``). Keyword arguments go to the
        Validator (``revocation``, ``clock``, ``fetcher``, ``ocsp``...); ``crls``
        or ``store`` given there replace this PKI's.

        :param deltas: add the intermediates' delta CRLs.
        """
        from ..trust.validate import Validator

        store = kwargs.pop("store", None) or self.trust_store()
        crls = kwargs.pop("crls", None)
        if crls is None:
            crls = self.crls(at, deltas=deltas)
        return Validator(store, crls, **kwargs)  # type: ignore[arg-type]

    def verifier(self, origins: Iterable[str] | str, *, issuer: ChallengeIssuer | None = None,
                 validator: Validator | None = None, **kwargs: object) -> Verifier:
        """A :class:`cps.auth.Verifier` accepting tokens of this PKI's cards.

        TEST-ONLY. It checks nonces of ``issuer`` (default: a new
        :class:`~cps.auth.ChallengeIssuer` on a :class:`~cps.auth.MemoryNonceStore`);
        ``ChallengeIssuer(verifier.store)`` issues nonces it accepts::

            verifier = pki.verifier(["https://app.test"])
            nonce = ChallengeIssuer(verifier.store).issue().nonce
            result = verifier.verify(card.auth_token(nonce, "https://app.test"),
                                     origin="https://app.test")

        :param origins: the allowed origins (one string, or several).
        :param issuer: the challenge issuer whose store and ``issuer_id`` to use.
        :param validator: default :meth:`validator` (CRLs issued now).
        :param kwargs: more :class:`~cps.auth.Verifier` arguments (``clock``,
            ``clock_skew``, ``known_certificates``).
        """
        from ..auth import ChallengeIssuer, MemoryNonceStore, Verifier

        if isinstance(origins, str):
            origins = [origins]
        if issuer is None:
            issuer = ChallengeIssuer(MemoryNonceStore())
        if validator is None:
            validator = self.validator()
        kwargs.setdefault("issuer_id", issuer.issuer_id)
        return Verifier(validator, issuer.store, origins, **kwargs)  # type: ignore[arg-type]

    @property
    def delta_base_time(self) -> datetime:
        """Issue time of the complete CRL that delta CRLs are based on."""
        return self.reference_time - DELTA_BASE_AGE

    # -- cards -----------------------------------------------------------------

    def issue_card(self, profile: CardProfile | str) -> CardCredentials:
        """Issue (or return the already issued) keys and certificates of a card.

        Deterministic: the same seed, reference time, base URL and profile give
        DER-identical certificates. The profile is registered with its CA, so
        that its revocation (if any) shows in CRLs and OCSP answers; a profile
        with the card number of a registered one replaces it.

        :param profile: a profile or the name of a bundled one.
        """
        if isinstance(profile, str):
            profile = load_profile(profile)
        identity = _cert_identity(profile)
        with self._lock:
            self._register(profile)  # no-op unless another profile took this card number
            cached = self._issued.get(identity)
            if cached is not None:
                return cached if cached.profile == profile else \
                    dataclasses.replace(cached, profile=profile)
            ca = self.ca(profile.certificates.issuer)
            assert ca.parent is not None  # noqa: S101 - the profile loader checks issuers
            root = self.ca(ca.parent)
            made = {}
            for role in _ROLES:
                if role == "tech" and not profile.contactless:
                    continue
                key = self._key(f"card/{profile.card_number}/{role}", 2048)
                made[role] = (key, self._card_certificate(profile, role, key, ca))
            credentials = CardCredentials(
                profile=profile, issuer=ca.name,
                auth_key=made["auth"][0], auth_cert=made["auth"][1],
                sign_key=made["sign"][0], sign_cert=made["sign"][1],
                chain=(ca.cert, root.cert),
                tech_key=made["tech"][0] if "tech" in made else None,
                tech_cert=made["tech"][1] if "tech" in made else None,
            )
            self._issued[identity] = credentials
            return credentials

    def card_validity(self, profile: CardProfile) -> tuple[datetime, datetime]:
        """(notBefore, notAfter) of a profile's certificates.

        :param profile: the card profile.
        """
        ref = self.reference_time
        # CPS4: six years ("leur validité est portée à 6 ans", public pages; the span of
        # the certificates themselves is not confirmed), starting a year before the
        # reference time like a CPS3's so that revoked profiles keep their dates.
        if profile.generation == "cps4":
            if profile.certificates.validity == "expired":
                return _add_years(ref, -7), _add_years(ref, -1)
            return _add_years(ref, -1), _add_years(ref, 5)
        if profile.certificates.validity == "expired":
            return _add_years(ref, -4), _add_years(ref, -1)
        return _add_years(ref, -1), _add_years(ref, 3)

    def card_serial(self, profile: CardProfile, role: str) -> int:
        """Serial number of a card certificate: 16 bytes derived from the seed.

        :param profile: the card profile.
        :param role: ``"auth"``, ``"sign"`` or ``"tech"``.
        """
        if role not in _ROLES:
            raise ValueError(f"unknown certificate role {role!r}")
        return self._serial(f"serial/card/{profile.card_number}/{role}")

    def issue_leaf(self, ca_name: str, index: int, role: str = "auth"
                   ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """Issue (or return) the ``index``-th simulated card certificate of an intermediate CA.

        For simulations that need many revocable certificates: the leaf is
        built like a card certificate of ``role`` (same extensions, policies,
        URLs and validity as :meth:`issue_card`'s), for a synthetic holder
        whose card number and idNat derive from the CA and ``index``
        (practitioner "Médecin" cards under FORT and ELEMENTAIRE, staff
        cards under STANDARD). Deterministic: same seed, same DER. Each
        (CA, index, role) has its own serial number and subject card number;
        the CA knows the serial (OCSP answers ``good``, and :meth:`revoke`,
        :meth:`hold` and :meth:`release` accept it).

        .. note::
           For speed, every leaf of the PKI shares ONE TEST-ONLY RSA-2048 key
           pair (derived once, then cached): the certificates are distinct,
           their keys are not, so a signature made for one leaf verifies under
           any other. Use :meth:`issue_card` when each card needs its own key.

        :param ca_name: short name of an intermediate CA, e.g. ``"FORT PERSONNES"``.
        :param index: 0 to 99,999,999.
        :param role: ``"auth"``, ``"sign"`` or ``"tech"``.
        :returns: ``(certificate, private key)``.
        :raises ValueError: a root CA, an index out of range or an unknown role.
        """
        ca = self.ca(ca_name)
        if ca.is_root:
            raise ValueError(f"{ca.name} is a root: card certificates come from intermediates")
        if role not in _ROLES:
            raise ValueError(f"unknown certificate role {role!r}")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 10 ** 8:
            raise ValueError("leaf index must be an integer in [0, 10**8)")
        with self._lock:
            made = self._leaves.get((ca.name, index, role))
            if made is None:
                profile = self._leaf_profile(ca, index)
                serial = self._serial(f"serial/leaf/{profile.card_number}/{role}")
                key = self._key("leaf/shared", 2048)
                cert = self._card_certificate(profile, role, key, ca, serial=serial)
                made = self._leaves[(ca.name, index, role)] = (cert, key)
                self._registry[ca.name][serial] = _Issued(
                    serial, f"leaf:{profile.card_number}", role, None, None)
            return made

    def issue_server(self, hostnames: Iterable[str] = ("localhost", "127.0.0.1"), *,
                     ca_name: str = "STANDARD ORGANISATIONS", expired: bool = False
                     ) -> ServerCredentials:
        """Issue (or return) a TLS server certificate, as IGC-Santé's ORGANISATIONS CAs do
        for health services (the "serveur applicatif" certificates).

        subjectAltName lists ``hostnames`` (DNS names, and IP addresses for
        those that parse as one); keyUsage digitalSignature + keyEncipherment,
        extendedKeyUsage serverAuth; CRL, delta, OCSP and caIssuers pointers
        like a card certificate's. Its key is RSA-2048 (TEST-ONLY), one per host list.
        Deterministic: same seed and names, same DER. Valid from a year before
        the reference time to three years after (``expired``: ended a year
        before it), so peers that read the real clock (openssl, nginx, curl)
        accept it.

        :param hostnames: the names the certificate is valid for.
        :param ca_name: an intermediate CA; ``"STANDARD ORGANISATIONS"`` by default.
        :param expired: issue an expired certificate instead.
        :raises ValueError: no host name, or a root CA.
        """
        names = tuple(hostnames)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError("issue_server needs at least one host name")
        ca = self.ca(ca_name)
        if ca.is_root:
            raise ValueError(f"{ca.name} is a root: server certificates come from intermediates")
        label = f"server/{ca.name}/{','.join(names)}/{'expired' if expired else 'valid'}"
        with self._lock:
            made = self._servers.get(label)
            if made is not None:
                return made
            key = self._key(f"server/{','.join(names)}", 2048)
            serial = self._serial(f"serial/{label}")
            ref = self.reference_time
            not_before, not_after = ((_add_years(ref, -4), _add_years(ref, -1)) if expired
                                     else (_add_years(ref, -1), _add_years(ref, 3)))
            alt: list[x509.GeneralName] = []
            for name in names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt.append(x509.DNSName(name))
            builder = (
                x509.CertificateBuilder()
                .serial_number(serial)
                .issuer_name(ca.cert.subject)
                .subject_name(x509.Name([
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TEST SERVICE DE SANTE"),
                    x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                ]))
                .public_key(key.public_key())
                .not_valid_before(not_before)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=True, key_encipherment=True),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            )
            cert = self._pointers(builder, key, ca).sign(ca.key, hashes.SHA256())
            root = self._cas[ca.parent] if ca.parent else ca
            made = ServerCredentials(certificate=cert, key=key, chain=(ca.cert,),
                                     root=root.cert)
            self._servers[label] = made
            self._registry[ca.name][serial] = _Issued(serial, label, "server", None, None)
            return made

    # -- timestamps (RFC 3161) -------------------------------------------------------

    def issue_tsa(self, ca_name: str = "STANDARD ORGANISATIONS"
                  ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """Issue (or return) the certificate of a TEST Time-Stamping Authority.

        As RFC 3161 2.3 requires: extendedKeyUsage id-kp-timeStamping only,
        **critical**; keyUsage digitalSignature + nonRepudiation (critical);
        certificate policy :data:`POLICY_TEST_TSA` (an emulator choice, not an
        official OID); CRL, delta, OCSP and caIssuers pointers like a card
        certificate's (the CA knows its serial: OCSP answers ``good``,
        :meth:`revoke` accepts it). Its key is RSA-2048 (TEST-ONLY), one per CA.
        Deterministic: same seed, same DER. Valid from a year before the
        reference time to three years after, like :meth:`issue_server`.

        :param ca_name: an intermediate CA; ``"STANDARD ORGANISATIONS"`` by default.
        :returns: ``(certificate, private key)``.
        :raises ValueError: a root CA.
        """
        ca = self.ca(ca_name)
        if ca.is_root:
            raise ValueError(f"{ca.name} is a root: TSA certificates come from intermediates")
        with self._lock:
            made = self._tsas.get(ca.name)
            if made is not None:
                return made
            key = self._key(f"tsa/{ca.name}", 2048)
            serial = self._serial(f"serial/tsa/{ca.name}")
            ref = self.reference_time
            builder = (
                x509.CertificateBuilder()
                .serial_number(serial)
                .issuer_name(ca.cert.subject)
                .subject_name(x509.Name([
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TEST SERVICE DE SANTE"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"TEST HORODATAGE {ca.name}"),
                ]))
                .public_key(key.public_key())
                .not_valid_before(_add_years(ref, -1))
                .not_valid_after(_add_years(ref, 3))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=True, content_commitment=True),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                               critical=True)
                .add_extension(x509.CertificatePolicies([
                    x509.PolicyInformation(POLICY_TEST_TSA, [TEST_CPS_URI])]), critical=False)
            )
            cert = self._pointers(builder, key, ca).sign(ca.key, hashes.SHA256())
            made = self._tsas[ca.name] = (cert, key)
            self._registry[ca.name][serial] = _Issued(serial, f"tsa/{ca.name}", "tsa",
                                                      None, None)
            return made

    def timestamp_response(self, request_der: bytes, at: datetime | None = None, *,
                           ca_name: str = "STANDARD ORGANISATIONS") -> bytes:
        """Answer an RFC 3161 TimeStampReq (DER in, DER TimeStampResp out), as a TSA would.

        The token is a CMS SignedData (version 3) over a TSTInfo: policy
        :data:`TSA_POLICY_TEST` (1.2.250.1.213.1.7.2.1.1.1.5, an emulator
        choice under the TEST arc, NOT an official OID), the request's
        message imprint, a serial number unique in this process (Unix time
        << 32 | a counter), genTime ``at`` (whole seconds) with an accuracy of
        one second, the request's nonce, ``tsa`` = the TSA's directory name.
        One SignerInfo by :meth:`issue_tsa`'s key (RSA PKCS#1 v1.5, SHA-256)
        with the signed attributes contentType id-ct-TSTInfo, signingTime,
        messageDigest and ESS signing-certificate-v2 (RFC 5035); the TSA
        certificate and its CA are included when the request says ``certReq``.

        Refusals are TimeStampResps with status rejection and a failInfo:
        ``badDataFormat`` (undecodable, or a digest of the wrong length),
        ``badAlg`` (a hash other than SHA-256/384/512), ``unacceptedPolicy``
        (a reqPolicy other than ours), ``unacceptedExtension`` (extensions).

        :param request_der: the DER TimeStampReq.
        :param at: the genTime (aware); default now.
        :param ca_name: the CA of the TSA certificate (see :meth:`issue_tsa`).
        """
        from asn1crypto import algos, cms, tsp
        from asn1crypto import x509 as asn1_x509
        from cryptography.hazmat.primitives.asymmetric import padding

        from ..timestamp import TimeStampResp

        try:
            request = tsp.TimeStampReq.load(bytes(request_der), strict=True)
            fields = request.native
            algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].dotted
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            return timestamp_rejection("bad_data_format", "undecodable TimeStampReq")
        hash_name = _TSA_HASHES.get(algorithm)
        imprint = fields["message_imprint"]["hashed_message"]
        if fields["version"] != "v1":
            return timestamp_rejection("bad_request", "version 1 only")
        if hash_name is None:
            return timestamp_rejection("bad_alg", f"hash {algorithm} not accepted")
        if len(imprint) != hashlib.new(hash_name).digest_size:
            return timestamp_rejection("bad_data_format", "digest of the wrong length")
        policy = TSA_POLICY_TEST.dotted_string
        if fields["req_policy"] is not None and fields["req_policy"] != policy:
            return timestamp_rejection("unaccepted_policy", "policy not offered")
        if fields["extensions"]:
            return timestamp_rejection("unaccepted_extensions", "no extension is supported")
        gen_time = _utc(at)
        cert, key = self.issue_tsa(ca_name)
        ca = self.ca(ca_name)
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        tsa_cert = asn1_x509.Certificate.load(cert_der)
        with self._lock:
            self._tsa_counter += 1
            serial = (int(gen_time.timestamp()) << 32) | (self._tsa_counter & 0xFFFFFFFF)
        tst: dict[str, object] = {
            "version": "v1",
            "policy": TSA_POLICY_TEST.dotted_string,
            "message_imprint": {"hash_algorithm": {"algorithm": algorithm, "parameters": None},
                                "hashed_message": imprint},
            "serial_number": serial,
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "tsa": asn1_x509.GeneralName({"directory_name": tsa_cert.subject}),
        }
        if fields["nonce"] is not None:
            tst["nonce"] = fields["nonce"]
        tst_info = tsp.TSTInfo(tst)
        attributes = cms.CMSAttributes([
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "signing_time", "values": [cms.Time({"utc_time": gen_time})
                                                if 1950 <= gen_time.year < 2050
                                                else cms.Time({"generalized_time": gen_time})]},
            {"type": "message_digest", "values": [hashlib.sha256(tst_info.dump()).digest()]},
            {"type": "signing_certificate_v2", "values": [{"certs": [{
                "cert_hash": hashlib.sha256(cert_der).digest(),
                "issuer_serial": {
                    "issuer": [asn1_x509.GeneralName({"directory_name": tsa_cert.issuer})],
                    "serial_number": tsa_cert.serial_number,
                },
            }]}]},
        ])
        signature = key.sign(attributes.dump(), padding.PKCS1v15(), hashes.SHA256())
        signed: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256",
                                                         "parameters": None})],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "signer_infos": [{
                "version": "v1",
                "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                    "issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number}}),
                "digest_algorithm": {"algorithm": "sha256", "parameters": None},
                "signed_attrs": attributes,
                "signature_algorithm": {"algorithm": "sha256_rsa", "parameters": asn1.Null()},
                "signature": signature,
            }],
        }
        if fields["cert_req"]:
            signed["certificates"] = [tsa_cert, asn1_x509.Certificate.load(
                ca.cert.public_bytes(serialization.Encoding.DER))]
        token = cms.ContentInfo({"content_type": "signed_data",
                                 "content": cms.SignedData(signed)})
        response: bytes = TimeStampResp({"status": {"status": "granted"},
                                         "time_stamp_token": token}).dump()
        return response

    # -- revocation --------------------------------------------------------------

    def revoke(self, ca_name: str, serial: int, at: datetime,
               reason: x509.ReasonFlags = x509.ReasonFlags.unspecified) -> None:
        """Revoke a certificate for good, from ``at`` on.

        CRLs and OCSP answers issued at or after ``at`` say it is revoked on
        ``at`` for ``reason`` (the CRL entry omits the reason when it is
        "unspecified"); those issued before are unchanged. The certificate may
        be on hold at ``at``: the hold then becomes a revocation (its CRL entry
        takes the date ``at`` and the new reason).

        :param ca_name: short name of the issuing CA.
        :param serial: serial number of a certificate the CA issued: a card
            certificate of a registered profile, a leaf of :meth:`issue_leaf`,
            one of its child CAs (a root revoking an intermediate) or its OCSP
            responder.
        :param at: revocation time (aware datetime; whole seconds are kept).
        :param reason: the CRLReason; not certificateHold (use :meth:`hold`)
            nor removeFromCRL.
        :raises KeyError: a serial the CA did not issue.
        :raises ValueError: the certificate is already revoked at ``at`` or
            later events contradict this one, an unusable reason, a naive time.
        """
        reason = x509.ReasonFlags(reason)
        if reason in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl):
            raise ValueError(f"reason {reason.value} is not a revocation: use hold() / release()")
        self._record(ca_name, serial, _Event(_utc(at), "revoke", reason))

    def hold(self, ca_name: str, serial: int, at: datetime) -> None:
        """Put a certificate on hold (reason certificateHold) from ``at`` on.

        CRLs issued while it is held list it with reason certificateHold and
        date ``at``; OCSP answers say ``revoked`` with that reason. See
        :meth:`release` and :meth:`revoke`.

        :param ca_name: short name of the issuing CA.
        :param serial: serial number of a certificate the CA issued (see :meth:`revoke`).
        :param at: start of the hold (aware datetime).
        :raises KeyError: a serial the CA did not issue.
        :raises ValueError: already revoked or on hold at ``at``, or later
            events contradict this one.
        """
        self._record(ca_name, serial, _Event(_utc(at), "hold"))

    def release(self, ca_name: str, serial: int, at: datetime) -> None:
        """Lift the hold of a certificate at ``at``.

        Complete CRLs issued at or after ``at`` no longer list it, OCSP answers
        say ``good`` again, and a delta CRL issued at or after ``at`` whose base
        CRL (issued before ``at``) listed the hold lists the serial with reason
        removeFromCRL and date ``at`` (RFC 5280 5.3.1). The certificate may be
        held again, or revoked, later.

        :param ca_name: short name of the issuing CA.
        :param serial: serial number of a certificate the CA issued (see :meth:`revoke`).
        :param at: end of the hold (aware datetime).
        :raises KeyError: a serial the CA did not issue.
        :raises ValueError: not on hold at ``at``, or later events contradict this one.
        """
        self._record(ca_name, serial, _Event(_utc(at), "release"))

    def revocation_status(self, ca_name: str, serial: int, at: datetime | None = None
                          ) -> tuple[datetime, x509.ReasonFlags] | None:
        """The CRL entry of a serial at ``at``: ``(date, reason)``, or ``None`` if not listed.

        What a complete CRL issued at ``at`` says about the serial (holds show
        as reason certificateHold; "unspecified" stays explicit here).

        :param ca_name: short name of the issuing CA.
        :param serial: any serial number.
        :param at: the time (default now).
        """
        ca = self.ca(ca_name)
        moment = _utc(at)
        with self._lock:
            events = self._timeline(ca.name, serial)
        return _replay(events, moment)[0]

    def crl(
        self,
        ca_name: str,
        at: datetime | None = None,
        delta: bool = False,
        next_update: timedelta = DEFAULT_NEXT_UPDATE,
        freshest_crl_url: str | None = None,
        base: datetime | None = None,
    ) -> bytes:
        """Issue a CRL (DER) of a CA.

        A complete CRL lists every certificate the CA revoked (profiles with
        ``revoked_days_ago``, :meth:`revoke`) or put on hold (:meth:`hold`,
        not yet released) at or before ``at``. A delta CRL lists what changed
        between its base complete CRL (issued at ``base``) and ``at``: the
        entries that are new or different (a hold turned into a revocation),
        and a removeFromCRL entry, dated at the release, for each hold lifted
        since (RFC 5280 5.3.1); it carries a critical ``deltaCRLIndicator``
        with the base's CRL number. Entries carry their revocation date and,
        unless "unspecified", a reason code. CRL numbers: :func:`crl_number`.

        :param ca_name: short name of the issuing CA.
        :param at: issue time (thisUpdate); default now.
        :param delta: issue the delta CRL instead of the complete one.
        :param next_update: nextUpdate - thisUpdate.
        :param freshest_crl_url: where a complete CRL's freshestCRL extension says
            the delta CRLs are (default: the CA's HTTP delta URL), e.g. an
            ``ldap://`` URL, as IGC-Santé publishes its deltas.
        :param base: issue time of the delta's base complete CRL (at or before
            ``at``); default ``min(delta_base_time, at)``. Deltas only.
        :raises ValueError: ``base`` after ``at``, or given for a complete CRL.
        """
        ca = self.ca(ca_name)
        at = _utc(at)
        if base is None:
            base = min(self.delta_base_time, at)
        elif not delta:
            raise ValueError("base is the base CRL of a delta CRL: give delta=True")
        else:
            base = _utc(base)
            if base > at:
                raise ValueError(f"the base CRL ({base.isoformat()}) must not be issued "
                                 f"after the delta ({at.isoformat()})")
        with self._lock:
            timelines = {serial: self._timeline(ca.name, serial)
                         for serial in self._serials_with_events(ca.name)}
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(at)
            .next_update(at + next_update)
        )
        for serial in sorted(timelines):
            current, released = _replay(timelines[serial], at)
            if delta:
                before = _replay(timelines[serial], base)[0]
                if current == before:
                    continue
                if current is None:  # lifted hold (released is after base)
                    current = (released or at, x509.ReasonFlags.remove_from_crl)
            elif current is None:
                continue
            date, reason = current
            entry = (x509.RevokedCertificateBuilder()
                     .serial_number(serial)
                     .revocation_date(date))
            if reason != x509.ReasonFlags.unspecified:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(ca.cert)),
            critical=False,
        ).add_extension(x509.CRLNumber(crl_number(at, delta)), critical=False)
        if delta:
            builder = builder.add_extension(x509.DeltaCRLIndicator(crl_number(base)),
                                            critical=True)
        elif freshest := freshest_crl_url or ca.delta_crl_url:
            builder = builder.add_extension(x509.FreshestCRL(_uri_points(freshest)),
                                            critical=False)
        crl = builder.sign(ca.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)

    def http_resources(self, at: datetime | None = None, *,
                       delta_base: datetime | None = None) -> dict[str, bytes]:
        """Everything the certificates point to over HTTP, by URL path.

        ``/ca/<stem>.cer`` (DER certificates), ``/crl/<stem>.crl`` (complete
        CRLs of every CA) and ``/crl/<stem>-delta.crl`` (delta CRLs of the
        intermediates), issued at ``at``. OCSP (``/ocsp``) is dynamic: see
        :meth:`ocsp_response`.

        :param at: CRL issue time; default now.
        :param delta_base: issue time of the complete CRLs the deltas are based
            on (see :meth:`crl`); default ``min(delta_base_time, at)``.
        """
        at = _utc(at)
        out: dict[str, bytes] = {}
        for ca in self._cas.values():
            out[f"/ca/{ca.stem}.cer"] = ca.cert.public_bytes(serialization.Encoding.DER)
            out[f"/crl/{ca.stem}.crl"] = self.crl(ca.name, at)
            if ca.delta_crl_url:
                out[f"/crl/{ca.stem}-delta.crl"] = self.crl(ca.name, at, delta=True,
                                                            base=delta_base)
        return out

    def publish(self, directory: str | os.PathLike[str], at: datetime | None = None, *,
                delta_base: datetime | None = None) -> list[Path]:
        """Write :meth:`http_resources` under ``directory`` (``ca/…``, ``crl/…``).

        :param directory: root of a static HTTP server serving ``base_url``.
        :param at: CRL issue time; default now.
        :param delta_base: base time of the delta CRLs (see :meth:`http_resources`).
        :returns: the files written.
        """
        root = Path(directory)
        written = []
        for url_path, data in self.http_resources(at, delta_base=delta_base).items():
            target = root / url_path.lstrip("/")
            write_atomic(target, data)
            written.append(target)
        return written

    def ocsp_response(self, request_der: bytes, at: datetime | None = None,
                      next_update: timedelta = DEFAULT_NEXT_UPDATE) -> bytes:
        """Answer an OCSP request (DER in, DER out), like ``<base_url>/ocsp`` would.

        Certificates issued by an intermediate CA are answered by its delegated
        responder (EKU OCSPSigning, id-pkix-ocsp-nocheck), those issued by a
        root by the root itself. Status is ``good`` for known certificates,
        ``revoked`` (time and reason) while the revocation timeline at ``at``
        lists them (see :meth:`revoke`; a hold is ``revoked`` with reason
        certificateHold until :meth:`release`), ``unknown`` for any other
        serial; the nonce, if any, is echoed.
        Requests about another issuer get ``unauthorized``, garbage gets
        ``malformedRequest``.

        :param request_der: the DER OCSPRequest.
        :param at: thisUpdate (producedAt is always the signing time); default now.
        :param next_update: nextUpdate - thisUpdate.
        """
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            ca = self._ca_for_hashes(request.issuer_name_hash, request.issuer_key_hash, algorithm)
        except (ValueError, TypeError, UnsupportedAlgorithm, NotImplementedError):
            # NotImplementedError: cryptography reads one request per OCSPRequest only;
            # a real responder may answer several, ours says it cannot (RFC 6960 2.3).
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if ca is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        at = _utc(at)
        status, revoked_at, reason = self._status(ca, request.serial_number, at)
        responder_cert, responder_key = self._responder(ca)
        builder = _add_single_response(
            ocsp.OCSPResponseBuilder(), request, ca, status, at, at + next_update,
            revoked_at, reason,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)
        if responder_cert is not ca.cert:
            builder = builder.certificates([responder_cert])
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        response = builder.sign(responder_key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    # -- internals -----------------------------------------------------------------

    def _derive(self, label: str, length: int) -> bytes:
        return _derive_bytes(self.seed, label, length)

    def _key(self, label: str, bits: int) -> rsa.RSAPrivateKey:
        return cached_rsa_key(self._key_directory, self.seed, label, bits)

    def _serial(self, label: str) -> int:
        """A positive INTEGER of exactly 16 octets, like the real TEST card serial."""
        raw = bytearray(self._derive(label, 16))
        raw[0] = (raw[0] & 0x7F) or 0x01
        return int.from_bytes(raw, "big")

    def _leaf_profile(self, ca: CertificateAuthority, index: int) -> CardProfile:
        """The synthetic card behind :meth:`issue_leaf` (never registered as a profile)."""
        slot = list(self.intermediates).index(ca.name)
        number = f"9{slot}{index:08d}"
        if ca.parent == "STANDARD":
            card_type = "CPE"
            holder = Holder(idnat=f"30B0012345/SIM{number}", last_name=f"SIMULATION-{index}",
                            first_name="AGENT", profession_label="Personnel santé ou social",
                            structure_id="10B0012345", structure_name="HÔPITAL SIMULÉ",
                            locality="Paris (75)")
        else:
            card_type = "CPS"
            rpps = number + luhn_check_digit(number)
            holder = Holder(idnat=f"8{rpps}", last_name=f"SIMULATION-{index}",
                            first_name="CAMILLE", profession_label="Médecin",
                            profession_code="10")
        return CardProfile(name=f"leaf-{number}", description="simulated card (issue_leaf)",
                           interface="contact", card_type=card_type, card_number=number,
                           holder=holder, certificates=CertificateSpec(issuer=ca.name))

    def _known(self, ca: CertificateAuthority, serial: int) -> bool:
        """Whether ``ca`` issued ``serial``: a card or leaf, a child CA, its OCSP responder."""
        with self._lock:
            if serial in self._registry[ca.name]:
                return True
        if any(c.parent == ca.name and c.cert.serial_number == serial
               for c in self._cas.values()):
            return True
        return serial == (ca.cert.serial_number if ca.is_root else self._responder_serial(ca))

    def _record(self, ca_name: str, serial: int, event: _Event) -> None:
        """Add ``event`` to the timeline of ``serial``, after checking it fits."""
        ca = self.ca(ca_name)
        if not self._known(ca, serial) or (ca.is_root and serial == ca.cert.serial_number):
            raise KeyError(f"{ca.name} issued no certificate with serial {serial:#x}")
        with self._lock:
            _replay([*self._timeline(ca.name, serial), event], strict=True)
            self._events[ca.name].setdefault(serial, []).append(event)

    def _timeline(self, ca_name: str, serial: int) -> list[_Event]:
        """Every event of ``serial`` (the profile's revocation first), in recording order."""
        out = []
        item = self._registry[ca_name].get(serial)
        if item is not None and item.revoked_at is not None:
            kind = "hold" if item.reason == x509.ReasonFlags.certificate_hold else "revoke"
            out.append(_Event(item.revoked_at, kind, item.reason))
        out.extend(self._events[ca_name].get(serial, ()))
        return out

    def _serials_with_events(self, ca_name: str) -> set[int]:
        revoked = {s for s, i in self._registry[ca_name].items() if i.revoked_at is not None}
        return revoked | set(self._events[ca_name])

    def _register(self, profile: CardProfile) -> None:
        with self._lock:
            previous = self._profiles.get(profile.card_number)
            if previous is not None and _cert_identity(previous) == _cert_identity(profile):
                return
            if previous is not None:
                for table in self._registry.values():
                    for serial in [s for s, i in table.items()
                                   if i.card_number == profile.card_number]:
                        del table[serial]
            self._profiles[profile.card_number] = profile
            spec = profile.certificates
            revoked_at = reason = None
            if spec.revoked and spec.revoked_days_ago is not None:
                revoked_at = _utc(self.reference_time - timedelta(days=spec.revoked_days_ago))
                reason = x509.ReasonFlags(spec.revocation_reason or "unspecified")
            table = self._registry[self.ca(spec.issuer).name]
            for role in _ROLES:
                if role == "tech" and not profile.contactless:
                    continue
                serial = self.card_serial(profile, role)
                table[serial] = _Issued(serial, profile.card_number, role, revoked_at, reason)

    def _card_certificate(self, profile: CardProfile, role: str, key: rsa.RSAPrivateKey,
                          ca: CertificateAuthority, serial: int | None = None
                          ) -> x509.Certificate:
        not_before, not_after = self.card_validity(profile)
        policy = {"auth": POLICY_TEST_AUTH, "sign": POLICY_TEST_SIGN,
                  "tech": POLICY_TEST_TECH}[role]
        builder = (
            x509.CertificateBuilder()
            .serial_number(serial if serial is not None else self.card_serial(profile, role))
            .issuer_name(ca.cert.subject)
            .subject_name(_holder_name(profile))
            .public_key(key.public_key())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(_key_usage(digital_signature=role != "sign",
                                      content_commitment=role == "sign"), critical=True)
            .add_extension(x509.CertificatePolicies([
                x509.PolicyInformation(policy, [TEST_CPS_URI])]), critical=False)
            .add_extension(x509.ExtendedKeyUsage(_CARD_EKUS[role]), critical=False)
        )
        if role != "sign":  # the real signature certificate has no subjectAltName
            upn = asn1.UTF8String(card_upn(profile)).dump()
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.OtherName(OID_MS_UPN, upn)]), critical=False)
        builder = (
            self._pointers(builder, key, ca)
            .add_extension(x509.UnrecognizedExtension(
                OID_CARD_FLAGS, asn1.OctetString(b"\x80").dump()), critical=False)
            .add_extension(x509.UnrecognizedExtension(
                OID_CARD_TYPE, asn1.Integer(profile.card_type_code).dump()), critical=False)
            .add_extension(x509.UnrecognizedExtension(
                OID_CARD_ISSUER_ID, asn1.PrintableString(profile.issuer_card_id).dump()),
                critical=False)
        )
        code = profile.holder.profession_code
        if code is not None and code.isascii() and code.isdigit():
            builder = builder.add_extension(x509.UnrecognizedExtension(
                OID_PROFESSION, asn1.Integer(int(code)).dump()), critical=False)
        return builder.sign(ca.key, hashes.SHA256())

    def _pointers(self, builder: x509.CertificateBuilder, key: rsa.RSAPrivateKey,
                  ca: CertificateAuthority) -> x509.CertificateBuilder:
        """What every end-entity certificate of the PKI carries: CRL and delta
        pointers, OCSP and caIssuers, the key identifiers."""
        return (
            builder
            .add_extension(x509.CRLDistributionPoints(_uri_points(ca.crl_url)), critical=False)
            .add_extension(x509.FreshestCRL(_uri_points(ca.delta_crl_url or ca.crl_url)),
                           critical=False)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(f"{self.base_url}/ocsp")),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(ca.cert_url)),
            ]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(ca.cert)),
                critical=False)
        )

    def _ca_for_hashes(self, name_hash: bytes, key_hash: bytes,
                       algorithm: hashes.HashAlgorithm) -> CertificateAuthority | None:
        for ca in self._cas.values():
            if (hmac.compare_digest(_hash(algorithm, ca.cert.subject.public_bytes()), name_hash)
                    and hmac.compare_digest(_hash(algorithm, _key_bits(ca.cert)), key_hash)):
                return ca
        return None

    def _status(self, ca: CertificateAuthority, serial: int, at: datetime
                ) -> tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]:
        with self._lock:
            entry = _replay(self._timeline(ca.name, serial), at)[0]
        if entry is not None:
            return ocsp.OCSPCertStatus.REVOKED, entry[0], entry[1]
        if self._known(ca, serial):
            return ocsp.OCSPCertStatus.GOOD, None, None
        return ocsp.OCSPCertStatus.UNKNOWN, None, None

    def _responder_serial(self, ca: CertificateAuthority) -> int:
        return self._serial(f"serial/ocsp/{ca.name}")

    def _responder(self, ca: CertificateAuthority) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """Delegated OCSP responder of an intermediate CA (a root answers itself)."""
        if ca.is_root:
            return ca.cert, ca.key
        with self._lock:
            if ca.name not in self._responders:
                key = self._key(f"ocsp/{ca.name}", 2048)
                ref = self.reference_time
                cert = (
                    x509.CertificateBuilder()
                    .serial_number(self._responder_serial(ca))
                    .issuer_name(ca.cert.subject)
                    .subject_name(_ca_name(f"TEST OCSP IGC-SANTE {ca.name}"))
                    .public_key(key.public_key())
                    .not_valid_before(_add_years(ref, -1))
                    .not_valid_after(_add_years(ref, 3))
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                   critical=True)
                    .add_extension(_key_usage(digital_signature=True), critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                                   critical=False)
                    .add_extension(x509.OCSPNoCheck(), critical=False)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                   critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier
                                   .from_issuer_subject_key_identifier(_ski(ca.cert)),
                                   critical=False)
                    .sign(ca.key, hashes.SHA256())
                )
                self._responders[ca.name] = (cert, key)
            return self._responders[ca.name]


# -- module helpers ------------------------------------------------------------------


#: message-imprint hashes the test TSA accepts (OID -> hashlib name)
_TSA_HASHES = {"2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
               "2.16.840.1.101.3.4.2.3": "sha512"}


def timestamp_rejection(fail_info: str, text: str = "", status: str = "rejection") -> bytes:
    """A TimeStampResp refusing a request (no token), as a TSA answers one it will not stamp.

    :param fail_info: a PKIFailureInfo bit name of asn1crypto (``"bad_alg"``,
        ``"bad_request"``, ``"bad_data_format"``, ``"time_not_available"``,
        ``"unaccepted_policy"``, ``"unaccepted_extensions"``,
        ``"add_info_not_available"``, ``"system_failure"``).
    :param text: free text (statusString).
    :param status: the PKIStatus (``"rejection"``, ``"waiting"``...).
    """
    from ..timestamp import TimeStampResp

    info: dict[str, object] = {"status": status, "fail_info": {fail_info}}
    if text:
        info["status_string"] = [text]
    encoded: bytes = TimeStampResp({"status": info}).dump()
    return encoded


def _derive_bytes(seed: int | bytes, label: str, length: int) -> bytes:
    """Deterministic bytes for serial numbers: HMAC-SHA-256 keyed by the seed."""
    key = hashlib.sha256(b"cps-emulator/test-pki/v1" + seed_bytes(seed)).digest()
    out = b""
    counter = 0
    while len(out) < length:
        out += hmac.new(key, counter.to_bytes(4, "big") + label.encode("utf-8"),
                        hashlib.sha256).digest()
        counter += 1
    return out[:length]


def _hash(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _key_bits(cert: x509.Certificate) -> bytes:
    # OCSP issuerKeyHash covers the subjectPublicKey BIT STRING value, which
    # for RSA is the PKCS#1 RSAPublicKey encoding.
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.PKCS1)


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False,
               key_encipherment: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=content_commitment,
        key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
        key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER)


def _add_single_response(builder: ocsp.OCSPResponseBuilder, request: ocsp.OCSPRequest,
                         ca: CertificateAuthority, status: ocsp.OCSPCertStatus,
                         this_update: datetime, next_update: datetime,
                         revoked_at: datetime | None,
                         reason: x509.ReasonFlags | None) -> ocsp.OCSPResponseBuilder:
    if reason == x509.ReasonFlags.unspecified:
        reason = None
    by_hash = getattr(builder, "add_response_by_hash", None)
    if by_hash is not None:  # cryptography >= 43: echo the CertID exactly
        answered: ocsp.OCSPResponseBuilder = by_hash(
            request.issuer_name_hash, request.issuer_key_hash, request.serial_number,
            request.hash_algorithm, status, this_update, next_update, revoked_at, reason)
        return answered
    # Older cryptography wants a certificate: a stand-in carrying the requested
    # serial yields the same CertID (issuer hashes come from the issuer cert).
    stand_in = (
        x509.CertificateBuilder().serial_number(request.serial_number)
        .issuer_name(ca.cert.subject).subject_name(ca.cert.subject)
        .public_key(ca.cert.public_key())
        .not_valid_before(ca.cert.not_valid_before_utc)
        .not_valid_after(ca.cert.not_valid_after_utc)
        .sign(ca.key, hashes.SHA256())
    )
    return builder.add_response(stand_in, ca.cert, request.hash_algorithm, status,
                                this_update, next_update, revoked_at, reason)


def _urls(base_url: str, stem: str, is_root: bool) -> dict[str, str | None]:
    return {
        "crl_url": f"{base_url}/crl/{stem}.crl",
        "delta_crl_url": None if is_root else f"{base_url}/crl/{stem}-delta.crl",
        "cert_url": f"{base_url}/ca/{stem}.cer",
    }


def _create_authorities(seed: int | bytes, base_url: str, reference: datetime,
                        bits: int, key_dir: Path | None) -> dict[str, CertificateAuthority]:
    """Build the nine CA certificates (roots first, so children find their parent)."""
    out: dict[str, CertificateAuthority] = {}
    for spec in _CA_SPECS:
        key = cached_rsa_key(key_dir, seed, f"ca/{spec.name}", bits)
        name = _ca_name(spec.common_name)
        parent = out[spec.parent] if spec.parent else None
        serial = int.from_bytes(b"\x11\x20" + _derive_bytes(seed, f"serial/ca/{spec.name}", 16),
                                "big")
        not_after = _add_years(reference, 10)
        builder = (
            x509.CertificateBuilder()
            .serial_number(serial)
            .issuer_name(parent.cert.subject if parent else name)
            .subject_name(name)
            .public_key(key.public_key())
            .not_valid_before(_add_years(reference, -10))
            # As in production, intermediates end one day before their root.
            .not_valid_after(not_after - timedelta(days=1) if parent else not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0 if parent else None),
                           critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.CertificatePolicies([
                x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), [TEST_CPS_URI])]),
                critical=False)
        )
        if parent:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(_uri_points(parent.crl_url)), critical=False)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                (parent.key if parent else key).public_key()), critical=False)
        cert = builder.sign(parent.key if parent else key, hashes.SHA256())
        out[spec.name] = CertificateAuthority(
            name=spec.name, cert=cert, key=key, stem=spec.stem, parent=spec.parent,
            **_urls(base_url, spec.stem, parent is None),  # type: ignore[arg-type]
        )
    return out


def _load_authorities(folder: Path, manifest: Mapping[str, object], seed: int | bytes,
                      base_url: str, bits: int) -> dict[str, CertificateAuthority] | None:
    """Reuse the CAs of a previous :meth:`TestPKI.generate`, or ``None`` if stale."""
    try:
        stored = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored != manifest:
        return None
    out: dict[str, CertificateAuthority] = {}
    try:
        for spec in _CA_SPECS:
            cert = x509.load_der_x509_certificate((folder / "ca" / f"{spec.stem}.cer").read_bytes())
            key = cached_rsa_key(folder / "keys", seed, f"ca/{spec.name}", bits)
            if cert.public_key() != key.public_key():
                return None
            out[spec.name] = CertificateAuthority(
                name=spec.name, cert=cert, key=key, stem=spec.stem, parent=spec.parent,
                **_urls(base_url, spec.stem, spec.parent is None),  # type: ignore[arg-type]
            )
    except (OSError, ValueError):
        return None
    return out

