"""CRLs over LDAP: the one search a relying party needs (RFC 4511, RFC 4516).

IGC-Santé publishes its delta CRLs on LDAP only: the freshestCRL extension of
its certificates and CRLs points to
``ldap://annuaire-igc.esante.gouv.fr/CN=…?deltaRevocationList;binary?base?objectClass=pkiCA``.
This module speaks just enough LDAPv3 for that: an anonymous simple bind, one
base-object search for one attribute, an unbind. The first value of the
attribute is returned as bytes; what it is worth (signature, issuer, scope) is
the validator's business, as for a CRL downloaded over HTTP.

The server is untrusted. Every answer is read with its length checked before
anything is allocated (``max_bytes``), every read is bounded by a socket
timeout, and the whole exchange by the caller's deadline (a watchdog that
shuts the socket down). Whatever goes wrong is a
:class:`~cps.errors.RevocationUnavailable` whose ``reason`` says what:
``bad-url``, ``unreachable``, ``timeout``, ``too-large``, ``malformed`` (not
LDAP), ``ldap-error:<result code>`` (the server said no: 32 is noSuchObject),
``not-found`` (no such attribute, or no value).

Plain ``ldap://`` only: the CRLs are signed, and IGC-Santé serves no ``ldaps``.
"""

from __future__ import annotations

import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from ..der import encode_length, read_length
from ..errors import CertificateParseError, RevocationUnavailable
from .certs import children

__all__ = ["LdapQuery", "parse_ldap_url", "fetch_attribute", "read_search_answer"]

DEFAULT_PORT = 389
#: bytes an LDAP answer may add around the attribute value (DN, types, framing)
_OVERHEAD = 64 * 1024

# protocolOp tags (RFC 4511 section 4.2 onwards)
_BIND_RESPONSE, _SEARCH_ENTRY, _SEARCH_DONE = 0x61, 0x64, 0x65
_SEARCH_REFERENCE, _EXTENDED_RESPONSE = 0x73, 0x78
_RESULT_NAMES = {1: "operationsError", 2: "protocolError", 3: "timeLimitExceeded",
                 4: "sizeLimitExceeded", 10: "referral", 32: "noSuchObject",
                 34: "invalidDNSyntax", 48: "inappropriateAuthentication",
                 49: "invalidCredentials", 50: "insufficientAccessRights", 51: "busy",
                 52: "unavailable", 53: "unwillingToPerform", 80: "other"}


@dataclass(frozen=True)
class LdapQuery:
    """What an ``ldap://`` URL asks for.

    :ivar host: the server.
    :ivar port: its port (389 by default).
    :ivar dn: the entry, decoded (``CN=AC …,OU=IGC-SANTE,…``).
    :ivar attribute: the attribute wanted, with its options
        (``deltaRevocationList;binary``).
    :ivar filter: the search filter, encoded (RFC 4511 ``Filter``).
    """

    host: str
    port: int
    dn: str
    attribute: str
    filter: bytes


def _bad_url(url: str, why: str) -> RevocationUnavailable:
    return RevocationUnavailable(f"{url}: {why}", source=url, reason="bad-url")


