"""cps.trust.fetch against a real HTTP server on 127.0.0.1 (cps.testing.pkiserver)."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from cps.errors import RevocationUnavailable
from cps.testing.pkiserver import PkiServer, serve_test_pki
from cps.trust import Validator
from cps.trust.fetch import Fetcher, crl_update_times, latest_publication

PARIS = ZoneInfo("Europe/Paris")


class FakeClock:
    """A settable clock for Fetcher(clock=...)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def pki_env(tmp_path_factory):
    with serve_test_pki(tmp_path_factory.mktemp("pki")) as (pki, server):
        yield pki, server


@pytest.fixture
def day(pki_env) -> datetime:
    """Midnight (Paris) of a fixed day after the PKI's reference time."""
    pki, _ = pki_env
    return datetime(pki.reference_time.year, 3, 10, tzinfo=PARIS)


@pytest.fixture
def server(pki_env, day):
    """The module's server, reset: no faults, empty log, CRLs published at 08:00 Paris."""
    _, srv = pki_env
    srv.faults.reset()
    srv.send_etag = srv.send_last_modified = True
    srv.publish(at=day + timedelta(hours=8))
    srv.clear_requests()
    yield srv
    srv.faults.reset()


@pytest.fixture
def pki(pki_env):
    return pki_env[0]


@pytest.fixture
def clock(day) -> FakeClock:
    return FakeClock(day + timedelta(hours=8, minutes=5))


def pki_crl_check(pki):
    """A ``verify_crl`` accepting the test PKI's CRLs (signed by one of its CAs)."""
    store = pki.trust_store()
    return Validator(store, revocation="off").verify_crl


@pytest.fixture
def fetcher(tmp_path, clock, pki) -> Fetcher:
    return Fetcher(cache_dir=tmp_path / "cache", clock=clock, proxies={}, timeout=5,
                   verify_crl=pki_crl_check(pki))


def crl_urls(cert: x509.Certificate) -> tuple[str, str]:
    """(CRL distribution point, freshest CRL) URLs of a card certificate."""
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    fresh = cert.extensions.get_extension_for_class(x509.FreshestCRL).value
    return cdp[0].full_name[0].value, fresh[0].full_name[0].value


def ca_issuers_url(cert: x509.Certificate) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return next(d.access_location.value for d in aia
                if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS)


def medecin_crl_url(pki) -> str:
    return crl_urls(pki.issue_card("cps3-medecin").auth_cert)[0]


def gets(server: PkiServer, url: str) -> list:
    return server.requests_for(url.split(str(server.port), 1)[1], "GET")


# --------------------------------------------------------------------------- downloads


@pytest.mark.parametrize("profile, ca_name", [("cps3-medecin", "FORT PERSONNES"),
                                              ("cps3-cpe", "STANDARD PERSONNES")])
def test_fetches_complete_and_delta_crls_from_certificate_urls(pki, server, fetcher, profile,
                                                               ca_name):
    card = pki.issue_card(profile)
    complete_url, delta_url = crl_urls(card.auth_cert)
    assert complete_url.startswith(server.base_url) and delta_url.endswith("-delta.crl")
    issuer = pki.intermediates[ca_name]
    assert card.chain[0] == issuer

    complete = fetcher.fetch_crl(complete_url)
    delta = fetcher.fetch_crl(delta_url)

    for result, url in ((complete, complete_url), (delta, delta_url)):
        assert result.source == url and not result.from_cache and result.path is not None
        assert result.path.read_bytes() == result.der
        assert result.etag and result.last_modified
        crl = x509.load_der_x509_crl(result.der)
        assert crl.issuer == issuer.subject
        assert crl.is_signature_valid(issuer.public_key())
        assert result.this_update == crl.last_update_utc
        assert result.next_update == crl.next_update_utc
    delta_crl = x509.load_der_x509_crl(delta.der)
    delta_crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    if ca_name == "FORT PERSONNES":
        old = pki.issue_card("cps3-revoked").auth_cert.serial_number
        recent = pki.issue_card("cps3-revoked-recent").auth_cert.serial_number
        complete_crl = x509.load_der_x509_crl(complete.der)
        entry = complete_crl.get_revoked_certificate_by_serial_number(old)
        assert entry is not None
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason \
            == x509.ReasonFlags.key_compromise
        assert delta_crl.get_revoked_certificate_by_serial_number(recent) is not None
        assert delta_crl.get_revoked_certificate_by_serial_number(old) is None


