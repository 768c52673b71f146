"""Hostile CRLs for revocation tests: forged, planted and future-dated.

.. warning::
   TEST-ONLY. The "attacker" keys are derived from the test PKI's public seed.

What an attacker (or a broken mirror) can put at a CA's real CRL URL, to serve
with :meth:`cps.testing.pkiserver.PkiServer.override`:

* **forged**: :func:`forged_crl` — a CRL that names the CA as its issuer and
  carries the CA's authority key identifier, but is signed by another key (by
  default a deterministic attacker key, :func:`attacker_key`). It may hide
  revocations (empty list, the default), invent some, copy the genuine entries,
  claim a huge CRL number, or be a delta.
* **future-dated**: a genuine one is just ``pki.crl(ca_name, at)`` with ``at``
  in the future (signed by the CA: only its dates are wrong); a forged one is
  ``forged_crl(pki, ca_name, at)`` with a future ``at``.
* **planted**: another CA's genuine CRL served at this CA's URL: correctly
  signed, by the wrong issuer::

      victim = f"/crl/{pki.ca('FORT PERSONNES').stem}.crl"
      server.override(victim, pki.crl("STANDARD PERSONNES", at))
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cps.emulator.keys import cached_rsa_key, seed_bytes
from cps.emulator.pki import DEFAULT_NEXT_UPDATE, crl_number

if TYPE_CHECKING:
    from cps.emulator.pki import TestPKI

__all__ = ["RevokedSpec", "attacker_key", "forged_crl"]

#: An entry of :func:`forged_crl`: a serial (revoked at the CRL's thisUpdate, no
#: reason), ``(serial, date)``, ``(serial, date, reason)`` or a parsed entry.
RevokedSpec = (int | tuple[int, datetime] | tuple[int, datetime, x509.ReasonFlags]
               | x509.RevokedCertificate)

_keys: dict[tuple[bytes, str, str], rsa.RSAPrivateKey] = {}
_keys_lock = threading.Lock()


def attacker_key(pki: TestPKI, label: str = "attacker") -> rsa.RSAPrivateKey:
    """A deterministic TEST-ONLY RSA-2048 key that no CA of ``pki`` holds.

    Derived from the PKI seed and ``label`` (cached in the PKI's ``keys/``
    directory, and in memory for the process).

    :param pki: the test PKI.
    :param label: tells attacker keys apart; the same label gives the same key.
    """
    directory = pki.directory / "keys" if pki.directory is not None else None
    cache_key = (seed_bytes(pki.seed), label, str(directory))
    with _keys_lock:
        key = _keys.get(cache_key)
        if key is None:
            key = _keys[cache_key] = cached_rsa_key(directory, pki.seed,
                                                    f"forge/{label}", 2048)
    return key


def forged_crl(
    pki: TestPKI,
    ca_name: str,
    at: datetime,
    next_update: timedelta = DEFAULT_NEXT_UPDATE,
    revoked: Iterable[RevokedSpec] = (),
    *,
    delta_base: datetime | None = None,
    number: int | None = None,
    signing_key: rsa.RSAPrivateKey | None = None,
) -> bytes:
    """A CRL (DER) that claims to come from a CA of ``pki`` but is not signed by it.

    Issuer name, authority key identifier, freshestCRL (complete CRLs of
    intermediates) and CRL number follow the genuine CRLs of
    :meth:`TestPKI.crl <cps.emulator.pki.TestPKI.crl>`, so that only the
    signature betrays it. Deterministic: same arguments, same bytes.

    :param pki: the test PKI.
    :param ca_name: short name of the CA it impersonates.
    :param at: thisUpdate (aware datetime; whole seconds are kept); in the
        future for a future-dated forgery.
    :param next_update: nextUpdate - thisUpdate.
    :param revoked: the entries (see :data:`RevokedSpec`); default none, which
        hides every revocation. ``list(genuine_crl)`` copies a parsed CRL's.
    :param delta_base: make it a delta CRL based on the complete CRL issued at
        this time (critical deltaCRLIndicator).
    :param number: the cRLNumber; default :func:`~cps.emulator.pki.crl_number`
        of ``at``, as the genuine CRL issued then.
    :param signing_key: the key that signs; default :func:`attacker_key`. Give
        another CA's key for "signed by a real CA, but not this one".
    """
    ca = pki.ca(ca_name)
    if at.tzinfo is None or (delta_base is not None and delta_base.tzinfo is None):
        raise ValueError("naive datetime: give an aware (UTC) datetime")
    at = at.replace(microsecond=0)
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(at)
        .next_update(at + next_update)
    )
    for spec in revoked:
        builder = builder.add_revoked_certificate(_entry(spec, at))
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False,
    ).add_extension(
        x509.CRLNumber(number if number is not None else crl_number(at, delta_base is not None)),
        critical=False)
    if delta_base is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(crl_number(delta_base)),
                                        critical=True)
    elif ca.delta_crl_url:
        builder = builder.add_extension(x509.FreshestCRL([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(ca.delta_crl_url)],
            relative_name=None, reasons=None, crl_issuer=None)]), critical=False)
    key = signing_key if signing_key is not None else attacker_key(pki)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _entry(spec: RevokedSpec, at: datetime) -> x509.RevokedCertificate:
    if isinstance(spec, x509.RevokedCertificate):
        return spec
    if isinstance(spec, int):
        spec = (spec, at)
    serial, date, *rest = spec
    builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(date)
    if rest and rest[0] != x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(rest[0]), critical=False)
    return builder.build()
