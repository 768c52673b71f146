"""A TLS 1.2 client connection whose CertificateVerify the card signs.

tlslite-ng runs the protocol (docs/tls.md says why that library); the card
only ever signs the handshake's digest, through the Card API
(:meth:`cps.card.Card.authenticate`), so the PC/SC session, the PKCS#11
backend and the emulator all work, and the PIN -- verified beforehand through
the Card API -- never reaches the TLS library.

What the client insists on, whatever the server offers:

* TLS 1.2 only: a CPS3 key signs RSA PKCS#1 v1.5 and nothing else, which
  TLS 1.3 forbids for CertificateVerify (RFC 8446 4.4.3).
* RSA PKCS#1 v1.5 with SHA-256/384/512 for the client signature; a server
  that accepts only RSA-PSS is refused before the card signs.
* ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, the extended master
  secret extension, no renegotiation (tlslite-ng does none).
* The server's chain and name, checked when its Certificate message arrives
  (:class:`~cps.tls.server_trust.ServerTrust`): before the card signs.

Sessions are kept (:class:`SessionCache`) and resumed, keyed by server, trust
anchors and card certificate: a series of connections costs one card
signature, not one each.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import ipaddress
import secrets
import select
import socket
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .._extras import require
from ..card import DIGEST_INFO_PREFIXES, KeyRole
from ..errors import (
    CardError,
    CardRemoved,
    CardReset,
    CpsError,
    NoCard,
    ReaderError,
    ServerCertificateError,
    TlsError,
)
from .server_trust import ServerTrust, VerifiedServer

if TYPE_CHECKING:
    from ..card import Card

__all__ = ["TlsSettings", "HandshakeInfo", "TlsConnection", "SessionCache", "TlsRecordError",
           "connect", "normalise_host"]

def _tlslite() -> Any:
    # tlslite-ng's package imports its asyncore integration, deprecated since
    # Python 3.6: a warning about a module we never use, not for our users' logs
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*asyncore")
        return require("tlslite", "tls", "tlslite-ng")


# tlslite-ng's names for what the card can do
_HASHES = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class TlsSettings:
    """What the client offers. The defaults are what a CPS3 card allows, with
    modern ciphers; narrowing them is fine, widening them past the card's
    abilities is refused (:meth:`check`).

    :param hashes: hashes for the RSA PKCS#1 v1.5 client signature, preferred first.
    :param ciphers: tlslite-ng cipher names (AEAD only).
    :param groups: ECDHE groups, preferred first.
    :param timeout: seconds for the TCP connection and each read.
    :param require_extended_master_secret: refuse servers without RFC 7627's
        extension (protects client authentication from the triple-handshake
        attack; nearly every server has it since 2015).
    """

    hashes: Tuple[str, ...] = _HASHES
    ciphers: Tuple[str, ...] = ("aes256gcm", "aes128gcm", "chacha20-poly1305")
    groups: Tuple[str, ...] = ("x25519", "secp256r1", "secp384r1")
    timeout: float = 30.0
    require_extended_master_secret: bool = True

    def check(self) -> None:
        """:raises ValueError: a hash the card cannot sign with, a non-AEAD cipher,
        an empty list or a timeout that is not positive."""
        if not self.hashes or any(h not in _HASHES for h in self.hashes):
            raise ValueError(f"hashes must be among {_HASHES}")
        if not self.ciphers or any(c not in ("aes256gcm", "aes128gcm", "chacha20-poly1305")
                                   for c in self.ciphers):
            raise ValueError("ciphers must be among aes256gcm, aes128gcm, chacha20-poly1305")
        if not self.groups or any(g not in ("x25519", "secp256r1", "secp384r1", "x448")
                                  for g in self.groups):
            raise ValueError("groups must be among x25519, secp256r1, secp384r1, x448")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")

    def handshake_settings(self) -> Any:
        """The tlslite-ng ``HandshakeSettings`` these settings make."""
        self.check()
        tlslite = _tlslite()
        settings = tlslite.HandshakeSettings()
        settings.minVersion = (3, 3)
        settings.maxVersion = (3, 3)
        settings.versions = [(3, 3)]
        settings.rsaSchemes = ["pkcs1"]
        settings.rsaSigHashes = list(self.hashes)
        settings.ecdsaSigHashes = list(self.hashes)
        settings.dsaSigHashes = []
        settings.more_sig_schemes = []
        settings.cipherNames = list(self.ciphers)
        settings.macNames = ["aead"]
        settings.keyExchangeNames = ["ecdhe_rsa", "ecdhe_ecdsa"]
        settings.eccCurves = list(self.groups)
        settings.keyShares = []
        settings.dhGroups = []
        settings.useExtendedMasterSecret = True
        settings.requireExtendedMasterSecret = self.require_extended_master_secret
        settings.useEncryptThenMAC = False      # no CBC suites offered
        settings.use_heartbeat_extension = False
        return settings


@dataclass(frozen=True)
class HandshakeInfo:
    """What a handshake negotiated."""

    #: ``host:port``
    address: str
    #: ``"TLS 1.2"``
    version: str
    #: tlslite-ng's cipher name, e.g. ``"aes256gcm"``
    cipher: str
    #: the scheme the card signed with, e.g. ``"rsa_pkcs1_sha256"``; ``None``
    #: when the handshake resumed a session (nothing signed) or the server did
    #: not ask for a certificate
    signature_scheme: Optional[str]
    #: the server asked for a client certificate (on a resumed session: did at the first one)
    client_certificate_requested: bool
    #: an earlier session was resumed (no card signature)
    resumed: bool
    #: the server's verified chain, its certificate first (on a resumed
    #: session: the chain verified when the session was made)
    server: VerifiedServer = field(repr=False, compare=False)


class TlsRecordError(TlsError, OSError):
    """The established connection broke: a bad record, an alert from the peer,
    an oversized record... (``reason`` ``"record"``). Also an ``OSError``, so
    that HTTP libraries (http.client, urllib3, requests) report it as the broken
    connection it is."""

    def __init__(self, message: str, *, host: str = "") -> None:
        TlsError.__init__(self, message, reason="record", host=host)


class SessionCache:
    """TLS sessions to resume, keyed by (server, trust anchors, card certificate).

    Thread-safe; at most ``size`` sessions, least recently used first out, each
    kept at most ``lifetime`` seconds (servers keep theirs a few minutes to a
    day; an expired one merely costs a full handshake).
    """

    def __init__(self, size: int = 64, lifetime: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1 or lifetime <= 0:
            raise ValueError("size must be >= 1 and lifetime > 0")
        self._size, self._lifetime, self._clock = size, lifetime, clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Tuple[str, ...], Tuple[float, Any, "_Remembered"]] = \
            OrderedDict()

    def get(self, key: Tuple[str, ...]) -> Optional[Tuple[Any, "_Remembered"]]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            made, session, remembered = entry
            if self._clock() - made > self._lifetime or not session.valid():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return session, remembered

    def put(self, key: Tuple[str, ...], session: Any, remembered: "_Remembered") -> None:
        with self._lock:
            self._entries[key] = (self._clock(), session, remembered)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, card_key: Optional[str] = None) -> None:
        """Drop every session (of one card certificate, when given)."""
        with self._lock:
            if card_key is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[-1] == card_key]:
                    del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass(frozen=True)
class _Remembered:
    # what a resumed handshake cannot show again
    server: VerifiedServer
    client_certificate_requested: bool


class TlsConnection:
    """An established TLS connection authenticated with the card.

    A socket-like object (``sendall``, ``recv``, ``makefile``, ``settimeout``,
    ``close``) for ``http.client`` and friends; :attr:`info` says what was
    negotiated.
    """

    def __init__(self, tls: Any, info: HandshakeInfo,
                 raw: Optional[socket.socket] = None) -> None:
        self._tls = tls
        self._raw = raw
        #: what the handshake negotiated
        self.info = info
        # like a socket's makefile(): an open reader keeps the connection alive
        # after close() (http.client closes its connection before reading a
        # body it will read to the end)
        self._readers = 0
        self._close_pending = False
        self._lock = threading.Lock()

    def sendall(self, data: bytes) -> None:
        with self._typed():
            self._tls.sendall(data)

    def send(self, data: bytes) -> int:
        with self._typed():
            return int(self._tls.send(data))

    def dropped(self) -> bool:
        """The peer closed (or sent something) while the connection was idle:
        not to be reused (what urllib3 checks before reusing a connection)."""
        if self._raw is None or self._raw.fileno() < 0:
            return True
        try:
            readable, _, _ = select.select([self._raw], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    @contextlib.contextmanager
    def _typed(self) -> Iterator[None]:
        from tlslite.errors import BaseTLSException

        try:
            yield
        except BaseTLSException as exc:
            raise TlsRecordError(f"{self.info.address}: the TLS connection broke "
                                 f"({type(exc).__name__}: {exc})",
                                 host=self.info.address) from None

    def recv(self, size: int) -> bytes:
        return self._read(size)

    def recv_into(self, buffer: Any) -> int:
        data = self._read(len(buffer))
        size = len(data)
        buffer[:size] = data
        return size  # 0 at the end (tlslite-ng's own recv_into says None: "would block")

    def _read(self, size: int) -> bytes:
        from tlslite.errors import TLSAbruptCloseError

        try:
            with self._typed():
                try:
                    return bytes(self._tls.read(size))
                except TLSAbruptCloseError:
                    # A peer that closes without close_notify: the end, as Python's
                    # ssl module treats it (suppress_ragged_eofs); HTTP's own framing
                    # (Content-Length, chunked) is what tells a truncated answer.
                    return b""
        except socket.timeout:
            raise  # a timeout stays one (http.client and urllib3 know it)


    def makefile(self, mode: str = "rb", buffering: int = -1) -> io.BufferedReader:
        """A buffered binary reader (what ``http.client`` reads responses with)."""
        if mode not in ("r", "rb"):
            raise ValueError("TlsConnection.makefile reads only: use sendall to write")
        with self._lock:
            self._readers += 1
        return io.BufferedReader(_Reader(self), buffering if buffering > 0 else 16384)

    def settimeout(self, value: Optional[float]) -> None:
        self._tls.settimeout(value)

    def fileno(self) -> int:
        return int(self._tls.fileno())

    def close(self) -> None:
        """Send close_notify (keeps the session resumable) and close the socket
        -- once the readers :meth:`makefile` gave are closed."""
        with self._lock:
            if self._readers:
                self._close_pending = True
                return
        self._close_now()

    def _release_reader(self) -> None:
        with self._lock:
            self._readers -= 1
            ready = self._readers == 0 and self._close_pending
        if ready:
            self._close_now()

    def _close_now(self) -> None:
        try:
            self._tls.close()
        except (OSError, CpsError, Exception):  # noqa: BLE001 - closing a dead peer
            try:
                self._tls.sock.close()
            except OSError:
                pass

    def __enter__(self) -> "TlsConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (f"TlsConnection({i.address}, {i.version}, {i.cipher}, "
                f"{'resumed' if i.resumed else i.signature_scheme or 'no client auth'})")


class _Reader(io.RawIOBase):
    def __init__(self, connection: TlsConnection) -> None:
        super().__init__()
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._connection.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._connection._release_reader()


#: the cache :func:`connect` uses when given none
DEFAULT_SESSIONS = SessionCache()

# One random token per open Card object: part of the session cache key, so a
# session is resumed only by the card session that made it (a card reopened,
# or another Card object, signs anew). A weak mapping: an entry goes with its
# card, and a new object reusing the memory gets a token of its own (never id()).
_CARD_TOKENS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()
_CARD_TOKENS_LOCK = threading.Lock()


def _card_session(card: "Card") -> str:
    with _CARD_TOKENS_LOCK:
        token = _CARD_TOKENS.get(card)
        if token is None:
            token = _CARD_TOKENS[card] = secrets.token_hex(16)
    return f"{token}/{getattr(card, 'login_generation', 0)}"


def normalise_host(host: str) -> str:
    """The name a server is checked, named (SNI) and cached under: lower case,
    no trailing dot, internationalised labels as A-labels (``xn--``), IPv6
    without brackets.

    :raises ValueError: not a host name or an IP address.
    """
    if not isinstance(host, str) or not host:
        raise ValueError("host must be a non-empty str")
    name = host.strip("[]") if host.startswith("[") else host
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if name.endswith("."):
        name = name[:-1]
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"not a valid host name: {host!r}") from None
    if not ascii_name or any(c in ascii_name for c in "/\\@:?#% \t\r\n"):
        raise ValueError(f"not a valid host name: {host!r}")
    return ascii_name


class _DeadlineSocket:
    """A socket whose every receive waits at most until a deadline: a peer that
    trickles its handshake one byte at a time is cut off when the whole
    handshake (not each read) has taken the allowed time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: Optional[float] = None

    def _arm(self) -> None:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("the handshake took too long")
            self._sock.settimeout(left)

    def recv(self, size: int) -> bytes:
        self._arm()
        return self._sock.recv(size)

    def recv_into(self, buffer: Any, size: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, size)

    def send(self, data: bytes) -> int:
        self._arm()
        return self._sock.send(data)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def card_key(card: "Card") -> Tuple[x509.Certificate, str]:
    """The card's TLS certificate (authentication; technical on the contactless
    interface) and the digest that keys its sessions."""
    role = KeyRole.TECH if card.contactless else KeyRole.AUTH
    cert = card.certificate(role)
    return cert, hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def connect(card: "Card", host: str, port: int = 443, *, trust: ServerTrust,
            settings: Optional[TlsSettings] = None, sessions: Optional[SessionCache] = None,
            sock: Optional[socket.socket] = None, resume: bool = True) -> TlsConnection:
    """Open a TLS 1.2 connection to ``host`` authenticated with the card.

    The card's PIN must have been verified (:meth:`cps.card.Card.verify_pin`)
    when the server asks for a certificate; the card signs once per full
    handshake, never on a resumed one.

    :param card: an open card (PC/SC, PKCS#11 or emulated).
    :param host: the server's name, checked against its certificate (and sent as SNI).
    :param port: the TCP port.
    :param trust: the anchors the server's certificate must chain to.
    :param settings: :class:`TlsSettings` (defaults: what a CPS3 allows).
    :param sessions: where sessions are kept and resumed (default: one per process).
    :param sock: an already connected socket (e.g. through a proxy's CONNECT).
    :param resume: offer a kept session.
    :raises ServerCertificateError: the server's certificate or name (the card
        signed nothing).
    :raises TlsError: the handshake failed (``reason`` says why), or the network.
    :raises CardError: the card refused to sign (PIN not verified:
        :class:`~cps.errors.SecurityStatusNotSatisfied`).
    :raises ReaderError: the card was removed or the reader is gone.
    """
    host = normalise_host(host)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("port must be an int in 1..65535")
    if not isinstance(trust, ServerTrust):
        raise TypeError("trust must be a cps.tls.ServerTrust")
    settings = settings or TlsSettings()
    hs_settings = settings.handshake_settings()
    tlslite = _tlslite()
    sessions = DEFAULT_SESSIONS if sessions is None else sessions
    cert, ckey = card_key(card)
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cache_key = (host, str(port), trust.key, _card_session(card), ckey)
    if resume:
        # a session is the practitioner's presence: not resumed for a card that left
        try:
            card.check_present()
        except (CardRemoved, CardReset, NoCard):
            sessions.forget(ckey)
            if sock is not None:  # the caller's socket is ours once given
                sock.close()
            raise

    if sock is None:
        try:
            sock = socket.create_connection((host, port), timeout=settings.timeout)
        except socket.timeout:
            raise TlsError(f"{server}: connection timed out", reason="timeout",
                           host=server) from None
        except OSError as exc:
            raise TlsError(f"{server}: cannot connect ({exc.strerror or exc})",
                           reason="connect", host=server) from None
    sock.settimeout(settings.timeout)
    try:  # small TLS records written one by one must not wait for delayed ACKs
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    timed = _DeadlineSocket(sock)
    timed.deadline = time.monotonic() + settings.timeout   # the whole handshake
    tls = _connection_class(tlslite)(timed)
    tls._cps_trust = trust
    tls._cps_host = host
    tls._cps_failure = None
    key = _CardKey(card, cert, tls)
    leaf = tlslite.X509()
    leaf.parseBinary(bytearray(cert.public_bytes(Encoding.DER)))
    chain = tlslite.X509CertChain([leaf])
    kept = sessions.get(cache_key) if resume else None
    sni = host if not _is_ip(host) else None
    try:
        tls.handshakeClientCert(chain, key, session=kept[0] if kept else None,
                                settings=hs_settings, serverName=sni)
    except BaseException as exc:
        _close_quietly(tls, sock)
        raise _handshake_error(exc, tls, key, server) from None
    timed.deadline = None       # from now on, each read waits the socket's timeout
    sock.settimeout(settings.timeout)

    if tls.resumed and kept is not None:
        remembered = kept[1]
        scheme = None
    else:
        verified = tls._cps_verified
        if verified is None:  # an anonymous or PSK suite would land here: never offered
            _close_quietly(tls, sock)
            raise TlsError(f"{server}: the server sent no certificate", reason="handshake",
                           host=server)
        remembered = _Remembered(verified, key.requested)
        scheme = key.scheme
    if tls.session is not None and tls.session.valid():
        sessions.put(cache_key, tls.session, remembered)
    info = HandshakeInfo(address=server, version="TLS 1.2", cipher=str(tls.getCipherName()),
                         signature_scheme=scheme,
                         client_certificate_requested=remembered.client_certificate_requested,
                         resumed=bool(tls.resumed), server=remembered.server)
    return TlsConnection(tls, info, sock)


