"""Path validation (RFC 5280 section 6.1) and revocation checking (section 6.3).

::

    v = Validator(TrustStore.igc_sante(), crls=[der, ...], revocation="hard-fail")
    result = v.validate(cert, intermediates=[...], at=now, purpose=KeyRole.AUTH)

Speed comes from doing once what does not change between leaves: the part of
the path above the leaf (anchor -> intermediates: signatures, validity,
policies, name constraints, the intermediates' revocation) is processed once
and reused while the validation time stays inside its validity window and no
CRL changes; CRLs are indexed once (:mod:`cps.trust.crlindex`) and their
signatures checked once. Per leaf remain: parsing it (:mod:`cps.trust.certs`),
one signature check, the RFC checks on its fields and one CRL lookup.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from ..card import KeyRole
from ..errors import (
    CertificateExpired,
    CertificateInvalid,
    CertificateParseError,
    CertificatePolicyError,
    CertificatePurposeError,
    CertificateRevoked,
    CpsError,
    CrlError,
    OcspError,
    RevocationError,
    RevocationUnavailable,
    UntrustedCertificate,
    ValidationBudgetExceeded,
)
from ..pem import blocks as pem_blocks
from ..pem import looks_pem
from . import names as nc
from .algorithms import is_sha1
from .anchors import CertificateLike, TrustStore, to_der
from .certs import (
    KU_CRL_SIGN,
    KU_DIGITAL_SIGNATURE,
    KU_KEY_CERT_SIGN,
    KU_NON_REPUDIATION,
    OID,
    DistributionPoint,
    ParsedCert,
    directory_name,
    general_names_match,
    name_append_rdn,
    names_match,
    oid_from_str,
    oid_to_str,
    parse_cert,
    time_from_key,
    time_key,
)
from .certs import children as _children
from .certs import header as _hdr
from .policy import PolicyState

__all__ = ["Validator", "ValidationResult", "RevocationStatus", "REVOCATION_MODES"]

REVOCATION_MODES = ("hard-fail", "soft-fail", "off")
MAX_PATH = 8
#: caIssuers URLs one validation may fetch when the store lacks an issuer
MAX_AIA_FETCHES = 4
#: seconds before a caIssuers URL that failed is asked again
AIA_RETRY = 300.0
#: work one top-level validate() may spend, its CRL-signer and AIA validations
#: included: signature checks, and issuers considered while building paths
MAX_SIGNATURES = 256
MAX_EDGES = 20_000
#: revocations kept from CRLs superseded by ones that dropped them
MAX_CARRIED = 100_000
#: superseded CRLs up to this many entries are compared at once, larger ones aside
CARRY_INLINE = 100_000
ALL_REASONS = (1 << 9) - 2  # reasons 1..8 of ReasonFlags (bit 0 "unused" excluded)
@dataclass(frozen=True)
class RevocationStatus:
    """What revocation checking found for one certificate of the path.

    :ivar status: ``"good"``, ``"unknown"`` (soft-fail let it pass) or
        ``"not-checked"`` (revocation ``"off"``, or a trust anchor).
    :ivar source: the CRL (URL or "offline CRL") or OCSP responder used.
    :ivar next_update: when that information expires.
    """

    position: int
    subject_der: bytes = field(repr=False)
    status: str
    source: str = ""
    next_update: Optional[dt.datetime] = None
    failures: Tuple[str, ...] = ()
    #: may be reused for later validations (False for an OCSP answer to our nonce)
    reusable: bool = field(default=True, repr=False, compare=False)

    @property
    def subject(self) -> str:
        """The certificate's subject (RFC 4514), formatted on demand."""
        return _name_str(self.subject_der)


@dataclass(frozen=True)
class ValidationResult:
    """A validated path, leaf first, trust anchor last."""

    path_der: Tuple[bytes, ...]
    policies: FrozenSet[str]
    revocation: Tuple[RevocationStatus, ...]
    validated_at: dt.datetime
    purpose: Optional[KeyRole] = None

    @property
    def path(self) -> List[Any]:
        """The path as cryptography certificates: ``[leaf, ..., anchor]``."""
        from cryptography import x509

        return [x509.load_der_x509_certificate(d) for d in self.path_der]

    @property
    def leaf(self) -> Any:
        return self.path[0]

    @property
    def anchor(self) -> Any:
        return self.path[-1]

    def __repr__(self) -> str:
        """One line: who, up to which anchor, revocation per certificate (no DER)."""
        def subject(der: bytes) -> str:
            try:
                return parse_cert(der).subject_str()
            except CertificateParseError:  # pragma: no cover - a validated path parses
                return "?"

        purpose = getattr(self.purpose, "value", self.purpose)
        return (f"ValidationResult(leaf={subject(self.path_der[0])!r}, "
                f"anchor={subject(self.path_der[-1])!r}, length={len(self.path_der)}, "
                f"revocation={'/'.join(s.status for s in self.revocation)}, "
                f"purpose={purpose!r}, policies={sorted(self.policies)}, "
                f"validated_at={self.validated_at.isoformat()})")

#: fingerprints of the CAs (and anchor) above a certificate, and of the caller's
#: intermediates: what a cached CRL plan depends on; ``()`` when not computed yet
_PathKey = Tuple[Tuple[bytes, ...], Tuple[bytes, ...]]
#: (complete CRL, delta CRL or None, CRL issuer names) to consult
_Plan = List[Tuple[Any, Any, Tuple[bytes, ...]]]
#: candidate paths: (CAs from the leaf's issuer up, anchor)
_Candidates = List[Tuple[Tuple[ParsedCert, ...], ParsedCert]]


@dataclass
class _Prefix:
    """The processed CA part of a path (anchor excluded), reused across leaves."""

    cas: Tuple[ParsedCert, ...]       # issuer of the leaf first ... child of the anchor last
    anchor: ParsedCert
    policy: PolicyState
    constraints: "nc.NameConstraints"
    working_key: Any
    max_path_length: int
    window: Tuple[bytes, bytes]       # when every CA is valid
    statuses: Tuple[RevocationStatus, ...]
    revocation_until: Optional[bytes]  # the earliest nextUpdate among CA revocation sources
    generation: int
    path_tail: Tuple[bytes, ...] = ()             # DER of the CAs and the anchor, leaf excluded
    status_tail: Tuple[RevocationStatus, ...] = ()
    #: leaf policy outcomes under this prefix, by the leaf's raw certificatePolicies
    #: and policyConstraints: (acceptable, valid policies as dotted strings)
    leaf_outcomes: Dict[Tuple[Optional[bytes], Optional[bytes]],
                        Tuple[bool, FrozenSet[str]]] = field(default_factory=dict)
    #: who may have signed the leaf's CRLs (issuer, CAs above, anchor), and their
    #: fingerprints with those of the caller's intermediates: the leaf's plan key
    leaf_signers: Tuple[ParsedCert, ...] = ()
    leaf_signers_key: Union[_PathKey, Tuple[()]] = ()


class _Failures(List[str]):
    """Why no revocation answer came: the words, and beside each the reason it had
    where it happened (``RevocationUnavailable.reason`` is chosen among those,
    never guessed from the words: a responder named "expired" is not a reason)."""

    #: the more telling reasons first; the others in the order they happened
    PRIORITY = ("weak-algorithm", "nonce-not-echoed", "nonce-mismatch", "delta-unavailable",
                "expired",
                "bad-signature", "unauthorized-responder", "stale", "not-yet-valid",
                "certid-mismatch", "other-issuer", "rejected", "unknown-critical-extension",
                "out-of-scope")
    #: what only says that a source is missing: reported when nothing else is
    ABSENT = ("no-crl", "no-responder", "ocsp-unknown")

    def __init__(self) -> None:
        super().__init__()
        self.reasons: List[str] = []
        #: an OCSP answer came and failed verification
        self.refused_answer = False

    def add(self, reason: str, text: str) -> None:
        self.append(text)
        self.reasons.append(reason)

    def reason(self) -> str:
        for wanted in self.PRIORITY:
            if wanted in self.reasons:
                return wanted
        for reason in self.reasons:
            if reason not in self.ABSENT:
                return reason
        return self.reasons[0] if self.reasons else "unavailable"


def _fail(failures: List[str], reason: str, text: str) -> None:
    """Record a failure (with its reason when the list keeps reasons)."""
    if isinstance(failures, _Failures):
        failures.add(reason, text)
    else:
        failures.append(text)


class _Budget:
    """The work left to one top-level validation (shared by the validations it starts)."""

    __slots__ = ("signatures", "edges", "subject")

    def __init__(self, subject: str) -> None:
        self.signatures = MAX_SIGNATURES
        self.edges = MAX_EDGES
        self.subject = subject

    def signature(self) -> None:
        self.signatures -= 1
        if self.signatures < 0:
            raise ValidationBudgetExceeded(
                f"path building gave up after {MAX_SIGNATURES} signature checks (too many "
                "candidate certificates)", reason="budget", position=0, subject=self.subject)

    def edge(self, count: int = 1) -> None:
        self.edges -= count
        if self.edges < 0:
            raise ValidationBudgetExceeded(
                f"path building gave up after considering {MAX_EDGES} candidate issuers "
                "(too many candidate certificates)", reason="budget", position=0,
                subject=self.subject)


def _distinct(certs: Iterable[ParsedCert]) -> List[ParsedCert]:
    """The certificates given, one per (subject, key): copies that differ in anything
    else add paths to try, never a path that one of them does not give."""
    seen: Set[Tuple[bytes, bytes]] = set()
    out = []
    for cert in certs:
        key = (cert.subject, cert.spki)
        if key not in seen:
            seen.add(key)
            out.append(cert)
    return out


@dataclass
class _Held:
    """What one CRL URL gave: the last CRL accepted from it (issuer and signature
    verified), when to ask again, and the last failure, if any."""

    index: Any                  # CrlIndex, or None when nothing was ever accepted
    due: float                  # POSIX time from which the URL is asked again
    failure: str = ""
    reason: str = ""


def _key_ids_match(crl: Any, cert: ParsedCert) -> bool:
    """A CRL's authorityKeyIdentifier and a candidate signer's subjectKeyIdentifier do
    not contradict each other (either may be absent)."""
    aki, ski = crl.authority_key_identifier, cert.ski
    return aki is None or ski is None or aki == ski


def _delta_applies(delta: Any, complete: Any) -> bool:
    """RFC 5280 5.2.4: a delta CRL completes a complete CRL whose cRLNumber is at least
    the delta's BaseCRLNumber and lower than the delta's own cRLNumber."""
    base: Optional[int] = delta.base_crl_number
    number: Optional[int] = complete.crl_number
    own: Optional[int] = delta.crl_number
    if base is None or number is None or own is None:
        return False
    return base <= number < own


