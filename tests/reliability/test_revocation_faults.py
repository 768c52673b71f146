"""Revocation checking when the network, the servers or the cache misbehave.

At the level users call -- ``Validator.validate`` with a ``Fetcher`` and an
``OcspClient`` over real HTTP (cps.testing.pkiserver) -- for every fault:

* nothing that should be refused is accepted: hard-fail refuses when it
  cannot establish the status; soft-fail reports ``"unknown"``, never
  ``"good"``; a certificate known to be revoked is refused in every mode;
* nothing crashes (every failure is a typed ``CpsError``), in bounded time;
* the cache is never left corrupt, even when the process is killed while
  writing it.

What tests/test_fetch.py, test_ocsp.py, test_trust.py and test_trust_online.py
already cover at their own level (server down/garbage with hard- and soft-fail,
HTTP statuses, the killed writer at a chosen point, expired / badly signed /
foreign CRLs given offline) is not repeated here.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cps import errors
from cps.card import KeyRole
from cps.trust.fetch import Fetcher
from cps.trust.ocsp import OcspClient
from cps.trust.validate import Validator

FAULT_BOUND = 15.0   # seconds any validation may take, whatever the servers do


@pytest.fixture
def online(cps_pki_server, tmp_path):
    """The session's PKI server, left clean afterwards (other tests share it)."""
    pki, server = cps_pki_server
    server.faults.reset()
    server.ocsp_hook = None
    server.publish()
    store = pki.trust_store()
    yield pki, server, store
    server.faults.reset()
    server.ocsp_hook = None
    server.publish()


def _fetcher(tmp_path: Path, name: str = "cache", **kw) -> Fetcher:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("deadline", 1.0)
    return Fetcher(cache_dir=tmp_path / name, proxies={}, **kw)


def _leaf(pki, profile: str = "cps3-medecin"):
    return pki.issue_card(profile).auth_cert


def _outcome(validator: Validator, cert) -> str:
    """``"good"`` (every certificate of the path), ``"unknown"`` (one at least) or the
    error class; anything untyped fails the test."""
    start = time.monotonic()
    try:
        result = validator.validate(cert, purpose=KeyRole.AUTH)
        statuses = {s.status for s in result.revocation} - {"not-checked"}
        outcome = "unknown" if "unknown" in statuses else "good"
        assert statuses <= {"good", "unknown"}, statuses
    except errors.CpsError as exc:
        outcome = type(exc).__name__
    assert time.monotonic() - start < FAULT_BOUND, f"{outcome} after too long"
    return outcome


def _serve(server, path: str, data: bytes) -> None:
    """Make the server answer ``data`` at ``path`` until the next publication.

    (PkiServer has no public switch for "serve these bytes": the published
    resources are replaced in place.)
    """
    published = server._current()  # noqa: SLF001 - test-only server
    published.resources[path] = data
    published.etags[path] = '"tampered-%d"' % len(data)


def _crl_path(pki, profile: str = "cps3-medecin") -> str:
    issuer = pki.issue_card(profile).issuer
    return f"/crl/{pki.ca(issuer).stem}.crl"


# --------------------------------------------------------------------------- CRL server faults
@pytest.mark.parametrize("fault", ["slow", "trickle", "oversize", "garbage", "down"])
def test_crl_server_faults(online, tmp_path, fault):
    pki, server, store = online
    setattr(server.faults, fault, {"slow": 3.0, "trickle": 0.4, "oversize": 4 << 20,
                                   "garbage": True, "down": True}[fault])
    fetcher = _fetcher(tmp_path, max_bytes=1 << 20)
    for profile in ("cps3-medecin", "cps3-revoked"):
        hard = _outcome(Validator(store, fetcher=fetcher), _leaf(pki, profile))
        soft = _outcome(Validator(store, fetcher=fetcher, revocation="soft-fail"),
                        _leaf(pki, profile))
        assert hard == "RevocationUnavailable", (profile, fault, hard)
        assert soft == "unknown", (profile, fault, soft)