# -- the tlslite-ng side --------------------------------------------------------------

_CLASSES: dict[str, type] = {}


def _connection_class(tlslite: Any) -> type:
    """tlslite-ng's TLSConnection, checking the server's certificate as soon as
    it arrives (tlslite-ng's own ``checker`` runs after the handshake, by which
    time the card would have signed)."""
    made = _CLASSES.get("connection")
    if made is not None:
        return made
    from tlslite.constants import AlertDescription, CipherSuite
    from tlslite.recordlayer import RecordLayer

    class FastRecordLayer(RecordLayer):  # type: ignore[misc]
        # tlslite-ng's AES-GCM and ChaCha20-Poly1305 are pure Python (a few
        # hundred KB/s): the record protection is cryptography's instead (OpenSSL).
        @staticmethod
        def _getCipherSettings(cipherSuite: int) -> Any:  # noqa: N802, N803 - tlslite's names
            if cipherSuite in CipherSuite.aes256GcmSuites:
                return 32, 4, _aead_factory("aes256gcm")
            if cipherSuite in CipherSuite.aes128GcmSuites:
                return 16, 4, _aead_factory("aes128gcm")
            if cipherSuite in CipherSuite.chacha20Suites:
                return 32, 12, _aead_factory("chacha20-poly1305")
            return RecordLayer._getCipherSettings(cipherSuite)

    class CardTLSConnection(tlslite.TLSConnection):  # type: ignore[misc]
        _cps_verified: Optional[VerifiedServer] = None

        def __init__(self, sock: socket.socket) -> None:
            super().__init__(sock)
            fast = FastRecordLayer(self.sock)  # tlslite-ng's buffered socket
            fast.client = True
            self._recordLayer: Any = fast

        def _clientGetKeyFromChain(self, certificate: Any, settings: Any,
                                   tack_ext: Any = None) -> Iterator[Any]:
            result: Any = None
            for result in super()._clientGetKeyFromChain(certificate, settings, tack_ext):
                if result in (0, 1):
                    yield result
                else:
                    break
            certs = [bytes(c.bytes) for c in certificate.cert_chain.x509List]
            try:
                self._cps_verified = self._cps_trust.verify(self._cps_host, certs[0], certs[1:])
            except ServerCertificateError as exc:
                self._cps_failure = exc
                for alert in self._sendError(AlertDescription.bad_certificate, str(exc)):
                    yield alert
            yield result

    _CLASSES["connection"] = CardTLSConnection
    return CardTLSConnection


