"""XML signatures with the card's signing key: XAdES Baseline-B, and the DMP submission-set layout.

::

    from cps.xades import sign_xades, verify_xades

    card.verify_pin(pin)
    signed = sign_xades(card, b"<compteRendu>...</compteRendu>")        # enveloped
    result = verify_xades(signed, validator)                             # raises on any failure
    result.covered[0].element          # what was signed (never re-found in the input by Id)
    result.practitioner, result.signing_time, result.validation_time

    dmp = sign_dmp_submission(card, "1.2.250.1.999.1.1", {"1.2.250.1.999.1.2": cda_bytes})
    verify_dmp_submission(dmp, validator, documents={"1.2.250.1.999.1.2": cda_bytes})

:func:`sign_xades` builds the signature with signxml (``XAdESSigner``), the card
behind a cryptography ``RSAPrivateKey`` adapter (:class:`CardRsaKey`):
SHA-256, exclusive C14N, SigningTime, SigningCertificateV2, the signer
certificate and its IGC-Santé intermediate in ``KeyInfo/X509Data``.
:func:`sign_dmp_submission` builds the layout of the ANS-funded DRIMbox
(``XadesSign.java``) with lxml: a ``ds:Manifest`` "IHEManifest" naming the
submission set and the documents by ``urn:oid:``, XAdES 1.1.1 properties,
C14N with comments. The verifiers parse with a hardened lxml parser (no DTD,
no entities, no network, size and node-count limits, an honest encoding
declaration), refuse more than :data:`MAX_REFERENCES` references, judge the
signer certificate (with a validator) before digesting any reference, let
signxml check the signature and the digests, and report only what signxml
returns as signed. Every failure is a :class:`cps.sign.SignatureError`.
Requires the ``[xml]`` extra (signxml, lxml). See docs/signing.md.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ._extras import require
from .card import KeyRole
from .errors import CpsError, NotSupported
from .sign import (
    DigestMismatch,
    SignatureError,
    SignatureInvalid,
    Signer,
    SigningCertificateMismatch,
    _default_chain,
    _practitioner,
    _subject,
    _to_der,
    _utc_seconds,
    _validation_time,
)

if TYPE_CHECKING:  # pragma: no cover
    from .identity import Practitioner
    from .trust.validate import ValidationResult, Validator

__all__ = [
    "MAX_XML_SIZE",
    "MAX_XML_ELEMENTS",
    "MAX_REFERENCES",
    "XmlSignatureError",
    "CardRsaKey",
    "XadesReference",
    "XadesVerification",
    "DmpVerification",
    "sign_xades",
    "verify_xades",
    "sign_dmp_submission",
    "verify_dmp_submission",
    "DMP_PURPOSE_OF_SIGNATURE",
]

#: Largest XML document the verifiers parse (``max_size=`` changes it).
MAX_XML_SIZE = 50 * 1024 * 1024
#: Most nodes (elements, comments, processing instructions) in a document the
#: verifiers parse (``max_elements=`` changes it). A 1 MB CDA has some tens of
#: thousands; libxml2 needs about 130 bytes per node, and signxml copies the
#: whole document once per reference: 41 MB of ``<a/>`` (11 million nodes)
#: took 1.4 GB to parse, 5.5 GB with 64 references. Counted before the tree is
#: built (a counting pass that stops at the limit).
MAX_XML_ELEMENTS = 500_000
#: Most certificates accepted in one KeyInfo.
MAX_CERTIFICATES = 32
#: Most references in one SignedInfo or Manifest.
MAX_REFERENCES = 32
#: signxml copies the document for each reference: references x nodes may not
#: exceed this many times ``max_elements`` (3 references over the largest document pass).
_WORK_FACTOR = 4

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES132 = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
XADES111 = "http://uri.etsi.org/01903/v1.1.1#"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XADES_NAMESPACES = (XADES132, XADES111)
#: Reference Type of the SignedProperties, per XAdES namespace.
_SIGNED_PROPERTIES_TYPES = {XADES132: "http://uri.etsi.org/01903#SignedProperties",
                            XADES111: XADES111 + "SignedProperties"}
_MANIFEST_TYPE = DS + "Manifest"
#: "Source signature" (ASTM E1762 / HL7 purposeOfSignature), as the DRIMbox writes it.
DMP_PURPOSE_OF_SIGNATURE = "1.2.840.10065.1.12.1.14"

_C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
_C14N10_COMMENTS = _C14N10 + "#WithComments"
_C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
_C14N11_COMMENTS = _C14N11 + "#WithComments"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_EXC_C14N_COMMENTS = _EXC_C14N + "WithComments"
_C14N_METHODS = {_C14N10, _C14N10_COMMENTS, _C14N11, _C14N11_COMMENTS, _EXC_C14N,
                 _EXC_C14N_COMMENTS}
_ENVELOPED = DS + "enveloped-signature"
_BASE64 = DS + "base64"
_TRANSFORMS = _C14N_METHODS | {_ENVELOPED, _BASE64}

_DIGEST_URIS = {
    "sha1": DS + "sha1",
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
}
_DIGEST_NAMES = {uri: name for name, uri in _DIGEST_URIS.items()}
_SIGNATURE_URIS = {
    "sha1": DS + "rsa-sha1",
    "sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "sha512": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
}
_SIGNATURE_NAMES = {uri: name for name, uri in _SIGNATURE_URIS.items()}
_XADES_HASHES = ("sha256", "sha384", "sha512")
_DMP_HASHES = ("sha1", "sha256")
#: The DigestValue the DRIMbox writes for the submission-set reference: one zero byte, no digest.
_PLACEHOLDER_DIGEST = b"\x00"

#: Encodings a signed document may declare (others are refused: "unsupported-encoding").
_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "us-ascii": "ascii",
              "ascii": "ascii", "iso-8859-1": "latin-1", "latin1": "latin-1",
              "iso-8859-15": "iso8859-15", "windows-1252": "cp1252"}
_SINGLE_BYTE = {"latin-1", "iso8859-15", "cp1252"}
_DECLARATION = re.compile(rb"^<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


# --------------------------------------------------------------------------- errors
class XmlSignatureError(SignatureError):
    """The XML cannot be used: malformed, hostile, or outside what is supported.

    :ivar reason: ``"malformed"``, ``"dtd-forbidden"`` (a DOCTYPE: entities,
        XXE), ``"too-large"`` (more than ``max_size`` bytes or
        ``max_elements`` nodes, or references x nodes over 4 x
        ``max_elements``: signxml copies the document per reference),
        ``"too-many-references"``
        (more than :data:`MAX_REFERENCES` in SignedInfo or a Manifest),
        ``"partial-coverage"`` (a base64 transform on the whole document or
        on an element with children: only its first text would be signed),
        ``"encoding-mismatch"`` (the declared encoding
        is not the bytes' one), ``"unsupported-encoding"``, ``"wrapping"``
        (the signed element is not where the document says, or an Id names
        several elements), ``"unexpected-reference"``, ``"unsigned-content"``
        (a ``ds:Object`` no reference covers), ``"unsupported"`` (algorithm,
        transform, several signatures), ``"weak-algorithm"`` (SHA-1 without
        ``allow_sha1``), ``"no-signer-certificate"``, ``"no-content"`` (a
        detached document not given), ``"unreferenced-content"`` (a document
        given that the signature does not cover), ``"not-xades"`` (no signed
        properties), ``"layout"`` (not the DMP layout).
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- lazy imports
def _etree() -> Any:
    return require("lxml.etree", "xml")


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    """The one hardened parser: no entities, no DTD, no network, libxml2's size limits."""
    etree = _etree()
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_blank_text=False)


def _tostring(node: Any, **kwargs: Any) -> bytes:
    out: bytes = _etree().tostring(node, **kwargs)
    return out


def _c14n(node: Any, algorithm: str = _C14N10) -> bytes:
    """Canonical XML of ``node`` (an element or an ElementTree)."""
    if algorithm not in _C14N_METHODS:
        raise XmlSignatureError(f"canonicalisation {algorithm}", reason="unsupported")
    return _canonical(node, exclusive=algorithm.startswith(_EXC_C14N),
                      with_comments=algorithm.endswith("WithComments"))


def _canonical(node: Any, *, exclusive: bool, with_comments: bool,
               inclusive_ns_prefixes: Optional[Sequence[str]] = None) -> bytes:
    """lxml's canonicalisation, correct for an element below the root.

    libxml2 2.14 (lxml 6) writes a spurious ``xmlns=""`` on the grandchildren
    of an element canonicalised inclusively when a default namespace is
    declared above it. Serialising the element (which carries every
    namespace in scope) and canonicalising that document instead gives
    the inclusive C14N of the subtree, as other implementations compute it.
    """
    etree = _etree()
    if not exclusive and hasattr(node, "getparent") and node.getparent() is not None:
        node = etree.fromstring(_tostring(node), _parser())
    return _tostring(node, method="c14n", exclusive=exclusive, with_comments=with_comments,
                     inclusive_ns_prefixes=inclusive_ns_prefixes)


def _fixed_c14n(self: Any, nodes: Any, algorithm: Any, inclusive_ns_prefixes: Any = None
                ) -> bytes:
    """signxml's ``_c14n`` through :func:`_canonical`."""
    value = algorithm.value
    out = b""
    for node in nodes if isinstance(nodes, list) else [nodes]:
        out += _canonical(node, exclusive=value.startswith(_EXC_C14N),
                          with_comments=value.endswith("WithComments"),
                          inclusive_ns_prefixes=inclusive_ns_prefixes)
    return out