def _certificates_in(data: bytes) -> List[ParsedCert]:
    """The certificates of a caIssuers answer: DER, PEM, or a PKCS#7 "certs-only" bundle
    (RFC 5280 4.2.2.1). Undecodable parts are left out; at most 16 certificates."""
    out: List[ParsedCert] = []
    blobs: List[bytes] = []
    if looks_pem(data):
        blobs = pem_blocks(data, strict=False, limit=16)
    else:
        blobs.append(data)
    for blob in blobs:
        try:
            out.append(parse_cert(blob))
            continue
        except CertificateParseError:
            pass
        try:
            import warnings

            from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

            with warnings.catch_warnings():  # its "falling back to BER" warning: our input
                warnings.simplefilter("ignore")
                bundle = pkcs7.load_der_pkcs7_certificates(blob)[:16]
            out += [parse_cert(c.public_bytes(Encoding.DER)) for c in bundle]
        except Exception:  # noqa: BLE001, S112 - skipped by design; its PKCS#7 reader raises
            continue       # ValueError, UnsupportedAlgorithm, InvalidVersion...: not ours
    return out[:16]


def _is_ca(cert: ParsedCert) -> bool:
    try:
        return cert.basic_constraints()[0]
    except CertificateParseError:  # a helper certificate that does not decode: not used
        return False


def _subject(cert: ParsedCert) -> str:
    return cert.subject_str()


def _name_str(name: bytes) -> str:
    from .certs import name_str

    return name_str(name)


