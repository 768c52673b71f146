"""The ``cps`` command's view model: facts as plain data, what the commands print.

Every function here returns dicts and lists of ``str``, ``int``, ``bool``,
``None`` (dates as ISO 8601 strings), ready for ``json.dumps``. The ``cps``
command renders them as text or ``--json`` (schemas in docs/cli.md); scripts
and monitoring can call them directly::

    import cps
    from cps_cli.view import card_info

    with cps.open_card() as card:
        facts = card_info(card)       # ATR, card number, practitioner, certificates, PIN

Nothing here prompts, prints or decides an exit code, and nothing secret
(PIN, unblock code) ever goes into the data. Heavy libraries (cryptography,
pyscard) are imported inside the functions that need them, so importing this
module is cheap.

Only the CLI uses it, so it lives on the CLI side (``cps.info`` re-exports it
for earlier callers). What is not presentation — reading certificate, CRL and
anchor files — is the library's :mod:`cps.trust.files`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

from cps.card import Card, KeyRole, PinStatus
from cps.errors import CpsError, NotSupported
from cps.trust.files import (
    TRUST_SOURCES,
    default_crl_cache_dir,
    load_certificate_der,
    load_certificates_der,
    load_crls,
    trust_store,
)

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.x509 import Name

    from cps.readers import ReaderInfo
    from cps.trust.validate import ValidationResult, Validator

__all__ = [
    "TRUST_SOURCES",
    "default_crl_cache_dir",
    "iso",
    "load_certificate_der",
    "load_certificates_der",
    "load_crls",
    "certificate_summary",
    "card_roles",
    "pin_status_dict",
    "describe_pin_status",
    "card_info",
    "reader_states",
    "reader_events",
    "validation_summary",
    "error_to_dict",
    "crl_summary",
    "crl_cache_status",
    "trust_store",
    "make_validator",
    "test_pki_summary",
    "cms_verification_summary",
    "auth_round",
]

_KU_NAMES = ("digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
             "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly")
_EKU_NAMES = {
    "1.3.6.1.5.5.7.3.1": "serverAuth", "1.3.6.1.5.5.7.3.2": "clientAuth",
    "1.3.6.1.5.5.7.3.3": "codeSigning", "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.8": "timeStamping", "1.3.6.1.5.5.7.3.9": "OCSPSigning",
    "1.3.6.1.4.1.311.20.2.2": "msSmartcardLogin", "2.5.29.37.0": "anyExtendedKeyUsage",
}
_SIG_NAMES = {
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.10": "RSASSA-PSS",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256", "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10040.4.3": "dsa-with-sha1", "2.16.840.1.101.3.4.3.2": "dsa-with-sha256",
    "1.3.101.112": "Ed25519", "1.3.101.113": "Ed448",
}


# --------------------------------------------------------------------------- small helpers
def iso(moment: Optional[dt.datetime]) -> Optional[str]:
    """An aware datetime as ISO 8601 in UTC (``2026-01-01T00:00:00+00:00``); ``None`` stays."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat()


def _name_text(name_der: bytes) -> str:
    """RFC 4514 text of a Name (most specific first, SN/GN/title spelt out); never fails."""
    try:
        from cryptography.x509.oid import NameOID

        name = _load_name(name_der)
        return name.rfc4514_string({NameOID.SURNAME: "SN", NameOID.GIVEN_NAME: "GN",
                                    NameOID.TITLE: "title", NameOID.SERIAL_NUMBER: "serialNumber",
                                    NameOID.PSEUDONYM: "pseudonym"})
    except Exception:  # noqa: BLE001 - a display string must never fail
        from cps.trust.certs import name_str

        return name_str(name_der)


