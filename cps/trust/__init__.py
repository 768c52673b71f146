"""Trust: IGC-Santé anchors, RFC 5280 path validation, revocation (CRL, delta CRL, OCSP).

::

    from cps.trust import TrustStore, Validator
    v = Validator(TrustStore.igc_sante(), crls=[...], revocation="hard-fail")
    result = v.validate(cert, intermediates=[...], at=now, purpose=cps.KeyRole.AUTH)

See docs/trust.md.
"""

from .anchors import TrustStore
from .certs import ParsedCert, parse_cert
from .validate import (
                       REVOCATION_MODES,
                       RevocationStatus,
                       ValidationResult,
                       Validator,
                       check_purpose,
                       is_rsa_key,
)

__all__ = ["TrustStore", "Validator", "ValidationResult", "RevocationStatus",
           "REVOCATION_MODES", "ParsedCert", "parse_cert", "check_purpose", "is_rsa_key"]