def test_fetch_bytes_gets_the_ca_issuers_certificate(pki, server, fetcher):
    card = pki.issue_card("cps3-medecin")
    url = ca_issuers_url(card.auth_cert)
    first = fetcher.fetch_bytes(url)
    assert first.der == card.chain[0].public_bytes(serialization.Encoding.DER)
    assert first.next_update is None
    again = fetcher.fetch_bytes(url)
    assert again.from_cache and again.der == first.der
    assert len(gets(server, url)) == 1
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_bytes(url, force=True, max_bytes=100)
    assert err.value.reason == "too-large"


def test_without_cache_every_call_downloads(pki, server, clock):
    url = medecin_crl_url(pki)
    plain = Fetcher(clock=clock, proxies={})
    assert plain.fetch_crl(url).path is None
    assert not plain.fetch_crl(url).from_cache
    assert len(gets(server, url)) == 2


def test_user_agent_and_accept_headers(pki, server, fetcher):
    url = medecin_crl_url(pki)
    fetcher.fetch_crl(url)
    headers = gets(server, url)[0].headers
    assert headers["user-agent"].startswith("cps/")
    assert "application/pkix-crl" in headers["accept"]


# --------------------------------------------------------------------------- reuse and refresh


def test_cached_crl_is_reused_without_network_until_next_update(pki, server, fetcher, clock):
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)
    assert first.next_update == server.published_at + timedelta(days=1)
    clock.advance(hours=10)  # 18:05 Paris: before nextUpdate and before tomorrow's 07:00
    second = fetcher.fetch_crl(url)
    assert second.from_cache and not second.revalidated
    assert second.der == first.der and second.fetched_at == first.fetched_at
    assert len(gets(server, url)) == 1
    # A new Fetcher on the same directory (another process) reuses it too.
    other = Fetcher(cache_dir=fetcher.cache_dir, clock=clock, proxies={})
    assert other.fetch_crl(url).from_cache
    assert len(gets(server, url)) == 1


def test_conditional_request_after_next_update_gets_304(pki, server, fetcher, clock):
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)
    clock.set(first.next_update + timedelta(minutes=1))

    again = fetcher.fetch_crl(url)

    requests = gets(server, url)
    assert len(requests) == 2
    assert requests[1].headers["if-none-match"] == first.etag
    assert requests[1].headers["if-modified-since"] == first.last_modified
    assert requests[1].status == 304
    assert again.from_cache and again.revalidated and again.der == first.der
    assert again.fetched_at == clock.now
    meta = json.loads(fetcher.cache_paths(url)[1].read_text())
    assert datetime.fromisoformat(meta["fetched_at"]) == clock.now
    # The CA publishes: the next conditional request gets the new CRL.
    server.publish(at=clock.now)
    fresh = fetcher.fetch_crl(url)
    assert not fresh.from_cache and fresh.der != first.der
    assert fresh.this_update == server.published_at
    assert fetcher.fetch_crl(url).from_cache


def test_if_modified_since_alone_when_the_server_sends_no_etag(pki, server, fetcher, clock):
    server.send_etag = False
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)
    assert first.etag is None
    clock.set(first.next_update + timedelta(seconds=1))
    assert fetcher.fetch_crl(url).revalidated
    second = gets(server, url)[1]
    assert "if-none-match" not in second.headers
    assert second.headers["if-modified-since"] == first.last_modified and second.status == 304


