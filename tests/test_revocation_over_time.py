"""Regression tests for the trust layer's state over time (issue 12, items 1-8).

Each test pins one finding of the attacker's review: it fails on the code the
review ran against and passes now. docs/security.md lists them.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from cps.emulator.pki import TestPKI
from cps.errors import CertificateRevoked, CrlError, NonceExpired, RevocationUnavailable
from cps.testing.forge import forged_crl
from cps.testing.pkiserver import PkiServer
from cps.trust import Validator
from cps.trust.crlindex import CrlIndex
from cps.trust.fetch import Fetcher
from cps.trust.ocsp import OcspClient

PARIS = ZoneInfo("Europe/Paris")
FP, SP = "FORT PERSONNES", "STANDARD PERSONNES"


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def paris(day: int, hour: int, month: int = 2) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=PARIS).astimezone(dt.timezone.utc)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    directory = tmp_path_factory.mktemp("over-time-pki")
    port = PkiServer.reserve()
    TestPKI.generate(directory, seed=21, base_url=f"http://127.0.0.1:{port}",
                     reference_time=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    with PkiServer(port=port) as server:
        yield directory, port, server


class Setup:
    """A fresh PKI (the CA's acts are permanent) on the module's server, one clock."""

    def __init__(self, env, tmp_path: Path) -> None:
        directory, port, server = env
        self.pki = TestPKI.generate(directory, seed=21, base_url=f"http://127.0.0.1:{port}",
                                    reference_time=dt.datetime(2026, 1, 1,
                                                               tzinfo=dt.timezone.utc))
        self.server = server
        server.pki = self.pki
        server.clear_overrides()
        server.faults.reset()
        self.clock = Clock(paris(1, 7))
        server.clock = self.clock
        self.store = self.pki.trust_store()
        self.cache = tmp_path / "cache"
        self.leaves = {ca: [self.pki.issue_leaf(ca, i)[0] for i in range(3)] for ca in (FP, SP)}
        self.last = None

    def publish(self, day: int, month: int = 2) -> dt.datetime:
        return self.publish_at(paris(day, 7, month))

    def publish_at(self, at: dt.datetime) -> dt.datetime:
        self.server.publish(at=at, delta_base=self.last or at - dt.timedelta(days=1))
        self.last = at
        self.clock.now = at + dt.timedelta(hours=1)
        return at

    def path(self, ca: str, delta: bool = False) -> str:
        return f"/crl/{self.pki.ca(ca).stem}{'-delta' if delta else ''}.crl"

    def validator(self, cache: bool = True, **options) -> Validator:
        fetcher = Fetcher(cache_dir=self.cache if cache else None, clock=self.clock,
                          proxies={}, timeout=5)
        return Validator(self.store, fetcher=fetcher, clock=self.clock, **options)


@pytest.fixture
def world(env, tmp_path) -> Setup:
    return Setup(env, tmp_path)


def verdict(validator: Validator, cert: x509.Certificate, **kw) -> str:
    try:
        validator.validate(cert, **kw)
    except CertificateRevoked:
        return "revoked"
    except RevocationUnavailable as exc:
        return f"unavailable:{exc.reason}"
    return "valid"


# --------------------------------------------------------------------------- item 1


def test_a_forged_crl_never_inherits_a_freed_crls_verdict(world):
    """Genuine and forged CRLs alternate at another CA's URL, every CRL object is
    freed and replaced (no disk cache): the revoked card never validates."""
    revoked = world.leaves[FP][0]
    world.pki.revoke(FP, revoked.serial_number, paris(1, 6), x509.ReasonFlags.superseded)
    world.publish(1)
    v = world.validator(cache=False, fetch_retry=dt.timedelta(0))
    assert verdict(v, revoked) == "revoked"
    for day in range(2, 130):
        world.publish_at(paris(1, 7) + dt.timedelta(days=day))
        if day % 2:
            # FP's URL answers a CRL naming FP, listing nothing, signed by an attacker
            world.server.override(world.path(FP), forged_crl(world.pki, FP, world.last))
        for leaf in (world.leaves[SP][0], revoked):
            result = verdict(v, leaf)
            if leaf is revoked:
                assert result != "valid", day
        gc.collect()  # free the replaced CRLs: their addresses get reused
        world.server.clear_overrides()


def test_verdicts_live_on_the_crl_object(world):
    """A signature verdict is never found again for another CRL object."""
    world.publish(1)
    v = Validator(world.store, revocation="off")
    genuine = world.pki.crl(FP, paris(1, 7))
    forged = forged_crl(world.pki, FP, paris(1, 7))
    for _ in range(300):
        v.verify_crl(CrlIndex.load(genuine))       # verified, then freed
        with pytest.raises(CrlError) as refused:
            v.verify_crl(CrlIndex.load(forged))    # often at the same address
        assert refused.value.reason == "bad-signature"


# --------------------------------------------------------------------------- item 2


def test_one_forged_crl_never_poisons_the_disk_cache(world, caplog):
    revoked = world.leaves[FP][1]
    world.pki.revoke(FP, revoked.serial_number, paris(1, 6), x509.ReasonFlags.key_compromise)
    good = world.leaves[FP][2]
    world.publish(1)
    future = forged_crl(world.pki, FP, paris(1, 7) + dt.timedelta(days=3650))
    world.server.override(world.path(FP), future)   # served from the start
    v = world.validator()
    with caplog.at_level(logging.WARNING, "cps.trust.fetch"):
        assert verdict(v, good).startswith("unavailable")
    assert any("CRL refused" in r.getMessage() for r in caplog.records)
    assert all(p.read_bytes() != future for p in world.cache.glob("*.bin"))
    world.server.clear_overrides()
    world.publish(2)
    assert verdict(v, good) == "valid" and verdict(v, revoked) == "revoked"
    # a restart with the cache kept: the genuine CRL, never the forged one
    again = world.validator()
    assert verdict(again, good) == "valid" and verdict(again, revoked) == "revoked"
    world.publish(3)
    assert verdict(world.validator(), good) == "valid"
    assert all(p.read_bytes() != future for p in world.cache.glob("*.bin"))


# --------------------------------------------------------------------------- item 3


def test_a_planted_crl_blocks_nothing_and_held_crls_are_refetched(world):
    world.publish(1)
    # SP's URL serves FP's genuine CRL: it is filed nowhere
    world.server.override(world.path(SP), world.server.published_resource(world.path(FP)))
    v = world.validator()
    assert verdict(v, world.leaves[SP][0]).startswith("unavailable")
    assert verdict(v, world.leaves[FP][0]) == "valid"
    world.server.clear_overrides()
    v.fetch_retry = dt.timedelta(0)
    world.clock.now += dt.timedelta(minutes=1)
    assert verdict(v, world.leaves[SP][0]) == "valid"       # asked again, not blocked
    # days pass: the long-running validator refetches each publication
    for day in range(2, 8):
        target = world.leaves[FP][0]
        if day == 4:
            world.pki.revoke(FP, target.serial_number, paris(3, 12),
                             x509.ReasonFlags.key_compromise)
        world.publish(day)
        before = len(world.server.requests)
        expected = "revoked" if day >= 4 else "valid"
        assert verdict(v, target) == expected, day
        assert len(world.server.requests) > before  # the new publication was fetched
    # superseded CRLs are dropped: one CRL per URL held
    assert len(v._held) <= 6 and not v._crls


# --------------------------------------------------------------------------- item 4


def test_the_cached_ca_part_respects_revocation_dates(world):
    """Validating at a past time first must not let 'now' pass a CA revoked since."""
    ca = world.pki.ca(FP)
    world.pki.revoke(ca.parent, ca.cert.serial_number, paris(10, 12),
                     x509.ReasonFlags.superseded)
    at = paris(12, 7)
    crls = [world.pki.crl(ca.parent, at), world.pki.crl(FP, at)]
    v = Validator(world.store, crls=crls, clock=Clock(at + dt.timedelta(hours=1)))
    leaf = world.leaves[FP][0]
    assert verdict(v, leaf, at=paris(9, 12)) == "valid"   # before the CA's revocation
    with pytest.raises(CertificateRevoked) as info:
        v.validate(leaf)                                   # now
    assert info.value.position == 1


# --------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("mode", ["soft-fail", "hard-fail"])
def test_revocations_outlive_next_update_and_restarts(world, mode):
    revoked, held = world.leaves[FP][0], world.leaves[FP][1]
    world.pki.revoke(FP, revoked.serial_number, paris(1, 5), x509.ReasonFlags.superseded)
    world.pki.hold(FP, held.serial_number, paris(1, 5))
    world.publish(1)
    v = world.validator(revocation=mode)
    assert verdict(v, revoked) == "revoked" and verdict(v, held) == "revoked"
    world.server.faults.down = True                # the CA is unreachable for days
    world.clock.now = paris(5, 12)
    assert verdict(v, revoked) == "revoked" and verdict(v, held) == "revoked"
    other = world.leaves[FP][2]
    assert verdict(v, other) == ("valid" if mode == "soft-fail" else "unavailable:expired")
    restarted = world.validator(revocation=mode)  # a new process, the cache kept
    assert verdict(restarted, revoked) == "revoked" and verdict(restarted, held) == "revoked"
    # a newer verified CRL lifts the hold; the revocation stays
    world.server.faults.down = False
    world.pki.release(FP, held.serial_number, paris(5, 13))
    world.publish(6)
    assert verdict(restarted, held) == "valid" and verdict(restarted, revoked) == "revoked"


# --------------------------------------------------------------------------- item 6


def test_a_named_delta_that_cannot_be_had_fails_in_hard_fail(world):
    world.publish(1)
    world.server.faults.match = world.path(FP, delta=True)
    world.server.faults.down = True
    leaf = world.leaves[FP][0]
    assert verdict(world.validator(), leaf) == "unavailable:delta-unavailable"
    assert verdict(world.validator(require_delta_crls=False), leaf) == "valid"
    assert verdict(world.validator(revocation="soft-fail"), leaf) == "valid"


def test_an_older_delta_never_applies_to_a_newer_complete_crl(world):
    """RFC 5280 5.2.4: base <= complete's number < the delta's own number."""
    leaf = world.leaves[FP][0]
    t = paris(1, 0)
    world.pki.hold(FP, leaf.serial_number, t)
    c1 = world.pki.crl(FP, t + dt.timedelta(hours=1))                   # lists the hold
    world.pki.release(FP, leaf.serial_number, t + dt.timedelta(hours=2))
    d3 = world.pki.crl(FP, t + dt.timedelta(hours=3), delta=True,
                       base=t + dt.timedelta(hours=1))                     # removeFromCRL
    world.pki.hold(FP, leaf.serial_number, t + dt.timedelta(hours=4))
    c5 = world.pki.crl(FP, t + dt.timedelta(hours=5))                   # the hold again
    assert CrlIndex.load(d3).lookup(leaf.serial_number).reason == "removeFromCRL"
    root = world.pki.ca(FP).parent
    crls = [world.pki.crl(root, t + dt.timedelta(hours=5)), c5, d3]
    v = Validator(world.store, crls=crls, clock=Clock(t + dt.timedelta(hours=6)))
    with pytest.raises(CertificateRevoked) as info:
        v.validate(leaf)
    assert info.value.revocation_reason == "certificateHold"
    # with the complete CRL it completes, the delta does lift the hold
    v1 = Validator(world.store, crls=[crls[0], c1, d3],
                   clock=Clock(t + dt.timedelta(hours=3, minutes=30)))
    assert verdict(v1, leaf) == "valid"


# --------------------------------------------------------------------------- item 7


def test_intermediates_given_to_validate_also_sign_crls(world):
    """A store with the roots only; the intermediate comes with the certificate and
    signs its CRLs (PKITS runs the same through tests/test_pkits.py)."""
    world.publish(1)
    roots_only = world.pki.trust_store(intermediates=False)
    root = world.pki.ca(FP).parent
    crls = [world.pki.crl(root, world.last), world.pki.crl(FP, world.last)]
    v = Validator(roots_only, crls=crls, clock=world.clock)
    leaf = world.leaves[FP][0]
    result = v.validate(leaf, intermediates=[world.pki.intermediates[FP]])
    assert [s.status for s in result.revocation[:2]] == ["good", "good"]


# --------------------------------------------------------------------------- item 8


def test_a_responder_ignoring_nonces_is_a_visible_typed_failure(world, tmp_path):
    # OCSP answers carry the real producedAt: this test runs at the real time
    world.publish_at(dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                     - dt.timedelta(hours=1))
    world.clock.now = dt.datetime.now(dt.timezone.utc)

    def no_nonce(request_der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(request_der)
        ca = world.pki.ca(FP)
        cert, key = world.pki._responder(ca)
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=world.leaves[FP][0], issuer=ca.cert, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.GOOD, this_update=world.clock.now,
            next_update=world.clock.now + dt.timedelta(days=1), revocation_time=None,
            revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
        builder = builder.certificates([cert])
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    world.server.ocsp_hook = no_nonce
    try:
        root = world.pki.ca(FP).parent
        fetcher = Fetcher(clock=world.clock, proxies={}, timeout=5)
        v = Validator(world.store, crls=[world.pki.crl(root, world.last)], clock=world.clock,
                      ocsp=OcspClient(fetcher, clock=world.clock))
        with pytest.raises(RevocationUnavailable) as info:
            v.validate(world.leaves[FP][0])
        assert info.value.reason == "nonce-not-echoed"
        assert "require_nonce=False" in str(info.value)
        relaxed = Validator(world.store, crls=[world.pki.crl(root, world.last)],
                            clock=world.clock,
                            ocsp=OcspClient(fetcher, clock=world.clock, require_nonce=False,
                                            max_age=dt.timedelta(hours=12)))
        assert relaxed.validate(world.leaves[FP][0]).revocation[0].source.startswith("OCSP")
    finally:
        world.server.ocsp_hook = None


# --------------------------------------------------------------------------- the clock


def test_the_clock_reaches_the_challenge_issuer_and_the_verifier(world):
    from cps.auth import ChallengeIssuer, Verifier

    world.publish(1)
    issuer = ChallengeIssuer(clock=world.clock)
    challenge = issuer.issue()
    assert challenge.expires_at == world.clock.now + dt.timedelta(minutes=5)
    verifier = Verifier(world.validator(), issuer.store, ["https://a.example"])
    assert verifier.clock is world.clock   # the validator's, unless given
    world.clock.now += dt.timedelta(minutes=6)
    token = {"format": "cps-auth/1", "algorithm": "RS256", "certificate": "AA==",
             "signature": "AA==", "nonce": challenge.nonce, "origin": "https://a.example"}
    from cps.auth.token import TOKEN_FORMAT

    token["format"] = TOKEN_FORMAT
    with pytest.raises(NonceExpired):
        verifier.verify(token, "https://a.example")



# --------------------------------------------------------------------------- second review


def test_a_revocation_only_a_delta_listed_outlives_that_delta(world):
    """Complete CRLs forged two days running: the first day's delta listed the card,
    the second day's (based on a complete CRL never received) does not."""
    leaf = world.leaves[FP][0]
    world.publish(1)
    soft, hard = world.validator(revocation="soft-fail"), world.validator()
    assert verdict(soft, leaf) == verdict(hard, leaf) == "valid"
    world.pki.revoke(FP, leaf.serial_number, paris(1, 12), x509.ReasonFlags.key_compromise)
    for day in (2, 3):
        world.publish(day)
        world.server.override(world.path(FP), forged_crl(world.pki, FP, world.last))
        assert verdict(soft, leaf) == "revoked", day
        assert verdict(hard, leaf) == "revoked", day
    # a restart with the cache kept: the delta that listed it is gone from the cache,
    # the revocation is not (kept beside the CRLs)
    world.clock.now += dt.timedelta(minutes=5)
    assert verdict(world.validator(revocation="soft-fail"), leaf) == "revoked"
    assert verdict(world.validator(), leaf) == "revoked"


def test_a_plan_made_before_a_rotation_is_not_kept_after_it(world):
    """Thread A decides from the old CRLs while thread B installs a newer one that
    lists the card: A's decision must not be remembered as current."""
    import threading

    leaf = world.leaves[FP][0]
    in_delta, b_done = threading.Event(), threading.Event()

    class Stalling(Fetcher):
        def fetch_crl(self, url, **kw):
            if threading.current_thread().name == "A" and url.endswith("-delta.crl"):
                in_delta.set()
                b_done.wait(10)   # the attacker stalls A's request
                raise RevocationUnavailable(f"{url}: timed out", source=url, reason="timeout")
            return super().fetch_crl(url, **kw)

    week = dt.timedelta(days=7)
    root = world.pki.ca(FP).parent

    def serve(at: dt.datetime, base: dt.datetime) -> None:  # week-long CRLs, as a2
        world.server.override(world.path(root), world.pki.crl(root, at, next_update=week))
        world.server.override(world.path(FP), world.pki.crl(FP, at, next_update=week))
        world.server.override(world.path(FP, delta=True), world.pki.crl(
            FP, at, delta=True, base=base, next_update=week))

    serve(paris(1, 7), paris(1, 7))
    world.clock.now = paris(1, 10)
    v = Validator(world.store, clock=world.clock,
                  fetcher=Stalling(cache_dir=world.cache, clock=world.clock, proxies={},
                                   timeout=5))
    assert verdict(v, leaf) == "valid"
    world.pki.revoke(FP, leaf.serial_number, paris(1, 12), x509.ReasonFlags.key_compromise)
    world.clock.now = paris(2, 6) + dt.timedelta(minutes=59, seconds=30)
    delta_url = world.server.base_url + world.path(FP, delta=True)
    v._held[delta_url].due = world.clock.now.timestamp()   # the delta is due (a retry)
    v._due = world.clock.now.timestamp()
    results = {}

    def a() -> None:
        results["A"] = verdict(v, leaf)

    def b() -> None:
        in_delta.wait(10)
        world.clock.now = paris(2, 7) + dt.timedelta(seconds=5)
        serve(paris(2, 7), paris(1, 7))
        results["B"] = verdict(v, leaf)
        b_done.set()

    threads = [threading.Thread(target=a, name="A"), threading.Thread(target=b, name="B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results["B"] == "revoked"
    world.clock.now += dt.timedelta(seconds=5)
    assert verdict(v, leaf) == "revoked"


def test_a_lying_cache_sidecar_counts_for_nothing(world):
    """Whoever writes the cache directory rewrites an old genuine CRL with a sidecar
    dated 2099 and today's ETag: its dates come from its bytes, its ETag is dropped."""
    import hashlib
    import json

    leaf = world.leaves[FP][0]
    world.publish(1)
    old = world.server.published_resource(world.path(FP))
    v = world.validator()
    assert verdict(v, leaf) == "valid"
    world.pki.revoke(FP, leaf.serial_number, paris(1, 12), x509.ReasonFlags.key_compromise)
    world.publish(2)
    assert verdict(v, leaf) == "revoked"
    fetcher = Fetcher(cache_dir=world.cache)
    data_path, meta_path = fetcher.cache_paths(world.server.base_url + world.path(FP))
    meta = json.loads(meta_path.read_text())
    data_path.write_bytes(old)
    meta.update(sha256=hashlib.sha256(old).hexdigest(), size=len(old),
                this_update="2099-01-01T00:00:00+00:00",
                next_update="2099-01-02T00:00:00+00:00",
                fetched_at="2099-01-01T00:00:00+00:00")
    meta_path.write_text(json.dumps(meta))
    world.clock.now += dt.timedelta(hours=1)
    assert verdict(world.validator(), leaf) == "revoked"   # a restart


def test_crl_dates_at_the_ends_of_time_give_no_untyped_error(world):
    far = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    at = paris(1, 7)
    crl = forged_crl(world.pki, FP, at, next_update=far - at)
    root = world.pki.ca(FP).parent
    v = Validator(world.store, crls=[world.pki.crl(root, at), crl],
                  clock_skew=dt.timedelta(hours=1), clock=Clock(at))
    assert verdict(v, world.leaves[FP][0]).startswith("unavailable")  # not signed by FP
