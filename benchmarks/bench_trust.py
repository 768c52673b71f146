"""Leaf validations per second with a 1,000,000-entry CRL loaded.

Ours: ``cps.trust.Validator`` (RFC 5280 path validation with policies, the
1M-entry CRL of the issuing CA and the root's CRL, hard-fail revocation,
purpose check) over 2,000 *distinct* leaves, so no per-leaf result can be
reused. Anchors in the same run: cryptography's client verifier alone (no
revocation, web-PKI rules) on the same leaves, and pyhanko-certvalidator with
the same CRLs (a few validations: it takes seconds each). Target (issue 5):
at least 10,000 per second on one core.

Measured twice in the same run: with the test PKI's RSA-2048 CAs (the
historical figure) and with RSA-4096 CAs, as production IGC-Santé's are (the
CA's signature on each leaf and on the CRLs is then a 4096-bit check). Each
key size has its own PKI, 1M-entry CRL and leaves, all cached on disk under
``benchmarks/.cache`` (the RSA-4096 PKI costs ~20 s the first time only). The
passes of the two key sizes alternate, so that a burst of load on the machine
weighs on both alike; the anchors are measured on the same chain, leaves and
CRLs as the figure beside them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import random
import time
from typing import Dict, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from cps.card import KeyRole
from cps.emulator.pki import TestPKI
from cps.trust.anchors import TrustStore
from cps.trust.crlindex import CrlIndex
from cps.trust.validate import Validator

from .common import CA_KEY_BITS, Figure, bench_pki, cert_tag
from .crlgen import CACHE_DIR, cached_crl_path

N_ENTRIES = 1_000_000
N_LEAVES = 2_000
SEED = 1


def _leaves(pki: TestPKI, template: x509.Certificate) -> List[bytes]:
    """2,000 leaves like a card's authentication certificate, each with its own serial
    and name (one key pair for all: key generation is not what we measure)."""
    ca = pki.ca("FORT PERSONNES")
    # Named after the template *and* the signing CA: the RSA-2048 and RSA-4096
    # PKIs issue the same serials and names under different keys.
    path = CACHE_DIR / (f"leaves-{N_LEAVES}-{template.serial_number:x}-"
                        f"{cert_tag(template, ca.cert)}.pickle")
    if path.exists():
        return pickle.loads(path.read_bytes())
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


NAME = "leaf validations with a 1,000,000-entry CRL (RFC 5280 + revocation)"


class _Setup:
    """One CA key size: its PKI, 1M-entry CRL, 2,000 leaves and validator."""

    def __init__(self, ca_key_bits: int) -> None:
        pki = bench_pki(ca_key_bits)
        ca = pki.ca("FORT PERSONNES")
        self.crl_der = cached_crl_path(N_ENTRIES, ca.cert, ca.key, seed=SEED).read_bytes()
        big = CrlIndex.load(self.crl_der, source="1M-entry CRL")
        self.at = big.this_update + dt.timedelta(hours=1)
        self.root_crl = pki.crl("FORT", at=self.at)
        self.creds = pki.issue_card("cps3-medecin")
        self.leaves = _leaves(pki, self.creds.auth_cert)
        store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
        self.validator = Validator(store, crls=[big, self.root_crl])

    def rate(self) -> float:
        """Validations/s over one pass of the 2,000 leaves."""
        start = time.perf_counter()
        for der in self.leaves:
            self.validator.validate(der, at=self.at, purpose=KeyRole.AUTH)
        return len(self.leaves) / (time.perf_counter() - start)

    def anchors(self) -> Dict[str, Optional[float]]:
        """The anchors, on this key size's chain, leaves and CRLs."""
        anchors: Dict[str, Optional[float]] = {}
        creds, at, leaves = self.creds, self.at, self.leaves
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

        anchors["pyhanko-certvalidator (same CRLs)"] = _pyhanko(
            creds, leaves, self.crl_der, self.root_crl, at)
        return anchors


def run() -> List[Figure]:
    setups = {bits: _Setup(bits) for bits in CA_KEY_BITS}
    # The passes of the CA key sizes alternate, so that a burst of load on the
    # machine weighs on both alike: best of 3 for each.
    runs: Dict[int, List[float]] = {bits: [] for bits in setups}
    for _ in range(3):
        for bits, setup in setups.items():
            runs[bits].append(setup.rate())
    return [Figure(f"{NAME}, RSA-{bits} CAs", "validations/s", max(runs[bits]),
                   setup.anchors(), better="higher", target=10_000,
                   note=f"{N_LEAVES} distinct leaves, best of 3 passes; one core; "
                        f"RSA-{bits} CA keys (leaf keys RSA-2048)")
            for bits, setup in setups.items()]


def _pyhanko(creds, leaves, crl_der: bytes, root_crl: bytes, at) -> float:
    try:
        from asn1crypto import x509 as ax
        from pyhanko_certvalidator import CertificateValidator, ValidationContext
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