class _Aead:
    """An AEAD with tlslite-ng's interface, computed by cryptography (OpenSSL)."""

    isBlockCipher = False
    isAEAD = True
    nonceLength = 12
    tagLength = 16
    implementation = "cryptography"

    def __init__(self, name: str, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

        self.name = name
        self.key = key
        self._aead = (ChaCha20Poly1305 if name == "chacha20-poly1305" else AESGCM)(bytes(key))

    def seal(self, nonce: bytes, plaintext: bytes, data: bytes) -> bytearray:
        return bytearray(self._aead.encrypt(bytes(nonce), bytes(plaintext), bytes(data)))

    def open(self, nonce: bytes, ciphertext: bytes, data: bytes) -> Optional[bytearray]:
        from cryptography.exceptions import InvalidTag

        if len(ciphertext) < self.tagLength:
            return None
        try:
            return bytearray(self._aead.decrypt(bytes(nonce), bytes(ciphertext), bytes(data)))
        except InvalidTag:
            return None  # tlslite-ng's convention: it sends bad_record_mac


def _aead_factory(name: str) -> Callable[[bytes, Any], _Aead]:
    def make(key: bytes, implementations: Any = None) -> _Aead:
        return _Aead(name, key)
    return make


class _CardKey:
    """The card's authentication key as tlslite-ng sees an RSA private key.

    Only :meth:`sign` reaches the card (INTERNAL AUTHENTICATE of the
    DigestInfo tlslite-ng built: a PKCS#1 v1.5 signature); :meth:`verify`
    checks the result with the certificate's public key.
    """

    key_type = "rsa"

    def __init__(self, card: "Card", cert: x509.Certificate, connection: Any) -> None:
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise TlsError("the card's certificate does not hold an RSA key",
                           reason="handshake")
        self._card, self._public, self._connection = card, public, connection
        self.n = public.public_numbers().n
        self.e = public.public_numbers().e
        #: set once the card signed: the scheme used
        self.scheme: Optional[str] = None
        self.requested = False
        self.card_error: Optional[BaseException] = None

    def __len__(self) -> int:
        return int(self._public.key_size)

    def hasPrivateKey(self) -> bool:  # noqa: N802 - tlslite-ng's name
        return True

    def sign(self, data: bytes, padding: str = "pkcs1", hashAlg: Optional[str] = None,  # noqa: N803
             saltLen: Optional[int] = None) -> bytearray:  # noqa: N803
        self.requested = True
        if padding != "pkcs1" or hashAlg is not None:
            # tlslite-ng hands PKCS#1 v1.5 payloads already wrapped in a DigestInfo
            raise TlsError("the card signs RSA PKCS#1 v1.5 only", reason="no-signature-scheme")
        payload = bytes(data)
        name = _digest_info_hash(payload)
        if name is None:
            raise TlsError("unexpected payload to sign", reason="handshake")
        try:
            signature = self._card.authenticate(payload)
        except BaseException as exc:
            self.card_error = exc
            raise
        self.scheme = f"rsa_pkcs1_{name}"
        return bytearray(signature)

    def verify(self, sigBytes: bytes, data: bytes, padding: str = "pkcs1",  # noqa: N803
               hashAlg: Optional[str] = None, saltLen: Optional[int] = None) -> bool:  # noqa: N803
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import padding as pad

        payload = bytes(data)
        if _digest_info_hash(payload) is None:
            return False
        try:  # the PKCS#1 v1.5 block's content: the very DigestInfo the card was given
            recovered = self._public.recover_data_from_signature(bytes(sigBytes),
                                                                 pad.PKCS1v15(), None)
        except InvalidSignature:
            return False
        return hmac.compare_digest(recovered, payload)

    def __repr__(self) -> str:
        return f"<card key, RSA-{len(self)}>"


# DER DigestInfo prefixes (RFC 8017 9.2 note 1): the card's own table for SHA-256,
# the two longer hashes TLS may ask for
_DIGEST_INFO = {
    "sha256": DIGEST_INFO_PREFIXES["sha256"],
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _digest_info_hash(payload: bytes) -> Optional[str]:
    """The hash a DER DigestInfo of one of :data:`_DIGEST_INFO` names, else ``None``."""
    for name, prefix in _DIGEST_INFO.items():
        if payload.startswith(prefix) and \
                len(payload) == len(prefix) + hashlib.new(name).digest_size:
            return name
    return None


def _is_ip(host: str) -> bool:
    """``host`` (normalised: no brackets) is an IP address (no SNI for those)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _close_quietly(tls: Any, sock: socket.socket) -> None:
    try:
        tls.sock.close()
    except Exception:  # noqa: BLE001, S110 - the error that matters is being raised
        pass
    try:
        sock.close()
    except OSError:
        pass


def _handshake_error(exc: BaseException, tls: Any, key: _CardKey, server: str) -> BaseException:
    """The typed error for a failed handshake (the most precise cause first)."""
    from tlslite.errors import (
        TLSAbruptCloseError,
        TLSLocalAlert,
        TLSRemoteAlert,
    )

    if tls._cps_failure is not None:
        failure: BaseException = tls._cps_failure
        return failure
    if key.card_error is not None:
        return key.card_error if isinstance(key.card_error, (CardError, ReaderError, CpsError)) \
            else TlsError(f"{server}: the card could not sign ({key.card_error!r})",
                          reason="card", host=server)
    if isinstance(exc, TlsError):
        exc.host = exc.host or server
        return exc
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return exc
    text = str(exc)
    if isinstance(exc, TLSRemoteAlert):
        if "protocol_version" in text:
            return TlsError(f"{server} refuses TLS 1.2 (it wants TLS 1.3, which a CPS3 "
                            f"card cannot do): {text}", reason="protocol-version", host=server)
        return TlsError(f"{server} refused the handshake: {text}", reason="handshake",
                        host=server)
    if isinstance(exc, TLSLocalAlert):
        if "sigalgs" in text or "signature" in text.lower() and "accept" in text:
            return TlsError(f"{server} accepts no RSA PKCS#1 v1.5 client signature (the "
                            f"only kind a CPS3 card makes): {text}",
                            reason="no-signature-scheme", host=server)
        if "protocol_version" in text or "version" in text.lower():
            return TlsError(f"{server}: no common TLS version (the card needs TLS 1.2): "
                            f"{text}", reason="protocol-version", host=server)
        return TlsError(f"{server}: handshake aborted: {text}", reason="handshake",
                        host=server)
    if isinstance(exc, TLSAbruptCloseError):
        return TlsError(f"{server} closed the connection during the handshake",
                        reason="closed", host=server)
    if isinstance(exc, socket.timeout):
        return TlsError(f"{server}: the handshake timed out", reason="timeout", host=server)
    if isinstance(exc, OSError):
        return TlsError(f"{server}: network error during the handshake ({exc})",
                        reason="connect", host=server)
    return TlsError(f"{server}: handshake failed ({type(exc).__name__}: {text})",
                    reason="handshake", host=server)
