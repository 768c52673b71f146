"""Server-side verification of authentication tokens, with a warm 1,000,000-entry CRL.

Each token answers its own challenge (nonces are single-use), is parsed,
consumes its nonce, has its signature checked, and its certificate validated
(RFC 5280 + the issuing CA's 1M-entry CRL + the root's CRL) before the
practitioner is extracted: everything ``Verifier.verify`` does in production.
The anchor is the same signature check done alone with cryptography, the floor
under any verifier. Target (issue 6): at least 5,000 per second on one core.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from typing import List

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding

from cps.auth import ChallengeIssuer, MemoryNonceStore, Verifier
from cps.auth.token import TOKEN_FORMAT, signed_data
from cps.emulator.pki import TestPKI
from cps.trust import TrustStore, Validator
from cps.trust.crlindex import CrlIndex

from .common import Figure
from .crlgen import CACHE_DIR, cached_crl_path

N_TOKENS = 3_000
ORIGIN = "https://dmp.example.fr"


def run() -> List[Figure]:
    pki = TestPKI.generate(CACHE_DIR / "pki", seed=1)
    ca = pki.ca("FORT PERSONNES")
    big = CrlIndex.load(cached_crl_path(1_000_000, ca.cert, ca.key, seed=1).read_bytes())
    at = big.this_update + dt.timedelta(hours=1)
    store = TrustStore.from_certificates(pki.anchors(), pki.intermediates.values())
    validator = Validator(store, crls=[big, pki.crl("FORT", at=at)])
    creds = pki.issue_card("cps3-medecin")
    cert = base64.b64encode(creds.auth_cert.public_bytes(Encoding.DER)).decode()
    issuer = ChallengeIssuer(MemoryNonceStore(max_entries=N_TOKENS * 2))
    verifier = Verifier(validator, issuer.store, [ORIGIN])
    tokens = []
    for _ in range(N_TOKENS):   # signing is the card's job: not measured
        nonce = issuer.issue().nonce
        sig = creds.auth_key.sign(signed_data(ORIGIN, nonce), padding.PKCS1v15(),
                                  hashes.SHA256())
        tokens.append(json.dumps({"format": TOKEN_FORMAT, "algorithm": "RS256",
                                  "certificate": cert, "nonce": nonce, "origin": ORIGIN,
                                  "signature": base64.b64encode(sig).decode()}))
    verifier.verify(tokens.pop(), ORIGIN, at=at)   # warm: the CA part of the path, the CRLs
    start = time.perf_counter()
    for token in tokens:
        verifier.verify(token, ORIGIN, at=at)
    ours = len(tokens) / (time.perf_counter() - start)

    key = creds.auth_cert.public_key()
    data = signed_data(ORIGIN, "x" * 43)
    sig = creds.auth_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    start = time.perf_counter()
    for _ in range(N_TOKENS):
        key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    floor = N_TOKENS / (time.perf_counter() - start)
    return [Figure("token verifications, chain and warm 1M-entry CRL included",
                   "verifications/s", ours,
                   {"RSA-2048 signature check alone (cryptography)": floor},
                   better="higher", target=5_000, note=f"{len(tokens)} distinct tokens")]
