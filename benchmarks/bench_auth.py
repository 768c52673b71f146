"""Server-side verification of authentication tokens, with a warm 1,000,000-entry CRL.

Each token answers its own challenge (nonces are single-use), is parsed,
consumes its nonce, has its signature checked, and its certificate validated
(RFC 5280 + the issuing CA's 1M-entry CRL + the root's CRL) before the
practitioner is extracted: everything ``Verifier.verify`` does in production.

Every token of a pass comes from a *different* practitioner: 3,000 card-like
authentication certificates (the emulated card's subject and extensions, each
with its own serial, RPPS number, names, UPN and one of 16 key pairs), so that
nothing a verifier could remember about a certificate helps: the figure is the
cost of a practitioner's first login: each pass uses a new ``Verifier``.
"Warm" is the CRL's state (loaded and indexed) and the CA part of the path
(validated once per CRL generation), as on a server that has been up for a
minute. Each verification is at its own "now" (a new datetime, 200 µs after
the previous one), as a server's are. Best of 3 passes, each with fresh
challenges.

A second figure, without a target: the same practitioners coming back to a
verifier that has met them (``known_certificates``): what never changes for a
certificate is remembered, while the token's signature, the validity dates,
revocation and the CA path are checked on every token.

The anchor is the token's signature check done alone with cryptography, the
floor under any verifier. Target (issue 6): at least 5,000 per second on one
core.

Both figures are measured twice in the same run: with the test PKI's RSA-2048
CAs (the historical figures) and with RSA-4096 CAs, as production
IGC-Santé's are (the CA's signature on each certificate and on the CRLs is
then a 4096-bit check; practitioners' keys stay RSA-2048, as on CPS cards).
Each key size has its own PKI, 1M-entry CRL and certificates, cached on disk
under ``benchmarks/.cache`` (the RSA-4096 PKI costs ~20 s the first time
only). The passes of the two key sizes alternate, so that a burst of load on
the machine weighs on both alike; the anchor (the practitioner's RSA-2048
key, the same at both sizes) is shared by all four rows.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pickle
import random
import time
from typing import Dict, List, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding

from cps.auth import ChallengeIssuer, MemoryNonceStore, Verifier
from cps.auth.token import TOKEN_FORMAT, signed_data
from cps.emulator.keys import cached_rsa_key
from cps.emulator.pki import TestPKI
from cps.identity import OID_MS_UPN, UPN_DOMAIN, luhn_valid
from cps.trust import TrustStore, Validator
from cps.trust.crlindex import CrlIndex

from .common import CA_KEY_BITS, Figure, bench_pki, cert_tag
from .crlgen import CACHE_DIR, cached_crl_path

N_PRACTITIONERS = 3_000
N_KEYS = 16
PASSES = 3
ORIGIN = "https://dmp.example.fr"
_NAMES = ["MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND",
          "LEFÈVRE", "MOREAU", "SIMON", "LAURENT", "MICHEL", "GARCÍA", "DAVID", "BERTRAND"]
_FIRST = ["ÉLODIE", "JEAN", "MARIE", "LUC", "CHLOÉ", "HÉLÈNE", "PAUL", "INÈS"]
_TITLES = ["Médecin", "Pharmacien", "Infirmier", "Chirurgien-Dentiste", "Sage-Femme"]
#: TRE_G15 codes of the titles, for extension 1.2.250.1.71.1.2.7 (as on real cards)
_CODES = {"Médecin": 10, "Pharmacien": 21, "Infirmier": 60, "Chirurgien-Dentiste": 40,
          "Sage-Femme": 50}
OID_PROFESSION = x509.ObjectIdentifier("1.2.250.1.71.1.2.7")


def _practitioners(pki: TestPKI, template: x509.Certificate) -> List[Tuple[bytes, int]]:
    """(certificate DER, key index) of 3,000 card-like authentication certificates."""
    ca = pki.ca("FORT PERSONNES")
    # Named after the template *and* the signing CA: the RSA-2048 and RSA-4096
    # PKIs issue the same serials and names under different keys.
    path = CACHE_DIR / (f"auth-leaves-v2-{N_PRACTITIONERS}-{template.serial_number:x}-"
                        f"{cert_tag(template, ca.cert)}.pickle")
    if path.exists():
        return pickle.loads(path.read_bytes())
    keys = [cached_rsa_key(CACHE_DIR / "keys", 1, f"bench-auth/{k}") for k in range(N_KEYS)]
    rng = random.Random(6)
    out = []
    for i in range(N_PRACTITIONERS):
        body = f"1{100000000 + i:09d}"   # RPPS: 10 digits and a Luhn digit
        idnat = "8" + next(body + d for d in "0123456789" if luhn_valid(body + d))
        name = x509.Name([
            x509.RelativeDistinguishedName([
                x509.NameAttribute(x509.NameOID.GIVEN_NAME, rng.choice(_FIRST)),
                x509.NameAttribute(x509.NameOID.COMMON_NAME, idnat),
                x509.NameAttribute(x509.NameOID.SURNAME, rng.choice(_NAMES))]),
            x509.RelativeDistinguishedName([
                x509.NameAttribute(x509.NameOID.TITLE, title := rng.choice(_TITLES))]),
            x509.RelativeDistinguishedName([
                x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "FR")])])
        k = i % N_KEYS
        upn = x509.OtherName(OID_MS_UPN_X509, _utf8(f"{idnat}@{UPN_DOMAIN}"))
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(template.issuer)
                   .public_key(keys[k].public_key())
                   .serial_number(rng.getrandbits(126) | (1 << 126))
                   .not_valid_before(template.not_valid_before_utc)
                   .not_valid_after(template.not_valid_after_utc))
        for ext in template.extensions:
            if ext.oid == x509.ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
                builder = builder.add_extension(x509.SubjectAlternativeName([upn]), ext.critical)
            elif ext.oid == OID_PROFESSION:   # the holder's own code (INTEGER)
                code = _CODES[title]
                builder = builder.add_extension(
                    x509.UnrecognizedExtension(OID_PROFESSION, bytes((0x02, 1, code))),
                    ext.critical)
            elif ext.oid == x509.ExtensionOID.SUBJECT_KEY_IDENTIFIER:
                builder = builder.add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(keys[k].public_key()), ext.critical)
            else:
                builder = builder.add_extension(ext.value, ext.critical)
        out.append((builder.sign(ca.key, hashes.SHA256()).public_bytes(Encoding.DER), k))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


OID_MS_UPN_X509 = x509.ObjectIdentifier(OID_MS_UPN)


def _utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    return bytes([0x0C, len(raw)]) + raw


class _Setup:
    """Everything one CA key size needs: its PKI, warm 1M-entry CRL, validator,
    3,000 practitioners, challenge issuer, and a verifier warmed on all of them."""

    def __init__(self, ca_key_bits: int) -> None:
        pki = bench_pki(ca_key_bits)
        ca = pki.ca("FORT PERSONNES")
        big = CrlIndex.load(cached_crl_path(1_000_000, ca.cert, ca.key, seed=1).read_bytes())
        at = big.this_update + dt.timedelta(hours=1)
        store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
        self.validator = Validator(store, crls=[big, pki.crl("FORT", at=at)])
        self.creds = pki.issue_card("cps3-medecin")
        self.practitioners = _practitioners(pki, self.creds.auth_cert)
        self.keys = [cached_rsa_key(CACHE_DIR / "keys", 1, f"bench-auth/{k}")
                     for k in range(N_KEYS)]
        # consumed nonces are kept until they would have expired: room for every pass
        self.issuer = ChallengeIssuer(MemoryNonceStore(max_entries=N_PRACTITIONERS * 10))
        # A server validates "now": a new datetime per token, a few microseconds apart
        # (the 1M-entry CRL is cached on disk, so "now" is a fixed moment in its life).
        self.moments = [at + dt.timedelta(microseconds=i * 200)
                        for i in range(N_PRACTITIONERS)]
        # Warm-up: the CA part of the path and the CRLs; every result checked once.
        self.warm = self.verifier()
        for (der, _), token in zip(self.practitioners, self.tokens(), strict=True):
            result = self.warm.verify(token, ORIGIN, at=at)
            who = result.practitioner
            assert result.certificate_der == der and who.validated and who.rpps_luhn_ok \
                and who.rpps and not who.warnings, who  # noqa: S101

    def verifier(self) -> Verifier:
        return Verifier(self.validator, self.issuer.store, [ORIGIN],
                        known_certificates=N_PRACTITIONERS)

    def tokens(self) -> List[str]:
        out = []
        for der, k in self.practitioners:   # signing is the card's job: not measured
            nonce = self.issuer.issue().nonce
            sig = self.keys[k].sign(signed_data(ORIGIN, nonce), padding.PKCS1v15(),
                                    hashes.SHA256())
            out.append(json.dumps({"format": TOKEN_FORMAT, "algorithm": "RS256",
                                   "certificate": base64.b64encode(der).decode(),
                                   "nonce": nonce, "origin": ORIGIN,
                                   "signature": base64.b64encode(sig).decode()}))
        return out

    def rate(self, check: Verifier) -> float:
        """Verifications/s over one pass of fresh tokens (made before the clock starts)."""
        batch = self.tokens()
        start = time.perf_counter()
        for token, moment in zip(batch, self.moments, strict=True):
            check.verify(token, ORIGIN, at=moment)
        return len(batch) / (time.perf_counter() - start)


FIRST = "token verifications, chain and warm 1M-entry CRL included"
RETURNING = "token verifications, returning practitioners (certificate seen before)"


def run() -> List[Figure]:
    setups = {bits: _Setup(bits) for bits in CA_KEY_BITS}
    # The passes of the CA key sizes alternate, so that a burst of load on the
    # machine weighs on both alike: best of PASSES for each.
    first: Dict[int, List[float]] = {bits: [] for bits in setups}
    returning: Dict[int, List[float]] = {bits: [] for bits in setups}
    for _ in range(PASSES):
        # First logins: a new verifier per pass, so no certificate has been seen.
        for bits, setup in setups.items():
            first[bits].append(setup.rate(setup.verifier()))
    for _ in range(PASSES):
        # Returning practitioners: the warmed verifier has met all 3,000 before.
        for bits, setup in setups.items():
            returning[bits].append(setup.rate(setup.warm))

    creds = setups[CA_KEY_BITS[0]].creds   # practitioners' keys are RSA-2048 at any CA size
    key = creds.auth_cert.public_key()
    data = signed_data(ORIGIN, "x" * 43)
    sig = creds.auth_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    floor = []
    for _ in range(PASSES):
        start = time.perf_counter()
        for _ in range(N_PRACTITIONERS):
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        floor.append(N_PRACTITIONERS / (time.perf_counter() - start))
    anchor = {"RSA-2048 signature check alone (cryptography)": max(floor)}
    # First logins for each CA key size, then returning practitioners for each.
    return ([Figure(f"{FIRST}, RSA-{bits} CAs", "verifications/s", max(first[bits]), anchor,
                    better="higher", target=5_000,
                    note=f"{N_PRACTITIONERS} tokens per pass, each from a different "
                         f"practitioner's certificate never seen before; best of {PASSES} "
                         f"passes; one core; RSA-{bits} CA keys (practitioner keys RSA-2048)")
             for bits in setups]
            + [Figure(f"{RETURNING}, RSA-{bits} CAs", "verifications/s", max(returning[bits]),
                      anchor, better="higher",
                      note=f"the same {N_PRACTITIONERS} practitioners again: token signature, "
                           "validity, revocation and CA path checked anew; best of "
                           f"{PASSES} passes; one core; RSA-{bits} CA keys")
               for bits in setups])