def test_refresh_after_the_daily_publication_even_before_next_update(pki, server, fetcher,
                                                                    clock, day):
    url = medecin_crl_url(pki)
    server.publish(at=day + timedelta(hours=6))  # yesterday's run, valid until 06:00 tomorrow
    clock.set(day + timedelta(hours=6, minutes=30))
    first = fetcher.fetch_crl(url)
    clock.set(day + timedelta(hours=6, minutes=59))
    assert fetcher.fetch_crl(url).from_cache
    assert len(gets(server, url)) == 1

    clock.set(day + timedelta(hours=7, minutes=10))  # after 07:00 Paris: ask (late CA: 304)
    late = fetcher.fetch_crl(url)
    requests = gets(server, url)
    assert len(requests) == 2 and requests[1].headers["if-none-match"] == first.etag
    assert late.revalidated and late.der == first.der

    clock.set(day + timedelta(hours=7, minutes=20))  # late publication: not every call
    assert fetcher.fetch_crl(url).from_cache
    assert len(gets(server, url)) == 2

    server.publish(at=day + timedelta(hours=7, minutes=30))
    clock.set(day + timedelta(hours=7, minutes=45))  # recheck interval (30 min) elapsed
    fresh = fetcher.fetch_crl(url)
    assert not fresh.from_cache and fresh.this_update == server.published_at
    clock.set(day + timedelta(hours=20))
    assert fetcher.fetch_crl(url).from_cache
    assert len(gets(server, url)) == 3


def test_needs_refresh_follows_the_publication_hour(fetcher, day):
    from cps.trust.fetch import FetchResult

    result = FetchResult(der=b"", source="http://x/", from_cache=False,
                         fetched_at=day + timedelta(hours=8),
                         this_update=day + timedelta(hours=7, minutes=1),
                         next_update=day + timedelta(days=2))
    assert not fetcher.needs_refresh(result, day + timedelta(hours=23))
    assert not fetcher.needs_refresh(result, day + timedelta(days=1, hours=6, minutes=59))
    assert fetcher.needs_refresh(result, day + timedelta(days=1, hours=7))
    assert fetcher.needs_refresh(result, day + timedelta(days=2))


def test_an_older_crl_from_the_server_does_not_replace_a_current_one(pki, server, fetcher,
                                                                    clock, day):
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)  # thisUpdate 08:00, valid until tomorrow 08:00
    server.publish(at=day + timedelta(hours=7, minutes=30))  # a stale mirror
    clock.set(day + timedelta(days=1, hours=7, minutes=10))  # publication time: ask
    result = fetcher.fetch_crl(url)
    assert len(gets(server, url)) == 2
    assert result.der == first.der and result.this_update == first.this_update


def test_custom_next_update_parser(pki, server, tmp_path, clock):
    far = clock.now + timedelta(days=30)
    url = medecin_crl_url(pki)
    fetcher = Fetcher(cache_dir=tmp_path / "a", clock=clock, proxies={},
                      next_update_of=lambda der: far)
    assert fetcher.fetch_crl(url).next_update == far

    def broken(der: bytes):
        raise ValueError("cannot parse")

    fetcher = Fetcher(cache_dir=tmp_path / "b", clock=clock, proxies={}, next_update_of=broken)
    result = fetcher.fetch_crl(url)
    assert result.next_update is None and result.path is None  # unknown expiry: not cached


def test_force_downloads_unconditionally(pki, server, fetcher):
    url = medecin_crl_url(pki)
    fetcher.fetch_crl(url)
    forced = fetcher.fetch_crl(url, force=True)
    assert not forced.from_cache
    request = gets(server, url)[1]
    assert "if-none-match" not in request.headers and request.headers["cache-control"] == "no-cache"