def test_expired_crls_served_online(online, tmp_path):
    pki, server, store = online
    server.publish(at=server.clock() - dt.timedelta(days=3))   # nextUpdate 2 days ago
    fetcher = _fetcher(tmp_path)
    for profile in ("cps3-medecin", "cps3-revoked"):
        hard = _outcome(Validator(store, fetcher=fetcher), _leaf(pki, profile))
        soft = _outcome(Validator(store, fetcher=fetcher, revocation="soft-fail"),
                        _leaf(pki, profile))
        assert hard in ("RevocationUnavailable", "CertificateRevoked"), (profile, hard)
        assert soft in ("unknown", "CertificateRevoked"), (profile, soft)
    with pytest.raises(errors.RevocationUnavailable) as info:
        Validator(store, fetcher=fetcher).validate(_leaf(pki))
    assert "expired" in repr(info.value.failures) + info.value.reason + str(info.value)


@pytest.mark.parametrize("profile", ["cps3-medecin", "cps3-revoked"])
def test_crl_with_a_wrong_signature_served_online(online, tmp_path, profile):
    pki, server, store = online
    path = _crl_path(pki, profile)
    der = bytearray(server.resource(path))
    der[-5] ^= 0x01                                         # inside the signature
    _serve(server, path, bytes(der))
    fetcher = _fetcher(tmp_path)
    hard = _outcome(Validator(store, fetcher=fetcher), _leaf(pki, profile))
    soft = _outcome(Validator(store, fetcher=fetcher, revocation="soft-fail"),
                    _leaf(pki, profile))
    assert hard == "RevocationUnavailable", hard
    assert soft == "unknown", soft


@pytest.mark.parametrize("profile", ["cps3-medecin", "cps3-revoked"])
def test_crl_of_another_ca_served_online(online, tmp_path, profile):
    pki, server, store = online
    path = _crl_path(pki, profile)
    other = next(name for name in pki.intermediates if f"/crl/{pki.ca(name).stem}.crl" != path)
    _serve(server, path, server.resource(f"/crl/{pki.ca(other).stem}.crl"))  # valid, signed
    fetcher = _fetcher(tmp_path)
    hard = _outcome(Validator(store, fetcher=fetcher), _leaf(pki, profile))
    soft = _outcome(Validator(store, fetcher=fetcher, revocation="soft-fail"),
                    _leaf(pki, profile))
    assert hard in ("RevocationUnavailable", "CertificateRevoked"), hard
    assert soft in ("unknown", "CertificateRevoked"), soft


# --------------------------------------------------------------------------- OCSP faults
def _ocsp_only(pki, store, fetcher, mode: str = "hard-fail") -> Validator:
    """Root CRLs offline (for the intermediates); the leaves have only OCSP."""
    return Validator(store, crls=[pki.crl(name) for name in pki.roots], revocation=mode,
                     ocsp=OcspClient(fetcher, timeout=2.0))


@pytest.mark.parametrize("fault", ["down", "slow", "garbage", "status", "oversize",
                                   "stale", "unauthorized", "other-certificate", "no-nonce"])