# --------------------------------------------------------------------------- the key adapter
class CardRsaKey(rsa.RSAPrivateKey):
    """A :class:`cps.Card` (or any :class:`cps.sign.Signer`) as a cryptography RSA private key.

    Only what XML signing libraries call: :meth:`sign` with PKCS#1 v1.5
    (the card hashes the last block itself; a ``Prehashed`` digest goes to
    the card as a digest), :meth:`public_key` and :attr:`key_size` from the
    certificate. Everything else (decryption, exporting the key) raises
    :class:`~cps.errors.NotSupported`: the key never leaves the card.
    """

    def __init__(self, card: Signer, certificate: Optional[x509.Certificate] = None) -> None:
        self._card = card
        self._certificate = certificate or card.certificate(KeyRole.SIGN)
        key = self._certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise NotSupported("only RSA signers are supported (CPS cards hold RSA keys)")
        self._public = key

    def sign(self, data: bytes, padding: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if not isinstance(padding, _pkcs1v15()):
            raise NotSupported(f"the card signs RSA PKCS#1 v1.5 only, not {padding.name}")
        if isinstance(algorithm, Prehashed):
            name = algorithm._algorithm.name
            return self._card.sign(data, hash=name, prehashed=True)  # type: ignore[call-arg]
        if not isinstance(algorithm, hashes.HashAlgorithm):
            raise NotSupported("the card signs a DigestInfo it builds itself (no NoDigestInfo)")
        return self._card.sign(bytes(data), hash=algorithm.name)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise NotSupported("the card's signature key does not decipher")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise NotSupported("the card's private key never leaves the card")

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        raise NotSupported("the card's private key never leaves the card")

    def __copy__(self) -> "CardRsaKey":
        return self

    def __deepcopy__(self, memo: Dict[int, Any]) -> "CardRsaKey":
        return self

    def __repr__(self) -> str:
        return f"<CardRsaKey {_subject(self._certificate)}>"


def _pkcs1v15() -> type:
    return padding.PKCS1v15


# --------------------------------------------------------------------------- signing: XAdES
def sign_xades(card_or_signer: Signer, document: bytes, *, mode: str = "enveloped",
               detached_uri: Optional[str] = None, hash: str = "sha256",
               chain: Optional[Sequence[Union[x509.Certificate, bytes]]] = None,
               signing_time: Optional[datetime] = None,
               timestamp: Optional[str] = None) -> bytes:
    """Sign ``document`` as XAdES Baseline-B (XAdES-T with ``timestamp``) with the card.

    :param card_or_signer: a :class:`cps.Card` with its PIN verified, or a
        :class:`cps.sign.Signer` (:class:`cps.sign.SoftwareSigner`).
    :param document: the document. ``"enveloped"``: an XML document, the
        signature becomes the last child of its root and covers the whole
        document (``URI=""``). ``"enveloping"``: the document goes inside the
        signature in a ``ds:Object`` (XML as is, other bytes base64-encoded
        with the base64 transform). ``"detached"``: any bytes, referenced by
        ``detached_uri`` and digested as they are.
    :param mode: ``"enveloped"``, ``"enveloping"`` or ``"detached"``.
    :param detached_uri: the URI of the document in a detached signature
        (required then), e.g. its file name.
    :param hash: ``"sha256"`` (``"sha384"``/``"sha512"`` with software keys);
        SHA-1 is refused.
    :param chain: CA certificates to add to ``KeyInfo/X509Data`` after the
        signer's; default the issuing IGC-Santé intermediate (as :func:`cps.sign.sign_cms`).
    :param signing_time: aware datetime of SigningTime; default now.
    :param timestamp: URL of an RFC 3161 TSA: adds a SignatureTimeStamp (XAdES-T).
    :returns: the signed XML (UTF-8, with an XML declaration).
    :raises NotSupported: SHA-1 or an unknown hash, an unknown mode, not an RSA certificate.
    :raises XmlSignatureError: the document is not acceptable XML (enveloped mode).
    :raises SignatureInvalid: the card's signature does not verify with its certificate.
    """
    if hash not in _XADES_HASHES:
        raise NotSupported(f"hash {hash!r} for XAdES: use sha256 (sha384, sha512 with "
                           "software keys)")
    if mode not in ("enveloped", "enveloping", "detached"):
        raise NotSupported(f"mode {mode!r}: enveloped, enveloping or detached")
    if mode == "detached" and not detached_uri:
        raise ValueError("a detached signature names its document: give detached_uri")
    if not isinstance(document, (bytes, bytearray, memoryview)):
        raise TypeError(f"the document must be bytes, not {type(document).__name__}")
    document = bytes(document)
    signxml = require("signxml", "xml")
    xades = require("signxml.xades", "xml")
    etree = _etree()

    cert = card_or_signer.certificate(KeyRole.SIGN)
    key = CardRsaKey(card_or_signer, cert)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    extra = _default_chain(cert_der) if chain is None else [_to_der(c) for c in chain]
    certs = [cert] + [x509.load_der_x509_certificate(d) for d in extra]
    when = _utc_seconds(signing_time)

    xml_root = _parse_document(document, max_elements=None) if mode == "enveloped" \
        else _maybe_xml(document)
    if mode == "enveloped" and xml_root is None:  # pragma: no cover - _parse_document raises
        raise XmlSignatureError("an enveloped signature needs an XML document")
    method = {"enveloped": signxml.methods.enveloped, "enveloping": signxml.methods.enveloping,
              "detached": signxml.methods.detached}[mode]
    mime = "text/xml" if xml_root is not None else "application/octet-stream"
    signer = _xades_signer_class()(
        signing_time=when, method=method, signature_algorithm=_SIGNATURE_URIS[hash],
        digest_algorithm=_DIGEST_URIS[hash], c14n_algorithm=_C14N10,
        data_object_format=xades.XAdESDataObjectFormat(Description="signed document",
                                                       MimeType=mime))
    kwargs: Dict[str, Any] = {"key": key, "cert": certs, "always_add_key_value": False}
    if mode == "enveloped":
        data: Any = xml_root
    elif mode == "enveloping":
        if xml_root is not None:
            data = xml_root
        else:  # bytes: base64 text in the Object, the base64 transform, the digest of the bytes
            data = base64.b64encode(document).decode("ascii")
            signer.raw_reference = (document, _BASE64)
    else:
        kwargs["reference_uri"] = [detached_uri]
        data = etree.Element("detached")      # signxml wants an element; the digest is replaced
        signer.raw_reference = (document, None)
    try:
        signed = signer.sign(data, **kwargs)
    except CpsError:
        raise
    except Exception as exc:  # noqa: BLE001 - signxml's InvalidInput and friends
        raise XmlSignatureError(f"cannot sign: {type(exc).__name__}: {exc}"[:300],
                                reason="unsupported") from None
    if timestamp is not None:
        _add_signature_timestamp(signed, timestamp, hash)
    out = _tostring(signed, xml_declaration=True, encoding="UTF-8")
    # The card signed: check it with the certificate before anyone relies on it.
    detached = {detached_uri: document} if mode == "detached" and detached_uri else None
    try:
        verify_xades(out, detached=detached, whole_document=mode == "enveloped",
                     max_size=max(MAX_XML_SIZE, 4 * len(out)), max_elements=None)
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"the signer's signature does not verify with its own "
                               f"certificate (wrong key or faulty card): {exc}",
                               subject=_subject(cert)) from None
    return out


@functools.lru_cache(maxsize=1)
def _xades_signer_class() -> Any:
    """signxml's XAdESSigner with a chosen SigningTime and raw-octet references."""
    xades = require("signxml.xades", "xml")
    etree = _etree()

    base: Any = xades.XAdESSigner

    class _XadesSigner(base):  # type: ignore[misc]
        def __init__(self, *, signing_time: datetime, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.signing_time = signing_time
            self.raw_reference: Optional[Tuple[bytes, Optional[str]]] = None
            # first: fix the data reference before the XAdES annotator reads it
            self.signature_annotators.insert(0, self._raw_reference)

        _c14n = _fixed_c14n

        def add_signing_time(self, signed_signature_properties: Any, sig_root: Any,
                             signing_settings: Any) -> None:
            node = etree.SubElement(signed_signature_properties,
                                    f"{{{XADES132}}}SigningTime")
            node.text = self.signing_time.strftime("%Y-%m-%dT%H:%M:%SZ")

        def _raw_reference(self, sig_root: Any, signing_settings: Any) -> None:
            """Detached bytes / enveloping base64: the digest of the octets, not of XML."""
            if self.raw_reference is None:
                return
            data, transform = self.raw_reference
            reference = sig_root.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
            transforms = reference.find(f"{{{DS}}}Transforms")
            if transforms is not None:
                reference.remove(transforms)
            if transform is not None:
                transforms = etree.Element(f"{{{DS}}}Transforms")
                etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=transform)
                reference.insert(0, transforms)
            name = _DIGEST_NAMES[self.digest_alg.value]
            reference.find(f"{{{DS}}}DigestValue").text = base64.b64encode(
                hashlib.new(name, data).digest()).decode("ascii")

    return _XadesSigner


def _add_signature_timestamp(signature: Any, url: str, hash: str) -> None:
    """XAdES-T: a SignatureTimeStamp over the canonical ds:SignatureValue (unsigned property)."""
    try:
        from .timestamp import request_timestamp
    except ImportError:
        raise NotSupported("signature timestamps need cps.timestamp (not available)") from None
    etree = _etree()
    root = signature if signature.tag == f"{{{DS}}}Signature" else \
        signature.find(f".//{{{DS}}}Signature")
    value = root.find(f"{{{DS}}}SignatureValue")
    digest = hashlib.new(hash, _c14n(value, _EXC_C14N)).digest()
    token = request_timestamp(url, digest, hash=hash)
    qualifying = root.find(f"{{{DS}}}Object/{{{XADES132}}}QualifyingProperties")
    unsigned = etree.SubElement(qualifying, f"{{{XADES132}}}UnsignedProperties")
    props = etree.SubElement(unsigned, f"{{{XADES132}}}UnsignedSignatureProperties")
    stamp = etree.SubElement(props, f"{{{XADES132}}}SignatureTimeStamp",
                             Id=f"{root.get('Id')}-SignatureTimeStamp")
    etree.SubElement(stamp, f"{{{DS}}}CanonicalizationMethod", Algorithm=_EXC_C14N)
    encapsulated = etree.SubElement(stamp, f"{{{XADES132}}}EncapsulatedTimeStamp")
    encapsulated.text = base64.b64encode(token).decode("ascii")


