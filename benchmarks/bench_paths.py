"""Path building under hostile helper certificates (issue 13 item 1).

The worst case the attacker's review found: n useless helper certificates that
share one subject, carry no key identifiers and are self-issued, so that each
can stand for the issuer of every other; before the fix they were tried in every
order (10 helpers: 171 s). Measured at 16, 32 and 64 helpers, all signed by one
key (copies: deduplicated by subject and key) and each by its own key, beside a
normal 3-certificate validation (leaf, intermediate, root) in the same run, the
anchor. Each figure is the median time of one ``Validator.validate`` with a
fresh Validator (nothing remembered). Target: under 250 ms at 64 helpers, and
growing at most linearly with their number.
"""

from __future__ import annotations

import datetime as dt
from typing import List

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cps.errors import CpsError
from cps.trust import TrustStore, Validator

from .common import Figure, per_call

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, key: rsa.RSAPrivateKey, signer: rsa.RSAPrivateKey,
          serial: int, ca: bool = True) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(NOW + dt.timedelta(days=9)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    return builder.sign(signer, hashes.SHA256())


def run() -> List[Figure]:
    keys = [rsa.generate_private_key(65537, 2048) for _ in range(67)]
    root = _cert("root", "root", keys[64], keys[64], 1)
    store = TrustStore.from_certificates([root])
    ca = _cert("ca", "root", keys[65], keys[64], 2)
    good = _cert("leaf", "ca", keys[66], keys[65], 3, ca=False)
    leaf = _cert("leaf", "X", keys[0], keys[0], 5, ca=False)

    def normal() -> None:
        Validator(store, revocation="off").validate(good, intermediates=[ca], at=NOW)

    anchor = per_call(normal, 20) * 1000
    figures = []
    for shared in (True, False):
        for n in (16, 32, 64):
            helpers = [_cert("X", "X", keys[0 if shared else i], keys[0 if shared else i],
                             100 + i) for i in range(n)]

            def hostile(helpers: list = helpers) -> None:  # bind this iteration's helpers
                try:
                    Validator(store, revocation="off").validate(leaf, intermediates=helpers,
                                                                at=NOW)
                except CpsError:
                    pass

            figures.append(Figure(
                name=f"path building, {n} useless helpers "
                     f"({'one key' if shared else 'distinct keys'})",
                unit="ms", ours=per_call(hostile, 3, repeat=5) * 1000,
                anchors={"normal 3-certificate validation (ms)": anchor},
                better="lower", target=250.0))
    return figures
