"""Trust anchors: the nine IGC-Santé production CA certificates, pinned.

The DER files ship as package data (``cps/igc-sante``) and each is checked
against its SHA-256 fingerprint, written here, when loaded: a modified file in
an installation is an error, never a new anchor. The three roots are the
anchors; the six intermediates are offered to path building so that a card
that presents only its own certificate still validates.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from ..errors import CertificateParseError, CpsError  # noqa: F401 - names importable here
from .certs import OID, ParsedCert, names_match, parse_cert

__all__ = ["TrustStore", "IGC_SANTE_PINS", "CertificateLike"]

CertificateLike = Union[bytes, "object"]  # DER bytes or a cryptography x509.Certificate

#: SHA-256 of each production certificate (docs/cps-domain.md 3.1, docs/igc-sante.md)
IGC_SANTE_PINS: Dict[str, str] = {
    "ACR_ELEMENTAIRE_20130625.der":
        "2D9E22CA19F777C6B745257C723ECB8DF3C35FA6F1F6EC36B83600C97346967F",
    "ACR_STANDARD_20130625.der":
        "5891815E864506C662AFB32F8DE5B8DE38BFFA1AF721780B69E19A0C050386C3",
    "ACR_FORT_20130625.der":
        "53D30A19570826BDE0C0762501F1F1C7A659F976C6C023123DF5239DF34A4EEA",
    "AC_ELEMENTAIRE_PERSONNES_20130625.der":
        "19C1EAEAB477B6FBC233CDA3B53FBDBC3F4E9BF6CF6973E46F7DFAEF89C06C6C",
    "AC_ELEMENTAIRE_ORGANISATIONS_20130625.der":
        "D834EE5B40686B73573F60547BF6052C6D404D942A5665CDB2C0B9137B5D27B2",
    "AC_STANDARD_PERSONNES_20130625.der":
        "6C339EBCB3E1B0102B143C9694225C2A4AB2EF6FEDF7D364DA8DB305E7F7D997",
    "AC_STANDARD_ORGANISATIONS_20130625.der":
        "C0520A2B14FB68836A807BF86AB2B3E07D1B6061D91BC9C7B86A6F8DE4B5638E",
    "AC_FORT_PERSONNES_20130625.der":
        "38284E4F6107456E70C7439C85DA7D564D0FE1FE1A968C9EB6D43E1FC0D63C3A",
    "AC_FORT_ORGANISATIONS_20130625.der":
        "23F69674002D1DD4B018BAECD908DC92687942BB48E5140FF895E2F56BC49C0D",
}


class PinMismatch(CpsError):
    """A bundled anchor does not match its pinned fingerprint (a tampered installation)."""


def to_der(cert: CertificateLike) -> bytes:
    """DER bytes of a certificate given as bytes or as a cryptography object.

    :raises TypeError: neither.
    """
    if isinstance(cert, (bytes, bytearray, memoryview)):
        return bytes(cert)
    public_bytes = getattr(cert, "public_bytes", None)
    if public_bytes is None:  # a caller's mistake, not a malformed certificate
        raise TypeError(f"a certificate must be DER bytes or a cryptography "
                        f"x509.Certificate, not {type(cert).__name__}")
    from cryptography.hazmat.primitives.serialization import Encoding

    der: bytes = public_bytes(Encoding.DER)
    return der


class TrustStore:
    """Trust anchors (self-signed roots) and known intermediates.

    :param anchors: the certificates to trust (at least one).
    :param intermediates: CA certificates offered to path building (not trusted).
    :param name: a label for messages.
    :raises ValueError: no anchor given.
    :raises CertificateParseError: a certificate does not decode.
    """

    def __init__(self, anchors: Iterable[CertificateLike],
                 intermediates: Iterable[CertificateLike] = (), name: str = "custom") -> None:
        self.name = name
        #: the anchors as the validator reads them (internal)
        self._anchors: List[ParsedCert] = [parse_cert(to_der(a)) for a in anchors]
        if not self._anchors:
            raise ValueError("a trust store needs at least one anchor certificate")
        self._anchor_certs: Optional[List[Any]] = None
        self.intermediates: List[ParsedCert] = [parse_cert(to_der(c)) for c in intermediates]
        self._by_subject: Dict[bytes, List[ParsedCert]] = {}
        for cert in self.intermediates:
            self._by_subject.setdefault(cert.subject, []).append(cert)

    @classmethod
    def igc_sante(cls) -> "TrustStore":
        """The production IGC-Santé hierarchy: three roots, six intermediates, all pinned.

        :raises PinMismatch: a bundled certificate does not match its fingerprint.
        """
        files = resources.files("cps").joinpath("igc-sante")
        anchors: List[CertificateLike] = []
        intermediates: List[CertificateLike] = []
        for name, pin in IGC_SANTE_PINS.items():
            der = files.joinpath(name).read_bytes()
            if hashlib.sha256(der).hexdigest().upper() != pin:
                raise PinMismatch(f"{name} does not match its pinned SHA-256: "
                                  "the installation was modified")
            (anchors if name.startswith("ACR_") else intermediates).append(der)
        return cls(anchors, intermediates, name="IGC-Santé")

    @classmethod
    def from_certificates(cls, anchors: Iterable[CertificateLike],
                          intermediates: Iterable[CertificateLike] = (),
                          name: str = "custom") -> "TrustStore":
        """Any other anchors (a test hierarchy, the emulator's :class:`TestPKI`...)."""
        return cls(anchors, intermediates, name=name)

    @property
    def anchors(self) -> List[Any]:
        """The trusted certificates (``cryptography.x509.Certificate``), in the order given."""
        certs = self._anchor_certs
        if certs is None:
            from cryptography import x509

            certs = self._anchor_certs = [x509.load_der_x509_certificate(a.der)
                                          for a in self._anchors]
        return list(certs)

    def anchor_for(self, cert: ParsedCert) -> List[ParsedCert]:
        """Anchors whose name (and key id, when both say) can have issued ``cert``."""
        aki = cert.aki
        out = []
        for anchor in self._anchors:
            if names_match(anchor.subject, cert.issuer):
                ski = anchor.ski
                if aki is None or ski is None or aki == ski:
                    out.append(anchor)
        return out

    def issuers_of(self, cert: ParsedCert, extra: Sequence[ParsedCert] = ()) -> List[ParsedCert]:
        """Intermediates (given for this path, then known) that can have issued ``cert``."""
        aki = cert.aki
        candidates = [c for c in extra if names_match(c.subject, cert.issuer)]
        candidates += self._by_subject.get(cert.issuer, [])
        if not candidates:  # names equal after normalisation only
            candidates = [c for c in self.intermediates if names_match(c.subject, cert.issuer)]
        out: List[ParsedCert] = []
        for c in candidates:
            ski = c.ski
            if (aki is None or ski is None or aki == ski) and c not in out:
                out.append(c)
        return out

    def __repr__(self) -> str:
        return (f"TrustStore({self.name!r}, {len(self._anchors)} anchors, "
                f"{len(self.intermediates)} intermediates)")


def is_ca(cert: ParsedCert) -> bool:
    return cert.basic_constraints()[0]


def ocsp_urls(cert: ParsedCert) -> List[str]:
    return cert.access_urls(OID.AD_OCSP)