# --------------------------------------------------------------------------- signing: DMP
def sign_dmp_submission(card_or_signer: Signer, submission_set_uid: str,
                        documents: Mapping[str, bytes], *,
                        submission_set: Optional[bytes] = None, hash: str = "sha256",
                        signing_time: Optional[datetime] = None,
                        signature_uid: Optional[str] = None,
                        chain: Optional[Sequence[Union[x509.Certificate, bytes]]] = None
                        ) -> bytes:
    """The signature of a DMP submission set, in the DRIMbox layout (XAdES 1.1.1, IHE manifest).

    The layout of ``XadesSign.java`` (ansforge/DRIM-M_DRIMbox): an enveloping
    ``ds:Signature`` whose SignedInfo (C14N 1.0 with comments) references the
    ``ds:Manifest`` "IHEManifest" and the XAdES 1.1.1 SignedProperties
    "S0-SignedProperties"; the manifest references ``urn:oid:<submission
    set uniqueId>`` and ``urn:oid:<document uniqueId>`` for each document.
    An XML document (a CDA) is referenced with the C14N-with-comments
    transform and digested canonicalised; other bytes (a DICOM KOS) as they
    are. The submission-set reference carries the DRIMbox's placeholder
    DigestValue ``AA==`` (nothing is digested) unless ``submission_set`` is
    given. An unsigned ``SignatureProperty`` "purposeOfSignature" says
    1.2.840.10065.1.12.1.14 (source signature).

    :param submission_set_uid: the submission set's uniqueId (an OID).
    :param documents: document uniqueId (OID) -> the document's bytes, as sent.
    :param submission_set: bytes to digest for the submission-set reference;
        default the DRIMbox's placeholder (no digest).
    :param hash: ``"sha256"`` (default) or ``"sha1"`` (RSA-SHA1 and SHA-1
        digests: exactly the DRIMbox's algorithms, for a service that only
        accepts them).
    :param signing_time: aware datetime; default now.
    :param signature_uid: the uniqueId of the signature document, used as the
        Signature's Id (as the DRIMbox does); default a new ``2.25.<uuid>`` OID.
    :param chain: CA certificates for KeyInfo after the signer's; default the
        IGC-Santé intermediate (``chain=()``: the signer's only, as the DRIMbox).
    :returns: the signature document (UTF-8 XML).
    :raises ValueError: a uniqueId is not an OID, no document, or more than
        ``MAX_REFERENCES - 1`` documents.
    """
    if hash not in _DMP_HASHES:
        raise NotSupported(f"hash {hash!r} for the DMP layout: sha256 or sha1")
    oids = [submission_set_uid, *documents]
    for oid in oids:
        if not isinstance(oid, str) or not _is_oid(oid):
            raise ValueError(f"{oid!r} is not an OID (uniqueIds are OIDs)")
    if not documents:
        raise ValueError("a submission set signature covers at least one document")
    if len(documents) + 1 > MAX_REFERENCES:
        raise ValueError(f"{len(documents)} documents: a manifest holds at most "
                         f"{MAX_REFERENCES} references (the submission set's included), "
                         "as verifiers accept")
    etree = _etree()
    cert = card_or_signer.certificate(KeyRole.SIGN)
    key = CardRsaKey(card_or_signer, cert)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    extra = _default_chain(cert_der) if chain is None else [_to_der(c) for c in chain]
    when = _utc_seconds(signing_time)
    uid = signature_uid or f"2.25.{uuid.uuid4().int}"
    digest_uri = _DIGEST_URIS[hash]

    def d(name: str) -> str:
        return f"{{{DS}}}{name}"

    def x(name: str) -> str:
        return f"{{{XADES111}}}{name}"

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    def reference(parent: Any, uri: str, digest: Optional[bytes], *, type: Optional[str] = None,
                  transform: Optional[str] = None) -> Any:
        node = etree.SubElement(parent, d("Reference"))
        if type:
            node.set("Type", type)
        node.set("URI", uri)
        if transform:
            etree.SubElement(etree.SubElement(node, d("Transforms")), d("Transform"),
                             Algorithm=transform)
        etree.SubElement(node, d("DigestMethod"), Algorithm=digest_uri)
        value = etree.SubElement(node, d("DigestValue"))
        if digest is not None:
            value.text = b64(digest)
        return value

    signature = etree.Element(d("Signature"), nsmap={None: DS})
    signature.set("Id", uid)
    signed_info = etree.SubElement(signature, d("SignedInfo"))
    etree.SubElement(signed_info, d("CanonicalizationMethod"), Algorithm=_C14N10_COMMENTS)
    etree.SubElement(signed_info, d("SignatureMethod"), Algorithm=_SIGNATURE_URIS[hash])
    manifest_digest = reference(signed_info, "#IHEManifest", None, type=_MANIFEST_TYPE)
    properties_digest = reference(signed_info, "#S0-SignedProperties", None,
                                  type=_SIGNED_PROPERTIES_TYPES[XADES111])
    signature_value = etree.SubElement(signature, d("SignatureValue"))
    x509_data = etree.SubElement(etree.SubElement(signature, d("KeyInfo")), d("X509Data"))
    for der in [cert_der, *extra]:
        etree.SubElement(x509_data, d("X509Certificate")).text = b64(der)

    properties_object = etree.SubElement(signature, d("Object"))
    purpose = etree.SubElement(etree.SubElement(properties_object, d("SignatureProperties")),
                               d("SignatureProperty"), Id="purposeOfSignature", Target=f"#{uid}")
    purpose.text = DMP_PURPOSE_OF_SIGNATURE

    manifest = etree.SubElement(etree.SubElement(signature, d("Object")), d("Manifest"),
                                nsmap={"xsi": _XSI})
    manifest.set("Id", "IHEManifest")
    manifest.set(f"{{{_XSI}}}schemaLocation",
                 "http://www.w3.org/2000/09/xmldsig# "
                 "http://docs.oasis-open.org/security/saml/v2.0/saml-schema-assertion-2.0.xsd")
    reference(manifest, f"urn:oid:{submission_set_uid}",
              _PLACEHOLDER_DIGEST if submission_set is None
              else hashlib.new(hash, submission_set).digest())
    for oid, content in documents.items():
        parsed = _maybe_xml(bytes(content))
        if parsed is not None:   # a CDA: canonicalised (with comments), as the DRIMbox sends it
            reference(manifest, f"urn:oid:{oid}",
                      hashlib.new(hash, _c14n(parsed.getroottree(), _C14N10_COMMENTS)).digest(),
                      transform=_C14N10_COMMENTS)
        else:                    # a KOS (DICOM) or any other bytes: as they are
            reference(manifest, f"urn:oid:{oid}", hashlib.new(hash, bytes(content)).digest())

    qualifying = etree.SubElement(etree.SubElement(signature, d("Object")),
                                  x("QualifyingProperties"), nsmap={None: XADES111})
    qualifying.set("Target", f"#{uid}")
    signed_properties = etree.SubElement(qualifying, x("SignedProperties"), nsmap={"xsi": _XSI})
    signed_properties.set("Id", "S0-SignedProperties")
    signed_properties.set(f"{{{_XSI}}}schemaLocation",
                          "http://uri.etsi.org/01903/v1.1.1# "
                          "http://docs.oasis-open.org/security/saml/v2.0/"
                          "saml-schema-assertion-2.0.xsd")
    ssp = etree.SubElement(signed_properties, x("SignedSignatureProperties"))
    etree.SubElement(ssp, x("SigningTime")).text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    cert_node = etree.SubElement(etree.SubElement(ssp, x("SigningCertificate")), x("Cert"))
    cert_digest = etree.SubElement(cert_node, x("CertDigest"))
    # XAdES 1.1.1: DigestAlgAndValueType's children are in the XAdES namespace
    etree.SubElement(cert_digest, x("DigestMethod"), Algorithm=digest_uri)
    etree.SubElement(cert_digest, x("DigestValue")).text = b64(hashlib.new(hash, cert_der).digest())
    issuer_serial = etree.SubElement(cert_node, x("IssuerSerial"))
    etree.SubElement(issuer_serial, d("X509IssuerName"), nsmap={None: DS}).text = \
        cert.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, d("X509SerialNumber"), nsmap={None: DS}).text = \
        str(cert.serial_number)
    etree.SubElement(etree.SubElement(ssp, x("SignaturePolicyIdentifier")),
                     x("SignaturePolicyImplied"))
    etree.SubElement(signed_properties, x("SignedDataObjectProperties"))

    # Reparse once so that every namespace declaration sits where a reader will see it.
    signature = etree.fromstring(_tostring(signature), _parser())
    manifest = signature.find(f"{{{DS}}}Object/{{{DS}}}Manifest")
    signed_properties = signature.find(f"{{{DS}}}Object/{x('QualifyingProperties')}/"
                                       f"{x('SignedProperties')}")
    signed_info = signature.find(d("SignedInfo"))
    refs = signed_info.findall(d("Reference"))
    manifest_digest = refs[0].find(d("DigestValue"))
    properties_digest = refs[1].find(d("DigestValue"))
    manifest_digest.text = b64(hashlib.new(hash, _c14n(manifest, _C14N10_COMMENTS)).digest())
    properties_digest.text = b64(hashlib.new(hash, _c14n(signed_properties,
                                                         _C14N10_COMMENTS)).digest())
    to_sign = _c14n(signed_info, _C14N10_COMMENTS)
    signature_value = signature.find(d("SignatureValue"))
    signature_value.text = b64(key.sign(to_sign, padding.PKCS1v15(), _HASHES[hash]()))
    out = _tostring(signature, xml_declaration=True, encoding="UTF-8")
    try:
        verify_dmp_submission(out, documents=documents, submission_set=submission_set,
                              allow_sha1=hash == "sha1", max_elements=None)
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"the signer's signature does not verify with its own "
                               f"certificate (wrong key or faulty card): {exc}",
                               subject=_subject(cert)) from None
    return out