def _load_name(name_der: bytes) -> Name:
    """A cryptography ``Name`` from its DER.

    cryptography loads Names only inside certificates and CRLs; asn1crypto
    decodes the string types (UTF8, Printable, Teletex, BMP) and the Name is
    rebuilt attribute by attribute, multi-valued RDNs kept.
    """
    from asn1crypto import x509 as ax
    from cryptography import x509

    rdns = []
    for rdn in ax.Name.load(name_der).chosen:
        attributes = []
        for atv in rdn:
            oid = x509.ObjectIdentifier(atv["type"].dotted)
            value = atv["value"].native
            if not isinstance(value, str):
                raise ValueError("non-string attribute")
            attributes.append(x509.NameAttribute(oid, value, _validate=False))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _der_of(cert: Any) -> bytes:
    if isinstance(cert, (bytes, bytearray, memoryview)):
        return bytes(cert)
    from cps.trust.anchors import to_der

    return to_der(cert)


# --------------------------------------------------------------------------- certificates
def certificate_summary(cert: Any, role: Optional[KeyRole | str] = None) -> Dict[str, Any]:
    """What a sysadmin wants to see of a certificate.

    :param cert: a cryptography certificate or its DER.
    :param role: the card key it belongs to (``auth``, ``sign``, ``tech``), if known.
    :returns: ``role, subject, issuer, serial`` (hex), ``not_before, not_after``
        (ISO 8601), ``sha256`` (hex of the DER), ``key`` (``RSA-2048``...),
        ``signature_algorithm``, ``key_usage``, ``extended_key_usage``,
        ``policies``, ``crl_urls``, ``delta_crl_urls``, ``ocsp_urls``,
        ``ca_issuers_urls``, ``is_ca``.
    """
    from cps.trust.certs import OID, oid_to_str, parse_cert, time_from_key

    der = _der_of(cert)
    parsed = parse_cert(der)
    ku = parsed.key_usage()
    eku = parsed.ext_key_usage()
    policies = parsed.policies()
    sig_oid = _sig_oid(parsed.sig_alg)
    return {
        "role": KeyRole(role).value if role is not None else None,
        "subject": _name_text(parsed.subject),
        "issuer": _name_text(parsed.issuer),
        "serial": format(parsed.serial, "X") if parsed.serial >= 0 else str(parsed.serial),
        "not_before": iso(time_from_key(parsed.not_before)),
        "not_after": iso(time_from_key(parsed.not_after)),
        "sha256": hashlib.sha256(der).hexdigest().upper(),
        "key": _key_text(parsed),
        "signature_algorithm": _SIG_NAMES.get(sig_oid, sig_oid),
        "key_usage": None if ku is None else [n for i, n in enumerate(_KU_NAMES) if ku >> i & 1],
        "extended_key_usage": None if eku is None else [
            _EKU_NAMES.get(oid_to_str(o), oid_to_str(o)) for o in eku],
        "policies": None if policies is None else [oid_to_str(o) for o, _ in policies],
        "crl_urls": [u for d in parsed.distribution_points() for u in d.urls],
        "delta_crl_urls": [u for d in parsed.distribution_points(OID.FRESHEST_CRL)
                           for u in d.urls],
        "ocsp_urls": parsed.access_urls(OID.AD_OCSP),
        "ca_issuers_urls": parsed.access_urls(OID.AD_CA_ISSUERS),
        "is_ca": parsed.basic_constraints()[0],
    }


def _sig_oid(alg: bytes) -> str:
    from cps.trust.certs import children, header, oid_to_str

    try:
        _, vs, ve = header(alg, 0, len(alg))
        first = children(alg, vs, ve)[0]
        return oid_to_str(alg[first[2]:first[3]])
    except (IndexError, CpsError):
        return "unknown"


def _key_text(parsed: Any) -> str:
    try:
        from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

        key = parsed.public_key()
    except Exception:  # noqa: BLE001 - descriptive only
        return "unknown"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC-{key.curve.name}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return type(key).__name__.replace("PublicKey", "")
    return "unknown"


# --------------------------------------------------------------------------- the card
def card_roles(card: Card) -> List[KeyRole]:
    """The keys a card offers on this interface: ``[TECH]`` contactless, else ``[AUTH, SIGN]``."""
    return [KeyRole.TECH] if card.contactless else [KeyRole.AUTH, KeyRole.SIGN]


