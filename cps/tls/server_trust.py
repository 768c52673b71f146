"""What the card's TLS client trusts: the server's certificate chain and host name.

The check is cryptography's X.509 verifier (``cryptography.x509.verification``:
RFC 5280 path building plus the CA/Browser Forum's server profile, host names
matched per RFC 6125), not code of ours. It runs when the server's Certificate
message arrives, before the client sends anything or the card signs anything:
an untrusted or misnamed server never receives a signature made by the card.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import ssl
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from ..errors import CertificateParseError, ServerCertificateError
from ..pem import blocks as pem_blocks

__all__ = ["ServerTrust", "VerifiedServer"]

_DER = Encoding.DER

#: certificates a server may send beyond its own (more are ignored: the path
#: builder's work stays bounded whatever a hostile server sends)
_MAX_SENT = 8

#: a PEM bundle or a directory of PEM/DER files may hold at most this many bytes
#: per file (a bundle of every public CA is about 250 KB)
MAX_TRUST_FILE = 8 * 1024 * 1024


@dataclass(frozen=True)
class VerifiedServer:
    """The outcome of a server certificate check."""

    #: the name the certificate was checked against
    host: str
    #: the verified path, server certificate first, trust anchor last
    chain: Tuple[x509.Certificate, ...]

    @property
    def subject(self) -> str:
        """The server certificate's subject, RFC 4514."""
        return self.chain[0].subject.rfc4514_string()

    @property
    def anchor(self) -> str:
        """The trust anchor's subject, RFC 4514."""
        return self.chain[-1].subject.rfc4514_string()