def test_concurrent_calls_download_once(pki, server, fetcher):
    url = medecin_crl_url(pki)
    results = []
    threads = [threading.Thread(target=lambda: results.append(fetcher.fetch_crl(url)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len({r.der for r in results}) == 1
    assert len(gets(server, url)) == 1


# --------------------------------------------------------------------------- progress, size


def test_progress_is_reported_per_chunk(pki, server, tmp_path, clock):
    calls = []
    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, chunk_size=128,
                      verify_crl=pki_crl_check(pki),
                      progress=lambda url, received, total: calls.append((url, received, total)))
    url = medecin_crl_url(pki)
    result = fetcher.fetch_crl(url)
    size = len(result.der)
    assert len(calls) >= size // 128
    assert all(c[0] == url and c[2] == size for c in calls)
    received = [c[1] for c in calls]
    assert received == sorted(received) and received[-1] == size
    calls.clear()
    fetcher.fetch_crl(url)  # from the cache: nothing to report
    assert calls == []


def test_progress_callback_exception_aborts_and_propagates(pki, server, tmp_path, clock):
    class Cancelled(Exception):
        pass

    def cancel(url, received, total):
        raise Cancelled()

    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, progress=cancel)
    with pytest.raises(Cancelled):
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert list(tmp_path.iterdir()) == []


def test_size_cap_from_content_length(pki, server, tmp_path, clock):
    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, max_bytes=100)
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert err.value.reason == "too-large"
    assert list(tmp_path.iterdir()) == []


def test_size_cap_on_an_endless_body_without_content_length(pki, server, tmp_path, clock):
    server.faults.oversize = 500 * 1024 * 1024
    server.faults.no_length = True
    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, max_bytes=1024 * 1024)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(RevocationUnavailable) as err:
            fetcher.fetch_crl(medecin_crl_url(pki))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.reason == "too-large"
    assert time.monotonic() - started < 10
    assert peak < 16 * 1024 * 1024  # the 500 MB were never held


# --------------------------------------------------------------------------- hostile servers


def test_slow_server_times_out_in_bounded_time(pki, server, tmp_path, clock):
    server.faults.slow = 10
    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 1.0 + 2


def test_trickling_server_is_stopped_by_the_overall_deadline(pki, server, tmp_path, clock):
    # 16 bytes every 0.3 s: no single read ever reaches the 1 s socket timeout.
    server.faults.trickle = 0.3
    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, timeout=1.0, deadline=1.5)
    started = time.monotonic()
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 1.5 + 2
    assert list(tmp_path.iterdir()) == []


def test_trickling_body_without_length_is_not_mistaken_for_a_short_crl(pki, server, tmp_path,
                                                                     clock):
    server.faults.trickle = 0.2
    server.faults.no_length = True
    fetcher = Fetcher(cache_dir=tmp_path, clock=clock, proxies={}, timeout=1.0, deadline=1.0)
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert err.value.reason == "timeout"


def test_server_closing_connections_is_unreachable(pki, server, fetcher):
    server.faults.down = True
    started = time.monotonic()
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert err.value.reason == "unreachable" and err.value.source == medecin_crl_url(pki)
    assert time.monotonic() - started < 3


def test_nothing_listening_is_unreachable(fetcher):
    port = PkiServer.reserve()
    PkiServer.release(port)
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(f"http://127.0.0.1:{port}/crl/x.crl")
    assert err.value.reason == "unreachable"


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error_status(pki, server, fetcher, status):
    server.faults.status = status
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(medecin_crl_url(pki))
    assert err.value.reason == f"http-error:{status}"


def test_network_failure_falls_back_to_a_cache_within_next_update_only(pki, server, fetcher,
                                                                      clock):
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)
    server.faults.down = True
    clock.advance(hours=23)  # next morning 07:05: refresh due, server down
    fallback = fetcher.fetch_crl(url)
    assert fallback.from_cache and fallback.der == first.der
    assert fallback.network_error is not None and fallback.network_error.reason == "unreachable"
    assert len(gets(server, url)) == 2

    clock.set(first.next_update)
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(url)
    assert err.value.reason == "expired"
    assert err.value.next_update == first.next_update
    assert [f.reason for f in err.value.failures] == ["unreachable"]