class Validator:
    """Validates CPS certificates against a :class:`TrustStore`, with revocation.

    :param store: trust anchors and known intermediates.
    :param crls: CRLs (DER bytes, cryptography CRL objects or ``CrlIndex``),
        complete or delta, for any CA of the store.
    :param revocation: ``"hard-fail"`` (default: no revocation information,
        no validation), ``"soft-fail"`` (unknown status is reported, not
        fatal; a revoked certificate is still refused) or ``"off"``.
    :param initial_policies: the user-initial-policy-set (dotted OIDs); ``None``
        is any-policy.
    :param explicit_policy: initial-explicit-policy.
    :param inhibit_policy_mapping: initial-policy-mapping-inhibit.
    :param inhibit_any_policy: initial-any-policy-inhibit.
    :param fetcher: a :class:`cps.trust.fetch.Fetcher` to download CRLs (and
        issuers) from the certificates' URLs; ``None``: offline only.
    :param ocsp: a :class:`cps.trust.ocsp.OcspClient` consulted when no CRL
        gives an answer; ``None``: no OCSP.
    :param use_delta_crls: apply delta CRLs (freshestCRL) on top of complete ones.
    :param require_delta_crls: online (with a ``fetcher``) and in hard-fail, a
        complete CRL that names delta CRLs (freshestCRL) is used only with a
        current delta CRL that applies to it (RFC 5280 5.2.4); when none can be
        obtained the status is unavailable (``RevocationUnavailable``, reason
        ``"delta-unavailable"``). ``False`` uses the complete CRL alone then.
        IGC-Santé publishes its deltas on LDAP only: port 389 must be reachable.
    :param clock: returns the current aware datetime: the default validation
        time, and when held CRLs are due (default: the fetcher's clock, else the
        system's). Tests inject one to simulate months.
    :param fetch_retry: how long a CRL URL that failed (unreachable, or its
        answer refused) is left alone before it is asked again.
    :param ocsp_responses: OCSP responses (DER) the caller already holds (stapled,
        from a file), consulted before asking any responder; more with
        :meth:`add_ocsp_response`. An answer that fails verification is a
        failure in every mode (soft-fail does not call it "unknown").
    :param trusted_responders: OCSP responder certificates trusted locally
        (RFC 6960 4.2.2.2), for given and fetched answers alike.
    :param allow_sha1: accept SHA-1 signatures (default). ``False`` refuses them
        in certificates, CRLs and OCSP answers alike (reason ``"weak-algorithm"``,
        :mod:`cps.trust.algorithms`).
    :param issuer_hosts: hosts whose caIssuers URLs (AIA) may be fetched, with the
        ``fetcher``, when neither the certificates given nor the store hold an
        issuer (e.g. ``["igc-sante.esante.gouv.fr"]``). Empty (the default): none.
        Opt-in, and by host, because these URLs are read from a certificate
        whose signature is not checked yet: a login server that fetched any URL
        a client's certificate names would make requests on the client's behalf.
    """

    def __init__(self, store: TrustStore, crls: Iterable[Any] = (), revocation: str = "hard-fail",
                 initial_policies: Optional[Iterable[str]] = None, explicit_policy: bool = False,
                 inhibit_policy_mapping: bool = False, inhibit_any_policy: bool = False, *,
                 fetcher: Any = None, ocsp: Any = None, use_delta_crls: bool = True,
                 clock_skew: dt.timedelta = dt.timedelta(0),
                 issuer_hosts: Iterable[str] = (), require_delta_crls: bool = True,
                 clock: Optional[Callable[[], dt.datetime]] = None,
                 fetch_retry: dt.timedelta = dt.timedelta(minutes=1),
                 ocsp_responses: Iterable[bytes] = (),
                 trusted_responders: Iterable[CertificateLike] = (),
                 allow_sha1: bool = True) -> None:
        if revocation not in REVOCATION_MODES:
            raise ValueError(f"revocation must be one of {', '.join(map(repr, REVOCATION_MODES))}"
                             f", not {revocation!r}")
        self.store = store
        self.revocation = revocation
        self.initial_policies = None if initial_policies is None else frozenset(
            oid_from_str(p) for p in initial_policies)
        self.explicit_policy = explicit_policy
        self.inhibit_policy_mapping = inhibit_policy_mapping
        self.inhibit_any_policy = inhibit_any_policy
        self.fetcher = fetcher
        self.ocsp = ocsp
        self.use_delta_crls = use_delta_crls
        self.clock_skew = clock_skew
        self.issuer_hosts = frozenset(h.lower().rstrip(".") for h in issuer_hosts)
        self.require_delta_crls = require_delta_crls
        self.fetch_retry = fetch_retry
        self.allow_sha1 = allow_sha1
        self._ocsp_responses: List[bytes] = [bytes(r) for r in ocsp_responses]
        self._trusted_responders = self._load_responders(trusted_responders)
        if clock is None:
            clock = getattr(fetcher, "clock", None) or (
                lambda: dt.datetime.now(dt.timezone.utc))
        self.clock: Callable[[], dt.datetime] = clock
        self._lock = threading.RLock()
        self._crls: Dict[bytes, List[Any]] = {}     # issuer Name DER -> offline CrlIndex list
        self._local = threading.local()
        # (issuer, path key, CRL DP, basicConstraints, freshestCRL) ->
        # (generation, valid from, valid until, plan)
        self._selection: Dict[
            Tuple[bytes, _PathKey, Optional[bytes], Optional[bytes], Optional[bytes]],
            Tuple[int, bytes, bytes, _Plan]] = {}
        # CRL URL -> what it gave (online CRLs live here, by URL, never by issuer)
        self._held: Dict[str, _Held] = {}
        # the earliest time (POSIX) a held CRL is due: caches are dropped then
        self._due: Optional[float] = None
        # (issuer Name DER, serial) -> entry a superseded verified CRL listed
        self._carried: Dict[Tuple[bytes, int], Any] = {}
        load = getattr(fetcher, "load_revocations", None)
        if load is not None:  # kept by an earlier process sharing this cache
            self._keep(list(load().items()), save=False)
        # caIssuers URL -> (retry after, failure or None, the certificates it served)
        self._aia: Dict[str, Tuple[float, Optional[str], List[ParsedCert]]] = {}
        self._generation = 0
        self._last_time: Tuple[Any, bytes] = (None, b"")
        # (CA fingerprints, anchor fingerprint, intermediates' fingerprints) -> prefix
        self._prefixes: Dict[Tuple[Tuple[bytes, ...], bytes, Tuple[bytes, ...]], _Prefix] = {}
        # (leaf issuer, leaf AKI, intermediates' fingerprints) -> candidate paths
        self._paths: Dict[Tuple[bytes, Optional[bytes], Tuple[bytes, ...]], _Candidates] = {}
        for crl in crls:
            self.add_crl(crl)

    # ------------------------------------------------------------------ CRLs
    def add_crl(self, crl: Any, source: str = "offline CRL") -> Any:
        """Add a CRL (DER, cryptography CRL or CrlIndex); returns its index.

        :raises TypeError: not one of those.
        :raises CrlError: undecodable DER (``"malformed"``).
        """
        from .crlindex import CrlIndex

        if isinstance(crl, CrlIndex):
            index = crl
        elif isinstance(crl, (bytes, bytearray, memoryview)):
            index = CrlIndex.load(bytes(crl), source=source)
        elif hasattr(crl, "public_bytes"):
            index = CrlIndex.from_crypto(crl)
        else:
            raise TypeError(f"a CRL must be DER bytes, a cryptography CRL or a CrlIndex, "
                            f"not {type(crl).__name__}")
        with self._lock:
            held = self._crls.setdefault(index.issuer_der, [])
            held.append(index)
            if len(held) > 4:
                self._prune(held)
            self._generation += 1
            self._prefixes.clear()
        return index

    def _prune(self, crls: List[Any]) -> None:
        """Drop the offline CRLs a newer one of the same scope supersedes, once both
        verified under the same key (unverified CRLs never replace anything)."""
        def scope(c: Any) -> Tuple[bool, object, Optional[bytes]]:
            return (c.is_delta, c.issuing_distribution_point, c.authority_key_identifier)

        def signers(c: Any) -> Set[bytes]:
            return {fp for fp, ok in c.__dict__.get("_cps_signature_verdicts", {}).items()
                    if ok}

        for old in list(crls):
            if any(new is not old and scope(new) == scope(old)
                   and (new.crl_number or 0) > (old.crl_number or 0)
                   and signers(new) & signers(old) for new in crls):
                crls.remove(old)
                self._carry(old, next(
                    n for n in sorted(crls, key=lambda c: c.crl_number or 0, reverse=True)
                    if scope(n) == scope(old)))

    @staticmethod
    def _load_responders(certs: Iterable[CertificateLike]) -> Tuple[Any, ...]:
        from cryptography import x509

        out = []
        for cert in certs:
            if isinstance(cert, x509.Certificate):
                out.append(cert)
            else:
                try:
                    out.append(x509.load_der_x509_certificate(to_der(cert)))
                except ValueError as exc:
                    raise CertificateParseError(f"trusted responder: {exc}") from None
        return tuple(out)

    def add_ocsp_response(self, der: bytes) -> None:
        """Use an OCSP response the caller holds (stapled by a TLS server, read from a
        file): verified like a fetched one, for the certificate it is about."""
        with self._lock:
            self._ocsp_responses.append(bytes(der))
            if len(self._ocsp_responses) > 4096:
                del self._ocsp_responses[0]
            self._generation += 1
            self._prefixes.clear()

    def verify_crl(self, crl: Any, source: str = "") -> Any:
        """Check that a CRL is signed by a CA of the store (cRLSign, the CA itself
        valid to an anchor now); returns its :class:`~cps.trust.crlindex.CrlIndex`.

        Usable as a :class:`~cps.trust.fetch.Fetcher`'s ``verify_crl``: then only
        CRLs of the store's CAs are cached. It says nothing of the CRL's scope or
        currency (validation checks those for each certificate).

        :raises CrlError: malformed (``"malformed"``) or not signed by a CA of the
            store (``"bad-signature"``).
        """
        from .crlindex import CrlIndex

        if isinstance(crl, CrlIndex):
            index = crl
        elif isinstance(crl, (bytes, bytearray, memoryview)):
            index = CrlIndex.load(bytes(crl), source=source)
        elif hasattr(crl, "public_bytes"):
            index = CrlIndex.from_crypto(crl, source=source)
        else:
            raise TypeError(f"a CRL must be DER bytes, a cryptography CRL or a CrlIndex, "
                            f"not {type(crl).__name__}")
        now = time_key(self.clock())
        problems: List[str] = []
        if self._signer(index, (), now, problems) is None:
            raise CrlError(f"{source or 'CRL'}: {'; '.join(problems)}", source=source,
                           reason="bad-signature")
        return index

    # ------------------------------------------------------------------ entry point
    def validate(self, cert: CertificateLike, intermediates: Sequence[CertificateLike] = (),
                 at: Optional[dt.datetime] = None,
                 purpose: Optional[KeyRole] = None) -> ValidationResult:
        """Validate ``cert`` for ``purpose`` at ``at`` (default: now).

        :raises UntrustedCertificate: no path to an anchor of the store.
        :raises CertificateExpired: a certificate of the path is out of its validity.
        :raises CertificateRevoked: a certificate of the path is revoked.
        :raises CertificatePurposeError: valid, but not an authentication
            (``KeyRole.AUTH``) or signature (``KeyRole.SIGN``) certificate.
        :raises CertificatePolicyError: the policy requirements are not met.
        :raises RevocationUnavailable: hard-fail and no usable revocation source.
        :raises CertificateInvalid: any other RFC 5280 failure (``reason`` says which).
        :raises CertificateParseError: undecodable input.
        :raises TypeError: ``at`` (or the clock's time) is a naive datetime, or a
            certificate is neither bytes nor a cryptography certificate.
        """
        if at is None:
            at = self.clock()
        due = self._due
        if due is not None and self.clock().timestamp() >= due:
            # A held CRL is due: forget what was decided with it, so that the
            # next look at its URL asks the fetcher again.
            with self._lock:
                self._due = None
                self._generation += 1
                self._prefixes.clear()
        cached = self._last_time
        if cached[0] is at:
            now = cached[1]
        else:
            now = time_key(at)
            self._last_time = (at, now)
        leaf = cert if isinstance(cert, ParsedCert) else parse_cert(to_der(cert))
        extra = [c if isinstance(c, ParsedCert) else parse_cert(to_der(c))
                 for c in intermediates]
        if len(extra) > 1:
            extra = _distinct(extra)
        budget = getattr(self._local, "budget", None)
        if budget is not None:  # a CRL signer's or an AIA validation: the caller's budget
            return self._validate_within(leaf, extra, at, now, purpose, budget)
        self._local.budget = _Budget(_subject(leaf))
        try:
            return self._validate_within(leaf, extra, at, now, purpose, self._local.budget)
        finally:
            self._local.budget = None

    def _validate_within(self, leaf: ParsedCert, extra: List[ParsedCert], at: dt.datetime,
                         now: bytes, purpose: Optional[KeyRole], budget: _Budget
                         ) -> ValidationResult:
        candidates = self._candidate_prefixes(leaf, extra)
        failures: List[str] = []
        if not candidates and self.fetcher is not None and self.issuer_hosts:
            # The issuers this store lacks, from the caIssuers URLs (AIA) of the
            # certificates: untrusted helpers, the path must still end at a
            # pinned anchor with every signature checked.
            fetched = self._chase_issuers(leaf, extra, failures)
            if fetched:
                extra = extra + fetched
                candidates = self._candidate_prefixes(leaf, extra)
        if not candidates:
            raise UntrustedCertificate(
                "no path to a trust anchor of the store "
                f"({self.store.name}): issuer unknown"
                + (f" ({'; '.join(failures)})" if failures else ""), position=0,
                subject=_subject(leaf), reason="untrusted")
        error: Optional[CpsError] = None
        for cas, anchor in candidates:
            try:
                return self._validate_path(leaf, cas, anchor, at, now, purpose,
                                           tuple(extra))
            except ValidationBudgetExceeded:
                raise
            except (CertificateInvalid, RevocationError) as exc:
                # Keep the most telling error: a bad signature on a wrong
                # candidate path must not hide an expiry on the right one.
                if error is None or getattr(exc, "reason", "") not in ("signature", "untrusted"):
                    error = exc
        assert error is not None  # noqa: S101 - candidates is not empty
        raise error

    # ------------------------------------------------------------------ path building
    def _candidate_prefixes(self, leaf: ParsedCert, extra: List[ParsedCert]
                            ) -> _Candidates:
        fingerprints: Tuple[bytes, ...] = tuple(c.fingerprint for c in extra) if extra else ()
        key = (leaf.issuer, leaf.ext(OID.AKI), fingerprints)
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        out: _Candidates = []
        budget = getattr(self._local, "budget", None)
        anchors = {a.fingerprint for a in self.store._anchors}
        # Certificates from which a walk found no anchor: not walked again (a set of
        # useless helpers sharing a subject would otherwise be tried in every order).
        dead: Set[bytes] = set()
        known: Dict[Tuple[bytes, Optional[bytes]], List[ParsedCert]] = {}

        def walk(cert: ParsedCert, chain: Tuple[ParsedCert, ...]) -> None:
            if len(out) >= 16:
                return
            found = len(out)
            for anchor in self.store.anchor_for(cert):
                out.append((chain, anchor))
            if len(chain) < MAX_PATH:
                # certificates naming the same issuer and key id share their candidates:
                # looked up once (helpers sharing a subject would cost n^2 name matches)
                lookup = (cert.issuer, cert.aki)
                issuers = known.get(lookup)
                if issuers is None:
                    if budget is not None:  # issuers_of compares the name with every helper
                        budget.edge(len(extra) + 1)
                    issuers = known[lookup] = self.store.issuers_of(cert, extra)
                for issuer in issuers:
                    if budget is not None:
                        budget.edge()
                    if issuer in chain or issuer.fingerprint in anchors \
                            or issuer.fingerprint in dead:
                        continue
                    walk(issuer, chain + (issuer,))
            if len(out) == found:
                dead.add(cert.fingerprint)

        walk(leaf, ())
        out.sort(key=lambda item: len(item[0]))  # shortest paths first
        with self._lock:
            if len(self._paths) > 10000:
                self._paths.clear()
            self._paths[key] = out
        return out

    def _chase_issuers(self, leaf: ParsedCert, extra: List[ParsedCert],
                       failures: List[str]) -> List[ParsedCert]:
        """CA certificates found at the caIssuers URLs, up the chain from ``leaf``.

        Bounded: at most :data:`MAX_AIA_FETCHES` URLs per validation, a path no
        longer than :data:`MAX_PATH`; what a URL served is remembered for the
        validator's life (and cached on disk by the fetcher).
        """
        found: List[ParsedCert] = []
        current = leaf
        fetches = 0
        for _ in range(MAX_PATH):
            if self.store.anchor_for(current) or self.store.issuers_of(current, extra + found):
                break
            issuers: List[ParsedCert] = []
            for url in current.access_urls(OID.AD_CA_ISSUERS):
                if not self._issuer_host_allowed(url):
                    failures.append(f"caIssuers {url}: host not in issuer_hosts")
                    continue
                if fetches >= MAX_AIA_FETCHES:
                    failures.append("caIssuers: too many certificates to fetch")
                    break
                fetches += 1
                issuers = [c for c in self._issuers_at(url, failures)
                           if names_match(c.subject, current.issuer) and _is_ca(c)
                           and c not in found]
                if issuers:
                    break
            if not issuers:
                break
            found += issuers
            current = issuers[0]
        return found

    def _issuer_host_allowed(self, url: str) -> bool:
        try:
            parts = urllib.parse.urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
        except ValueError:
            return False
        return parts.scheme.lower() in ("http", "https") and host in self.issuer_hosts

    def _issuers_at(self, url: str, failures: List[str]) -> List[ParsedCert]:
        """What a caIssuers URL serves, remembered: answers for the validator's life,
        failures for :data:`AIA_RETRY` seconds (a failing URL is not asked at every login)."""
        cached = self._aia.get(url)
        if cached is not None and (cached[1] is None or time.monotonic() < cached[0]):
            if cached[1] is not None:
                failures.append(cached[1])
            return cached[2]
        failure: Optional[str] = None
        certs: List[ParsedCert] = []
        try:
            # the allowed hosts hold on every redirect hop, not only for this URL
            certs = _certificates_in(self.fetcher.fetch_bytes(url, hosts=self.issuer_hosts).der)
            if not certs:
                failure = f"caIssuers {url}: no certificate in the answer"
        except (RevocationError, CpsError) as exc:
            failure = f"caIssuers {url}: {exc}"
        if failure is not None:
            failures.append(failure)
        with self._lock:
            if len(self._aia) >= 256:
                self._aia.clear()
            self._aia[url] = (time.monotonic() + AIA_RETRY, failure, certs)
        return certs

    # ------------------------------------------------------------------ 6.1, CA part
    def _prefix(self, cas: Tuple[ParsedCert, ...], anchor: ParsedCert, at: dt.datetime,
                now: bytes, extra: Tuple[ParsedCert, ...] = ()) -> _Prefix:
        key = (tuple(c.fingerprint for c in cas), anchor.fingerprint,
               tuple(c.fingerprint for c in extra))
        prefix = self._prefixes.get(key)
        if prefix is not None and prefix.generation == self._generation \
                and prefix.window[0] <= now <= prefix.window[1] \
                and (prefix.revocation_until is None or now <= prefix.revocation_until):
            return prefix
        generation = self._generation  # a CRL replaced meanwhile makes this stale
        prefix = self._process_cas(cas, anchor, at, now, extra)
        prefix.generation = min(prefix.generation, generation)
        with self._lock:
            if len(self._prefixes) > 1000:
                self._prefixes.clear()
            self._prefixes[key] = prefix
        return prefix

    def _process_cas(self, cas: Tuple[ParsedCert, ...], anchor: ParsedCert, at: dt.datetime,
                     now: bytes, extra: Tuple[ParsedCert, ...] = ()) -> _Prefix:
        # The path in RFC order: certificate 1 is issued by the anchor, n is the leaf.
        path = list(reversed(cas))
        n = len(path) + 1
        policy = PolicyState.initial(n, self.explicit_policy, self.inhibit_policy_mapping,
                                     self.inhibit_any_policy)
        constraints = nc.NameConstraints()
        working_key = anchor.public_key()
        working_name = anchor.subject
        max_path_length = n
        issuer = anchor
        statuses: List[RevocationStatus] = []
        lo, hi = b"00000000000000", b"99999999999999"
        until: Optional[bytes] = None
        for i, cert in enumerate(path, start=1):
            position = n - i
            self._basic_checks(cert, issuer, working_key, working_name, now, position)
            lo, hi = max(lo, cert.not_before), min(hi, cert.not_after)
            status = self._revocation_status(cert, issuer, position, at, now, path[:i - 1],
                                             anchor, extra)
            statuses.append(status)
            if not status.reusable:
                until = b"0"  # sorts before every time key: never reused
            elif status.next_update is not None:
                key_ = time_key(status.next_update)
                until = key_ if until is None else min(until, key_)
            self_issued = cert.self_issued
            if not self_issued:
                constraints.check(cert, position)
            policy.process_certificate(i, cert.policies(), self_issued)
            if not policy.satisfied():
                raise CertificatePolicyError("no acceptable certificate policy", reason="policy",
                                             position=position, subject=_subject(cert))
            # 6.1.4: preparation for certificate i+1
            mappings = cert.policy_mappings()
            if mappings is not None and not policy.process_mappings(i, mappings):
                raise CertificatePolicyError("a policy mapping involves anyPolicy",
                                             reason="policy", position=position,
                                             subject=_subject(cert))
            working_name = cert.subject
            working_key = cert.public_key(inherit_from=working_key)
            constraints.add(cert)
            require, inhibit_map = cert.policy_constraints()
            policy.next_certificate(self_issued, require, inhibit_map, cert.inhibit_any_policy())
            if cert.version < 3 or not cert.basic_constraints()[0]:
                raise CertificateInvalid("an issuing certificate is not a CA (basicConstraints)",
                                         reason="not-ca", position=position,
                                         subject=_subject(cert))
            if not self_issued:
                if max_path_length <= 0:
                    raise CertificateInvalid("path length constraint exceeded",
                                             reason="path-length", position=position,
                                             subject=_subject(cert))
                max_path_length -= 1
            pathlen = cert.basic_constraints()[1]
            if pathlen is not None:
                max_path_length = min(max_path_length, pathlen)
            ku = cert.key_usage()
            if ku is not None and not ku & KU_KEY_CERT_SIGN:
                raise CertificateInvalid("an issuing certificate lacks keyCertSign",
                                         reason="key-usage", position=position,
                                         subject=_subject(cert))
            unknown = cert.critical_unknown()
            if unknown:
                raise CertificateInvalid(f"unknown critical extension {unknown[0]}",
                                         reason="critical-extension", position=position,
                                         subject=_subject(cert))
            issuer = cert
        tail = tuple(reversed(statuses)) + (
            RevocationStatus(n, anchor.subject, "not-checked", "trust anchor"),)
        signers = tuple(cas) + (anchor,)  # the leaf's issuer first
        return _Prefix(cas, anchor, policy, constraints, working_key, max_path_length, (lo, hi),
                       tuple(statuses), until, self._generation,
                       tuple(c.der for c in cas) + (anchor.der,), tail,
                       leaf_signers=signers,
                       leaf_signers_key=(tuple(c.fingerprint for c in signers),
                                         tuple(c.fingerprint for c in extra)))

    # ------------------------------------------------------------------ 6.1, per certificate
    def _basic_checks(self, cert: ParsedCert, issuer: ParsedCert, key: Any, name: bytes,
                      now: bytes, position: int) -> None:
        # 6.1.3 (a)(4) name chaining, then (a)(1) the signature, then (a)(2) validity
        if not names_match(cert.issuer, name):
            raise CertificateInvalid("issuer name does not chain", reason="name-chaining",
                                     position=position, subject=_subject(cert))
        budget = getattr(self._local, "budget", None)
        if budget is not None:
            budget.signature()
        if not self.allow_sha1 and _is_sha1(cert.sig_alg):
            raise CertificateInvalid("signed with SHA-1, which this validator refuses "
                                     "(allow_sha1=False)", reason="weak-algorithm",
                                     position=position, subject=_subject(cert))
        if not _verify(key, cert.signature, cert.tbs, cert.sig_alg):
            raise CertificateInvalid("bad signature", reason="signature", position=position,
                                     subject=_subject(cert))
        self._check_validity(cert, now, position)

    @staticmethod
    def _check_validity(cert: ParsedCert, now: bytes, position: int) -> None:
        if not cert.not_before <= now <= cert.not_after:
            expired = now > cert.not_after
            raise CertificateExpired(
                f"certificate {'expired on' if expired else 'not valid before'} "
                f"{time_from_key(cert.not_after if expired else cert.not_before):%Y-%m-%d %H:%M}"
                " UTC", not_before=time_from_key(cert.not_before),
                not_after=time_from_key(cert.not_after), position=position,
                subject=_subject(cert), reason="expired" if expired else "not-yet-valid")

    def _validate_path(self, leaf: ParsedCert, cas: Tuple[ParsedCert, ...], anchor: ParsedCert,
                       at: dt.datetime, now: bytes, purpose: Optional[KeyRole],
                       extra: Tuple[ParsedCert, ...] = ()) -> ValidationResult:
        if not leaf.not_before <= now <= leaf.not_after:
            # Report an expired leaf before anything about the CAs (an old CRL
            # for the intermediate would otherwise speak first): same check as
            # 6.1.3 (a)(2), earlier.
            self._basic_checks(leaf, cas[0] if cas else anchor,
                               (cas[0] if cas else anchor).public_key(),
                               (cas[0] if cas else anchor).subject, now, 0)
        try:
            prefix = self._prefix(cas, anchor, at, now, extra)
        except RevocationUnavailable:
            # A CA above has no status; if what is known of the leaf already
            # says it is revoked, that is the more telling answer.
            if self.revocation != "off":
                with contextlib.suppress(RevocationUnavailable):
                    self._revocation_status(leaf, cas[0] if cas else anchor, 0, at, now,
                                            list(reversed(cas)), anchor, extra)
            raise
        n = len(cas) + 1
        issuer = cas[0] if cas else anchor
        # This very ParsedCert (a server keeps those of returning practitioners)
        # may already be known to chain to this issuer and carry its signature;
        # its validity at `now` was checked at the top of this method.
        if leaf._decoded.get("signed_by") is not prefix.working_key:
            self._basic_checks(leaf, issuer, prefix.working_key, issuer.subject, now, 0)
            leaf._decoded["signed_by"] = prefix.working_key
        status = self._revocation_status(leaf, issuer, 0, at, now, (), anchor, extra,
                                         prefix.leaf_signers, prefix.leaf_signers_key)
        prefix.constraints.check(leaf, 0)  # 6.1.3 (b)(c): always for the leaf
        if self.initial_policies is None and prefix.policy.n == n and not prefix.policy.mapped:
            # any-policy for the user: the leaf's outcome without copying the tree.
            # It depends on nothing but the prefix and these two extensions, which
            # every card certificate of a CA shares: decided once per prefix.
            outcome_key = (leaf.ext(OID.CERT_POLICIES), leaf.ext(OID.POLICY_CONSTRAINTS))
            outcome = prefix.leaf_outcomes.get(outcome_key)
            if outcome is None:
                require, _ = leaf.policy_constraints()
                ok, raw_policies = prefix.policy.leaf_outcome(leaf.policies(), require)
                outcome = (ok, frozenset(_oid_str(p) for p in raw_policies))
                if len(prefix.leaf_outcomes) >= 256:
                    prefix.leaf_outcomes.clear()
                prefix.leaf_outcomes[outcome_key] = outcome
            ok, valid_policies = outcome
            if not ok:
                raise CertificatePolicyError("no acceptable certificate policy",
                                             reason="policy", position=0,
                                             subject=_subject(leaf))
        else:
            require, _ = leaf.policy_constraints()
            policy = prefix.policy.copy()
            # (d)(2)'s self-issued clause only concerns i < n: the leaf is n.
            policy.process_certificate(n, leaf.policies(), False)
            if not policy.satisfied():
                raise CertificatePolicyError("no acceptable certificate policy",
                                             reason="policy", position=0,
                                             subject=_subject(leaf))
            policies = policy.wrap_up(require, self.initial_policies)
            if not (policy.explicit_policy > 0 or policy.root is not None):
                raise CertificatePolicyError(
                    "the path does not satisfy the required certificate policies",
                    reason="policy", position=0, subject=_subject(leaf))
            valid_policies = frozenset(_oid_str(p) for p in policies)
        unknown = leaf.critical_unknown()
        if unknown:
            raise CertificateInvalid(f"unknown critical extension {unknown[0]}",
                                     reason="critical-extension", position=0,
                                     subject=_subject(leaf))
        if purpose is not None:
            check_purpose(leaf, purpose)
        return ValidationResult((leaf.der,) + prefix.path_tail, valid_policies,
                                (status,) + prefix.status_tail, at, purpose)

    # ------------------------------------------------------------------ 6.3 revocation
    def _revocation_status(self, cert: ParsedCert, issuer: ParsedCert, position: int,
                           at: dt.datetime, now: bytes, above: Sequence[ParsedCert],
                           anchor: ParsedCert, extra: Tuple[ParsedCert, ...] = (),
                           signers: Tuple[ParsedCert, ...] = (),
                           signers_key: Union[_PathKey, Tuple[()]] = ()
                           ) -> RevocationStatus:
        if self.revocation == "off":
            return RevocationStatus(position, cert.subject, "not-checked", "revocation off")
        failures = _Failures()
        next_update: Optional[dt.datetime] = None
        path = signers or self._signer_path(issuer, above, anchor)
        answer = self._crl_status(cert, issuer, position, at, now, failures, path, extra,
                                  signers_key)
        if answer is None and (self.ocsp is not None or self._ocsp_responses):
            answer = self._ocsp_status(cert, issuer, position, at, failures)
        if self._carried:  # after the fetches above, which may have superseded a CRL
            self._raise_carried(cert, position, now)
        if answer is not None:
            return answer
        # No current answer. What verified CRLs said before still holds: a revoked
        # certificate never comes back, and a hold lasts until a newer CRL lifts it.
        self._raise_remembered(cert, position, now, path, extra)
        if self._carried:  # _raise_remembered may have fetched a newer delta CRL
            self._raise_carried(cert, position, now)
        self._raise_listed_by_deltas(cert, position, now, path, extra)
        message = ("no usable revocation information"
                   + (f": {'; '.join(failures)}" if failures else ": no CRL for this issuer"))
        stale = [c for c in self._crls.get(cert.issuer, []) if c.next_update is not None]
        if stale:
            next_update = max(c.next_update for c in stale)
        if self.revocation == "soft-fail" and not failures.refused_answer:
            return RevocationStatus(position, cert.subject, "unknown", "", next_update,
                                    tuple(failures))
        raise RevocationUnavailable(message, source=", ".join(self._urls(cert)) or "offline CRLs",
                                    reason=failures.reason(), next_update=next_update,
                                    position=position, failures=failures,
                                    subject=_subject(cert))

    @staticmethod
    def _signer_path(issuer: ParsedCert, above: Sequence[ParsedCert],
                     anchor: Optional[ParsedCert]) -> Tuple[ParsedCert, ...]:
        """The certificates of the path being validated that may have signed a CRL:
        the issuer, the CAs above it, the anchor (a CA that rolled its key over
        appears twice)."""
        return (issuer,) + tuple(reversed(list(above))) + ((anchor,) if anchor else ())

    @staticmethod
    def _urls(cert: ParsedCert) -> List[str]:
        return [u for dp in cert.distribution_points() for u in dp.urls]

    def _raise_if_revoked(self, entry: Any, cert: ParsedCert, position: int, now: bytes,
                          how: str = "") -> None:
        revoked_at = entry.revocation_date
        # Validating at a time before the revocation (a signature made then)
        # leaves the certificate valid, unless its key was compromised: that
        # casts doubt on everything before too.
        retroactive = entry.reason in ("keyCompromise", "cACompromise", "aACompromise")
        if time_key(revoked_at) <= now or retroactive:
            raise CertificateRevoked(
                f"revoked on {revoked_at:%Y-%m-%d %H:%M} UTC"
                + (f" ({entry.reason})" if entry.reason else "") + how,
                revocation_date=revoked_at, revocation_reason=entry.reason,
                position=position, subject=_subject(cert))

    def _raise_carried(self, cert: ParsedCert, position: int, now: bytes) -> None:
        """Revocations a verified CRL listed and a newer one of the same scope dropped."""
        entry = self._carried.get((cert.issuer, cert.serial))
        if entry is not None:
            self._raise_if_revoked(entry, cert, position, now,
                                   " (listed by an earlier CRL of its issuer)")

    def _raise_remembered(self, cert: ParsedCert, position: int, now: bytes,
                          path: Tuple[ParsedCert, ...], extra: Tuple[ParsedCert, ...]) -> None:
        """Entries of the newest verified in-scope CRLs, however old: revocations stay.

        Used when no current answer exists: a CRL past its nextUpdate cannot say
        a certificate is good, but what it listed still stands (a hold until a
        newer CRL lifts it).
        """
        is_ca = cert.basic_constraints()[0]
        points: Sequence[Optional[DistributionPoint]] = cert.distribution_points() or [None]
        for dp in points:
            crl_issuers = tuple(dp.crl_issuer) if dp is not None and dp.crl_issuer else \
                (directory_name(cert.issuer),)
            crls = [c for c in self._crls.get(cert.issuer, ()) if not c.is_delta]
            for url in (dp.urls if dp is not None else ()):
                held = self._held.get(url)
                if held is not None:
                    index = held.index
                elif self.fetcher is not None:
                    index = self._remembered(url, crl_issuers, path, extra, now)
                else:
                    index = None
                if index is not None and not index.is_delta:
                    crls.append(index)
            crls.sort(key=lambda c: c.crl_number or 0, reverse=True)
            for crl in crls:
                if crl.unknown_critical_extensions or \
                        self._scope(crl, cert, dp, is_ca, crl_issuers, []) is None:
                    continue
                signer = self._signer(crl, path, now, [], extra)
                if signer is None:
                    continue
                if self.fetcher is not None and self.use_delta_crls:
                    # the deltas published since may list what the complete CRL cannot
                    self._delta_for(crl, signer, cert, now, [], path, extra)
                entry = self._entry(crl, cert, crl_issuers)
                for delta in self._remembered_deltas(crl, signer):
                    change = self._entry(delta, cert, crl_issuers)
                    if change is not None:
                        entry = None if change.reason == "removeFromCRL" else change
                        break
                if entry is not None and entry.reason != "removeFromCRL":
                    self._raise_if_revoked(entry, cert, position, now,
                                           f" (per {crl.source or 'an offline CRL'}, "
                                           "not current)")
                break  # the newest verified CRL of this scope speaks

    def _raise_listed_by_deltas(self, cert: ParsedCert, position: int, now: bytes,
                                path: Tuple[ParsedCert, ...],
                                extra: Tuple[ParsedCert, ...]) -> None:
        """A revocation that a verified delta CRL of the certificate lists, with no
        usable complete CRL (one refused, down, or never obtained): the CA said so,
        and a revocation is final (BUG-57: soft-fail accepted such a certificate,
        hard-fail called it unavailable). Holds are not final: without the
        complete CRL they stay an unknown status."""
        if not self.use_delta_crls:
            return
        is_ca = cert.basic_constraints()[0]
        names = (directory_name(cert.issuer),)
        for dp in cert.distribution_points(OID.FRESHEST_CRL):
            crl_issuers = tuple(dp.crl_issuer) if dp.crl_issuer else names
            found = [c for c in self._crls.get(cert.issuer, ()) if c.is_delta]
            if self.fetcher is not None:
                for url in dict.fromkeys(dp.urls):
                    delta = self._online(url, True, crl_issuers, path, extra, now, [])
                    if delta is not None and delta not in found:
                        found.append(delta)
            for delta in found:
                if not delta.is_delta or delta.unknown_critical_extensions \
                        or self._scope(delta, cert, None, is_ca, crl_issuers, []) is None \
                        or self._signer(delta, path, now, [], extra) is None:
                    continue
                entry = self._entry(delta, cert, crl_issuers)
                if entry is not None and entry.reason not in ("certificateHold",
                                                              "removeFromCRL"):
                    self._raise_if_revoked(entry, cert, position, now,
                                           f" (per the delta CRL {delta.source or ''})")

    def _remembered_deltas(self, complete: Any, signer: ParsedCert) -> List[Any]:
        found = [c for c in self._crls.get(complete.issuer_der, ()) if c.is_delta]
        found += [h.index for h in self._held.values()
                  if h.index is not None and h.index.is_delta
                  and h.index.issuer_der == complete.issuer_der]
        usable = [d for d in found if not d.unknown_critical_extensions
                  and self._delta_signed(d, complete, signer, [])]
        return sorted(usable, key=lambda d: d.crl_number or 0, reverse=True)

    def _remembered(self, url: str, names: Tuple[bytes, ...], path: Tuple[ParsedCert, ...],
                    extra: Tuple[ParsedCert, ...], now: bytes) -> Any:
        """The last CRL of ``url`` the fetcher's cache accepted (after a restart)."""
        check = self._check_fetched(url, None, names, False, path, extra, now)
        try:
            result = self.fetcher.cached_crl(url, verify=check)
        except (RevocationError, CpsError):
            return None
        return result.accepted if result is not None else None

    # RFC 5280 6.3.3, for each distribution point of the certificate (an absent
    # extension counts as one point without names whose CRL issuer is the
    # certificate's issuer), every complete CRL in scope is used until all
    # reasons are covered; a delta CRL is applied on top of each.
    def _crl_status(self, cert: ParsedCert, issuer: ParsedCert, position: int, at: dt.datetime,
                    now: bytes, failures: List[str], path: Tuple[ParsedCert, ...],
                    extra: Tuple[ParsedCert, ...] = (),
                    path_key: Union[_PathKey, Tuple[()]] = ()
                    ) -> Optional[RevocationStatus]:
        plan = self._plan(cert, issuer, now, failures, path, extra, path_key)
        if plan is None:
            return None
        revoked = None
        sources: List[str] = []
        next_update: Optional[dt.datetime] = None
        pending: Optional[dt.datetime] = None
        for complete, delta, issuer_names in plan:
            sources.append(complete.source or "offline CRL")
            nu = complete.next_update if delta is None else min(complete.next_update,
                                                                 delta.next_update)
            next_update = nu if next_update is None else min(next_update, nu)
            entry = self._entry(delta, cert, issuer_names) if delta is not None else None
            if entry is not None:
                if entry.reason == "removeFromCRL":
                    continue  # 6.3.3 (i): unrevoked by the delta
            else:
                entry = self._entry(complete, cert, issuer_names)
            if entry is not None and entry.reason != "removeFromCRL":
                revoked = entry
                break
        if revoked is not None:
            self._raise_if_revoked(revoked, cert, position, now)
            # Revoked after the validation time: good at `at`, but this answer
            # must not be reused for a time after the revocation.
            pending = revoked.revocation_date - dt.timedelta(seconds=1)
            next_update = pending if next_update is None else min(next_update, pending)
        return RevocationStatus(position, cert.subject, "good", ", ".join(sources), next_update)

    @staticmethod
    def _entry(crl: Any, cert: ParsedCert, issuer_names: Tuple[bytes, ...]) -> Any:
        """The CRL entry for ``cert``: same serial and same certificate issuer.

        An entry names its certificate's issuer with certificateIssuer (inherited
        by the following entries, RFC 5280 5.3.3); without one it is the CRL
        issuer's. Direct CRLs of the certificate's own issuer take the fast path.
        """
        if not getattr(crl, "has_indirect_entries", False) and crl.issuer_der == cert.issuer:
            return crl.lookup(cert.serial)
        wanted = directory_name(cert.issuer)
        own = directory_name(crl.issuer_der)
        for entry in crl.lookup_all(cert.serial):
            ci = entry.certificate_issuer
            if ci is None:
                if general_names_match(own, wanted):
                    return entry
            elif _general_names_contain(ci, wanted):
                return entry
        return None

    def _plan(self, cert: ParsedCert, issuer: ParsedCert, now: bytes, failures: List[str],
              path: Tuple[ParsedCert, ...], extra: Tuple[ParsedCert, ...] = (),
              path_key: Union[_PathKey, Tuple[()]] = ()) -> Optional[_Plan]:
        """The (complete, delta, CRL issuer names) to consult, cached for a time window.

        None when the in-scope CRLs do not cover every revocation reason.
        """
        generation = self._generation  # what follows is decided from this state
        if not path_key:
            path_key = (tuple(c.fingerprint for c in path), tuple(c.fingerprint for c in extra))
        key = (cert.issuer, path_key, cert.ext(OID.CRL_DP), cert.ext(OID.BASIC_CONSTRAINTS),
               cert.ext(OID.FRESHEST_CRL))
        hit = self._selection.get(key)
        if hit is not None and hit[0] == self._generation and hit[1] <= now <= hit[2]:
            return hit[3]
        is_ca = cert.basic_constraints()[0]
        points: Sequence[Optional[DistributionPoint]] = cert.distribution_points() or [None]
        reasons = 0
        plan: _Plan = []
        lo, hi = b"00000000000000", b"99999999999999"
        for dp in points:
            crl_issuers = tuple(dp.crl_issuer) if dp is not None and dp.crl_issuer else \
                (directory_name(cert.issuer),)
            for crl in self._candidates(cert, dp, crl_issuers, failures, path, extra, now):
                if reasons == ALL_REASONS:
                    break
                interim = self._scope(crl, cert, dp, is_ca, crl_issuers, failures)
                if interim is None or not interim & ~reasons:
                    continue  # 6.3.3 (b)/(d): out of scope or nothing new
                if not self._current(crl, now, failures):
                    continue
                signer = self._signer(crl, path, now, failures, extra)
                if signer is None:
                    continue
                delta = None
                if self.use_delta_crls:
                    delta, named = self._delta_for(crl, signer, cert, now, failures, path,
                                                   extra)
                    if delta is None and named and self._delta_required():
                        _fail(
                            failures, "delta-unavailable",
                            f"{crl.source or 'offline CRL'}: its delta CRL "
                            f"({', '.join(named)}) is unobtainable or not current; a "
                            "complete CRL is not used without the delta CRL it names "
                            "(Validator(require_delta_crls=False) relaxes this)")
                        continue
                plan.append((crl, delta, crl_issuers))
                for used in (crl, delta):
                    if used is not None:
                        t0, t1 = self._times(used)
                        lo, hi = max(lo, min(t0, now)), min(hi, max(t1, now))
                reasons |= interim
        if reasons != ALL_REASONS:
            if plan:
                _fail(failures, "out-of-scope",
                      "the CRLs in scope do not cover every revocation reason")
            return None
        with self._lock:
            if len(self._selection) > 10000:
                self._selection.clear()
            self._selection[key] = (generation, lo, hi, plan)
        return plan

    def _delta_required(self) -> bool:
        # Online, in hard-fail, the freshest CRL is part of the answer: without it
        # today's revocations would be missed. Offline, the caller supplies deltas.
        return self.require_delta_crls and self.revocation == "hard-fail" \
            and self.fetcher is not None

    def _candidates(self, cert: ParsedCert, dp: Any, crl_issuers: Tuple[bytes, ...],
                    failures: List[str], path: Tuple[ParsedCert, ...],
                    extra: Tuple[ParsedCert, ...], now: bytes) -> List[Any]:
        """Complete CRLs issued by one of ``crl_issuers`` (GeneralNames), newest first:
        those given offline, and those fetched from this distribution point's URLs."""
        out: List[Any] = []
        for name in crl_issuers:
            if name[:1] != b"\xa4":
                continue
            _, vs, ve = _header(name)
            dn = name[vs:ve]
            found = list(self._crls.get(dn, ()))
            if not found:
                found = [c for n, lst in self._crls.items() if names_match(n, dn) for c in lst]
            out += [c for c in found if not c.is_delta and c not in out]
        if self.fetcher is not None:
            # A URL speaks only for the certificates that name it, and only with a
            # CRL of the expected issuer whose signature verified: on plain HTTP
            # anyone can answer instead.
            urls = list(dp.urls) if dp is not None else []
            for url in urls:
                crl = self._online(url, False, crl_issuers, path, extra, now, failures)
                if crl is not None and crl not in out:
                    out.append(crl)
        if not out:
            _fail(failures, "no-crl", "no CRL for this issuer")
        out.sort(key=lambda c: (c.crl_number or 0, self._times(c)[0]), reverse=True)
        return out
    def _scope(self, crl: Any, cert: ParsedCert, dp: Any, is_ca: bool,
               crl_issuers: Tuple[bytes, ...], failures: List[str]) -> Optional[int]:
        """6.3.3 (b)-(c): the reasons this CRL covers for ``cert``, or None if out of scope."""
        source = crl.source or "offline CRL"
        idp = crl.issuing_distribution_point
        indirect = idp is not None and idp.indirect
        if dp is not None and dp.crl_issuer and not indirect:
            _fail(failures, "out-of-scope",
                  f"{source}: the certificate names a CRL issuer, this CRL is not "
                            "indirect")
            return None
        if idp is not None:
            if idp.only_user and is_ca or idp.only_ca and not is_ca or idp.only_attribute:
                _fail(failures, "out-of-scope", f"{source}: out of scope for this certificate")
                return None
            idp_names = self._idp_names(crl)
            if idp_names:
                if dp is not None and dp.has_name:
                    dp_names = self._dp_names(dp, crl)
                else:
                    dp_names = list(crl_issuers)
                if not any(general_names_match(a, b) for a in idp_names for b in dp_names):
                    _fail(failures, "out-of-scope",
                          f"{source}: its distribution point does not match the "
                                    "certificate's")
                    return None
        elif dp is not None and dp.crl_issuer:
            return None
        mask = ALL_REASONS
        if idp is not None and idp.only_some_reasons is not None:
            mask &= _reason_mask(idp.only_some_reasons)
        if dp is not None and dp.reasons is not None:
            mask &= dp.reasons
        return mask

    @staticmethod
    def _idp_names(crl: Any) -> List[bytes]:
        idp = crl.issuing_distribution_point
        if idp.full_name_der:
            _, vs, ve = _header(idp.full_name_der)
            return [idp.full_name_der[h:e] for _, h, _, e in _children(idp.full_name_der, vs, ve)]
        if idp.relative_name_der:
            return [directory_name(name_append_rdn(crl.issuer_der, idp.relative_name_der))]
        return []

    @staticmethod
    def _dp_names(dp: Any, crl: Any) -> List[bytes]:
        if dp.full_names:
            return list(dp.full_names)
        if dp.relative_name is not None:
            return [directory_name(name_append_rdn(crl.issuer_der, dp.relative_name))]
        return []

    def _current(self, crl: Any, now: bytes, failures: List[str]) -> bool:
        """6.3.3 (a): thisUpdate <= now <= nextUpdate (with the clock skew)."""
        source = crl.source or "offline CRL"
        if crl.next_update is None:
            _fail(failures, "no-next-update", f"{source}: no nextUpdate")
            return False
        this_update, next_update = self._times(crl)
        # A CRL issued after the validation time knows at least as much about it
        # (a later revocation is judged by its date, in _crl_status): accepted.
        if this_update <= now and next_update < now:
            _fail(failures, "expired", f"{source}: expired, next update was "
                            f"{crl.next_update:%Y-%m-%d %H:%M} UTC")
            return False
        if crl.unknown_critical_extensions:
            _fail(failures, "unknown-critical-extension",
                  f"{source}: unknown critical CRL extension "
                            f"{crl.unknown_critical_extensions[0]}")
            return False
        return True

    def _signer(self, crl: Any, path: Sequence[ParsedCert], now: bytes, failures: List[str],
                extra: Tuple[ParsedCert, ...] = ()) -> Optional[ParsedCert]:
        """6.3.3 (f)-(g): the certificate whose key signed the CRL, with cRLSign.

        First the certificates of the path being validated (``path``: the
        issuer, the CAs above it, the anchor), then any other certificate with
        that name and key, from the store or given by the caller
        (``intermediates``), validated to an anchor of the store on its own.
        """
        source = crl.source or "offline CRL"
        candidates = [c for c in path if names_match(c.subject, crl.issuer_der)]
        others = [c for c in tuple(extra) + tuple(self.store.intermediates)
                  + tuple(self.store._anchors)
                  if names_match(c.subject, crl.issuer_der)
                  and all(c.fingerprint != p.fingerprint for p in candidates)]
        seen: Set[bytes] = set()
        for cert in candidates + others:
            if cert.fingerprint in seen:
                continue
            seen.add(cert.fingerprint)
            if not _key_ids_match(crl, cert):
                continue
            if self._refused_algorithm(crl, failures):
                return None
            if not self._signed_by(crl, cert, failures):
                continue
            if cert in others and not self._signer_valid(cert, now, failures, extra):
                continue
            return cert
        if candidates or others:
            _fail(failures, "bad-signature", f"{source}: no certificate of the CRL issuer "
                  "with cRLSign verifies its signature")
            _fail(failures, "bad-signature", f"{source}: bad CRL signature")
        else:
            _fail(failures, "unknown-issuer",
                  f"{source}: its issuer is not in the path nor in the store")
        return None

    def _refused_algorithm(self, crl: Any, failures: List[str]) -> bool:
        """Whether the algorithm policy refuses ``crl``'s signature (recorded if so)."""
        if self.allow_sha1 or not is_sha1(crl.signature_algorithm_oid,
                                          crl.signature_algorithm_parameters):
            return False
        _fail(failures, "weak-algorithm", f"{crl.source or 'offline CRL'}: signed with SHA-1, "
              "which this validator refuses (allow_sha1=False)")
        return True

    def _signed_by(self, crl: Any, signer: ParsedCert, failures: List[str]) -> bool:
        """Whether ``signer`` signed ``crl`` (an algorithm we cannot check is recorded)."""
        try:
            return self._verified(crl, signer)
        except CrlError as exc:  # e.g. an algorithm we do not know
            _fail(failures, getattr(exc, "reason", "bad-signature"),
                  f"{crl.source or 'offline CRL'}: {exc}")
            return False

    def _delta_signed(self, delta: Any, complete: Any, signer: ParsedCert,
                      failures: List[str]) -> bool:
        """Whether ``delta`` completes ``complete`` (RFC 5280 5.2.4 numbers, the same
        scope) and ``signer`` signed it under the algorithm policy. One test for the
        deltas of current answers and those of remembered revocations alike."""
        if not _delta_applies(delta, complete) \
                or delta.issuing_distribution_point != complete.issuing_distribution_point:
            return False
        if self._refused_algorithm(delta, failures):
            return False
        if not (_key_ids_match(delta, signer) and self._signed_by(delta, signer, failures)):
            _fail(failures, "bad-signature",
                  f"{delta.source or 'offline delta CRL'}: bad signature")
            return False
        return True

    def _verified(self, crl: Any, signer: ParsedCert) -> bool:
        """Whether ``signer`` (with cRLSign) signed ``crl``; remembered on the CRL object.

        The verdict lives on the CRL object itself, keyed by the signer
        certificate's fingerprint: it goes away with the object, so no other
        CRL can ever inherit it (an ``id()``-keyed memory could, once the object
        is freed and its address reused).
        """
        verdicts = crl.__dict__.setdefault("_cps_signature_verdicts", {})
        ok = verdicts.get(signer.fingerprint)
        if ok is None:
            budget = getattr(self._local, "budget", None)
            if budget is not None:  # a CRL's candidate signers may be hostile helpers
                budget.signature()
            ku = signer.key_usage()
            ok = (ku is None or bool(ku & KU_CRL_SIGN)) and \
                crl.verify_signature(signer.public_key())
            verdicts[signer.fingerprint] = ok
        return bool(ok)

    def _signer_valid(self, cert: ParsedCert, now: bytes, failures: List[str],
                      extra: Tuple[ParsedCert, ...] = ()) -> bool:
        """A CRL signer outside the path must itself validate to an anchor (6.3.3 (f))."""
        if any(cert.fingerprint == a.fingerprint for a in self.store._anchors):
            return True
        busy = getattr(self._local, "signers", None)
        if busy is None:
            busy = self._local.signers = set()
        if cert.fingerprint in busy:
            # The signer's own status comes from a CRL it signed (PKITS 4.14.30):
            # the lookup of its serial in that CRL is the check; do not recurse.
            return True
        if len(busy) > 3:
            return False
        busy.add(cert.fingerprint)
        try:
            self.validate(cert, intermediates=extra,
                          at=time_from_key(now))
            return True
        except ValidationBudgetExceeded:
            raise
        except (CertificateInvalid, RevocationError) as exc:
            _fail(failures, "signer-invalid", f"the CRL signer is not valid: {exc}")
            return False
        finally:
            busy.discard(cert.fingerprint)

    def _delta_for(self, complete: Any, signer: ParsedCert, cert: ParsedCert, now: bytes,
                   failures: List[str], path: Tuple[ParsedCert, ...],
                   extra: Tuple[ParsedCert, ...]) -> Tuple[Any, List[str]]:
        """6.3.3 (c): the newest current delta CRL for ``complete`` (same issuer and
        scope, RFC 5280 5.2.4 numbers), and the delta URLs the certificate or the
        complete CRL name."""
        named = [u for p in cert.distribution_points(OID.FRESHEST_CRL) for u in p.urls]
        named += list(getattr(complete, "freshest_crl_urls", ()) or ())
        named = list(dict.fromkeys(named))
        found = [c for c in self._crls.get(complete.issuer_der, ()) if c.is_delta]
        if self.fetcher is not None:
            issuers = (directory_name(complete.issuer_der),)
            for url in named:
                delta = self._online(url, True, issuers, path, extra, now, failures)
                if delta is not None and delta not in found:
                    found.append(delta)
        best = None
        for delta in found:
            if not (_delta_applies(delta, complete) and delta.issuing_distribution_point
                    == complete.issuing_distribution_point and self._current(delta, now, failures)
                    and self._delta_signed(delta, complete, signer, failures)):
                continue
            if best is None or (delta.crl_number or 0) > (best.crl_number or 0):
                best = delta
        return best, named

    def _times(self, crl: Any) -> Tuple[bytes, bytes]:
        """(thisUpdate, nextUpdate) of a CRL as time keys, widened by the clock skew;
        remembered on the CRL object."""
        memo = crl.__dict__.setdefault("_cps_time_keys", {})
        skew = self.clock_skew
        times: Optional[Tuple[bytes, bytes]] = memo.get(skew)
        if times is None:
            try:
                lo = time_key(crl.this_update - skew)
            except OverflowError:  # thisUpdate in year 1: before anything
                lo = b"00000000000000"
            try:
                hi = time_key(crl.next_update + skew) if crl.next_update is not None \
                    else b"00000000000000"
            except OverflowError:  # nextUpdate at the end of year 9999
                hi = b"99991231235959"
            times = memo[skew] = (lo, hi)
        return times

    # ------------------------------------------------------------------ online CRLs
    def _online(self, url: str, delta: bool, issuers: Tuple[bytes, ...],
                path: Tuple[ParsedCert, ...], extra: Tuple[ParsedCert, ...], now: bytes,
                failures: List[str]) -> Any:
        """The CRL of ``url``: the one held while it is not due, else asked again.

        Held per URL, never filed under the issuer it names: a CRL speaks only
        for certificates that point to its URL. A newer answer counts once its
        issuer and signature verified (:meth:`_check_fetched`); anything else
        leaves the held CRL in place and is asked again after ``fetch_retry``.
        """
        held = self._held.get(url)
        moment = self.clock()
        stamp = moment.timestamp()
        if held is not None and stamp < held.due:
            due = self._due
            if due is None or held.due < due:
                self._due = held.due  # caches were dropped since: be woken when due
            if held.failure:
                _fail(failures, held.reason or "unavailable", held.failure)
            return held.index
        check = self._check_fetched(url, held, issuers, delta, path, extra, now)
        retry = stamp + self.fetch_retry.total_seconds()
        try:
            result = self.fetcher.fetch_crl(url, verify=check)
        except (RevocationError, CpsError) as exc:
            text = str(exc)
            text = text if text.startswith(url) else f"{url}: {text}"
            reason = getattr(exc, "reason", "unavailable")
            inner = getattr(exc, "failures", None)
            if reason == "rejected" and inner:  # why our check refused it
                reason = getattr(inner[0], "reason", reason)
            _fail(failures, reason, text)
            index = held.index if held is not None else None
            if index is None:  # after a restart: the last CRL accepted, however old
                try:
                    cached = self.fetcher.cached_crl(url, verify=check)
                except (RevocationError, CpsError):
                    cached = None
                index = cached.accepted if cached is not None else None
            self._hold(url, _Held(index, retry, text, reason), held)
            return index
        index = result.accepted
        if index is None and held is not None:
            # an answer the check refused with nothing of it accepted (a forgery
            # served in its place): the CRL held so far stays the last one
            # verified (BUG-57: it was dropped, and with it what it and its
            # deltas listed)
            index = held.index
        due = self.fetcher.refresh_at(result).timestamp()
        if due <= stamp:
            due = retry
        error = result.network_error
        note = "" if error is None else \
            str(error) if str(error).startswith(url) else f"{url}: {error}"
        if error is not None:
            _fail(failures, error.reason, note)
        self._hold(url, _Held(index, due, note, error.reason if error else ""), held)
        return index

    def _hold(self, url: str, new: "_Held", seen: Optional["_Held"]) -> None:
        """Hold ``new`` for ``url``, unless another thread replaced ``seen`` meanwhile
        (its CRL is at least as new: ours was fetched against an older state)."""
        with self._lock:
            old = self._held.get(url)
            if old is not seen and old is not None:
                return
        carried: List[Tuple[Tuple[bytes, int], Any]] = []
        if new.index is not None and new.index.is_delta and \
                (old is None or old.index is not new.index):
            # A delta CRL's revocations stay known whatever happens to it next (a
            # newer delta based on a complete CRL we never get no longer lists
            # them): remembered now; deltas are small.
            carried = [((new.index.issuer_der, e.serial), e) for e in new.index.iter_entries()
                       if e.reason not in ("certificateHold", "removeFromCRL")
                       and e.certificate_issuer is None]
        elif old is not None and old.index is not None and new.index is not None \
                and old.index is not new.index:
            if old.index.entry_count <= CARRY_INLINE:
                carried = self._dropped(old.index, new.index)
            else:
                # A million entries take seconds to compare (once a day per URL):
                # not on a login's time. A CA that drops a revocation it listed is
                # the only case this covers, and it is covered seconds later.
                threading.Thread(target=self._carry, args=(old.index, new.index),
                                 name="cps-crl-carry", daemon=True).start()
        with self._lock:
            if self._held.get(url) is not old:
                return
            if old is None or old.index is not new.index:
                self._keep(carried)
                if new.index is not None and not new.index.is_delta and self._carried \
                        and len(self._carried) <= CARRY_INLINE:
                    # what the newest complete CRL lists needs no other memory
                    issuer = new.index.issuer_der
                    covered = [k for k in self._carried
                               if k[0] == issuer and k[1] in new.index]
                    for key in covered:
                        del self._carried[key]
                    if covered:
                        self._save_carried()
                self._generation += 1
                self._prefixes.clear()
            if len(self._held) >= 4096 and url not in self._held:
                self._held.pop(next(iter(self._held)))
            self._held[url] = new
            if self._due is None or new.due < self._due:
                self._due = new.due

    def _carry(self, old: Any, new: Any) -> None:
        dropped = self._dropped(old, new)
        with self._lock:
            self._keep(dropped)

    def _keep(self, entries: List[Tuple[Tuple[bytes, int], Any]], save: bool = True) -> None:
        """Remember revocations (the lock held), at most :data:`MAX_CARRIED`, and keep
        them in the fetcher's cache so that they outlive the process."""
        added = False
        for key, entry in entries:
            if len(self._carried) >= MAX_CARRIED:
                break
            if key not in self._carried:
                self._carried[key] = entry
                added = True
        if added and save:
            self._save_carried()

    def _save_carried(self) -> None:
        saver = getattr(self.fetcher, "save_revocations", None)
        if saver is not None:
            saver(self._carried)

    def _dropped(self, old: Any, new: Any) -> List[Tuple[Tuple[bytes, int], Any]]:
        """The revocations a superseded CRL listed that nothing held lists any more.

        A CA lists a revoked certificate until it expires; a successor of the same
        scope that no longer lists an unexpired one is either lifting a hold
        (allowed) or wrong (revocation is final). A delta CRL's revocations are
        normally in the next complete CRL; when that complete CRL never arrived
        (forged, withheld), the next delta no longer lists them either: they are
        kept too. Bounded by :data:`MAX_CARRIED`.
        """
        if old.issuer_der != new.issuer_der \
                or old.issuing_distribution_point != new.issuing_distribution_point:
            return []
        with self._lock:  # may run in another thread: a snapshot
            held = [h.index for h in self._held.values()]
            offline = list(self._crls.get(old.issuer_der, ()))
        completes = [c for c in held + offline
                     if c is not None and c is not old and not c.is_delta
                     and c.issuer_der == old.issuer_der]
        if not old.is_delta:
            completes.append(new)
        out = []
        for entry in old.iter_entries():
            if entry.reason in ("certificateHold", "removeFromCRL") \
                    or entry.certificate_issuer is not None or entry.serial in new \
                    or any(entry.serial in c for c in completes):
                continue
            out.append(((old.issuer_der, entry.serial), entry))
        return out

    def _check_fetched(self, url: str, held: Optional["_Held"], issuers: Tuple[bytes, ...],
                       delta: bool, path: Tuple[ParsedCert, ...],
                       extra: Tuple[ParsedCert, ...], now: bytes) -> Callable[[bytes], Any]:
        """The fetcher's ``verify`` for ``url``: does this answer count for the issuer?"""

        def check(der: bytes) -> Any:
            previous = held.index if held is not None else None
            if previous is not None and der == previous.der:
                return previous  # the CRL already held (a 304, the cached copy)
            from .crlindex import CrlIndex

            index = CrlIndex.load(der, source=url)
            if index.is_delta != delta:
                raise CrlError(f"{url}: a {'delta' if index.is_delta else 'complete'} CRL "
                               f"where a {'delta' if delta else 'complete'} one was expected",
                               source=url, reason="out-of-scope")
            if not any(n[:1] == b"\xa4" and names_match(index.issuer_der, _header_value(n))
                       for n in issuers):
                raise CrlError(f"{url}: a CRL of another issuer "
                               f"({_name_str(index.issuer_der)})", source=url,
                               reason="other-issuer")
            problems: List[str] = []
            if self._signer(index, path, now, problems, extra) is None:
                raise CrlError("; ".join(problems) or f"{url}: bad CRL signature",
                               source=url, reason="bad-signature")
            if previous is not None and (index.crl_number or 0, index.this_update) < \
                    (previous.crl_number or 0, previous.this_update):
                raise CrlError(f"{url}: older than the CRL already held (number "
                               f"{index.crl_number}, held {previous.crl_number})",
                               source=url, reason="rollback")
            return index

        return check

    def _ocsp_status(self, cert: ParsedCert, issuer: ParsedCert, position: int,
                     at: dt.datetime, failures: List[str]) -> Optional[RevocationStatus]:
        from cryptography import x509

        from .ocsp import validate_response

        try:
            c = x509.load_der_x509_certificate(cert.der)
            i = x509.load_der_x509_certificate(issuer.der)
        except (ValueError, x509.InvalidVersion) as exc:
            _fail(failures, "malformed", f"OCSP: the certificate does not load: {exc}")
            return None
        # Answers the caller already holds (stapled, from a file) first: those about
        # another certificate are skipped, a bad one about this one is a failure.
        max_age = getattr(self.ocsp, "max_age", dt.timedelta(days=7))
        for number, der in enumerate(self._ocsp_responses):
            source = f"OCSP response #{number + 1} given"
            try:
                answer = validate_response(der, c, i, at=at, source=source,
                                           trusted_responders=self._trusted_responders,
                                           max_age=max_age, allow_sha1=self.allow_sha1)
            except OcspError as exc:
                if exc.reason != "certid-mismatch":
                    self._ocsp_refused(failures, exc, source)
                continue
            status = self._ocsp_answer(answer, cert, position, source, failures)
            if status is not None:
                return status
        if self.ocsp is None:
            if not self._ocsp_responses:
                _fail(failures, "no-responder", "no OCSP client and no OCSP response given")
            return None
        urls = cert.access_urls(OID.AD_OCSP)
        if not urls:
            _fail(failures, "no-responder", "no OCSP responder in the certificate")
            return None
        for url in urls:
            try:
                answer = self.ocsp.check(c, i, url=url, at=at,
                                         trusted_responders=self._trusted_responders,
                                         allow_sha1=self.allow_sha1)
            except OcspError as exc:
                self._ocsp_refused(failures, exc, url)
                continue
            except (RevocationError, CpsError) as exc:
                text = str(exc)
                _fail(failures, getattr(exc, "reason", "unavailable"),
                      text if text.startswith(url) else f"{url}: {text}")
                continue
            status = self._ocsp_answer(answer, cert, position, f"OCSP {url}", failures)
            if status is not None:
                return status
        return None

    @staticmethod
    def _ocsp_refused(failures: List[str], exc: OcspError, source: str) -> None:
        """An OCSP answer came and failed verification: an attack or a broken
        responder, never just "unknown" (soft-fail refuses it too)."""
        text = str(exc)
        _fail(failures, exc.reason, text if text.startswith(source) else f"{source}: {text}")
        # Garbage or "try later" is no answer (as an unreachable responder); a
        # well-formed answer whose signature, responder, nonce or dates do not
        # hold is someone answering in the CA's name.
        if isinstance(failures, _Failures) and exc.reason != "malformed" \
                and not exc.reason.startswith("responder-error"):
            failures.refused_answer = True

    @staticmethod
    def _ocsp_answer(answer: Any, cert: ParsedCert, position: int, source: str,
                     failures: List[str]) -> Optional[RevocationStatus]:
        if answer.status == "revoked":
            raise CertificateRevoked(
                f"revoked on {answer.revocation_time:%Y-%m-%d %H:%M} UTC (OCSP)",
                revocation_date=answer.revocation_time,
                revocation_reason=answer.revocation_reason, position=position,
                subject=_subject(cert))
        if answer.status == "good":
            # An answer to our nonce was made for this request: it is not reused
            # for later validations (the CA part of a path is cached).
            return RevocationStatus(position, cert.subject, "good",
                                    source if source.startswith("OCSP") else f"OCSP: {source}",
                                    answer.usable_until, reusable=not answer.nonce_echoed)
        _fail(failures, "ocsp-unknown", f"{source}: OCSP status unknown")
        return None