def test_ocsp_faults(online, tmp_path, fault):
    pki, server, store = online
    faults = server.faults
    faults.match = "/ocsp"
    if fault == "down":
        faults.down = True
    elif fault == "slow":
        faults.slow = 5.0
    elif fault == "garbage":
        faults.garbage = True
    elif fault == "status":
        faults.status = 500
    elif fault == "oversize":
        faults.oversize = 2 << 20
    elif fault == "stale":                      # an answer of last month, replayed
        server.ocsp_time = server.clock() - dt.timedelta(days=30)
    else:
        from cryptography.x509 import ocsp

        other = pki.issue_card("cps3-pharmacien").auth_cert

        def hook(request_der: bytes) -> bytes:
            if fault == "unauthorized":
                return pki.ocsp_response(b"not a request")
            if fault == "no-nonce":
                from cps.trust.ocsp import build_request

                request = ocsp.load_der_ocsp_request(request_der)
                leaf = next(c for c in (_leaf(pki), _leaf(pki, "cps3-revoked"))
                            if c.serial_number == request.serial_number)
                return pki.ocsp_response(build_request(leaf, pki.issue_card(
                    "cps3-medecin").chain[0], nonce=None))
            # an answer about another certificate (a replay of someone else's "good")
            from cps.trust.ocsp import build_request

            return pki.ocsp_response(build_request(other, pki.issue_card(
                "cps3-pharmacien").chain[0], nonce=None))

        server.ocsp_hook = hook
    try:
        fetcher = _fetcher(tmp_path, max_bytes=1 << 20)
        for profile in ("cps3-medecin", "cps3-revoked"):
            hard = _outcome(_ocsp_only(pki, store, fetcher), _leaf(pki, profile))
            soft = _outcome(_ocsp_only(pki, store, fetcher, "soft-fail"), _leaf(pki, profile))
            assert hard == "RevocationUnavailable", (fault, profile, hard)
            # No answer (down, garbage, an error status...) is "unknown" in soft-fail;
            # a well-formed answer that fails verification (replayed, about another
            # certificate, without our nonce) is a failure there too (issue 13 item 4).
            refused = fault in ("stale", "other-certificate", "no-nonce")
            assert soft == ("RevocationUnavailable" if refused else "unknown"), \
                (fault, profile, soft)
    finally:
        server.ocsp_time = None


def test_revoked_by_ocsp_is_refused_even_in_soft_fail(online, tmp_path):
    pki, server, store = online
    fetcher = _fetcher(tmp_path)
    for mode in ("hard-fail", "soft-fail"):
        assert _outcome(_ocsp_only(pki, store, fetcher, mode),
                        _leaf(pki, "cps3-revoked")) == "CertificateRevoked"
        assert _outcome(_ocsp_only(pki, store, fetcher, mode), _leaf(pki)) == "good"


# --------------------------------------------------------------------------- the cache
def test_cached_revocation_survives_the_server_going_down(online, tmp_path):
    pki, server, store = online
    fetcher = _fetcher(tmp_path)
    assert _outcome(Validator(store, fetcher=fetcher), _leaf(pki, "cps3-revoked")) == \
        "CertificateRevoked"
    for fault in ("down", "garbage"):
        setattr(server.faults, fault, True)
        for mode in ("hard-fail", "soft-fail"):
            again = _fetcher(tmp_path)                     # a new process, same cache
            assert _outcome(Validator(store, fetcher=again, revocation=mode),
                            _leaf(pki, "cps3-revoked")) == "CertificateRevoked", (fault, mode)
            assert _outcome(Validator(store, fetcher=again, revocation=mode),
                            _leaf(pki)) == "good", (fault, mode)
        server.faults.reset()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "swap", "sidecar"])
def test_corrupted_cache_with_the_server_down(online, tmp_path, damage):
    pki, server, store = online
    fetcher = _fetcher(tmp_path)
    assert _outcome(Validator(store, fetcher=fetcher), _leaf(pki)) == "good"
    cache = fetcher.cache_dir
    bins = sorted(cache.glob("*.bin"))
    assert bins
    for path in bins:
        data = path.read_bytes()
        if damage == "flip":
            path.write_bytes(data[:-10] + bytes((data[-10] ^ 0xFF,)) + data[-9:])
        elif damage == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "swap":
            path.write_bytes(bins[0].read_bytes() if path != bins[0] else bins[-1].read_bytes())
        else:
            path.with_suffix(".json").write_text('{"format": 1, "url": [[[')
    server.faults.down = True
    again = _fetcher(tmp_path)
    assert _outcome(Validator(store, fetcher=again), _leaf(pki)) == "RevocationUnavailable"
    assert _outcome(Validator(store, fetcher=again, revocation="soft-fail"),
                    _leaf(pki)) == "unknown"
    server.faults.down = False
    assert _outcome(Validator(store, fetcher=_fetcher(tmp_path)), _leaf(pki)) == "good"
    assert _outcome(Validator(store, fetcher=_fetcher(tmp_path)),
                    _leaf(pki, "cps3-revoked")) == "CertificateRevoked"
    _assert_cache_consistent(cache)