def parse_ldap_url(url: str) -> LdapQuery:
    """Read an RFC 4516 URL: ``ldap://host[:port]/dn?attribute?base?filter``.

    One attribute, scope ``base`` (the default), and a filter that is a single
    equality or presence test (``objectClass=pkiCA``, parentheses optional,
    as certificates write it) or none (``objectClass=*``).

    :raises RevocationUnavailable: ``reason="bad-url"`` for anything else.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or DEFAULT_PORT
    except (ValueError, TypeError, AttributeError):
        raise _bad_url(str(url), "malformed LDAP URL") from None
    if parts.scheme.lower() != "ldap":
        raise RevocationUnavailable(f"{url}: not an ldap:// URL", source=url,
                                    reason="unsupported-scheme")
    if not host:
        raise _bad_url(url, "no host in URL")
    if parts.fragment:
        raise _bad_url(url, "a fragment in an LDAP URL")
    # urlsplit puts dn in the path and "attributes?scope?filter?extensions" in the query
    fields = parts.query.split("?") if parts.query else []
    if len(fields) > 4:
        raise _bad_url(url, "too many '?' fields")
    fields += [""] * (4 - len(fields))
    attributes, scope, filter_text, extensions = (urllib.parse.unquote(f) for f in fields)
    if any(e.strip().startswith("!") for e in extensions.split(",") if e.strip()):
        raise _bad_url(url, "a critical extension this client does not know")
    names = [a.strip() for a in attributes.split(",") if a.strip()]
    if len(names) != 1:
        raise _bad_url(url, "exactly one attribute must be named (the CRL)")
    if scope.strip().lower() not in ("", "base"):
        raise _bad_url(url, f"only base-object searches are supported, not {scope!r}")
    dn = urllib.parse.unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    return LdapQuery(host, port, dn, names[0], _encode_filter(url, filter_text.strip()))


def _encode_filter(url: str, text: str) -> bytes:
    if not text:
        return _tlv(0x87, b"objectClass")  # present: every entry
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    attribute, equals, value = text.partition("=")
    attribute = attribute.strip()
    if not equals or not attribute or any(c in text for c in "()&|!") \
            or attribute[-1:] in ("~", ">", "<", ":"):
        raise _bad_url(url, f"unsupported LDAP filter {text[:60]!r} (one 'attr=value' only)")
    if value == "*":
        return _tlv(0x87, attribute.encode("utf-8"))
    if "*" in value:
        raise _bad_url(url, "substring filters are not supported")
    return _tlv(0xA3, _octets(attribute.encode("utf-8")) + _octets(_unescape(url, value)))


def _unescape(url: str, value: str) -> bytes:
    # RFC 4515: "\XX" is the byte XX; everything else stands for its UTF-8 bytes
    out = bytearray()
    raw = value.encode("utf-8")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C:  # backslash, then exactly two hex digits
            pair = raw[i + 1:i + 3]
            if len(pair) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in pair):
                raise _bad_url(url, "bad '\\XX' escape in the filter")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


# --------------------------------------------------------------------------- encoding
def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def _octets(value: bytes) -> bytes:
    return _tlv(0x04, value)


def _integer(value: int, tag: int = 0x02) -> bytes:
    return _tlv(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _message(message_id: int, operation: bytes) -> bytes:
    return _tlv(0x30, _integer(message_id) + operation)


def search_messages(query: LdapQuery, time_limit: int) -> bytes:
    """Bind (anonymous, simple), base-object search for the attribute: the bytes to send."""
    bind = _tlv(0x60, _integer(3) + _octets(b"") + b"\x80\x00")
    search = _tlv(0x63, _octets(query.dn.encode("utf-8"))
                  + _integer(0, 0x0A)             # scope: baseObject
                  + _integer(0, 0x0A)             # derefAliases: never
                  + _integer(1)                   # sizeLimit: the one entry
                  + _integer(max(1, time_limit))  # timeLimit, seconds
                  + b"\x01\x01\x00"               # typesOnly: FALSE
                  + query.filter
                  + _tlv(0x30, _octets(query.attribute.encode("utf-8"))))
    return _message(1, bind) + _message(2, search)


UNBIND = _message(3, b"\x42\x00")


# --------------------------------------------------------------------------- decoding
def read_search_answer(recv_exact: Callable[[int], bytes], attribute: str, url: str,
                       max_bytes: int) -> bytes:
    """Read the bind response, then the search results, through ``recv_exact(n)``.

    ``recv_exact`` returns exactly ``n`` bytes or raises. Pure protocol: the
    fuzzing harness drives it with arbitrary bytes.

    :returns: the first value of ``attribute`` in the entry.
    :raises RevocationUnavailable: see the module docstring.
    """
    limit = max_bytes + _OVERHEAD
    wanted = attribute.split(";")[0].strip().lower()
    found: Optional[bytes] = None
    for _ in range(1 + 64):  # the bind response, then a bounded number of search messages
        message_id, op_tag, op = _read_message(recv_exact, url, limit)
        if message_id == 0 and op_tag == _EXTENDED_RESPONSE:
            code, text = _result(op, url)
            raise RevocationUnavailable(f"{url}: the server ended the session ({text or code})",
                                        source=url, reason="unreachable")
        if message_id == 1:
            if op_tag != _BIND_RESPONSE:
                raise _malformed(url, "no bind response")
            _check(url, *_result(op, url), "bind")
            continue
        if message_id != 2:
            raise _malformed(url, f"an answer to a request never sent (id {message_id})")
        if op_tag == _SEARCH_ENTRY:
            if found is None:
                found = _value_of(op, wanted, url)
        elif op_tag == _SEARCH_DONE:
            _check(url, *_result(op, url), "search")
            if found is None:
                raise RevocationUnavailable(f"{url}: the entry has no {attribute} value",
                                            source=url, reason="not-found")
            return found
        elif op_tag != _SEARCH_REFERENCE:  # continuation references are not followed
            raise _malformed(url, f"unexpected LDAP operation 0x{op_tag:02X}")
    raise _malformed(url, "too many search results for a base-object search")


def _read_message(recv_exact: Callable[[int], bytes], url: str, limit: int
                  ) -> Tuple[int, int, bytes]:
    head = recv_exact(2)
    if head[0] != 0x30:
        raise _malformed(url, "not an LDAP message")
    first = head[1]
    count = first & 0x7F if first & 0x80 else 0
    raw = head + recv_exact(count) if 0 < count <= 4 else head  # the length octets
    length, _ = read_length(raw, 1, len(raw), 4, lambda message: _malformed(url, message))
    if length > limit:
        raise RevocationUnavailable(f"{url}: an LDAP answer of {length} bytes exceeds the "
                                    f"{limit}-byte limit", source=url, reason="too-large")
    body = recv_exact(length)
    try:
        parts = children(body, 0, len(body))
        if len(parts) not in (2, 3) or parts[0][0] != 0x02 or parts[0][3] - parts[0][2] > 4 \
                or parts[0][3] == parts[0][2] or (len(parts) == 3 and parts[2][0] != 0xA0):
            raise _malformed(url, "malformed LDAPMessage")
        message_id = int.from_bytes(body[parts[0][2]:parts[0][3]], "big", signed=True)
        op_tag, _, start, end = parts[1]
        return message_id, op_tag, body[start:end]
    except CertificateParseError as exc:
        raise _malformed(url, str(exc)) from None


def _result(op: bytes, url: str) -> Tuple[int, str]:
    """(resultCode, diagnosticMessage) of an LDAPResult."""
    try:
        parts = children(op, 0, len(op))
    except CertificateParseError as exc:
        raise _malformed(url, str(exc)) from None
    if len(parts) < 3 or parts[0][0] != 0x0A or parts[0][3] - parts[0][2] not in (1, 2, 3, 4) \
            or parts[2][0] != 0x04:
        raise _malformed(url, "malformed LDAPResult")
    code = int.from_bytes(op[parts[0][2]:parts[0][3]], "big")
    return code, op[parts[2][2]:parts[2][3]][:200].decode("utf-8", "replace")


def _check(url: str, code: int, text: str, what: str) -> None:
    if code != 0:
        name = _RESULT_NAMES.get(code, "error")
        raise RevocationUnavailable(
            f"{url}: LDAP {what} failed: {code} {name}" + (f" ({text})" if text else ""),
            source=url, reason=f"ldap-error:{code}")


def _value_of(op: bytes, wanted: str, url: str) -> Optional[bytes]:
    """The first value of the wanted attribute in a SearchResultEntry, or None."""
    try:
        parts = children(op, 0, len(op))
        if len(parts) != 2 or parts[0][0] != 0x04 or parts[1][0] != 0x30:
            raise _malformed(url, "malformed search result entry")
        for tag, _, start, end in children(op, parts[1][2], parts[1][3]):
            attribute = children(op, start, end) if tag == 0x30 else []
            if len(attribute) != 2 or attribute[0][0] != 0x04 or attribute[1][0] != 0x31:
                raise _malformed(url, "malformed attribute in a search result entry")
            name = op[attribute[0][2]:attribute[0][3]].decode("utf-8", "replace")
            if name.split(";")[0].strip().lower() != wanted:
                continue
            for vtag, _, vs, ve in children(op, attribute[1][2], attribute[1][3]):
                if vtag != 0x04:
                    raise _malformed(url, "an attribute value that is not an OCTET STRING")
                return op[vs:ve]
        return None
    except CertificateParseError as exc:
        raise _malformed(url, str(exc)) from None


def _malformed(url: str, why: str) -> RevocationUnavailable:
    return RevocationUnavailable(f"{url}: not a valid LDAP answer ({why})", source=url,
                                 reason="malformed")


# --------------------------------------------------------------------------- transport
def fetch_attribute(url: str, *, timeout: float, limit: Any, max_bytes: int,
                    progress: Optional[Callable[[str, int, Optional[int]], None]] = None
                    ) -> bytes:
    """Ask the server of an ``ldap://`` URL for its attribute; the first value.

    :param timeout: bound of each blocking socket operation.
    :param limit: the exchange's deadline (``cps.trust.fetch``'s watchdog:
        ``attach(sock)``, ``fired``, ``remaining()``, ``clamp(timeout)``).
    :param max_bytes: largest value accepted.
    :param progress: called as ``progress(url, bytes_so_far, None)`` while reading.
    :raises RevocationUnavailable: see the module docstring.
    """
    query = parse_ldap_url(url)
    received = [0]
    try:
        sock = socket.create_connection((query.host, query.port),
                                        timeout=limit.clamp(timeout))
    except (OSError, ValueError) as exc:  # ValueError: UnicodeError of an impossible name
        raise _network(url, exc, limit) from None
    try:
        limit.attach(sock)

        def recv_exact(n: int) -> bytes:
            chunks: List[bytes] = []
            missing = n
            while missing:
                if limit.fired or limit.remaining() <= 0:
                    raise RevocationUnavailable(f"{url}: no complete answer within the "
                                                "deadline", source=url, reason="timeout")
                sock.settimeout(limit.clamp(timeout))
                chunk = sock.recv(min(missing, 65536))
                if not chunk:
                    if limit.fired:
                        raise RevocationUnavailable(f"{url}: no complete answer within the "
                                                    "deadline", source=url, reason="timeout")
                    raise RevocationUnavailable(
                        f"{url}: unreachable (connection closed in the middle of an answer)",
                        source=url, reason="unreachable")
                chunks.append(chunk)
                missing -= len(chunk)
                received[0] += len(chunk)
                if progress is not None:
                    progress(url, received[0], None)
            return b"".join(chunks)

        try:
            sock.sendall(search_messages(query, int(max(limit.remaining(), 1))))
            value = read_search_answer(recv_exact, query.attribute, url, max_bytes)
        except OSError as exc:
            raise _network(url, exc, limit) from None
        if len(value) > max_bytes:
            raise RevocationUnavailable(f"{url}: answer exceeds the {max_bytes}-byte limit",
                                        source=url, reason="too-large")
        try:
            sock.sendall(UNBIND)  # a courtesy: the answer is complete
        except OSError:
            pass
        return value
    finally:
        sock.close()


def _network(url: str, exc: BaseException, limit: Any) -> RevocationUnavailable:
    if limit.fired or isinstance(exc, (TimeoutError, socket.timeout)):
        return RevocationUnavailable(f"{url}: timed out ({exc})", source=url, reason="timeout")
    return RevocationUnavailable(f"{url}: unreachable ({type(exc).__name__}: {exc})",
                                 source=url, reason="unreachable")