_PURPOSE_PROBLEMS: Dict[Tuple[Optional[bytes], Optional[bytes], KeyRole], Optional[str]] = {}


def check_purpose(leaf: ParsedCert, purpose: KeyRole) -> None:
    """Refuse a certificate whose keyUsage/extendedKeyUsage do not allow ``purpose``.

    :param leaf: the certificate, as :func:`cps.trust.certs.parse_cert` reads it.
    :raises CertificatePurposeError: the certificate may not be used so.
    """
    # Decided by the raw keyUsage and extendedKeyUsage alone, shared by every
    # card certificate of a kind: remembered by their bytes.
    key = (leaf.ext(OID.KEY_USAGE), leaf.ext(OID.EXT_KEY_USAGE), purpose)
    try:
        problem = _PURPOSE_PROBLEMS[key]
    except KeyError:
        problem = _purpose_problem(leaf, purpose)
        if len(_PURPOSE_PROBLEMS) >= 1024:
            _PURPOSE_PROBLEMS.clear()
        _PURPOSE_PROBLEMS[key] = problem
    if problem is not None:
        raise CertificatePurposeError(problem, purpose=purpose.value, subject=_subject(leaf))


def _purpose_problem(leaf: ParsedCert, purpose: KeyRole) -> Optional[str]:
    """Why ``leaf`` may not be used for ``purpose``; None when it may."""
    ku = leaf.key_usage()
    if purpose in (KeyRole.AUTH, KeyRole.TECH):
        eku = leaf.ext_key_usage()
        if ku is None or not ku & KU_DIGITAL_SIGNATURE:
            return "not an authentication certificate (keyUsage lacks digitalSignature)"
        if eku is not None and OID.EKU_CLIENT_AUTH not in eku and OID.EKU_ANY not in eku:
            return "not an authentication certificate (extendedKeyUsage lacks clientAuth)"
    elif purpose is KeyRole.SIGN:
        if ku is None or not ku & KU_NON_REPUDIATION:
            return "not a signature certificate (keyUsage lacks nonRepudiation)"
    return None