class ServerTrust:
    """The anchors a TLS client judges servers by, and the clock it judges at.

    Build it from certificates, or with :meth:`igc_sante`, :meth:`system`,
    :meth:`from_path` or :meth:`from_verify` (what ``requests``' ``verify=``
    means). Two trusts with the same anchors have the same :attr:`key`, which
    keys the TLS session cache (a session verified under one trust is never
    resumed under another).

    :param anchors: the trusted certificates (roots or any CA to trust as such).
    :param intermediates: CA certificates offered to path building, not trusted
        (for servers that send their certificate without its intermediate).
    :param name: a label for messages.
    :param clock: the time certificates are judged at (default: now, UTC).
    :raises ValueError: no anchor.
    """

    def __init__(self, anchors: Iterable[x509.Certificate], *,
                 intermediates: Iterable[x509.Certificate] = (), name: str = "custom",
                 clock: Optional[Callable[[], datetime]] = None) -> None:
        self.anchors: Tuple[x509.Certificate, ...] = tuple(anchors)
        self.intermediates: Tuple[x509.Certificate, ...] = tuple(intermediates)
        if not self.anchors:
            raise ValueError("a server trust needs at least one anchor certificate")
        for cert in self.anchors + self.intermediates:
            if not isinstance(cert, x509.Certificate):
                raise TypeError("anchors are cryptography x509.Certificate objects")
        self.name = name
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._store = verification.Store(list(self.anchors))
        digest = hashlib.sha256()
        for der in sorted(c.public_bytes(Encoding.DER) for c in self.anchors):
            digest.update(hashlib.sha256(der).digest())
        digest.update(b"/")  # intermediates change what verifies: they key sessions too
        for der in sorted(c.public_bytes(Encoding.DER) for c in self.intermediates):
            digest.update(hashlib.sha256(der).digest())
        #: identifies the anchor set (not the clock): part of the session cache key
        self.key: str = digest.hexdigest()

    def __repr__(self) -> str:
        return f"ServerTrust({self.name!r}, {len(self.anchors)} anchors)"

    # -- construction ------------------------------------------------------------

    @classmethod
    def igc_sante(cls) -> "ServerTrust":
        """The three production IGC-Santé roots (pinned, see docs/igc-sante.md), with
        the six intermediates offered to path building."""
        from ..trust.anchors import TrustStore

        store = TrustStore.igc_sante()  # checks each file against its pin
        intermediates = [x509.load_der_x509_certificate(c.der) for c in store.intermediates]
        return cls(store.anchors, intermediates=intermediates, name="IGC-Santé")

    @classmethod
    def system(cls) -> "ServerTrust":
        """The operating system's trust store, as Python's ``ssl`` module loads it
        (the OpenSSL default paths on Linux, the system stores on Windows and macOS).

        :raises ValueError: the system store is empty.
        """
        context = ssl.create_default_context()
        ders = context.get_ca_certs(binary_form=True)
        certs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # see _load_certificates
            for der in ders:
                try:
                    certs.append(x509.load_der_x509_certificate(bytes(der)))
                except ValueError:  # one odd system certificate must not void the store
                    continue
        return cls(certs, name="system")

    @classmethod
    def from_path(cls, path: Union[str, os.PathLike[str]]) -> "ServerTrust":
        """A PEM bundle (or one DER certificate), or a directory of such files
        (as OpenSSL's ``CApath`` or ``requests``' ``verify="/dir"``).

        :raises FileNotFoundError: no such file or directory.
        :raises CertificateParseError: a file holds no certificate (in a
            directory, files that are not certificates are skipped, as
            OpenSSL's hashed directories hold other files too).
        """
        where = Path(path)
        if where.is_dir():
            certs: list[x509.Certificate] = []
            for entry in sorted(where.iterdir())[:_MAX_DIRECTORY]:
                if entry.is_file() and entry.stat().st_size <= MAX_TRUST_FILE:
                    try:
                        certs.extend(_load_certificates(entry.read_bytes()))
                    except CertificateParseError:
                        continue
            if not certs:
                raise CertificateParseError(f"{where}: no certificate in the directory")
            return cls(_unique(certs), name=str(where))
        if not where.exists():
            raise FileNotFoundError(f"{where}: no such CA bundle file or directory")
        if where.stat().st_size > MAX_TRUST_FILE:
            raise CertificateParseError(f"{where}: larger than {MAX_TRUST_FILE} bytes")
        return cls(_unique(_load_certificates(where.read_bytes())), name=str(where))

    @classmethod
    def from_verify(cls, verify: Union[bool, str, os.PathLike[str]]) -> "ServerTrust":
        """What ``requests``' ``verify=`` names: ``True`` is requests' own default
        bundle (certifi's, or ``REQUESTS_CA_BUNDLE`` which requests resolves
        before the adapter), a string a bundle file or a directory.

        :raises ValueError: ``verify=False``: the card's signature is never
            given to a server nobody checked (docs/tls.md).
        """
        if verify is False:
            raise ValueError("verify=False: cps.tls never authenticates with the card to an "
                             "unverified server; give a CA bundle or directory instead")
        if verify is True:
            from requests.utils import DEFAULT_CA_BUNDLE_PATH

            return _cached_path(DEFAULT_CA_BUNDLE_PATH)
        if isinstance(verify, (str, os.PathLike)):
            return _cached_path(os.fspath(verify))
        raise TypeError(f"verify must be a bool or a path, not {type(verify).__name__}")

    # -- checking ----------------------------------------------------------------

    def verify(self, host: str, leaf: bytes, intermediates: Sequence[bytes] = ()
               ) -> VerifiedServer:
        """Check the certificates a server sent for ``host``.

        :param host: the name the client connected to (a DNS name or an IP address).
        :param leaf: the server's certificate, DER.
        :param intermediates: the other certificates it sent, DER.
        :raises ServerCertificateError: reason ``"server-certificate"`` (the
            path: untrusted, expired, wrong usage, undecodable) or
            ``"server-name"`` (a path that holds, for another name).
        """
        try:
            leaf_cert = x509.load_der_x509_certificate(leaf)
            others = [x509.load_der_x509_certificate(d) for d in intermediates[:_MAX_SENT]]
        except ValueError as exc:
            raise ServerCertificateError(f"{host}: the server sent a certificate that does "
                                         f"not decode ({exc})", host=host,
                                         cause=str(exc)) from None
        others += self.intermediates
        at = self._clock()
        try:
            subject = _subject(host)
        except ValueError as exc:
            raise ServerCertificateError(f"{host!r} is not a host name the certificate can "
                                         f"be checked against ({exc})", reason="server-name",
                                         host=host, cause=str(exc)) from None
        try:
            chain = self._verifier(subject, at).verify(leaf_cert, others)
        except (verification.VerificationError, ValueError) as exc:
            # ValueError: an extension cryptography cannot decode in a certificate
            # the server sent -- its certificate, and so its failure
            cause = str(exc)
            reason, why = "server-certificate", f"not trusted by {self.name}"
            if self._valid_for_another_name(leaf_cert, others, at):
                reason, why = "server-name", f"valid, but not for the name {host!r}"
            raise ServerCertificateError(
                f"{host}: the server's certificate ({leaf_cert.subject.rfc4514_string()}) "
                f"is {why}: {cause}", reason=reason, host=host, cause=cause) from None
        return VerifiedServer(host, tuple(chain))

    def _verifier(self, subject: verification.Subject, at: datetime
                  ) -> verification.ServerVerifier:
        return (verification.PolicyBuilder().store(self._store).time(at)
                .build_server_verifier(subject))

    def _valid_for_another_name(self, leaf: x509.Certificate,
                                others: list[x509.Certificate], at: datetime) -> bool:
        # Told apart by the library itself: the same path, checked for a name
        # the certificate does carry. If that holds, only the name was wrong.
        try:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (x509.ExtensionNotFound, ValueError):
            return False
        candidates: list[verification.Subject] = [
            x509.DNSName(n) for n in names.get_values_for_type(x509.DNSName)
            if "*" not in n]
        candidates += [x509.IPAddress(a) for a in names.get_values_for_type(x509.IPAddress)]
        for subject in candidates[:1]:
            try:
                self._verifier(subject, at).verify(leaf, others)
                return True
            except (verification.VerificationError, ValueError):
                return False
        return False


