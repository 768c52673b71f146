"""Name constraints, RFC 5280 sections 4.2.1.10 and 6.1.3 (b)-(c), 6.1.4 (g).

Supported forms: directoryName, rfc822Name (and the emailAddress attribute of
the subject DN), dNSName, uniformResourceIdentifier, iPAddress. A critical
constraint on another form makes any certificate carrying a name of that form
fail (RFC 5280: process it or reject).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from ..errors import CertificateInvalid, CertificateParseError
from .certs import OID, ParsedCert, _name_key, children, header, name_is_empty

__all__ = ["NameConstraints"]

# GeneralName context tags (value tag byte as it appears in DER)
OTHER, RFC822, DNS, X400, DIRNAME, EDI, URI, IP, RID = (0xA0, 0x81, 0x82, 0xA3, 0xA4, 0xA5,
                                                       0x86, 0x87, 0x88)
SUPPORTED = {RFC822, DNS, DIRNAME, URI, IP}


def _subtrees(raw: bytes, start: int, end: int) -> List[Tuple[int, bytes]]:
    out = []
    for tag, _, vs, ve in children(raw, start, end):
        if tag != 0x30:
            raise CertificateParseError("bad GeneralSubtree")
        parts = children(raw, vs, ve)
        if not parts:
            raise CertificateParseError("empty GeneralSubtree")
        gtag, _, gs, ge = parts[0]
        out.append((gtag, raw[gs:ge]))
    return out


def _dns_match(name: str, constraint: str) -> bool:
    name, constraint = name.lower().rstrip("."), constraint.lower().rstrip(".")
    if not constraint:
        return True
    if constraint.startswith("."):
        return name.endswith(constraint)
    return name == constraint or name.endswith("." + constraint)


def _email_match(mail: str, constraint: str) -> bool:
    mail = mail.lower()
    constraint = constraint.lower()
    if "@" in constraint:
        return mail == constraint
    host = mail.rpartition("@")[2]
    if constraint.startswith("."):
        return host.endswith(constraint)
    return host == constraint


def _uri_host(uri: str) -> Optional[str]:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    return host


def _uri_match(uri: str, constraint: str) -> bool:
    host = _uri_host(uri)
    if host is None:
        return False
    constraint = constraint.lower()
    if constraint.startswith("."):
        return host.lower().endswith(constraint)
    return host.lower() == constraint


def _ip_match(address: bytes, constraint: bytes) -> bool:
    if len(constraint) != 2 * len(address):
        return False
    half = len(address)
    net, mask = constraint[:half], constraint[half:]
    return all((a & m) == (n & m) for a, n, m in zip(address, net, mask, strict=True))


def _dn_within(name: bytes, base: bytes) -> bool:
    try:
        n, b = _name_key(name), _name_key(base)
    except CertificateParseError:
        return False
    return n[:len(b)] == b


def _matches(tag: int, value: bytes, constraint: bytes) -> bool:
    if tag == DIRNAME:
        return _dn_within(value, constraint)
    text = value.decode("ascii", "replace")
    ctext = constraint.decode("ascii", "replace")
    if tag == RFC822:
        return _email_match(text, ctext)
    if tag == DNS:
        return _dns_match(text, ctext)
    if tag == URI:
        return _uri_match(text, ctext)
    if tag == IP:
        return _ip_match(value, constraint)
    return False


def _names_of(cert: ParsedCert) -> List[Tuple[int, bytes]]:
    """Every name of the certificate subject to constraints: subject DN, its
    emailAddress attributes, and the subjectAltName entries."""
    out: List[Tuple[int, bytes]] = []
    if not name_is_empty(cert.subject):
        # directoryName constraints compare the whole DN; the value kept is the Name DER
        out.append((DIRNAME, cert.subject))
        _, vs, ve = header(cert.subject, 0, len(cert.subject))
        for _, _, rs, re_ in children(cert.subject, vs, ve):
            for _, _, as_, ae in children(cert.subject, rs, re_):
                parts = children(cert.subject, as_, ae)
                if len(parts) == 2 and cert.subject[parts[0][2]:parts[0][3]] == OID.EMAIL_ADDRESS:
                    out.append((RFC822, cert.subject[parts[1][2]:parts[1][3]]))
    san = cert.ext(OID.SUBJECT_ALT_NAME)
    if san is not None:
        _, vs, ve = header(san, 0, len(san))
        for tag, _hs, gs, ge in children(san, vs, ve):
            if tag == DIRNAME:
                out.append((DIRNAME, san[gs:ge]))
            else:
                out.append((tag, san[gs:ge]))
    return out


@dataclass
class NameConstraints:
    """permitted_subtrees / excluded_subtrees state of RFC 5280 6.1."""

    # per form: list of subtree sets (intersection)
    permitted: Optional[Dict[int, List[List[bytes]]]] = None
    excluded: Dict[int, Set[bytes]] = field(default_factory=dict)
    critical_forms: Set[int] = field(default_factory=set)

    def add(self, cert: ParsedCert) -> None:
        """6.1.4 (g): fold a CA certificate's nameConstraints into the state."""
        item = cert.extensions.get(OID.NAME_CONSTRAINTS)
        if item is None:
            return
        critical, raw = item
        _, vs, ve = header(raw, 0, len(raw))
        for tag, _, s, e in children(raw, vs, ve):
            subtrees = _subtrees(raw, s, e)
            if tag == 0xA0:  # permittedSubtrees: intersect, per name form
                if self.permitted is None:
                    self.permitted = {}
                forms: Dict[int, List[bytes]] = {}
                for form, base in subtrees:
                    forms.setdefault(form, []).append(base)
                for form, bases in forms.items():
                    self.permitted.setdefault(form, []).append(bases)
                    if critical and form not in SUPPORTED:
                        self.critical_forms.add(form)
            elif tag == 0xA1:  # excludedSubtrees: union
                for form, base in subtrees:
                    self.excluded.setdefault(form, set()).add(base)
                    if critical and form not in SUPPORTED:
                        self.critical_forms.add(form)

    def check(self, cert: ParsedCert, position: int) -> None:
        """6.1.3 (b)-(c): every name of ``cert`` within permitted, none within excluded."""
        if self.permitted is None and not self.excluded:
            return
        subject = cert.subject_str()
        for form, value in _names_of(cert):
            if form in self.critical_forms:
                raise CertificateInvalid("a critical name constraint of an unsupported form "
                                         "applies to this certificate", reason="name-constraints",
                                         position=position, subject=subject)
            for base in self.excluded.get(form, ()):
                if _matches(form, value, base):
                    raise CertificateInvalid("a name is in an excluded subtree",
                                             reason="name-constraints", position=position,
                                             subject=subject)
            if self.permitted is not None:
                for bases in self.permitted.get(form, ()):
                    if not any(_matches(form, value, b) for b in bases):
                        raise CertificateInvalid("a name is outside the permitted subtrees",
                                                 reason="name-constraints", position=position,
                                                 subject=subject)

    def copy(self) -> "NameConstraints":
        return NameConstraints(None if self.permitted is None else
                               {k: list(v) for k, v in self.permitted.items()},
                               {k: set(v) for k, v in self.excluded.items()},
                               set(self.critical_forms))