def test_garbage_is_returned_but_not_cached(pki, server, fetcher, tmp_path, clock):
    server.faults.garbage = True
    url = medecin_crl_url(pki)
    plain = Fetcher(cache_dir=tmp_path / "plain", clock=clock, proxies={}, timeout=5)
    result = plain.fetch_crl(url)  # no check: a transport, the bytes as they came
    assert result.der != server.resource("/crl/ACI-FO-PP-TEST.crl")
    assert len(result.der) == len(server.resource("/crl/ACI-FO-PP-TEST.crl"))
    assert result.path is None and result.next_update is None and result.accepted is None
    assert not any(p.exists() for p in plain.cache_paths(url))
    for _ in range(2):  # with a check: refused, a typed error, nothing cached
        with pytest.raises(RevocationUnavailable) as refused:
            fetcher.fetch_crl(url)
        assert refused.value.reason == "rejected"
    assert len(gets(server, url)) == 3
    assert not any(p.exists() for p in fetcher.cache_paths(url))


def test_redirects_are_followed_to_http_only(pki, server, fetcher):
    server.faults.match = "/moved"
    server.faults.redirect = "/crl/ACI-FO-PP-TEST.crl"
    moved = fetcher.fetch_crl(f"{server.base_url}/moved.crl")
    assert moved.der == server.resource("/crl/ACI-FO-PP-TEST.crl")
    for target in ("file:///etc/passwd", "ftp://127.0.0.1/x.crl", "ldap://example/x"):
        server.faults.redirect = target
        with pytest.raises(RevocationUnavailable) as err:
            fetcher.fetch_crl(f"{server.base_url}/moved-again.crl", force=True)
        assert err.value.reason == "unsupported-scheme", target


@pytest.mark.parametrize("url, reason", [
    # ldap:// serves CRLs (tests/test_trust_ldap.py); a URL it cannot follow is refused
    # before any connection
    ("ldap://annuaire-igc.esante.gouv.fr/CN=AC,OU=IGC-SANTE", "bad-url"),
    ("ldap://annuaire-igc.esante.gouv.fr/CN=AC?certificaterevocationlist?sub", "bad-url"),
    ("ldaps://annuaire-igc.esante.gouv.fr/CN=AC?certificaterevocationlist", "unsupported-scheme"),
    ("file:///etc/passwd", "unsupported-scheme"),
    ("ftp://127.0.0.1/crl.crl", "unsupported-scheme"),
    ("data:application/pkix-crl;base64,AAAA", "unsupported-scheme"),
    ("/crl/relative.crl", "unsupported-scheme"),
    ("http:///no-host.crl", "bad-url"),
    ("http://[::1/broken", "bad-url"),
])
def test_only_http_and_https_urls(fetcher, server, url, reason):
    with pytest.raises(RevocationUnavailable) as err:
        fetcher.fetch_crl(url)
    assert err.value.reason == reason
    assert server.requests == []


def test_ldap_is_for_crls_only(fetcher, server):
    # a CA certificate (AIA caIssuers) or an OCSP answer never comes from LDAP
    url = "ldap://127.0.0.1/CN=AC?cACertificate;binary"
    for fetch in (fetcher.fetch_bytes, lambda u: fetcher.get(u),
                  lambda u: fetcher.post(u, b"", "application/ocsp-request")):
        with pytest.raises(RevocationUnavailable) as err:
            fetch(url)
        assert err.value.reason == "unsupported-scheme"


# --------------------------------------------------------------------------- cache integrity


def _corrupt_truncate(data: Path, meta: Path) -> None:
    data.write_bytes(data.read_bytes()[:-10])


def _corrupt_same_size(data: Path, meta: Path) -> None:
    data.write_bytes(os.urandom(len(data.read_bytes())))


def _corrupt_sidecar(data: Path, meta: Path) -> None:
    meta.write_bytes(b'{"format": 1, "url": ')


