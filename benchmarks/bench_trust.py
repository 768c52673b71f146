"""Leaf validations per second with a 1,000,000-entry CRL loaded.

Ours: ``cps.trust.Validator`` (RFC 5280 path validation with policies, the
1M-entry CRL of the issuing CA and the root's CRL, hard-fail revocation,
purpose check) over 2,000 *distinct* leaves, so no per-leaf result can be
reused. Anchors in the same run: cryptography's client verifier alone (no
revocation, web-PKI rules) on the same leaves, and pyhanko-certvalidator with
the same CRLs (a few validations: it takes seconds each). Target (issue 5):
at least 10,000 per second on one core.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import random
import time
from typing import List

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from cps.card import KeyRole
from cps.emulator.pki import TestPKI
from cps.trust.anchors import TrustStore
from cps.trust.crlindex import CrlIndex
from cps.trust.validate import Validator

from .common import Figure
from .crlgen import CACHE_DIR, cached_crl_path

N_ENTRIES = 1_000_000
N_LEAVES = 2_000
SEED = 1


def _leaves(pki: TestPKI, template: x509.Certificate) -> List[bytes]:
    """2,000 leaves like a card's authentication certificate, each with its own serial
    and name (one key pair for all: key generation is not what we measure)."""
    path = CACHE_DIR / f"leaves-{N_LEAVES}-{template.serial_number:x}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    ca = pki.ca("FORT PERSONNES")
    rng = random.Random(SEED)
    out = []
    for i in range(N_LEAVES):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                                               f"8{10000000000 + i}"),
                                            x509.NameAttribute(x509.NameOID.COUNTRY_NAME,
                                                               "FR")]))
                   .issuer_name(template.issuer)
                   .public_key(template.public_key())
                   .serial_number(rng.getrandbits(126) | (1 << 126))
                   .not_valid_before(template.not_valid_before_utc)
                   .not_valid_after(template.not_valid_after_utc))
        for ext in template.extensions:
            if ext.oid != x509.ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
                builder = builder.add_extension(ext.value, ext.critical)
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.RFC822Name(f"leaf{i}@carte-cps.fr")]), critical=False)
        out.append(builder.sign(ca.key, hashes.SHA256()).public_bytes(Encoding.DER))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def run() -> List[Figure]:
    pki = TestPKI.generate(CACHE_DIR / "pki", seed=1)
    ca = pki.ca("FORT PERSONNES")
    crl_der = cached_crl_path(N_ENTRIES, ca.cert, ca.key, seed=SEED).read_bytes()
    big = CrlIndex.load(crl_der, source="1M-entry CRL")
    at = big.this_update + dt.timedelta(hours=1)
    root_crl = pki.crl("FORT", at=at)
    creds = pki.issue_card("cps3-medecin")
    leaves = _leaves(pki, creds.auth_cert)
    store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
    validator = Validator(store, crls=[big, root_crl])

    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for der in leaves:
            validator.validate(der, at=at, purpose=KeyRole.AUTH)
        runs.append(len(leaves) / (time.perf_counter() - start))
    ours = max(runs)

    anchors = {}
    # cryptography's verifier alone: no revocation at all
    try:
        from cryptography.x509.verification import PolicyBuilder, Store

        verifier = (PolicyBuilder().store(Store([creds.chain[1]])).time(at)
                    .build_client_verifier())
        inter = creds.chain[0]
        objs = [x509.load_der_x509_certificate(d) for d in leaves]
        start = time.perf_counter()
        for leaf in objs:
            verifier.verify(leaf, [inter])
        anchors["cryptography verifier (no revocation)"] = len(objs) / (
            time.perf_counter() - start)
    except Exception:  # noqa: BLE001 - an anchor that cannot run is reported as n/a
        anchors["cryptography verifier (no revocation)"] = None

    anchors["pyhanko-certvalidator (same CRLs)"] = _pyhanko(creds, leaves, crl_der, root_crl, at)
    return [Figure("leaf validations with a 1,000,000-entry CRL (RFC 5280 + revocation)",
                   "validations/s", ours, anchors, better="higher", target=10_000,
                   note=f"{N_LEAVES} distinct leaves, best of 3 passes; one core")]


def _pyhanko(creds, leaves, crl_der: bytes, root_crl: bytes, at) -> float:
    try:
        from pyhanko_certvalidator import CertificateValidator, ValidationContext
        from asn1crypto import x509 as ax
    except ImportError:
        return None  # type: ignore[return-value]
    root = ax.Certificate.load(creds.chain[1].public_bytes(Encoding.DER))
    inter = ax.Certificate.load(creds.chain[0].public_bytes(Encoding.DER))
    done, start = 0, time.perf_counter()
    for der in leaves[:3]:
        context = ValidationContext(trust_roots=[root], other_certs=[inter],
                                    crls=[crl_der, root_crl], revocation_mode="hard-fail",
                                    moment=at)
        validator = CertificateValidator(ax.Certificate.load(der), validation_context=context)
        asyncio.run(validator.async_validate_usage({"digital_signature"}))
        done += 1
        if time.perf_counter() - start > 30:
            break
    return done / (time.perf_counter() - start)