_HASH_OBJECTS: Dict[str, Any] = {}
#: concrete classes seen to be RSA public keys; PKCS#1 v1.5 padding; InvalidSignature
_RSA_TYPES: Set[type] = set()
_PKCS1V15: List[Any] = []
_INVALID_SIGNATURE: List[Any] = []


def is_rsa_key(key: Any) -> bool:
    """Whether ``key`` is an RSA public key: isinstance(key, RSAPublicKey),
    remembered per concrete class (the ABC check costs a microsecond on every login)."""
    if type(key) in _RSA_TYPES:
        return True
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(key, rsa.RSAPublicKey):
        _RSA_TYPES.add(type(key))
        return True
    return False
_SIG_OIDS: Dict[bytes, str] = {}
_OID_STRINGS: Dict[bytes, str] = {}


def _oid_str(raw: bytes) -> str:
    text = _OID_STRINGS.get(raw)
    if text is None:
        text = oid_to_str(raw)
        if len(_OID_STRINGS) < 4096:
            _OID_STRINGS[raw] = text
    return text


def _is_sha1(sig_alg: bytes) -> bool:
    oid, params = _algorithm_parts(sig_alg)
    return is_sha1(oid, params)


def _verify(key: Any, signature: bytes, tbs: bytes, sig_alg: bytes) -> bool:
    """Check a signature over ``tbs`` with ``key`` for the AlgorithmIdentifier ``sig_alg``."""
    oid = _SIG_OIDS.get(sig_alg)
    algorithm = _HASH_OBJECTS.get(oid) if oid is not None else None
    if algorithm is not None and type(key) in _RSA_TYPES:
        # The path nearly every certificate takes (RSA PKCS#1 v1.5 with a known
        # hash, a key class already seen): no imports, no ABC isinstance checks.
        try:
            key.verify(signature, tbs, _PKCS1V15[0], algorithm)
            return True
        except (_INVALID_SIGNATURE[0], ValueError, TypeError):
            return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from .algorithms import RSASSA_PSS, SIGNATURES, verify_signature
    from .certs import children, header

    if not _PKCS1V15:
        _PKCS1V15.append(padding.PKCS1v15())
        _INVALID_SIGNATURE.append(InvalidSignature)
    if oid is None:
        try:
            _, vs, ve = header(sig_alg, 0, len(sig_alg))
            parts = children(sig_alg, vs, ve)
            oid = oid_to_str(sig_alg[parts[0][2]:parts[0][3]])
        except (CertificateParseError, IndexError):
            return False
        if len(_SIG_OIDS) < 256:
            _SIG_OIDS[sig_alg] = oid
    kind, hash_name = SIGNATURES.get(oid, ("", None))
    if kind == "rsa" and hash_name and oid not in _HASH_OBJECTS and is_rsa_key(key):
        # remembered for the fast path above (with the key's class, by is_rsa_key)
        _HASH_OBJECTS[oid] = getattr(hashes, hash_name)()
    try:
        return verify_signature(key, signature, tbs, oid,
                                _algorithm_parts(sig_alg)[1] if oid == RSASSA_PSS else None)
    except (ValueError, TypeError):  # an unknown algorithm or unusable PSS parameters
        return False