def pin_status_dict(status: Optional[PinStatus]) -> Optional[Dict[str, Any]]:
    """A :class:`~cps.card.PinStatus` as data (``None`` stays ``None``: no PIN)."""
    if status is None:
        return None
    return {
        "tries_left": status.tries_left,
        "max_tries": status.max_tries,
        "blocked": status.blocked,
        "last_try": status.last_try,
        "unblock_tries_left": status.unblock_tries_left,
        "unblock_max_tries": status.unblock_max_tries,
        "unblock_uses_left": status.unblock_uses_left,
        "unblock_blocked": status.unblock_blocked,
    }


def describe_pin_status(status: Optional[PinStatus]) -> str:
    """One line for humans.

    ``PIN: 3 of 3 tries left; unblock code: 10 of 10 tries left, 100 unblocks left``
    """
    if status is None:
        return "PIN: none on this interface"
    if status.blocked:
        pin = f"PIN: BLOCKED (0 of {status.max_tries} tries left)"
    else:
        pin = f"PIN: {status.tries_left} of {status.max_tries} tries left"
        if status.last_try:
            pin += " (LAST TRY)"
    parts = [pin]
    if status.unblock_tries_left is not None:
        unblock = f"unblock code: {status.unblock_tries_left}"
        if status.unblock_max_tries is not None:
            unblock += f" of {status.unblock_max_tries}"
        unblock += " tries left"
        if status.unblock_uses_left is not None:
            unblock += f", {status.unblock_uses_left} unblocks left"
        if status.unblock_blocked:
            unblock += " (BLOCKED)"
        parts.append(unblock)
    return "; ".join(parts)


def card_info(card: Card) -> Dict[str, Any]:
    """Everything ``cps card info`` shows, read without spending a PIN try.

    :returns: ``reader, backend, token_label, atr, card_kind, card_name,
        interface, card_number, practitioner`` (with ``validated: false``: what
        the certificate *claims*), ``certificates`` (see
        :func:`certificate_summary`), ``pin`` (see :func:`pin_status_dict`;
        ``None`` without a PIN).
    """
    connection = getattr(card, "connection", None)
    atr = getattr(connection, "atr", None) if connection is not None else None
    kind = getattr(card, "kind", None)
    entry = getattr(card, "atr_entry", None)
    reader = getattr(connection, "reader", None) if connection is not None else None
    if reader is None:
        reader = getattr(card, "reader", None)
    certificates = []
    for role in card_roles(card):
        try:
            cert = card.certificate(role)
        except NotSupported:
            continue
        certificates.append(certificate_summary(cert, role))
    try:
        pin: Optional[PinStatus] = None if card.contactless else card.pin_status()
    except NotSupported:
        pin = None
    practitioner = card.practitioner.to_dict()
    return {
        "reader": reader,
        "backend": card.backend,
        "token_label": getattr(card, "token_label", None),
        "atr": atr.hex().upper() if atr else None,
        "card_kind": getattr(kind, "value", None),
        "card_name": getattr(entry, "name", None),
        "interface": "contactless" if card.contactless else "contact",
        "card_number": card.card_number,
        "practitioner": practitioner,
        "certificates": certificates,
        "pin": pin_status_dict(pin),
    }


# --------------------------------------------------------------------------- readers
def reader_states(readers: Sequence["ReaderInfo"]) -> Dict[str, Dict[str, Any]]:
    """Reader name -> ``{reader, card_present, atr, card_kind}`` (for watching)."""
    return {r.name: {"reader": r.name, "card_present": r.card_present,
                     "atr": r.atr.hex().upper() if r.atr else None,
                     "card_kind": r.card_kind.value if r.card_kind else None}
            for r in readers}


