"""Trust: IGC-Santé anchors, RFC 5280 path validation, revocation (CRL, delta CRL, OCSP)."""