_HASHES: Dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
           "sha512": hashes.SHA512}


def _is_oid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", value)) and len(value) <= 200


# --------------------------------------------------------------------------- parsing
def _check_encoding(xml: bytes) -> None:
    """The declared encoding must be the bytes' one (XML 1.0 4.3.3, appendix F)."""
    bom = None
    if xml.startswith(codecs.BOM_UTF8):
        bom = "utf-8"
    elif xml.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        raise XmlSignatureError("UTF-32 documents are not supported",
                                reason="unsupported-encoding")
    elif xml.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        bom = "utf-16"
    elif xml.startswith((b"<\x00?\x00", b"\x00<\x00?")):
        raise XmlSignatureError("UTF-16 without a byte order mark", reason="encoding-mismatch")
    if bom == "utf-16":
        head = xml[:400].decode("utf-16", errors="replace").encode("ascii", errors="replace")
    else:
        head = xml[3:400] if bom else xml[:400]
    match = _DECLARATION.match(head)
    declared = match.group(1).decode("ascii").lower() if match else None
    if declared is None:
        codec = bom or "utf-8"          # XML 1.0 4.3.3: no declaration means UTF-8 or UTF-16
    else:
        codec_or_none = _ENCODINGS.get(declared)
        if codec_or_none is None:
            raise XmlSignatureError(f"encoding {declared!r} is not supported (UTF-8, UTF-16, "
                                    "ISO-8859-1/15, windows-1252, US-ASCII)",
                                    reason="unsupported-encoding")
        codec = codec_or_none
        if bom is not None and (bom == "utf-16") != (codec == "utf-16"):
            raise XmlSignatureError(f"the byte order mark says {bom}, the declaration {declared}",
                                    reason="encoding-mismatch")
        if bom is None and codec == "utf-16":
            raise XmlSignatureError("declared UTF-16 without a byte order mark",
                                    reason="encoding-mismatch")
    try:
        xml.decode(codec)
    except UnicodeDecodeError as exc:
        raise XmlSignatureError(f"the bytes are not {declared or codec} as declared: {exc}"[:300],
                                reason="encoding-mismatch") from None
    if codec in _SINGLE_BYTE and not xml.isascii():
        try:
            xml.decode("utf-8")
        except UnicodeDecodeError:
            return                      # genuinely single-byte
        raise XmlSignatureError(f"declared {declared}, but the bytes are UTF-8: a reader "
                                "following the declaration sees other text",
                                reason="encoding-mismatch")


def _looks_like_doctype(xml: bytes) -> bool:
    for codec in ("ascii", "utf-16-le", "utf-16-be"):
        if "<!DOCTYPE".encode(codec) in xml or "<!ENTITY".encode(codec) in xml:
            return True
    return False


class _TooManyNodes(Exception):
    """Raised by :class:`_NodeCounter` to stop the counting pass."""