def reader_events(before: Mapping[str, Mapping[str, Any]],
                  after: Mapping[str, Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """What changed between two :func:`reader_states` snapshots, in reader order.

    Events: ``reader-added``, ``reader-removed``, ``inserted``, ``removed``
    (a card swapped between two polls gives ``removed`` then ``inserted``).
    """
    events: List[Dict[str, Any]] = []

    def event(kind: str, state: Mapping[str, Any]) -> None:
        events.append({"event": kind, "reader": state["reader"], "atr": state["atr"],
                       "card_kind": state["card_kind"]})

    for name, old in before.items():
        if name not in after:
            if old["card_present"]:
                event("removed", old)
            event("reader-removed", {**old, "atr": None, "card_kind": None})
    for name, new in after.items():
        previous = before.get(name)
        if previous is None:
            event("reader-added", {**new, "atr": None, "card_kind": None})
            if new["card_present"]:
                event("inserted", new)
            continue
        if previous["card_present"] and (not new["card_present"]
                                         or previous["atr"] != new["atr"]):
            event("removed", previous)
        if new["card_present"] and (not previous["card_present"]
                                    or previous["atr"] != new["atr"]):
            event("inserted", new)
    return events


# --------------------------------------------------------------------------- trust
def make_validator(anchors: Sequence[str] = ("igc-sante",), crls: Sequence[str] = (),
                   revocation: str = "hard-fail", *, online: bool = False,
                   cache_dir: Optional[os.PathLike[str] | str] = None,
                   progress: Any = None) -> "Validator":
    """A :class:`~cps.trust.Validator` from the ``cps`` command's options.

    :param anchors: see :func:`trust_store`.
    :param crls: CRL files or directories (see :func:`load_crls`).
    :param revocation: ``hard-fail``, ``soft-fail`` or ``off``.
    :param online: download CRLs (and ask OCSP) from the certificates' URLs.
    :param cache_dir: CRL cache (default :func:`default_crl_cache_dir`), online only.
    :param progress: ``progress(url, received, total)`` for downloads.
    """
    from cps.trust.validate import Validator

    fetcher = ocsp = None
    if online:
        from cps.trust.fetch import Fetcher
        from cps.trust.ocsp import OcspClient

        fetcher = Fetcher(cache_dir=cache_dir or default_crl_cache_dir(), progress=progress)
        ocsp = OcspClient(fetcher)
    validator = Validator(trust_store(anchors), revocation=revocation, fetcher=fetcher,
                          ocsp=ocsp)
    for der, source in load_crls(crls):
        validator.add_crl(der, source=source)
    return validator


def validation_summary(result: "ValidationResult") -> Dict[str, Any]:
    """A successful :class:`~cps.trust.ValidationResult` as data.

    :returns: ``valid`` (true), ``validated_at``, ``purpose``, ``policies``
        (sorted OIDs), ``path`` (leaf first: ``position, subject, issuer,
        serial, not_before, not_after, sha256``), ``anchor`` (its subject),
        ``revocation`` (per certificate: ``position, subject, status, source,
        next_update``).
    """
    path = []
    for position, der in enumerate(result.path_der):
        summary = certificate_summary(der)
        path.append({"position": position, "subject": summary["subject"],
                     "issuer": summary["issuer"], "serial": summary["serial"],
                     "not_before": summary["not_before"], "not_after": summary["not_after"],
                     "sha256": summary["sha256"]})
    revocation = [{"position": s.position, "subject": path[s.position]["subject"]
                   if s.position < len(path) else s.subject,
                   "status": s.status, "source": s.source or None,
                   "next_update": iso(s.next_update)} for s in result.revocation]
    return {
        "valid": True,
        "validated_at": iso(result.validated_at),
        "purpose": result.purpose.value if result.purpose is not None else None,
        "policies": sorted(result.policies),
        "path": path,
        "anchor": path[-1]["subject"] if path else None,
        "revocation": revocation,
    }


def error_to_dict(exc: BaseException) -> Dict[str, Any]:
    """The data an error carries (never a PIN): ``type, message`` and, when the error
    has them, ``reason, position, subject, sw, tries_left, revocation_date,
    revocation_reason, not_before, not_after, source, next_update, failures, atr,
    reader, card_name``."""
    out: Dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    for name in ("reason", "position", "subject", "what", "tries_left", "revocation_reason",
                 "source", "purpose", "reader", "card_name", "host", "cause"):
        value = getattr(exc, name, None)
        if value is not None and value != "":
            out[name] = value
    for name in ("revocation_date", "not_before", "not_after", "next_update"):
        value = getattr(exc, name, None)
        if isinstance(value, dt.datetime):
            out[name] = iso(value)
    sw = getattr(exc, "sw", None)
    if isinstance(sw, int):
        out["sw"] = f"{sw:04X}"
    atr = getattr(exc, "atr", None)
    if atr:
        out["atr"] = bytes(atr).hex().upper()
    failures = getattr(exc, "failures", None)
    if failures:
        out["failures"] = [str(f) for f in failures]
    return out


# --------------------------------------------------------------------------- CRLs
def crl_summary(der: bytes, entries: int = 10, source: str = "",
                now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """What ``cps crl show`` prints.

    :param der: the CRL (DER).
    :param entries: how many revoked entries to list (the first ones, in CRL order).
    :param source: where it came from (file or URL), for errors and the output.
    :param now: for ``fresh`` (default: now).
    :returns: ``source, issuer, this_update, next_update, fresh, crl_number,
        delta, base_crl_number, entry_count, size, sha256, signature_algorithm,
        authority_key_identifier, freshest_crl_urls, issuing_distribution_point,
        entries`` (``serial`` hex, ``revocation_date``, ``reason``,
        ``invalidity_date``).
    :raises CrlError: not a well-formed CRL.
    """
    from cps.trust.crlindex import CrlIndex

    index = CrlIndex.load(bytes(der), source=source)
    now = now or dt.datetime.now(dt.timezone.utc)
    idp = index.issuing_distribution_point
    listed: List[Dict[str, Any]] = []
    for entry in index.iter_entries():
        if len(listed) >= entries:
            break
        listed.append({"serial": format(entry.serial, "X"),
                       "revocation_date": iso(entry.revocation_date),
                       "reason": entry.reason, "invalidity_date": iso(entry.invalidity_date)})
    return {
        "source": source or None,
        "issuer": _name_text(index.issuer_der),
        "this_update": iso(index.this_update),
        "next_update": iso(index.next_update),
        "fresh": index.next_update is not None and index.this_update <= now <= index.next_update,
        "crl_number": index.crl_number,
        "delta": index.is_delta,
        "base_crl_number": index.base_crl_number,
        "entry_count": index.entry_count,
        "size": len(der),
        "sha256": hashlib.sha256(der).hexdigest().upper(),
        "signature_algorithm": _SIG_NAMES.get(index.signature_algorithm_oid,
                                              index.signature_algorithm_oid),
        "authority_key_identifier": index.authority_key_identifier.hex().upper()
        if index.authority_key_identifier else None,
        "freshest_crl_urls": list(index.freshest_crl_urls),
        "issuing_distribution_point": None if idp is None else {
            "urls": list(idp.full_name), "only_user": idp.only_user, "only_ca": idp.only_ca,
            "indirect": idp.indirect,
            "only_some_reasons": sorted(idp.only_some_reasons)
            if idp.only_some_reasons is not None else None},
        "entries": listed,
    }


def crl_cache_status(cache_dir: Optional[os.PathLike[str] | str] = None,
                     now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """What the CRL cache of :class:`cps.trust.fetch.Fetcher` holds, fresh or stale.

    Reads the JSON sidecars (format documented in :mod:`cps.trust.fetch`) and
    checks each content file against its recorded SHA-256.

    :returns: ``{"cache_dir", "entries": [...]}``, each entry ``url, kind, path,
        size, fetched_at, this_update, next_update, state`` (``fresh``: before
        its nextUpdate; ``stale``: past it or without one; ``corrupt``: content
        missing or not matching), ``refresh_due`` (the fetcher would ask the
        server again now: past nextUpdate or a newer daily publication).
    """
    from cps.trust.fetch import Fetcher, FetchResult

    directory = Path(cache_dir) if cache_dir is not None else default_crl_cache_dir()
    now = now or dt.datetime.now(dt.timezone.utc)
    fetcher = Fetcher(cache_dir=directory)
    entries = []
    sidecars = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for sidecar in sidecars:
        try:
            meta = json.loads(sidecar.read_bytes())
            url = str(meta["url"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours
        content = sidecar.with_suffix(".bin")
        try:
            data = content.read_bytes()
            intact = hashlib.sha256(data).hexdigest() == meta.get("sha256")
        except OSError:
            data, intact = b"", False

        def parse(value: Any) -> Optional[dt.datetime]:
            try:
                return dt.datetime.fromisoformat(value) if value else None
            except (TypeError, ValueError):
                return None

        fetched, this_u, next_u = (parse(meta.get("fetched_at")), parse(meta.get("this_update")),
                                   parse(meta.get("next_update")))
        if not intact:
            state = "corrupt"
        elif next_u is not None and now < next_u:
            state = "fresh"
        else:
            state = "stale"
        due = True
        if intact and fetched is not None and meta.get("kind") == "crl":
            due = fetcher.needs_refresh(FetchResult(der=data, source=url, from_cache=True,
                                                    fetched_at=fetched, this_update=this_u,
                                                    next_update=next_u), now)
        entries.append({"url": url, "kind": meta.get("kind"), "path": str(content),
                        "size": meta.get("size"), "fetched_at": iso(fetched),
                        "this_update": iso(this_u), "next_update": iso(next_u),
                        "state": state, "refresh_due": due})
    entries.sort(key=lambda e: e["url"])
    return {"cache_dir": str(directory), "entries": entries}


# --------------------------------------------------------------------------- emulator
def test_pki_summary(pki: Any) -> Dict[str, Any]:
    """The emulator's TEST PKI as data (``cps emulator pki``): **test only**.

    :returns: ``test_only`` (true), ``directory, seed, base_url,
        reference_time, ocsp_url, crl_directory``, ``roots`` and
        ``intermediates`` (``name, subject, certificate`` (file), ``sha256,
        not_before, not_after, cert_url, crl_url``, intermediates also
        ``parent, delta_crl_url``).
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    directory = Path(pki.directory) if pki.directory is not None else None

    def ca_entry(name: str) -> Dict[str, Any]:
        ca = pki.ca(name)
        der = ca.cert.public_bytes(Encoding.DER)
        summary = certificate_summary(der)
        entry = {"name": ca.name, "subject": summary["subject"],
                 "certificate": str(directory / "ca" / f"{ca.stem}.cer") if directory else None,
                 "sha256": summary["sha256"], "not_before": summary["not_before"],
                 "not_after": summary["not_after"], "cert_url": ca.cert_url,
                 "crl_url": ca.crl_url}
        if not ca.is_root:
            entry["parent"] = ca.parent
            entry["delta_crl_url"] = ca.delta_crl_url
        return entry

    seed = pki.seed
    return {
        "test_only": True,
        "directory": str(directory) if directory else None,
        "seed": seed if isinstance(seed, int) else bytes(seed).hex(),
        "base_url": pki.base_url,
        "reference_time": iso(pki.reference_time),
        "ocsp_url": f"{pki.base_url}/ocsp",
        "crl_directory": str(directory / "crl") if directory else None,
        "roots": [ca_entry(n) for n in pki.roots],
        "intermediates": [ca_entry(n) for n in pki.intermediates],
    }


# --------------------------------------------------------------------------- signatures
def cms_verification_summary(result: Any) -> Dict[str, Any]:
    """A :class:`cps.sign.CmsVerification` as data: ``valid, signer`` (certificate
    summary), ``signing_time, digest_algorithm, signing_certificate_bound,
    practitioner, validation`` (:func:`validation_summary` or ``None``)."""
    return {
        "valid": True,
        "signer": certificate_summary(result.signer, KeyRole.SIGN),
        "signing_time": iso(result.signing_time),
        "digest_algorithm": result.digest_algorithm,
        "signing_certificate_bound": result.signing_certificate_bound,
        "practitioner": result.practitioner.to_dict() if result.practitioner else None,
        "validation": validation_summary(result.validation) if result.validation else None,
    }


def timestamp_summary(info: Any) -> Optional[Dict[str, Any]]:
    """A verified :class:`cps.timestamp.TimestampInfo` as data (``None`` for none)."""
    if info is None:
        return None
    return {
        "gen_time": iso(info.gen_time),
        "tsa": info.tsa_certificate.subject.rfc4514_string(),
        "serial_number": str(info.serial_number),
        "policy": info.policy,
        "hash_algorithm": info.hash_algorithm,
        "validated": info.validation is not None,
    }


def xades_verification_summary(result: Any) -> Dict[str, Any]:
    """A :class:`cps.xades.XadesVerification` as data: what the CMS summary gives,
    plus ``level`` and ``covered`` (``uri, kind, digest_algorithm, size``)."""
    return {
        "valid": True,
        "signer": certificate_summary(result.signer, KeyRole.SIGN),
        "level": result.level,
        "signing_time": iso(result.signing_time),
        "digest_algorithm": result.signature_algorithm,
        "signing_certificate_bound": True,
        "covered": [{"uri": r.uri, "kind": r.kind, "digest_algorithm": r.digest_algorithm,
                     "size": len(r.data) if r.data is not None else None}
                    for r in result.covered],
        "timestamp": timestamp_summary(result.timestamp),
        "practitioner": result.practitioner.to_dict() if result.practitioner else None,
        "validation": validation_summary(result.validation) if result.validation else None,
        "validation_time": iso(result.validation_time),
        "validation_time_source": result.validation_time_source,
    }


def pdf_verification_summary(result: Any) -> Dict[str, Any]:
    """One :class:`cps.pades.PdfVerification` as data."""
    return {
        "field_name": result.field_name,
        "signer": certificate_summary(result.signer, KeyRole.SIGN),
        "subfilter": result.subfilter,
        "digest_algorithm": result.cms.digest_algorithm,
        "byte_range": list(result.byte_range),
        "signed_end": result.signed_end,
        "covers_whole_file": result.covers_whole_file,
        "unsigned_bytes": result.unsigned_bytes,
        "updates_after": result.updates_after,
        "modification_level": result.modification_level,
        "modification_detail": result.modification_detail,
        "docmdp": getattr(result, "docmdp", None),
        "signing_time": iso(result.signing_time),
        "timestamp": timestamp_summary(getattr(result.cms, "timestamp", None)),
        "practitioner": result.practitioner.to_dict() if result.practitioner else None,
        "validation": validation_summary(result.validation) if result.validation else None,
        "validation_time": iso(result.validation_time),
        "validation_time_source": result.validation_time_source,
    }


# --------------------------------------------------------------------------- authentication
def auth_round(card: Card, validator: "Validator", origin: str = "https://localhost",
               at: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """One local challenge-response login: issue a nonce, have the card answer, verify.

    The card's PIN must already be verified (contact interface). Everything a
    server would do runs: :class:`~cps.auth.ChallengeIssuer`,
    ``card.auth_token``, :class:`~cps.auth.Verifier` (signature, purpose,
    chain, revocation through ``validator``).

    :returns: ``authenticated`` (true), ``origin``, ``practitioner``
        (``validated: true``), ``certificate`` (summary), ``validation``
        (:func:`validation_summary`), ``timings`` (``card_ms``, ``verify_ms``).
    :raises AuthError: the token was refused (signature, nonce, origin).
    :raises CertificateError: the certificate is not valid (expired, revoked...).
    :raises RevocationError: no revocation status (hard-fail).
    """
    from cps.auth import ChallengeIssuer, Verifier

    issuer = ChallengeIssuer()
    challenge = issuer.issue()
    start = time.perf_counter()
    token = card.auth_token(challenge.nonce, origin)
    middle = time.perf_counter()
    result = Verifier(validator, issuer.store, [origin]).verify(token, origin, at=at)
    end = time.perf_counter()
    role = KeyRole.TECH if card.contactless else KeyRole.AUTH
    return {
        "authenticated": True,
        "origin": origin,
        "practitioner": result.practitioner.to_dict(),
        "certificate": certificate_summary(result.certificate_der, role),
        "validation": validation_summary(result.validation),
        "timings": {"card_ms": round((middle - start) * 1000, 1),
                    "verify_ms": round((end - middle) * 1000, 1)},
    }
