"""Trust material from files and names: certificates, CRLs, anchor specifications.

The one place that reads them for every caller: the ``cps`` command's
``--anchors``/``--crl`` options, :func:`cps.diagnostics.diagnose`, scripts.

* :func:`load_certificates_der`: the certificates of a PEM or DER file;
* :func:`load_crls`: CRL files (DER or PEM ``X509 CRL``, several per file) and
  directories of ``*.crl``;
* :func:`trust_store`: a :class:`~cps.trust.TrustStore` from names
  (``igc-sante``, ``test``), files and certificates;
* :func:`default_crl_cache_dir`: where the CRL downloads of the CLI are kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, List, Optional, Tuple

from .. import pem
from ..errors import CertificateParseError, CpsError, CrlError
from ..platform_paths import user_cache_dir
from .anchors import TrustStore, to_der
from .certs import parse_cert

__all__ = ["TRUST_SOURCES", "default_crl_cache_dir", "load_certificate_der",
           "load_certificates_der", "load_crls", "trust_store"]

#: Names :func:`trust_store` understands besides file paths.
TRUST_SOURCES = ("igc-sante", "test")


def _pem(data: bytes, label: bytes) -> List[bytes]:
    try:
        return pem.blocks(data, (label,))
    except ValueError as exc:
        raise CertificateParseError(str(exc)) from None


def default_crl_cache_dir() -> Path:
    """Where downloaded CRLs are cached: ``$CPS_CRL_CACHE_DIR``, else ``crl`` in
    :func:`cps.platform_paths.user_cache_dir` (``$XDG_CACHE_HOME/cps/crl`` or
    ``~/.cache/cps/crl``; macOS ``~/Library/Caches/cps/crl``; Windows
    ``%LOCALAPPDATA%\\cps\\Cache\\crl``)."""
    explicit = os.environ.get("CPS_CRL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return user_cache_dir() / "crl"


def load_certificates_der(data: bytes) -> List[bytes]:
    """Every certificate of a PEM file (one or several blocks), or the one DER certificate.

    :raises CertificateParseError: neither PEM certificates nor DER.
    """
    if pem.MARKER in data:
        blocks = _pem(data, b"CERTIFICATE")
        if not blocks:
            raise CertificateParseError("no CERTIFICATE block in the PEM file")
    else:
        blocks = [bytes(data)]
    for der in blocks:
        parse_cert(der)  # raises CertificateParseError on anything else
    return blocks


def load_certificate_der(data: bytes) -> bytes:
    """One certificate, PEM or DER, as DER (the first one of a PEM bundle)."""
    return load_certificates_der(data)[0]


def load_crls(paths: Iterable[os.PathLike[str] | str]) -> List[Tuple[bytes, str]]:
    """CRLs from files (DER or PEM ``X509 CRL``) or directories (their ``*.crl`` files).

    :returns: ``[(der, path), ...]`` in a stable order.
    :raises CrlError: a file cannot be read or holds no CRL.
    """
    out: List[Tuple[bytes, str]] = []
    for item in paths:
        path = Path(item)
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".crl") \
            if path.is_dir() else [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise CrlError(f"cannot read {file}: {exc.strerror}", source=str(file),
                               reason="unreadable") from None
            if pem.MARKER in data:
                try:
                    blocks = _pem(data, b"X509 CRL")
                except CertificateParseError as exc:
                    raise CrlError(f"{file}: {exc}", source=str(file),
                                   reason="malformed") from None
                if not blocks:
                    raise CrlError(f"{file}: no X509 CRL block", source=str(file),
                                   reason="malformed")
                out.extend((b, str(file)) for b in blocks)
            else:
                out.append((data, str(file)))
    return out


def trust_store(sources: Optional[Iterable[Any]] = None) -> TrustStore:
    """A trust store from names and files.

    The one reading of trust-anchor specifications: ``cps ... --anchors`` and
    :func:`cps.diagnostics.diagnose` (``anchors=``) both come here.

    :param sources: a :class:`~cps.trust.TrustStore` (taken as it is), or
        items that combine: ``"igc-sante"`` (the pinned production CAs),
        ``"test"`` (the emulator's TEST PKI, :func:`cps.emulator.default_pki`:
        **test only**), paths of PEM/DER certificate files (every certificate
        in them becomes an anchor), or certificates (DER bytes or
        cryptography objects: the self-issued ones become anchors, the others
        intermediates). ``None`` or empty: IGC-Santé.
    :raises CertificateParseError: a file holds no certificate.
    :raises CpsError: a file cannot be read.
    """
    if isinstance(sources, TrustStore):
        return sources
    if not sources:
        return TrustStore.igc_sante()
    anchors: List[bytes] = []
    intermediates: List[bytes] = []
    names = []
    given = False
    for source in sources:
        if source == "igc-sante":
            store = TrustStore.igc_sante()
            anchors += [to_der(c) for c in store.anchors]  # cryptography certificates
            intermediates += [c.der for c in store.intermediates]
            names.append("IGC-Santé")
        elif source == "test":
            from cryptography.hazmat.primitives.serialization import Encoding

            from ..emulator import default_pki

            pki = default_pki()
            anchors += [c.public_bytes(Encoding.DER) for c in pki.anchors()]
            intermediates += [c.public_bytes(Encoding.DER) for c in pki.intermediates.values()]
            names.append("TEST PKI")
        elif not isinstance(source, (str, os.PathLike)):
            der = to_der(source)
            parsed = parse_cert(der)
            (anchors if parsed.subject == parsed.issuer else intermediates).append(der)
            given = True
        else:
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise CpsError(f"cannot read anchor {source}: {exc.strerror}") from None
            anchors += load_certificates_der(data)
            names.append(Path(source).name)
    if given:
        names.append("given anchors")
    return TrustStore(anchors, intermediates, name=" + ".join(names))