class _NodeCounter:
    """A parser target that builds nothing: counts nodes, stops past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def _one(self) -> None:
        self.count += 1
        if self.count > self.limit:
            raise _TooManyNodes()

    def start(self, tag: Any, attrib: Any, nsmap: Any = None) -> None:
        self._one()

    def comment(self, text: Any) -> None:
        self._one()

    def pi(self, target: Any, data: Any = None) -> None:
        self._one()

    def close(self) -> int:
        return self.count


def _check_node_count(xml: bytes, max_elements: int) -> None:
    """Refuse more than ``max_elements`` nodes before lxml builds a tree of them.

    Every element, comment and processing instruction starts with a ``<``
    byte in every accepted encoding (UTF-16 included) and entities are
    refused: when the bytes hold no more ``<`` than the limit, nothing to
    count. Otherwise a parse into a counting target, which builds no tree and
    stops at the limit (constant memory, ~0.1 s for 500,000 nodes).
    """
    if xml.count(b"<") <= max_elements:
        return
    etree = _etree()
    parser = etree.XMLParser(target=_NodeCounter(max_elements), resolve_entities=False,
                             no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False)
    try:
        etree.fromstring(xml, parser)
    except _TooManyNodes:
        raise XmlSignatureError(f"more than {max_elements} XML nodes (max_elements)",
                                reason="too-large") from None
    except Exception:  # noqa: BLE001, S110 - malformed: the real parse says how
        pass


def _parse_document(xml: Any, max_size: int = MAX_XML_SIZE,
                    max_elements: Optional[int] = MAX_XML_ELEMENTS) -> Any:
    """Parse untrusted XML with the hardened parser; the root element, or XmlSignatureError.

    ``max_elements=None`` (documents the signer gives to be signed) counts nothing.
    """
    if not isinstance(xml, (bytes, bytearray, memoryview)):
        raise TypeError(f"the XML must be bytes, not {type(xml).__name__}")
    xml = bytes(xml)
    if len(xml) > max_size:
        raise XmlSignatureError(f"XML of {len(xml)} bytes: more than {max_size}",
                                reason="too-large")
    if _looks_like_doctype(xml):
        raise XmlSignatureError("a DOCTYPE or entity declaration: refused (entities, XXE)",
                                reason="dtd-forbidden")
    _check_encoding(xml)
    if max_elements is not None:
        _check_node_count(xml, max_elements)
    etree = _etree()
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlSignatureError(f"malformed XML: {exc}"[:300]) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise XmlSignatureError(f"malformed XML: {type(exc).__name__}: {exc}"[:300]) from None
    if root is None:
        raise XmlSignatureError("no XML document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlSignatureError("a DOCTYPE: refused (entities, XXE)", reason="dtd-forbidden")
    for _ in root.iter(etree.Entity):
        raise XmlSignatureError("an entity reference: refused", reason="dtd-forbidden")
    return root


def _maybe_xml(data: bytes) -> Any:
    """The root element when ``data`` is an XML document, else None (binary content)."""
    stripped = data.lstrip(b" \t\r\n")
    if not (stripped.startswith(b"<") or data.startswith(
            (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))):
        return None
    try:
        return _parse_document(data, max_size=max(MAX_XML_SIZE, len(data)), max_elements=None)
    except XmlSignatureError as exc:
        if exc.reason in ("dtd-forbidden", "encoding-mismatch", "unsupported-encoding"):
            raise
        return None


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class XadesReference:
    """One reference that verified: what it points to and the octets that were digested.

    :ivar uri: the reference's URI (``""`` the whole document, ``#id``, an
        external URI, ``urn:oid:...`` in a DMP manifest).
    :ivar type: its Type attribute, if any.
    :ivar kind: ``"document"`` (``URI=""``), ``"element"`` (an element of
        the document), ``"object"`` (a ``ds:Object`` of the signature:
        enveloping), ``"detached"`` (given bytes), ``"signed-properties"``,
        ``"key-info"``, ``"manifest"``, ``"submission-set"``, ``"dmp-document"``.
    :ivar digest_algorithm: ``"sha256"``...
    :ivar data: the octets digested: canonical XML for an element, the bytes
        for detached or base64 content. This, and nothing re-read from the
        input, is what was signed.
    :ivar element: ``data`` parsed as XML (signxml's ``signed_xml``), ``None``
        for non-XML content.
    :ivar digest_checked: ``False`` only for the DMP submission-set reference
        with the DRIMbox's placeholder digest (nothing was digested).
    """

    uri: str
    type: Optional[str]
    kind: str
    digest_algorithm: str
    data: bytes = field(repr=False)
    element: Any = field(default=None, repr=False, compare=False)
    digest_checked: bool = True


@dataclass(frozen=True)
class XadesVerification:
    """A XAdES signature that verified.

    :ivar signer: the signer's certificate (from KeyInfo, bound by the signed
        SigningCertificate(V2)).
    :ivar certificates: the other KeyInfo certificates (intermediates offered
        to path building, never trusted for being there).
    :ivar signature_algorithm: ``"rsa-sha256"``...
    :ivar references: every reference of SignedInfo, verified.
    :ivar covered: the data references among them (what the signer signed).
    :ivar signed_properties: the SignedProperties element as signed.
    :ivar signing_time: SigningTime as the signer claims it (never trusted by itself).
    :ivar signing_certificate_digest_algorithm: the CertDigest's hash.
    :ivar timestamp: the verified SignatureTimeStamp (``cps.timestamp``'s
        result), ``None`` for XAdES-B.
    :ivar validation: the signer's :class:`cps.trust.ValidationResult`, ``None`` without validator.
    :ivar practitioner: who the certificate names; ``validated`` with a validator.
    :ivar validation_time: when the certificate was judged, ``None`` without validator.
    :ivar validation_time_source: ``"now"``, ``"caller"`` (``at=``) or
        ``"timestamp"`` (the timestamp's genTime); ``None`` without validator.
    :ivar level: ``"B-B"`` or ``"B-T"``.
    """

    signer: x509.Certificate
    certificates: Tuple[x509.Certificate, ...]
    signature_algorithm: str
    references: Tuple[XadesReference, ...]
    covered: Tuple[XadesReference, ...]
    signed_properties: Any = field(repr=False, compare=False)
    signing_time: Optional[datetime]
    signing_certificate_digest_algorithm: str
    timestamp: Any = None
    validation: Optional["ValidationResult"] = None
    practitioner: Optional["Practitioner"] = None
    validation_time: Optional[datetime] = None
    validation_time_source: Optional[str] = None
    level: str = "B-B"


@dataclass(frozen=True)
class DmpVerification(XadesVerification):
    """A DMP submission-set signature that verified (see :func:`verify_dmp_submission`).

    :ivar signature_uid: the Signature's Id (the signature document's uniqueId).
    :ivar submission_set_uid: the OID of the ``urn:oid:`` submission-set reference.
    :ivar documents: document uniqueId -> its manifest reference (digest checked).
    :ivar submission_set_digest_checked: ``False`` when the reference carries
        the DRIMbox's placeholder (``AA==``) or no ``submission_set`` was given.
    :ivar purpose_of_signature: the purposeOfSignature SignatureProperty,
        **unsigned** in this layout (a claim), ``None`` when absent.
    """

    signature_uid: str = ""
    submission_set_uid: str = ""
    documents: Mapping[str, XadesReference] = field(default_factory=dict)
    submission_set_digest_checked: bool = False
    purpose_of_signature: Optional[str] = None


# --------------------------------------------------------------------------- verification
def verify_xades(xml: bytes, validator: Optional["Validator"] = None, *,
                 detached: Optional[Union[bytes, Mapping[str, bytes]]] = None,
                 at: Optional[datetime] = None, allow_sha1: bool = False,
                 whole_document: bool = True, max_size: int = MAX_XML_SIZE,
                 max_elements: Optional[int] = MAX_XML_ELEMENTS) -> XadesVerification:
    """Verify a XAdES signature (one ``ds:Signature``), then, if asked, its certificate.

    Checks, in order: the document (size, node count, no DOCTYPE, an honest
    encoding declaration, well-formed); the signer certificate among the
    KeyInfo certificates (the one end-entity certificate); at most
    :data:`MAX_REFERENCES` references; for XAdES-T, the timestamp over the
    SignatureValue; with a ``validator``, the certificate for
    ``KeyRole.SIGN`` at ``at``, else the timestamp's genTime plus its
    accuracy, else now (before any reference is digested: a certificate
    the validator refuses costs no digest work); with signxml, the
    signature over SignedInfo and the digest of every reference; that each
    reference points to something expected (the document, an element outside
    the signature, a ``ds:Object`` of the signature, a detached document
    given in ``detached``, the SignedProperties with their Type, the KeyInfo)
    and that every ``ds:Object`` is covered; that the signed
    SigningCertificate(V2) names the KeyInfo certificate (only then is the
    validated certificate reported as the signer's).

    :param xml: the signed XML (enveloped or enveloping), or the detached signature.
    :param validator: a :class:`cps.trust.Validator`; ``None`` checks the signature only.
    :param detached: the detached document (bytes, when the signature has one
        external reference) or ``{uri: bytes}``.
    :param at: aware validation time, trusted as given.
    :param allow_sha1: accept RSA-SHA1 and SHA-1 digests (legacy signatures).
    :param whole_document: an enveloped signature must cover its whole
        document (``URI=""`` or the root's Id); ``False`` accepts signatures
        of parts: then use ``result.covered`` only.
    :param max_size: largest input accepted, in bytes.
    :param max_elements: most XML nodes accepted (elements, comments,
        processing instructions); references x nodes may not exceed 4 x
        this (signxml copies the document for each reference). ``None``: no limit.
    :raises XmlSignatureError: the input is refused (``reason`` says why).
    :raises DigestMismatch: a reference's content changed.
    :raises SignatureInvalid: the signature does not verify.
    :raises SigningCertificateMismatch: the signed properties name another certificate.
    :raises CertificateInvalid: from the validator (revoked, expired, wrong purpose...).
    """
    root = _parse_document(xml, max_size, max_elements)
    core = _verify_core(root, detached=detached, allow_sha1=allow_sha1, validate_schema=True,
                        validator=validator, at=at, max_elements=max_elements)
    if core.signed_properties is None:
        raise XmlSignatureError("no SignedProperties reference: not a XAdES signature",
                                reason="not-xades")
    signing_time, cert_alg = _check_signed_properties(core)
    data_refs = tuple(r for r in core.references
                      if r.kind in ("document", "element", "object", "detached"))
    if not data_refs:
        raise XmlSignatureError("the signature covers no document", reason="unexpected-reference")
    if core.signature is not root and whole_document and not any(
            r.kind == "document" or r.uri == f"#{root.get('Id')}" and root.get("Id")
            for r in data_refs):
        raise XmlSignatureError("the signature does not cover the document it is in "
                                "(only " + ", ".join(r.uri for r in data_refs) + ")",
                                reason="wrapping")
    for obj, covered in core.objects:
        if not covered and not _is_qualifying_object(obj):
            raise XmlSignatureError("a ds:Object that no reference covers",
                                    reason="unsigned-content")
    result: XadesVerification = _finish(XadesVerification, core, data_refs, signing_time,
                                        cert_alg)
    return result


def verify_dmp_submission(xml: bytes, validator: Optional["Validator"] = None, *,
                          documents: Mapping[str, bytes],
                          submission_set_uid: Optional[str] = None,
                          submission_set: Optional[bytes] = None,
                          at: Optional[datetime] = None, allow_sha1: bool = False,
                          max_size: int = MAX_XML_SIZE,
                          max_elements: Optional[int] = MAX_XML_ELEMENTS) -> DmpVerification:
    """Verify a DMP submission-set signature (the DRIMbox layout, :func:`sign_dmp_submission`).

    On top of :func:`verify_xades`'s checks: SignedInfo references exactly
    the ``ds:Manifest`` "IHEManifest" (Type Manifest) and the XAdES 1.1.1
    SignedProperties; the manifest (as signed) references the submission set
    and exactly the ``documents`` given, each digest checked (C14N transform
    for XML documents); SignaturePolicyImplied; the only unsigned
    ``ds:Object`` is the purposeOfSignature SignatureProperties.

    :param documents: document uniqueId -> the bytes as sent.
    :param submission_set_uid: when given, the submission-set reference must name it.
    :param submission_set: the bytes whose digest the submission-set
        reference carries, when it carries one (not the DRIMbox's placeholder).
    :param allow_sha1: accept the DRIMbox's RSA-SHA1 and SHA-1 digests.
    :param max_elements: most XML nodes in the signature document and in
        each XML document given; all of these together may not exceed 4 x this.
    """
    root = _parse_document(xml, max_size, max_elements)
    if root.tag != f"{{{DS}}}Signature":
        raise XmlSignatureError("the DMP signature document is a ds:Signature", reason="layout")
    # The Signature's Id is an OID (the signature document's uniqueId): not an
    # xsd:ID, so the XMLDSig schema is not applied; the layout is checked below.
    core = _verify_core(root, detached=None, allow_sha1=allow_sha1, validate_schema=False,
                        validator=validator, at=at, max_elements=max_elements)
    kinds = sorted(r.kind for r in core.references)
    if kinds != ["manifest", "signed-properties"] or core.signed_properties is None or \
            core.signed_properties_ns != XADES111:
        raise XmlSignatureError("SignedInfo must reference the IHEManifest and the XAdES 1.1.1 "
                                f"SignedProperties only (found {kinds})",
                                reason="unexpected-reference")
    manifest_ref = next(r for r in core.references if r.kind == "manifest")
    if manifest_ref.uri != "#IHEManifest":
        raise XmlSignatureError(f"the manifest reference is {manifest_ref.uri!r}", reason="layout")
    signing_time, cert_alg = _check_signed_properties(core)
    policy = core.signed_properties.find(
        f"{{{XADES111}}}SignedSignatureProperties/{{{XADES111}}}SignaturePolicyIdentifier/"
        f"{{{XADES111}}}SignaturePolicyImplied")
    if policy is None:
        raise XmlSignatureError("no SignaturePolicyImplied", reason="layout")
    purpose = None
    for obj, is_covered in core.objects:
        if is_covered or _is_qualifying_object(obj):
            continue
        purpose_node = _purpose_object(obj)
        if purpose_node is None or purpose is not None:
            raise XmlSignatureError("a ds:Object that no reference covers",
                                    reason="unsigned-content")
        purpose = (purpose_node.text or "").strip()

    entries = _manifest_entries(manifest_ref.element, allow_sha1)
    if not entries:
        raise XmlSignatureError("an empty manifest", reason="layout")
    ss_uri, ss_alg, ss_transform, ss_digest = entries[0]
    ss_uid = ss_uri[len("urn:oid:"):]
    if submission_set_uid is not None and ss_uid != submission_set_uid:
        raise XmlSignatureError(f"the manifest names submission set {ss_uid}, not "
                                f"{submission_set_uid}", reason="unexpected-reference")
    checked = False
    ss_data = b""
    if ss_digest != _PLACEHOLDER_DIGEST and submission_set is not None:
        ss_data = bytes(submission_set)
        _compare(ss_alg, ss_digest, hashlib.new(ss_alg, ss_data).digest(), ss_uri, core)
        checked = True
    covered = [XadesReference(ss_uri, None, "submission-set", ss_alg, ss_data,
                              digest_checked=checked)]
    given = {str(k): bytes(v) for k, v in documents.items()}
    found: Dict[str, XadesReference] = {}
    nodes = core.nodes
    for uri, alg, transform, digest in entries[1:]:
        oid = uri[len("urn:oid:"):]
        if oid in found or oid == ss_uid:
            raise XmlSignatureError(f"{uri} referenced twice", reason="unexpected-reference")
        if oid not in given:
            raise XmlSignatureError(f"the manifest references {uri}, which was not given",
                                    reason="no-content")
        content = given[oid]
        element = None
        if transform is not None:
            element = _parse_document(content, max(max_size, len(content)), max_elements)
            nodes += _count_nodes(element)
            if max_elements is not None and nodes > _WORK_FACTOR * max_elements:
                raise XmlSignatureError(f"the documents hold more than {_WORK_FACTOR} x "
                                        f"{max_elements} XML nodes together", reason="too-large")
            content_digested = _c14n(element.getroottree(), transform)
        else:
            content_digested = content
        _compare(alg, digest, hashlib.new(alg, content_digested).digest(), uri, core)
        found[oid] = XadesReference(uri, None, "dmp-document", alg, content_digested, element)
    missing = sorted(set(given) - set(found))
    if missing:
        raise XmlSignatureError(f"documents the manifest does not reference: {missing}",
                                reason="unreferenced-content")
    covered.extend(found.values())
    result: DmpVerification = _finish(
        DmpVerification, core, tuple(covered), signing_time,
        cert_alg, signature_uid=root.get("Id") or "", submission_set_uid=ss_uid,
                   documents=found, submission_set_digest_checked=checked,
                   purpose_of_signature=purpose)
    return result


# --------------------------------------------------------------------------- the common core
@dataclass
class _Core:
    root: Any
    signature: Any
    signer: x509.Certificate
    signer_der: bytes
    others: List[x509.Certificate]
    signature_algorithm: str
    references: List[XadesReference]
    signed_properties: Any
    signed_properties_ns: Optional[str]
    objects: List[Tuple[Any, bool]]
    nodes: int = 0
    timestamp: Any = None
    validation: Optional["ValidationResult"] = None
    validation_time: Optional[datetime] = None
    validation_time_source: Optional[str] = None


def _verify_core(root: Any, *, detached: Optional[Union[bytes, Mapping[str, bytes]]],
                 allow_sha1: bool, validate_schema: bool, validator: Optional["Validator"],
                 at: Optional[datetime], max_elements: Optional[int]) -> _Core:
    """Everything but the layout's own rules: cheap refusals first, then the
    timestamp and the certificate (with a validator), then signxml's digests."""
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if len(signatures) != 1:
        raise XmlSignatureError(f"{len(signatures)} ds:Signature elements: exactly one is "
                                "supported", reason="unsupported" if signatures else "malformed")
    signature = signatures[0]
    nodes = _refuse_duplicate_ids(root)
    signer, signer_der, others = _signer_certificate(signature)

    method = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    algorithm_uri = method.get("Algorithm") if method is not None else None
    if algorithm_uri not in _SIGNATURE_NAMES:
        raise XmlSignatureError(f"signature method {algorithm_uri}: RSA PKCS#1 v1.5 only",
                                reason="unsupported")
    sig_hash = _SIGNATURE_NAMES[algorithm_uri]
    if sig_hash == "sha1" and not allow_sha1:
        raise XmlSignatureError("RSA-SHA1 signatures are refused (collisions): allow_sha1=True "
                                "for legacy ones", reason="weak-algorithm")
    references = len(signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference"))
    if references > MAX_REFERENCES:
        raise XmlSignatureError(f"{references} references: at most {MAX_REFERENCES}",
                                reason="too-many-references")
    for manifest in signature.iterfind(f"{{{DS}}}Object/{{{DS}}}Manifest"):
        if len(manifest.findall(f"{{{DS}}}Reference")) > MAX_REFERENCES:
            raise XmlSignatureError(f"a Manifest of more than {MAX_REFERENCES} references",
                                    reason="too-many-references")
    if max_elements is not None and references * nodes > _WORK_FACTOR * max_elements:
        raise XmlSignatureError(f"{references} references over {nodes} XML nodes: more work "
                                f"than {_WORK_FACTOR} x max_elements ({max_elements})",
                                reason="too-large")
    # Before any digest: the timestamp (bounded, independent of the references) and,
    # with a validator, the certificate at the time they give. It is the KeyInfo
    # certificate the result would report; it is believed the signer's only once the
    # signature and the signed SigningCertificate(V2) bind it (below, and by the callers).
    stamp, stamp_ns = _verify_timestamp(signature, sig_hash, validator)
    validation = when = source = None
    if validator is not None:
        when, source = _validation_time(validator, at, stamp)
        validation = validator.validate(signer, intermediates=others, at=when,
                                        purpose=KeyRole.SIGN)

    if isinstance(detached, (bytes, bytearray, memoryview)):
        externals = [r.get("URI") for r in signature.iterfind(
            f"{{{DS}}}SignedInfo/{{{DS}}}Reference") if not _same_document(r.get("URI"))]
        if len(externals) != 1:
            raise XmlSignatureError("detached bytes given, but the signature does not have "
                                    "exactly one external reference: give {uri: bytes}",
                                    reason="unexpected-reference")
        detached_map: Dict[str, bytes] = {externals[0]: bytes(detached)}
    else:
        detached_map = {str(k): bytes(v) for k, v in (detached or {}).items()}

    verifier = _verifier_class()(signature_path=_index_path(signature),
                                 detached=detached_map, allow_sha1=allow_sha1)
    signxml = require("signxml", "xml")
    config = signxml.SignatureConfiguration(
        require_x509=True, location=".//", expect_references=True,
        signature_methods=frozenset(m for m in signxml.SignatureMethod
                                    if m.value in _SIGNATURE_NAMES
                                    and (allow_sha1 or "SHA1" not in m.name)),
        digest_algorithms=frozenset(a for a in signxml.DigestAlgorithm
                                    if a.value in _DIGEST_NAMES
                                    and (allow_sha1 or "SHA1" not in a.name)),
        # cps.trust judges the certificate; signxml's own date check is neutralised
        verification_time=signer.not_valid_before_utc)
    try:
        verifier.verify(root, x509_cert=signer, expect_config=config,
                        validate_schema=validate_schema, parser=_parser(),
                        uri_resolver=verifier.resolve_external)
    except CpsError:
        raise
    except Exception as exc:  # noqa: BLE001 - signxml, lxml and binascii errors, typed here
        raise _map_signxml_error(exc, verifier, signer) from None
    used = set(verifier.used_externals)
    unused = sorted(set(detached_map) - used)
    if unused:
        raise XmlSignatureError(f"detached documents the signature does not reference: {unused}",
                                reason="unreferenced-content")
    props = [r for r in verifier.results if r.kind == "signed-properties"]
    if len(props) > 1:
        raise XmlSignatureError("several SignedProperties references",
                                reason="unexpected-reference")
    if stamp_ns is not None and stamp_ns != (verifier.signed_properties_ns or XADES132):
        raise XmlSignatureError("the SignatureTimeStamp is not in the XAdES namespace of the "
                                "SignedProperties", reason="unsupported")
    objects = []
    covered_paths = verifier.covered_paths
    for obj in signature.iterfind(f"{{{DS}}}Object"):
        path = _index_path(obj)
        objects.append((obj, any(p[:len(path)] == path for p in covered_paths)))
    return _Core(root, signature, signer, signer_der, others, f"rsa-{sig_hash}",
                 verifier.results, props[0].element if props else None,
                 verifier.signed_properties_ns, objects, nodes, stamp, validation, when, source)


_ID_ATTRIBUTES = ("Id", "ID", "id", "{http://www.w3.org/XML/1998/namespace}id")


def _refuse_duplicate_ids(root: Any) -> int:
    """Two elements with the same Id: a reference could mean either (signature wrapping).
    The number of nodes under (and with) ``root``."""
    seen = set()
    count = 0
    for element in root.iter():
        count += 1
        if not isinstance(element.tag, str):
            continue
        for name in _ID_ATTRIBUTES:
            value = element.get(name)
            if value is None:
                continue
            if value in seen:
                raise XmlSignatureError(f"the Id {value[:60]!r} names several elements "
                                        "(signature wrapping)", reason="wrapping")
            seen.add(value)
    return count


def _count_nodes(root: Any) -> int:
    return sum(1 for _ in root.iter())


def _same_document(uri: Optional[str]) -> bool:
    return uri is not None and (uri == "" or uri.startswith("#"))


def _signer_certificate(signature: Any) -> Tuple[x509.Certificate, bytes, List[x509.Certificate]]:
    """The one end-entity certificate of KeyInfo/X509Data, and the others."""
    nodes = signature.findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if not nodes:
        raise XmlSignatureError("no X509Certificate in KeyInfo", reason="no-signer-certificate")
    if len(nodes) > MAX_CERTIFICATES:
        raise XmlSignatureError(f"more than {MAX_CERTIFICATES} certificates", reason="unsupported")
    certs = []
    for node in nodes:
        try:
            der = base64.b64decode("".join((node.text or "").split()), validate=True)
            certs.append((der, x509.load_der_x509_certificate(der)))
        except (ValueError, binascii.Error, x509.InvalidVersion) as exc:
            raise XmlSignatureError(f"undecodable KeyInfo certificate: {exc}"[:200]) from None
    leaves = [(der, c) for der, c in certs if not _is_ca(c)]
    if len({der for der, _ in leaves}) != 1:
        raise XmlSignatureError(f"{len(leaves)} end-entity certificates in KeyInfo: exactly one "
                                "is expected", reason="no-signer-certificate")
    signer_der, signer = leaves[0]
    try:
        key = signer.public_key()
    except (ValueError, TypeError) as exc:
        raise XmlSignatureError(f"undecodable signer key: {exc}"[:200]) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise XmlSignatureError("only RSA signers are supported", reason="unsupported")
    return signer, signer_der, [c for der, c in certs if der != signer_der]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return False


def _map_signxml_error(exc: Exception, verifier: Any, signer: x509.Certificate) -> CpsError:
    exceptions = require("signxml.exceptions", "xml")
    etree = _etree()
    message = f"{type(exc).__name__}: {exc}"[:300]
    subject = _subject(signer)
    if isinstance(exc, exceptions.InvalidDigest):
        uri, algorithm, expected, actual = verifier.last_digest
        return DigestMismatch(f"the content of reference {uri!r} changed: {exc}",
                              algorithm=algorithm, expected=expected, actual=actual,
                              subject=subject)
    if isinstance(exc, exceptions.InvalidSignature):
        return SignatureInvalid(f"the signature over SignedInfo does not verify with the "
                                f"KeyInfo certificate: {exc}"[:300], subject=subject)
    text = str(exc)
    if "Ambiguous reference URI" in text:
        return XmlSignatureError(f"an Id names several elements (signature wrapping): {text}",
                                 reason="wrapping")
    if "forbidden by configuration" in text:
        return XmlSignatureError(f"{text}: allow_sha1=True for legacy signatures",
                                 reason="weak-algorithm")
    if "Unable to resolve reference URI" in text:
        return XmlSignatureError(f"a reference points to nothing: {text}",
                                 reason="unexpected-reference")
    if isinstance(exc, etree.DocumentInvalid):
        return XmlSignatureError(f"not a valid XML signature (XMLDSig schema): {text}"[:300])
    if isinstance(exc, etree.XMLSyntaxError):
        return XmlSignatureError(f"malformed XML: {text}"[:300])
    if isinstance(exc, ValueError) and "is not a valid" in text:
        return XmlSignatureError(f"unsupported algorithm: {text}"[:300], reason="unsupported")
    return XmlSignatureError(f"malformed XML signature: {message}")


@functools.lru_cache(maxsize=1)
def _verifier_class() -> Any:
    """signxml's XMLVerifier, recording what each reference resolved to and digested."""
    signxml = require("signxml", "xml")

    base: Any = signxml.XMLVerifier

    class _Verifier(base):  # type: ignore[misc]
        def __init__(self, *, signature_path: Tuple[int, ...], detached: Dict[str, bytes],
                     allow_sha1: bool) -> None:
            super().__init__()
            self.signature_path = signature_path
            self.detached = detached
            self.allow_sha1 = allow_sha1
            self.results: List[XadesReference] = []
            self.covered_paths: List[Tuple[int, ...]] = []
            self.used_externals: List[str] = []
            self.signed_properties_ns: Optional[str] = None
            self.last_digest: Tuple[str, str, bytes, bytes] = ("", "", b"", b"")
            self._kind = ""
            self._computed = b""
            self._seen: set[str] = set()

        _c14n = _fixed_c14n

        def resolve_external(self, uri: str) -> bytes:
            if uri not in self.detached:
                raise XmlSignatureError(f"the signature references {uri!r}: give it in detached=",
                                        reason="no-content")
            self.used_externals.append(uri)
            return self.detached[uri]

        def _resolve_reference(self, doc_root: Any, reference: Any, uri_resolver: Any = None
                               ) -> Any:
            resolved = super()._resolve_reference(doc_root, reference, uri_resolver=uri_resolver)
            # classified now, before the transforms (enveloped-signature) change the copy
            self._kind = self._classify(reference.get("URI"), reference, resolved, doc_root)
            return resolved

        def _get_digest(self, data: Any, algorithm: Any) -> Any:
            digest = super()._get_digest(data, algorithm)
            self._computed = digest
            return digest

        def _verify_reference(self, reference: Any, index: int, root: Any, uri_resolver: Any,
                              c14n_algorithm: Any, signature: Any, signature_key_used: Any
                              ) -> Any:
            uri = reference.get("URI")
            if uri is None:
                raise XmlSignatureError("a reference without URI", reason="unexpected-reference")
            for transform in reference.iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform"):
                if transform.get("Algorithm") not in _TRANSFORMS:
                    raise XmlSignatureError(f"transform {transform.get('Algorithm')}",
                                            reason="unsupported")
                if len(transform):
                    raise XmlSignatureError("transform parameters are not supported",
                                            reason="unsupported")
            method = reference.find(f"{{{DS}}}DigestMethod")
            alg_uri = method.get("Algorithm") if method is not None else None
            if alg_uri not in _DIGEST_NAMES:
                raise XmlSignatureError(f"digest method {alg_uri}", reason="unsupported")
            algorithm = _DIGEST_NAMES[alg_uri]
            if algorithm == "sha1" and not self.allow_sha1:
                raise XmlSignatureError("SHA-1 digests are refused: allow_sha1=True for legacy "
                                        "signatures", reason="weak-algorithm")
            value = reference.find(f"{{{DS}}}DigestValue")
            try:
                expected = base64.b64decode("".join((value.text or "").split()), validate=True)
            except (binascii.Error, ValueError, AttributeError):
                raise XmlSignatureError("undecodable DigestValue") from None
            self._kind, self._computed = "", b""
            try:
                result = super()._verify_reference(reference, index, root, uri_resolver,
                                                   c14n_algorithm, signature, signature_key_used)
            except Exception:
                self.last_digest = (uri, algorithm, expected, self._computed)
                raise
            kind = self._kind
            data = result.signed_data if isinstance(result.signed_data, bytes) else \
                bytes(result.signed_data)
            self.results.append(XadesReference(uri, reference.get("Type"), kind, algorithm, data,
                                               result.signed_xml))
            return result

        def _classify(self, uri: str, reference: Any, node: Any, doc_root: Any) -> str:
            transforms = [t.get("Algorithm") for t in
                          reference.iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
            ref_type = reference.get("Type")
            if _BASE64 in transforms:
                _check_base64_target(uri, node)
            if not _same_document(uri):
                if ref_type is not None:
                    raise XmlSignatureError(f"reference {uri!r} of Type {ref_type}",
                                            reason="unexpected-reference")
                return self._once("detached", uri)
            signature = _at_path(doc_root, self.signature_path)
            path = _index_path(node)
            inside = signature is not None and (node is signature or any(
                a is signature for a in node.iterancestors()))
            if uri == "":
                if signature is None or node is signature or _ENVELOPED not in transforms:
                    raise XmlSignatureError("URI=\"\" without the enveloped-signature transform",
                                            reason="unexpected-reference")
                self.covered_paths.append(path)
                return self._once("document", "")
            if not inside:
                if ref_type is not None:
                    raise XmlSignatureError(f"reference {uri} of Type {ref_type}",
                                            reason="unexpected-reference")
                self.covered_paths.append(path)
                return self._once("element", str(path))
            parent = node.getparent()
            namespace = _namespace(node.tag)
            if node.tag.endswith("}SignedProperties") and namespace in _XADES_NAMESPACES:
                holder = parent.getparent() if parent is not None else None
                if (parent is None or parent.tag != f"{{{namespace}}}QualifyingProperties"
                        or holder is None or holder.tag != f"{{{DS}}}Object"
                        or holder.getparent() is not signature):
                    raise XmlSignatureError("SignedProperties outside this signature's "
                                            "QualifyingProperties", reason="wrapping")
                if ref_type != _SIGNED_PROPERTIES_TYPES[namespace]:
                    raise XmlSignatureError(f"the SignedProperties reference has Type "
                                            f"{ref_type!r}, not "
                                            f"{_SIGNED_PROPERTIES_TYPES[namespace]!r}",
                                            reason="unexpected-reference")
                self.signed_properties_ns = namespace
                self.covered_paths.append(path)
                return self._once("signed-properties", "")
            if node.tag == f"{{{DS}}}KeyInfo" and parent is signature:
                self.covered_paths.append(path)
                return self._once("key-info", "")
            if node.tag == f"{{{DS}}}Manifest" and parent is not None and \
                    parent.tag == f"{{{DS}}}Object" and parent.getparent() is signature:
                if ref_type != _MANIFEST_TYPE:
                    raise XmlSignatureError("a Manifest referenced without Type Manifest",
                                            reason="unexpected-reference")
                self.covered_paths.append(path)
                return self._once("manifest", "")
            if node.tag == f"{{{DS}}}Object" and parent is signature and ref_type is None:
                self.covered_paths.append(path)
                return self._once("object", str(path))
            raise XmlSignatureError(f"reference {uri} points to {node.tag} inside the signature",
                                    reason="unexpected-reference")

        def _once(self, kind: str, key: str) -> str:
            marker = f"{kind}:{key}"
            if marker in self._seen:
                raise XmlSignatureError(f"two references to the same {kind}",
                                        reason="unexpected-reference")
            self._seen.add(marker)
            return kind

    return _Verifier


def _check_base64_target(uri: str, node: Any) -> None:
    """The base64 transform decodes the text of the referenced element up to its first
    child, and nothing else is digested: it is allowed only on an element (a ds:Object)
    that holds nothing but base64 text, never on the document (``URI=""``, the root)."""
    if not _same_document(uri):
        raise XmlSignatureError(f"the base64 transform on the external reference {uri!r}",
                                reason="unsupported")
    if uri == "" or not hasattr(node, "getparent") or node.getparent() is None:
        raise XmlSignatureError("the base64 transform on the whole document: only the root's "
                                "first text would be signed", reason="partial-coverage")
    if len(node):
        raise XmlSignatureError(f"the base64 transform on {uri}, which has child nodes: only "
                                "its text before them would be signed",
                                reason="partial-coverage")
    try:
        base64.b64decode("".join((node.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise XmlSignatureError(f"{uri}: not base64 text (the transform would skip "
                                "characters)") from None


def _index_path(node: Any) -> Tuple[int, ...]:
    """Where ``node`` is, as child indexes from the root: the same in every copy of the tree."""
    path = []
    parent = node.getparent()
    while parent is not None:
        path.append(parent.index(node))
        node, parent = parent, parent.getparent()
    return tuple(reversed(path))


def _at_path(root: Any, path: Tuple[int, ...]) -> Any:
    node = root
    try:
        for index in path:
            node = node[index]
    except IndexError:
        return None
    return node


def _namespace(tag: Any) -> str:
    return tag[1:].partition("}")[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _is_qualifying_object(obj: Any) -> bool:
    """A ds:Object holding only QualifyingProperties (whose SignedProperties are covered
    and whose UnsignedProperties are unsigned by design)."""
    children = [c for c in obj if isinstance(c.tag, str)]
    return len(children) == 1 and children[0].tag in (
        f"{{{ns}}}QualifyingProperties" for ns in _XADES_NAMESPACES) and any(
        isinstance(c.tag, str) and c.tag.endswith("}SignedProperties") for c in children[0])


def _purpose_object(obj: Any) -> Any:
    """The purposeOfSignature SignatureProperty when ``obj`` is exactly that Object."""
    children = [c for c in obj if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != f"{{{DS}}}SignatureProperties":
        return None
    props = [c for c in children[0] if isinstance(c.tag, str)]
    if len(props) != 1 or props[0].tag != f"{{{DS}}}SignatureProperty" or \
            props[0].get("Id") != "purposeOfSignature" or len(props[0]):
        return None
    return props[0]


def _compare(algorithm: str, expected: bytes, actual: bytes, uri: str, core: _Core) -> None:
    if not hmac.compare_digest(expected, actual):
        raise DigestMismatch(f"the content of {uri} changed", algorithm=algorithm,
                             expected=expected, actual=actual, subject=_subject(core.signer))


def _manifest_entries(manifest: Any, allow_sha1: bool
                      ) -> List[Tuple[str, str, Optional[str], bytes]]:
    """(uri, digest algorithm, C14N transform or None, digest) of each manifest reference."""
    if manifest is None:
        raise XmlSignatureError("the manifest is not XML", reason="layout")
    entries = []
    children = [c for c in manifest if isinstance(c.tag, str)]
    if len(children) > MAX_REFERENCES:
        raise XmlSignatureError("too many manifest references", reason="too-many-references")
    for ref in children:
        if ref.tag != f"{{{DS}}}Reference":
            raise XmlSignatureError(f"{ref.tag} in the manifest", reason="layout")
        uri = ref.get("URI") or ""
        if not uri.startswith("urn:oid:") or not _is_oid(uri[len("urn:oid:"):]):
            raise XmlSignatureError(f"manifest reference {uri!r}: urn:oid:<uniqueId> expected",
                                    reason="unexpected-reference")
        transforms = [t.get("Algorithm") for t in
                      ref.iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
        if len(transforms) > 1 or any(t not in _C14N_METHODS for t in transforms):
            raise XmlSignatureError(f"manifest transforms {transforms}", reason="unsupported")
        method = ref.find(f"{{{DS}}}DigestMethod")
        algorithm = _DIGEST_NAMES.get(method.get("Algorithm") if method is not None else "")
        if algorithm is None:
            raise XmlSignatureError("manifest digest method", reason="unsupported")
        if algorithm == "sha1" and not allow_sha1:
            raise XmlSignatureError("SHA-1 digests are refused: allow_sha1=True",
                                    reason="weak-algorithm")
        try:
            digest = base64.b64decode("".join((ref.findtext(f"{{{DS}}}DigestValue") or
                                               "").split()), validate=True)
        except (binascii.Error, ValueError):
            raise XmlSignatureError("undecodable manifest DigestValue") from None
        entries.append((uri, algorithm, transforms[0] if transforms else None, digest))
    return entries


def _check_signed_properties(core: _Core) -> Tuple[Optional[datetime], str]:
    """SigningTime, and SigningCertificate(V2) bound to the KeyInfo signer certificate."""
    props = core.signed_properties
    ns = core.signed_properties_ns or XADES132
    ssp = props.find(f"{{{ns}}}SignedSignatureProperties")
    if ssp is None:
        raise XmlSignatureError("no SignedSignatureProperties", reason="not-xades")
    signing_time = None
    times = ssp.findall(f"{{{ns}}}SigningTime")
    if len(times) > 1:
        raise XmlSignatureError("several SigningTime")
    if times:
        signing_time = _parse_datetime(times[0].text)
    v1 = ssp.findall(f"{{{ns}}}SigningCertificate")
    v2 = ssp.findall(f"{{{ns}}}SigningCertificateV2")
    if len(v1) + len(v2) != 1:
        raise XmlSignatureError("exactly one SigningCertificate or SigningCertificateV2 is "
                                "required (it binds the signer certificate)", reason="not-xades")
    holder = (v1 or v2)[0]
    first = holder.find(f"{{{ns}}}Cert")
    if first is None:
        raise XmlSignatureError("SigningCertificate without Cert", reason="not-xades")
    digest_node = first.find(f"{{{ns}}}CertDigest")
    if digest_node is None:
        raise XmlSignatureError("Cert without CertDigest", reason="not-xades")
    method = digest_node.find(f"{{{DS}}}DigestMethod")
    value = digest_node.find(f"{{{DS}}}DigestValue")
    if method is None:  # XAdES 1.1.1: DigestAlgAndValueType's children in its own namespace
        method = digest_node.find(f"{{{ns}}}DigestMethod")
        value = digest_node.find(f"{{{ns}}}DigestValue")
    algorithm = _DIGEST_NAMES.get(method.get("Algorithm") if method is not None else "")
    if algorithm is None or value is None:
        raise XmlSignatureError("CertDigest: unsupported digest method", reason="unsupported")
    try:
        expected = base64.b64decode("".join((value.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise XmlSignatureError("undecodable CertDigest") from None
    # SHA-1 is accepted here (like ESSCertID v1): it identifies a certificate already
    # chosen, a second preimage would be needed to swap it.
    actual = hashlib.new(algorithm, core.signer_der).digest()
    subject = _subject(core.signer)
    if not hmac.compare_digest(expected, actual):
        raise SigningCertificateMismatch(
            "the signed SigningCertificate names another certificate than the KeyInfo one",
            algorithm=algorithm, expected=expected, actual=actual, subject=subject)
    serial_node = first.find(f"{{{ns}}}IssuerSerial/{{{DS}}}X509SerialNumber")
    name_node = first.find(f"{{{ns}}}IssuerSerial/{{{DS}}}X509IssuerName")
    if serial_node is not None:
        try:
            serial = int((serial_node.text or "").strip())
        except ValueError:
            raise XmlSignatureError("X509SerialNumber is not an integer") from None
        if serial != core.signer.serial_number or (
                name_node is not None and not _same_name(name_node.text or "",
                                                         core.signer.issuer)):
            raise SigningCertificateMismatch(
                "the signed IssuerSerial names another certificate than the KeyInfo one",
                algorithm=algorithm, expected=expected, actual=actual, subject=subject)
    return signing_time, algorithm


def _same_name(text: str, name: x509.Name) -> bool:
    """An X509IssuerName (RFC 4514/2253 text, any order) against a certificate's name."""
    def parts(value: str) -> List[str]:
        items = re.split(r"(?<!\\)[,+]", value)
        return sorted(re.sub(r"\s*=\s*", "=", i.strip()).casefold() for i in items if i.strip())
    return parts(text) == parts(name.rfc4514_string())


def _parse_datetime(text: Optional[str]) -> datetime:
    value = (text or "").strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise XmlSignatureError(f"SigningTime {text!r} is not an xs:dateTime") from None
    if moment.tzinfo is None:
        raise XmlSignatureError("SigningTime without a time zone")
    return moment.astimezone(timezone.utc)


def _verify_timestamp(signature: Any, hash_name: str, validator: Optional["Validator"]
                      ) -> Tuple[Any, Optional[str]]:
    """The SignatureTimeStamp (XAdES-T), verified over the canonical SignatureValue, and
    its XAdES namespace; ``(None, None)`` without one. It covers the SignatureValue
    only: it is checked before the references are."""
    stamps = [(ns, stamp) for ns in _XADES_NAMESPACES for stamp in signature.findall(
        f"{{{DS}}}Object/{{{ns}}}QualifyingProperties/{{{ns}}}UnsignedProperties/"
        f"{{{ns}}}UnsignedSignatureProperties/{{{ns}}}SignatureTimeStamp")]
    if not stamps:
        return None, None
    if len(stamps) > 1:
        raise XmlSignatureError("several SignatureTimeStamp", reason="unsupported")
    ns, stamp = stamps[0]
    try:
        from .timestamp import verify_timestamp
    except ImportError:
        raise XmlSignatureError("a SignatureTimeStamp, but cps.timestamp is not available",
                                reason="unsupported") from None
    method = stamp.find(f"{{{DS}}}CanonicalizationMethod")
    algorithm = method.get("Algorithm") if method is not None else _C14N10
    encapsulated = stamp.find(f"{{{ns}}}EncapsulatedTimeStamp")
    if encapsulated is None:
        raise XmlSignatureError("SignatureTimeStamp without EncapsulatedTimeStamp",
                                reason="unsupported")
    try:
        token = base64.b64decode("".join((encapsulated.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise XmlSignatureError("undecodable EncapsulatedTimeStamp") from None
    value = signature.find(f"{{{DS}}}SignatureValue")
    if value is None:
        raise XmlSignatureError("a SignatureTimeStamp without SignatureValue")
    canonical = _c14n(value, algorithm)
    digest = hashlib.new(hash_name, canonical).digest()
    return verify_timestamp(token, digest, hash=hash_name, validator=validator), ns


def _finish(cls: Any, core: _Core, covered: Tuple[XadesReference, ...],
            signing_time: Optional[datetime], cert_alg: str, **extra: Any) -> Any:
    """The result; the validation was done by :func:`_verify_core` at the time the
    CAdES-T rule gives (``at``, else genTime + accuracy, else now)."""
    stamp, validation = core.timestamp, core.validation
    when, source = core.validation_time, core.validation_time_source
    return cls(signer=core.signer, certificates=tuple(core.others),
               signature_algorithm=core.signature_algorithm, references=tuple(core.references),
               covered=covered, signed_properties=core.signed_properties,
               signing_time=signing_time, signing_certificate_digest_algorithm=cert_alg,
               timestamp=stamp, validation=validation,
               practitioner=_practitioner(core.signer, validated=validation is not None),
               validation_time=when, validation_time_source=source,
               level="B-T" if stamp is not None else "B-B", **extra)
