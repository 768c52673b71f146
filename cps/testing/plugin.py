"""The ``cps`` pytest plugin: emulated CPS cards for anyone's test suite.

Installed with the package (entry point ``pytest11``), so a project that
depends on ``cps`` gets these fixtures with no configuration:

``cps_pki``            the test PKI (session scope, in a temporary directory)
``cps_card_factory``   ``factory(profile="cps3-medecin", pin=None, puk=None)`` -> EmulatedCard
``cps_emulated_card``  an emulated card; profile via ``@pytest.mark.cps_profile("...")``
                       or indirect parametrisation
``cps_connection``     an in-process Connection to ``cps_emulated_card``
``cps_pcscd``          the system pcscd, started when it is not running
``cps_vpcd_card``      ``cps_emulated_card`` served through pcscd (reader
                       ``Virtual PCD 00 00``); yields the card, its
                       ``attachment`` attribute names the reader
``cps_softhsm_token``  a SoftHSM2 token holding ``cps_emulated_card``'s keys and
                       certificates under the ANS Cryptolib labels
``cps_cps4_card``      an emulated CPS4 (profile ``cps4-medecin``, or a ``cps4-*`` profile
                       named by ``@pytest.mark.cps_profile``): its ATR is a CPS4's and
                       it answers no IAS-ECC command
``cps_softhsm_cps4``   a SoftHSM2 token laid out as the ANS Cryptolib 5.2 shows a real
                       CPS4v1 (label ``CPS4v1-<n>``, key ids ...10/...20, six-year
                       certificates, RSA-PSS offered) with ``cps_cps4_card``'s keys
``cps_pki_server``     ``(pki, server)``: the test PKI's CRLs, OCSP and CA certificates
                       over real HTTP on 127.0.0.1
``cps_pki_ldap``       a real slapd on 127.0.0.1 publishing the test PKI's CA
                       certificates and CRLs (delta CRLs included), like IGC-Santé's
                       directory
``cps_tsa``            a started :class:`cps.testing.tsa.TsaServer`: an RFC 3161
                       Time-Stamping Authority of ``cps_pki`` over real HTTP on
                       127.0.0.1 (``.url``; ``.clock`` sets the genTime, ``.faults``
                       makes it misbehave); one per test
``cps_tls_server``     ``ServerCredentials`` of the test PKI for ``localhost`` and
                       ``127.0.0.1`` (STANDARD ORGANISATIONS), session scope
``cps_openssl_server`` ``start(client_ca=None, **options)`` -> a started
                       :class:`cps.testing.tlspeers.OpensslServer` (``openssl s_server
                       -www``) with ``cps_tls_server``; ``client_ca`` defaults to every
                       CA of ``cps_pki``; all are stopped at teardown
``cps_nginx``          ``start(client_ca=None, **options)`` -> a started
                       :class:`cps.testing.tlspeers.Nginx` (HTTPS with client
                       certificates, ``upstream=`` behind ``/``, ``/whoami-raw``), the same way

See docs/emulator.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Tuple, TypeVar

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

    from cps.connection import Connection
    from cps.emulator.card import EmulatedCard
    from cps.emulator.pki import ServerCredentials, TestPKI
    from cps.emulator.softhsm import SoftHsmToken
    from cps.testing.pkiserver import PkiServer
    from cps.testing.slapd import Slapd
    from cps.testing.tlspeers import Nginx, OpensslServer, TlsPeer
    from cps.testing.tsa import TsaServer

DEFAULT_PROFILE = "cps3-medecin"
DEFAULT_CPS4_PROFILE = "cps4-medecin"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cps_profile(name): emulated card profile for cps fixtures")


@pytest.fixture(scope="session")
def cps_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """The emulator's test PKI (seed 1), generated once per session."""
    from cps.emulator.pki import TestPKI

    directory = os.environ.get("CPS_TEST_PKI_DIR") or str(tmp_path_factory.mktemp("cps-pki"))
    return TestPKI.generate(directory, seed=1)