_ALGORITHMS: Dict[bytes, Tuple[str, Optional[bytes]]] = {}


def _algorithm_parts(sig_alg: bytes) -> Tuple[str, Optional[bytes]]:
    """(dotted OID, raw parameters or None) of an AlgorithmIdentifier TLV; remembered."""
    parts = _ALGORITHMS.get(sig_alg)
    if parts is None:
        from .certs import children, header

        try:
            _, vs, ve = header(sig_alg, 0, len(sig_alg))
            items = children(sig_alg, vs, ve)
            oid = oid_to_str(sig_alg[items[0][2]:items[0][3]])
            params = sig_alg[items[1][1]:items[1][3]] if len(items) > 1 else None
        except (CertificateParseError, IndexError):
            oid, params = "", None
        parts = (oid, params)
        if len(_ALGORITHMS) < 256:
            _ALGORITHMS[sig_alg] = parts
    return parts


_REASON_BITS = {"keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4,
                "cessationOfOperation": 5, "certificateHold": 6, "privilegeWithdrawn": 7,
                "aACompromise": 8}


def _reason_mask(names: Iterable[str]) -> int:
    mask = 0
    for name in names:
        bit = _REASON_BITS.get(name)
        if bit is not None:
            mask |= 1 << bit
    return mask


def _header(tlv: bytes) -> Tuple[int, int, int]:
    return _hdr(tlv, 0, len(tlv))


def _header_value(tlv: bytes) -> bytes:
    """The value of a TLV (a directoryName GeneralName -> its Name DER)."""
    try:
        _, vs, ve = _header(tlv)
    except CertificateParseError:
        return b""
    return tlv[vs:ve]


def _general_names_contain(names_der: bytes, name: bytes) -> bool:
    """Whether GeneralNames DER (a SEQUENCE) holds ``name`` (a GeneralName TLV)."""
    try:
        _, vs, ve = _header(names_der)
        return any(general_names_match(names_der[h:e], name)
                   for _, h, _, e in _children(names_der, vs, ve))
    except CertificateParseError:
        return False