def _corrupt_missing_sidecar(data: Path, meta: Path) -> None:
    meta.unlink()


def _corrupt_missing_content(data: Path, meta: Path) -> None:
    data.unlink()


@pytest.mark.parametrize("corrupt", [_corrupt_truncate, _corrupt_same_size, _corrupt_sidecar,
                                     _corrupt_missing_sidecar, _corrupt_missing_content])
def test_corrupted_cache_is_detected_deleted_and_refetched(pki, server, fetcher, corrupt):
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)
    data, meta = fetcher.cache_paths(url)
    assert fetcher.fetch_crl(url).from_cache  # the file is now known-good in this process...
    time.sleep(0.01)  # ...and a rewrite changes its mtime
    corrupt(data, meta)

    again = fetcher.fetch_crl(url)

    assert not again.from_cache and again.der == first.der
    assert len(gets(server, url)) == 2
    assert data.read_bytes() == first.der  # re-cached, consistent
    assert fetcher.fetch_crl(url).from_cache


def test_failed_cache_write_keeps_the_old_entry_and_returns_the_bytes(pki, server, fetcher,
                                                                      clock, monkeypatch):
    url = medecin_crl_url(pki)
    first = fetcher.fetch_crl(url)
    server.publish(at=clock.now + timedelta(minutes=1))

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cps.trust.fetch.os.replace", full_disk)
    fresh = fetcher.fetch_crl(url, force=True)
    monkeypatch.undo()

    assert fresh.der != first.der and fresh.path is None
    data, meta = fetcher.cache_paths(url)
    assert sorted(p.name for p in data.parent.iterdir()) == sorted([data.name, meta.name])
    assert data.read_bytes() == first.der
    cached = Fetcher(cache_dir=fetcher.cache_dir, clock=clock, proxies={}).fetch_crl(url)
    assert cached.from_cache and cached.der == first.der


_CRASHING_WRITER = textwrap.dedent("""
    import os, stat, sys, time
    from cps.trust.fetch import Fetcher

    cache_dir, url, block_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):  # files, not the directory syncs
            calls.append(fd)
        # Block in the n-th file written: the process is killed before its rename.
        if len(calls) == block_at and stat.S_ISREG(os.fstat(fd).st_mode):
            print("in-write", flush=True)
            time.sleep(60)
        real_fsync(fd)

    os.fsync = fsync
    # the cache is written once the caller's check accepts the CRL: accept it
    Fetcher(cache_dir=cache_dir, proxies={}).fetch_crl(url, force=True, verify=bytes)
""")


@pytest.mark.parametrize("block_at", [1, 2], ids=["killed-writing-content",
                                               "killed-writing-sidecar"])