@pytest.fixture
def cps_card_factory(cps_pki: TestPKI) -> Callable[..., EmulatedCard]:
    """Build emulated cards: ``factory("cps3-pharmacien", pin=None, puk=None)``."""
    from cps.emulator.card import EmulatedCard

    def factory(profile: str = DEFAULT_PROFILE, pin: Optional[str] = None,
                puk: Optional[str] = None) -> EmulatedCard:
        return EmulatedCard.from_profile(profile, pki=cps_pki, pin=pin, puk=puk)

    return factory


@pytest.fixture
def cps_emulated_card(request: pytest.FixtureRequest,
                      cps_card_factory: Callable[..., EmulatedCard]) -> EmulatedCard:
    """A fresh emulated card (profile from indirect parametrisation or ``cps_profile`` mark)."""
    profile = getattr(request, "param", None)
    if profile is None:
        marker = request.node.get_closest_marker("cps_profile")
        profile = marker.args[0] if marker else DEFAULT_PROFILE
    return cps_card_factory(profile)


@pytest.fixture
def cps_connection(cps_emulated_card: EmulatedCard) -> Iterator[Connection]:
    """An in-process connection to ``cps_emulated_card`` (no pcscd involved)."""
    with cps_emulated_card.connection() as conn:
        yield conn


@pytest.fixture(scope="session")
def cps_pcscd() -> None:
    """Make sure the machine's pcscd runs (start it as root when it does not); fail otherwise."""
    # pgrep from PATH, as a shell would find it: a test-machine tool, no input of ours
    if subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0:  # noqa: S607
        return
    pcscd = shutil.which("pcscd")
    if os.geteuid() == 0 and pcscd:
        os.makedirs("/run/pcscd", exist_ok=True)
        subprocess.run([pcscd], check=True)
        for _ in range(100):
            if os.path.exists("/run/pcscd/pcscd.comm"):
                return
            time.sleep(0.05)
    pytest.fail("pcscd is not running and could not be started")


@pytest.fixture
def cps_vpcd_card(cps_pcscd: None, cps_emulated_card: EmulatedCard) -> Iterator[EmulatedCard]:
    """``cps_emulated_card`` plugged into pcscd through vsmartcard-vpcd.

    The vpcd port (35963: ``Virtual PCD 00 00``) can be changed with the
    ``CPS_VPCD_PORT`` environment variable (35964: ``Virtual PCD 00 01``).
    """
    port = int(os.environ.get("CPS_VPCD_PORT", "35963"))
    with cps_emulated_card.serve_vpcd(port=port) as attachment:
        cps_emulated_card.attachment = attachment
        yield cps_emulated_card