def _assert_cache_consistent(cache: Path) -> None:
    """Every sidecar names content whose SHA-256 it records (or the pair is gone)."""
    import hashlib
    import json

    for sidecar in cache.glob("*.json"):
        meta = json.loads(sidecar.read_text())
        content = sidecar.with_suffix(".bin")
        assert content.exists(), sidecar
        assert hashlib.sha256(content.read_bytes()).hexdigest() == meta["sha256"], sidecar


_VALIDATING_CHILD = r"""
import sys, time
from cps.trust.anchors import TrustStore
from cps.trust.fetch import Fetcher
from cps.trust.validate import Validator
from cryptography import x509

cache, certs = sys.argv[1], sys.argv[2:]
leaves = [x509.load_der_x509_certificate(open(p, "rb").read()) for p in certs[2:]]
store = TrustStore.from_certificates(
    [x509.load_der_x509_certificate(open(p, "rb").read()) for p in certs[:1]],
    [x509.load_der_x509_certificate(open(p, "rb").read()) for p in certs[1:2]])
print("ready", flush=True)
while True:   # validate for ever, forcing downloads: killed at a random moment
    fetcher = Fetcher(cache_dir=cache, proxies={}, timeout=2)
    for leaf in leaves:
        try:
            Validator(store, fetcher=fetcher).validate(leaf)
        except Exception:
            pass
    for url in ["%s"]:
        fetcher.fetch_crl(url, force=True)
"""


def test_process_killed_while_writing_the_cache(online, tmp_path):
    """SIGKILL a validating process at random moments: the cache stays consistent and
    the next process validates correctly (server up) or refuses (server down)."""
    import random

    from cryptography.hazmat.primitives.serialization import Encoding

    pki, server, store = online
    creds = pki.issue_card("cps3-medecin")
    files = []
    for i, cert in enumerate([creds.chain[1], creds.chain[0], creds.auth_cert,
                              _leaf(pki, "cps3-revoked")]):
        path = tmp_path / f"cert{i}.der"
        path.write_bytes(cert.public_bytes(Encoding.DER))
        files.append(str(path))
    url = server.base_url + _crl_path(pki)
    script = tmp_path / "child.py"
    script.write_text(_VALIDATING_CHILD % url)
    cache = tmp_path / "killed-cache"
    rng = random.Random(7)
    for _ in range(4):
        with subprocess.Popen([sys.executable, str(script), str(cache), *files],
                              stdout=subprocess.PIPE, text=True) as child:
            try:
                assert child.stdout.readline().strip() == "ready"
                time.sleep(rng.uniform(0.05, 0.6))
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
        _assert_cache_loadable(cache)
        server.faults.down = True
        outcome = _outcome(Validator(store, fetcher=_fetcher(cache.parent, cache.name)),
                           _leaf(pki, "cps3-revoked"))
        assert outcome in ("CertificateRevoked", "RevocationUnavailable"), outcome
        server.faults.down = False
        assert _outcome(Validator(store, fetcher=_fetcher(cache.parent, cache.name)),
                        _leaf(pki)) == "good"
        _assert_cache_consistent(cache)


def _assert_cache_loadable(cache: Path) -> None:
    """Whatever the kill left, loading never crashes; torn pairs are discarded."""
    fetcher = Fetcher(cache_dir=cache, proxies={}, timeout=0.5, deadline=1.0)
    import json

    for sidecar in list(cache.glob("*.json")):
        try:
            url = json.loads(sidecar.read_text())["url"]
        except (ValueError, KeyError):
            continue
        try:
            fetcher._cache.load(url)  # noqa: SLF001 - the loader itself, no network
        except errors.CpsError:
            pass