def test_killed_writer_never_leaves_a_corrupt_cache(pki, server, fetcher, clock, tmp_path,
                                                    block_at):
    url = medecin_crl_url(pki)
    old = fetcher.fetch_crl(url)
    server.publish(at=clock.now + timedelta(minutes=1))
    new_bytes = server.resource("/crl/ACI-FO-PP-TEST.crl")
    assert new_bytes != old.der
    script = tmp_path / "writer.py"
    script.write_text(_CRASHING_WRITER)
    command = [sys.executable, str(script), str(fetcher.cache_dir), url, str(block_at)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:  # noqa: S603
        try:
            assert child.stdout.readline().strip() == "in-write"
        finally:
            child.kill()
    leftovers = [p for p in fetcher.cache_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers  # the crash happened mid-write

    reader = Fetcher(cache_dir=fetcher.cache_dir, clock=clock, proxies={})
    result = reader.fetch_crl(url)

    if block_at == 1:  # content not renamed yet: the old entry is intact and reused
        assert result.from_cache and result.der == old.der
        assert len(gets(server, url)) == 2  # the parent's and the child's
    else:  # new content beside the old sidecar: detected, discarded, fetched again
        assert not result.from_cache and result.der == new_bytes
        assert len(gets(server, url)) == 3
    x509.load_der_x509_crl(result.der)


def test_old_temporary_files_are_swept(pki, server, fetcher):
    fetcher.cache_dir.mkdir(parents=True)
    stale = fetcher.cache_dir / ".abc.bin.x1.tmp"
    recent = fetcher.cache_dir / ".abc.bin.x2.tmp"
    stale.write_bytes(b"half")
    recent.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fetcher.fetch_crl(medecin_crl_url(pki))
    assert not stale.exists() and recent.exists()


# --------------------------------------------------------------------------- the server itself


def test_server_can_bind_before_the_pki_exists(pki):
    server = PkiServer()
    with server:
        fetcher = Fetcher(proxies={}, timeout=2)
        with pytest.raises(RevocationUnavailable) as err:
            fetcher.fetch_crl(f"{server.base_url}/crl/ACI-FO-PP-TEST.crl")
        assert err.value.reason == "http-error:503"
        server.pki = pki
        server.publish()
        crl = fetcher.fetch_crl(f"{server.base_url}/crl/ACI-FO-PP-TEST.crl")
        assert x509.load_der_x509_crl(crl.der).issuer == pki.intermediates["FORT PERSONNES"].subject


def test_per_request_server_issues_fresh_crls(pki):
    with PkiServer(pki, per_request=True) as server:
        fetcher = Fetcher(proxies={}, timeout=2)
        url = f"{server.base_url}/crl/ACI-FO-PP-TEST.crl"
        before = datetime.now(timezone.utc).replace(microsecond=0)
        crl = fetcher.fetch_crl(url)
        assert crl.this_update >= before


def _tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts around a throw-away certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    moment = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(moment - timedelta(hours=1))
            .not_valid_after(moment + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "tls.pem", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    return server_ctx, ssl.create_default_context(cafile=str(cert_file))


def test_https_download_and_deadline_over_tls(pki, tmp_path, day):
    server_ctx, client_ctx = _tls_contexts(tmp_path)
    with PkiServer(pki, ssl_context=server_ctx) as tls_server:
        tls_server.publish(at=day + timedelta(hours=8))
        url = f"{tls_server.base_url}/crl/ACI-FO-PP-TEST.crl"
        assert url.startswith("https://")
        fetcher = Fetcher(proxies={}, ssl_context=client_ctx, timeout=1.0, deadline=1.5)
        assert fetcher.fetch_crl(url).der == tls_server.resource("/crl/ACI-FO-PP-TEST.crl")
        with pytest.raises(RevocationUnavailable) as err:  # the system store does not know it
            Fetcher(proxies={}, timeout=2).fetch_crl(url)
        assert err.value.reason == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in str(err.value)
        tls_server.faults.trickle = 0.3
        started = time.monotonic()
        with pytest.raises(RevocationUnavailable) as err:
            fetcher.fetch_crl(url)
        assert err.value.reason == "timeout" and time.monotonic() - started < 1.5 + 2


# --------------------------------------------------------------------------- pure functions


def test_crl_update_times_match_cryptography(server):
    der = server.resource("/crl/ACI-FO-PP-TEST-delta.crl")
    crl = x509.load_der_x509_crl(der)
    assert crl_update_times(der) == (crl.last_update_utc, crl.next_update_utc)
    assert crl_update_times(der[:-1]) == (None, None)
    assert crl_update_times(der + b"\x00") == (None, None)
    assert crl_update_times(b"") == (None, None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_crl_update_times_never_raises(data):
    this_update, _ = crl_update_times(data)
    assert this_update is None or this_update.tzinfo is not None


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(timezone.utc)))
def test_latest_publication_is_the_last_07h00_in_paris(now):
    published = latest_publication(now)
    local = published.astimezone(PARIS)
    assert (local.hour, local.minute, local.second) == (7, 0, 0)
    assert published <= now < published + timedelta(hours=25)
    assert latest_publication(published) == published
    assert latest_publication(published - timedelta(seconds=1)) < published