def _subject(host: str) -> verification.Subject:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    ders = pem_blocks(data, strict=False) if b"-----BEGIN" in data else [data]
    certs = []
    with warnings.catch_warnings():
        # a system bundle may hold a CA cryptography frowns upon (a negative
        # serial number): loading it is not our users' concern
        warnings.simplefilter("ignore")
        for der in ders:
            try:
                certs.append(x509.load_der_x509_certificate(bytes(der)))
            except ValueError:
                continue
    if not certs:
        raise CertificateParseError("no certificate in the file")
    return certs


def _unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(cert.public_bytes(Encoding.DER), cert)
    return list(seen.values())


# requests passes the same `verify` on every call: parse a bundle once per
# (path, size, mtime), so a replaced file is read again and an unchanged one never.
_PATH_CACHE: dict[Tuple[str, Tuple[Any, ...]], ServerTrust] = {}
#: entries of a CA directory looked at (OpenSSL hashed directories: a few hundred)
_MAX_DIRECTORY = 4096
_PATH_LOCK = threading.Lock()


def _stamp(path: str) -> Tuple[int, ...]:
    # size, times and identity: ctime cannot be set back (utime sets mtime only),
    # and a file swapped in place (rename) has another inode
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _cached_path(path: str) -> ServerTrust:
    try:
        stamp: Tuple[Any, ...] = _stamp(path)
        if os.path.isdir(path):
            # a file rewritten in a directory leaves the directory's own times alone
            stamp += tuple((name, _stamp(os.path.join(path, name)))
                           for name in sorted(os.listdir(path))[:_MAX_DIRECTORY])
    except OSError:
        raise FileNotFoundError(f"{path}: no such CA bundle file or directory") from None
    key = (os.path.abspath(path), stamp)
    with _PATH_LOCK:
        found = _PATH_CACHE.get(key)
    if found is None:
        found = ServerTrust.from_path(path)
        with _PATH_LOCK:
            if len(_PATH_CACHE) >= 32:
                _PATH_CACHE.clear()
            _PATH_CACHE[key] = found
    return found