@pytest.fixture
def cps_softhsm_token(cps_emulated_card: EmulatedCard,
                      tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    """A SoftHSM2 token with the same keys, certificates and PIN as ``cps_emulated_card``.

    Pass ``token.env()`` to subprocesses; ``token.open()`` gives a python-pkcs11 session.
    """
    from cps.emulator.softhsm import provision_softhsm

    return provision_softhsm(cps_emulated_card, tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def cps_cps4_card(request: pytest.FixtureRequest,
                  cps_card_factory: Callable[..., EmulatedCard]) -> EmulatedCard:
    """A fresh emulated CPS4: ``cps4-medecin``, or the ``cps4-*`` profile of a
    ``cps_profile`` mark (a CPS3 profile there is for the other fixtures, not this one)."""
    marker = request.node.get_closest_marker("cps_profile")
    named = marker.args[0] if marker else ""
    return cps_card_factory(named if named.startswith("cps4-") else DEFAULT_CPS4_PROFILE)


@pytest.fixture
def cps_softhsm_cps4(cps_cps4_card: EmulatedCard,
                     tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    """A SoftHSM2 token with ``cps_cps4_card``'s keys, certificates and PIN, laid out
    as the ANS Cryptolib 5.2 shows a real CPS4v1 card (docs/emulator.md, "CPS4 token
    (SoftHSM2)"). Open it with ``cps.pkcs11.Pkcs11Card.open(module=token.module,
    token_label=token.token_label)`` after ``token.get_token()``."""
    from cps.emulator.softhsm import provision_softhsm

    return provision_softhsm(cps_cps4_card, tmp_path_factory.mktemp("softhsm-cps4"))


@pytest.fixture(scope="session")
def cps_pki_server(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Tuple[TestPKI, PkiServer]]:
    """``(pki, server)``: a test PKI whose CRL/OCSP/caIssuers URLs point at a real
    HTTP server on 127.0.0.1 (complete and delta CRLs, OCSP by POST and GET)."""
    from cps.testing.pkiserver import serve_test_pki

    with serve_test_pki(tmp_path_factory.mktemp("cps-pki-online")) as (pki, server):
        yield pki, server


@pytest.fixture(scope="session")
def cps_pki_ldap(cps_pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A real slapd on 127.0.0.1 publishing the test PKI's CA certificates and CRLs
    (complete and delta) the way IGC-Santé's directory does; see
    :class:`cps.testing.slapd.Slapd` (``crl_url(pki, ca_name, delta=True)``)."""
    from cps.testing.slapd import Slapd

    with Slapd.for_test_pki(cps_pki, tmp_path_factory.mktemp("cps-pki-ldap")) as server:
        yield server


@pytest.fixture
def cps_tsa(cps_pki: TestPKI) -> Iterator[TsaServer]:
    """A started RFC 3161 TSA signing with ``cps_pki.issue_tsa()`` (TEST AC IGC-SANTE
    STANDARD ORGANISATIONS): ``POST <.url>`` with ``application/timestamp-query``.
    Function scope: tests change its ``clock`` (genTime) and ``faults`` freely."""
    from cps.testing.tsa import TsaServer

    with TsaServer(cps_pki) as server:
        yield server


@pytest.fixture(scope="session")
def cps_tls_server(cps_pki: TestPKI) -> ServerCredentials:
    """A TLS server certificate of ``cps_pki`` for ``localhost`` and ``127.0.0.1``,
    issued by TEST AC IGC-SANTE STANDARD ORGANISATIONS, with its key."""
    return cps_pki.issue_server(("localhost", "127.0.0.1"))


def _all_cas(pki: TestPKI) -> list[x509.Certificate]:
    return list(pki.roots.values()) + list(pki.intermediates.values())


_Peer = TypeVar("_Peer", bound="TlsPeer")


def _peers(kind: Callable[..., _Peer], name: str, pki: TestPKI, server: ServerCredentials,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., _Peer]]:
    """The ``start`` function of a TLS peer fixture; stops every peer it started."""
    started: list[_Peer] = []

    def start(client_ca: Optional[Sequence[x509.Certificate]] = None, *,
              credentials: Optional[ServerCredentials] = None, **options: Any) -> _Peer:
        peer = kind(credentials or server, _all_cas(pki) if client_ca is None else client_ca,
                    directory=tmp_path_factory.mktemp(name), **options)
        started.append(peer)
        peer.start()
        return peer

    try:
        yield start
    finally:
        for peer in started:
            peer.stop()


@pytest.fixture
def cps_openssl_server(cps_pki: TestPKI, cps_tls_server: ServerCredentials,
                       tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Callable[..., OpensslServer]]:
    """``start(client_ca=None, *, credentials=None, **options)``: a started
    ``openssl s_server -www`` on 127.0.0.1 (options of
    :class:`cps.testing.tlspeers.OpensslServer`: ``versions``, ``client_sigalgs``,
    ``require_client_cert``...). ``client_ca`` defaults to every CA of ``cps_pki``,
    ``credentials`` to ``cps_tls_server``. Each runs in a directory of its own that
    outlives it (its log stays readable); all are stopped at teardown."""
    from cps.testing.tlspeers import OpensslServer

    yield from _peers(OpensslServer, "s_server", cps_pki, cps_tls_server, tmp_path_factory)


@pytest.fixture
def cps_nginx(cps_pki: TestPKI, cps_tls_server: ServerCredentials,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Nginx]]:
    """``start(client_ca=None, *, credentials=None, **options)``: a started nginx
    (options of :class:`cps.testing.tlspeers.Nginx`: ``upstream``, ``protocols``,
    ``client_sigalgs``, ``verify_client``...), with the defaults of
    :func:`cps_openssl_server`; all are stopped at teardown."""
    from cps.testing.tlspeers import Nginx

    yield from _peers(Nginx, "nginx", cps_pki, cps_tls_server, tmp_path_factory)
