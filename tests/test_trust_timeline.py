"""A login server over 60 days, and a stateful model: revocation state over time.

A real HTTP PKI server (cps.testing.pkiserver) publishes new complete and delta
CRLs every morning at 07:00 Paris; the CA revokes cards and a CA, puts and lifts
holds; on some days the CRL URLs serve forged, planted (another CA's) or replayed
CRLs, or nothing; the server restarts on others, keeping its disk cache. Every
verdict of a hard-fail and a soft-fail Validator (and of a Verifier) is compared
with tests/timeline_oracle.py, which knows nothing of cps.trust.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from timeline_oracle import DOWN, FORGED, GENUINE, PLANTED, REPLAYED, Oracle

from cps.auth import ChallengeIssuer, Verifier
from cps.auth.token import signed_data
from cps.emulator.pki import TestPKI
from cps.errors import CertificateRevoked, RevocationUnavailable
from cps.testing.forge import forged_crl
from cps.testing.pkiserver import PkiServer
from cps.trust import Validator
from cps.trust.crlindex import CrlIndex
from cps.trust.fetch import Fetcher

PARIS = ZoneInfo("Europe/Paris")
ORIGIN = "https://login.example"
LEAF_CA, OTHER_CA = "FORT PERSONNES", "STANDARD PERSONNES"


class Clock:
    """One clock for the server, the fetcher, the validators and the verifier."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Leaf:
    ca: str
    cert: x509.Certificate
    key: object

    @property
    def serial(self) -> int:
        return self.cert.serial_number


class World:
    """The PKI, its server, the validators under test, and the oracle, kept in step."""

    def __init__(self, pki: TestPKI, server: PkiServer, cache: Path, start: datetime) -> None:
        self.pki, self.server, self.cache = pki, server, cache
        self.clock = Clock(start)
        server.clock = self.clock
        self.oracle = Oracle()
        self.store = pki.trust_store()
        self.leaves = [Leaf(LEAF_CA, *pki.issue_leaf(LEAF_CA, i)) for i in range(4)] + \
            [Leaf(OTHER_CA, *pki.issue_leaf(OTHER_CA, i)) for i in range(2)]
        self.last_publication: Optional[datetime] = None
        self.modes: Dict[str, str] = {}
        self.forged_bytes: List[bytes] = []
        self.previous: Dict[str, Optional[bytes]] = {}
        self.previous_times: Dict[str, Tuple[Optional[datetime], Optional[datetime]]] = {}
        self.verdicts = 0
        self.seen: set = set()
        self.restart()

    # -- paths ----------------------------------------------------------------------
    def complete_path(self, ca: str) -> str:
        return f"/crl/{self.pki.ca(ca).stem}.crl"

    def delta_path(self, ca: str) -> Optional[str]:
        return f"/crl/{self.pki.ca(ca).stem}-delta.crl" if self.pki.ca(ca).delta_crl_url \
            else None

    def paths(self) -> List[str]:
        out = []
        for ca in (LEAF_CA, OTHER_CA):
            out += [self.complete_path(ca), self.delta_path(ca),
                    self.complete_path(self.pki.ca(ca).parent)]
        return [p for p in out if p]

    # -- the server side ------------------------------------------------------------
    def publish(self, at: datetime, modes: Optional[Dict[str, str]] = None) -> None:
        """Publish at ``at``; ``modes`` says what some paths serve instead (path -> mode)."""
        modes = modes or {}
        if DOWN in modes.values():  # an outage takes the whole server down
            modes = {path: DOWN for path in self.paths()}
        base = self.last_publication or at - timedelta(days=1)
        self.clock.now = at
        self.server.clear_overrides()
        self.server.faults.reset()
        self.server.publish(at=at, delta_base=base)
        for path in self.paths():
            mode = modes.get(path, GENUINE)
            if mode == GENUINE:
                self.oracle.serve(path, mode, at, base)
            elif mode == REPLAYED:  # yesterday's genuine CRL: it may still be news
                self.oracle.serve(path, mode, *self.previous_times.get(path, (None, None)))
            else:
                self.oracle.serve(path, mode)
            ca = self._ca_of(path)
            if mode == FORGED:
                # future-dated by ten years, listing nothing, signed by an attacker
                data = forged_crl(self.pki, ca, at + timedelta(days=3650),
                                  delta_base=base if path.endswith("-delta.crl") else None)
                self.forged_bytes.append(data)
                self.server.override(path, data)
            elif mode == PLANTED:
                other = OTHER_CA if ca == LEAF_CA else LEAF_CA
                if self.pki.ca(ca).is_root:
                    other = "STANDARD" if ca == "FORT" else "FORT"
                self.server.override(
                    path, self.server.published_resource(self.complete_path(other)))
            elif mode == REPLAYED:
                previous = self.previous.get(path)
                if previous is not None:
                    self.server.override(path, previous)
            elif mode == DOWN:
                self.server.faults.down = True
        self.previous = {p: self.server.published_resource(p) for p in self.paths()}
        self.previous_times = {p: (at, base) for p in self.paths()}
        self.last_publication = at

    def _ca_of(self, path: str) -> str:
        for name in self.pki.roots.keys() | self.pki.intermediates.keys():
            if path in (self.complete_path(name), self.delta_path(name)):
                return name
        raise KeyError(path)

    # -- the login server -----------------------------------------------------------
    def restart(self) -> None:
        """A new process: new Fetcher and Validators, the same disk cache."""
        fetcher = Fetcher(cache_dir=self.cache, clock=self.clock, proxies={}, timeout=5)
        self.validators = {
            "hard": Validator(self.store, fetcher=fetcher, clock=self.clock),
            "soft": Validator(self.store, fetcher=fetcher, revocation="soft-fail",
                              clock=self.clock),
        }
        self.issuer = ChallengeIssuer(clock=self.clock)
        self.verifier = Verifier(self.validators["hard"], self.issuer.store, [ORIGIN],
                                 clock=self.clock)
        self.oracle.restart()

    def chain(self, leaf: Leaf) -> List[Tuple[str, Optional[str], str, int]]:
        ca = self.pki.ca(leaf.ca)
        return [(self.complete_path(ca.parent), None, ca.parent, ca.cert.serial_number),
                (self.complete_path(leaf.ca), self.delta_path(leaf.ca), leaf.ca, leaf.serial)]

    def check_all(self, through_verifier: bool = True) -> None:
        """Validate every leaf in both modes at the current time, against the oracle."""
        self.oracle.look(self.paths())
        t = self.clock.now
        for leaf in self.leaves:
            for mode, validator in self.validators.items():
                expected = self.oracle.verdict(self.chain(leaf), t, mode == "hard")
                got = _outcome(lambda v=validator, cert=leaf.cert: v.validate(cert))
                assert got == expected, (t.astimezone(PARIS).isoformat(), leaf.ca,
                                         leaf.serial, mode, got, expected)
                self.verdicts += 1
                self.seen.add((mode, got))
        if through_verifier:
            leaf = self.leaves[0]
            expected = self.oracle.verdict(self.chain(leaf), t, True)
            assert _outcome(lambda: self.login(leaf)) == expected, t.isoformat()
        for data in self.forged_bytes:  # forged bytes never reach the disk
            assert all(p.read_bytes() != data for p in self.cache.glob("*.bin"))

    def login(self, leaf: Leaf) -> object:
        nonce = self.issuer.issue().nonce
        signature = leaf.key.sign(signed_data(ORIGIN, nonce), padding.PKCS1v15(),
                                  hashes.SHA256())
        import base64

        der = leaf.cert.public_bytes(serialization.Encoding.DER)
        token = {"format": _token_format(), "algorithm": "RS256",
                 "certificate": base64.b64encode(der).decode(),
                 "signature": base64.b64encode(signature).decode(),
                 "nonce": nonce, "origin": ORIGIN}
        return self.verifier.verify(token, ORIGIN)

    # -- the CA's acts ----------------------------------------------------------------
    def revoke(self, leaf_or_ca: object, at: datetime,
               reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise) -> None:
        ca, serial = self._target(leaf_or_ca)
        self.pki.revoke(ca, serial, at, reason)
        self.oracle.revoke(ca, serial, at.replace(microsecond=0))

    def hold(self, leaf: Leaf, at: datetime) -> None:
        self.pki.hold(leaf.ca, leaf.serial, at)
        self.oracle.hold(leaf.ca, leaf.serial, at.replace(microsecond=0))

    def release(self, leaf: Leaf, at: datetime) -> None:
        self.pki.release(leaf.ca, leaf.serial, at)
        self.oracle.release(leaf.ca, leaf.serial, at.replace(microsecond=0))

    def _target(self, leaf_or_ca: object) -> Tuple[str, int]:
        if isinstance(leaf_or_ca, Leaf):
            return leaf_or_ca.ca, leaf_or_ca.serial
        ca = self.pki.ca(str(leaf_or_ca))
        return str(ca.parent), ca.cert.serial_number


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except CertificateRevoked:
        return "revoked"
    except RevocationUnavailable:
        return "unavailable"
    return "valid"


def _paris(day: datetime, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS) \
        .astimezone(timezone.utc)


def _token_format() -> str:
    from cps.auth.token import TOKEN_FORMAT

    return TOKEN_FORMAT


@pytest.fixture(scope="module")
def timeline_pki(tmp_path_factory):
    """A test PKI of its own (the CA's acts are permanent), served on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("timeline-pki")
    port = PkiServer.reserve()
    pki = TestPKI.generate(directory, seed=12, base_url=f"http://127.0.0.1:{port}")
    with PkiServer(pki, port=port) as server:
        yield directory, port, server


def _fresh_pki(timeline_pki) -> Tuple[TestPKI, PkiServer]:
    directory, port, server = timeline_pki
    pki = TestPKI.generate(directory, seed=12, base_url=f"http://127.0.0.1:{port}")
    server.pki = pki
    server.clear_overrides()
    server.faults.reset()
    return pki, server


# --------------------------------------------------------------------------- 60 days


def test_a_login_server_over_60_days(timeline_pki, tmp_path):
    pki, server = _fresh_pki(timeline_pki)
    start = datetime(pki.reference_time.year, 2, 1, tzinfo=PARIS)  # crosses the DST change
    world = World(pki, server, tmp_path / "cache", _paris(start, 6))
    fp = [leaf for leaf in world.leaves if leaf.ca == LEAF_CA]
    sp = [leaf for leaf in world.leaves if leaf.ca == OTHER_CA]
    fpc, fpd = world.complete_path(LEAF_CA), world.delta_path(LEAF_CA)
    spc = world.complete_path(OTHER_CA)
    root_sc = world.complete_path("STANDARD")
    serving = {  # day -> what some URLs serve instead of the day's CRL
        10: {fpc: FORGED}, 11: {fpc: FORGED},          # future-dated, attacker-signed
        20: {spc: PLANTED}, 21: {fpc: PLANTED},        # another CA's genuine CRL
        30: {fpd: FORGED},                              # the delta only
        38: {fpc: REPLAYED, fpd: REPLAYED},             # yesterday's genuine CRLs again
        40: {p: DOWN for p in world.paths()},           # the server is down all day
        52: {root_sc: FORGED},                          # after the CA was revoked
    }
    acts: Dict[int, List[Callable[[datetime], None]]] = {
        3: [lambda d: world.revoke(fp[0], _paris(d, 12))],
        8: [lambda d: world.hold(fp[1], _paris(d, 9))],
        11: [lambda d: world.revoke(fp[2], _paris(d, 15), x509.ReasonFlags.superseded)],
        14: [lambda d: world.release(fp[1], _paris(d, 12))],
        22: [lambda d: world.hold(sp[0], _paris(d, 12))],
        27: [lambda d: world.revoke(sp[0], _paris(d, 12),
                                    x509.ReasonFlags.affiliation_changed)],
        33: [lambda d: world.hold(fp[3], _paris(d, 12))],
        45: [lambda d: world.revoke(OTHER_CA, _paris(d, 12), x509.ReasonFlags.ca_compromise)],
    }
    restarts = {15, 35, 41, 53}
    counts = []
    for n in range(60):
        day = start + timedelta(days=n)
        world.publish(_paris(day, 7), serving.get(n))
        if n in restarts:
            world.clock.now = _paris(day, 8)
            world.restart()
        for hour in (10, 19):
            world.clock.now = _paris(day, hour)
            world.check_all()
        for act in acts.get(n, []):
            act(day)
        if n in (20, 59):
            gc.collect()
            counts.append(sum(isinstance(o, CrlIndex) for o in gc.get_objects()))
    # every verdict was compared, and every kind of verdict happened in each mode
    assert world.verdicts == 60 * 2 * len(world.leaves) * 2
    assert world.seen == {("hard", "valid"), ("hard", "revoked"), ("hard", "unavailable"),
                          ("soft", "valid"), ("soft", "revoked")}
    # memory is flat across generations: only the CRLs held now are alive
    assert counts[1] <= counts[0] + 2, counts
    for validator in world.validators.values():
        assert len(validator._held) <= len(world.paths())
        assert not validator._crls


def test_the_oracle_sees_what_the_schedule_intends():
    """The oracle itself, on hand-made cases (it is the yardstick of the tests above)."""
    o = Oracle()
    p0 = datetime(2026, 2, 1, 6, tzinfo=timezone.utc)
    o.revoke("CA", 1, p0 + timedelta(hours=5))
    o.serve("/crl/x.crl", GENUINE, p0, None)
    o.serve("/crl/x-delta.crl", GENUINE, p0, p0 - timedelta(days=1))
    o.look(["/crl/x.crl", "/crl/x-delta.crl"])
    chain = [("/crl/x.crl", "/crl/x-delta.crl", "CA", 1)]
    assert o.verdict(chain, p0 + timedelta(hours=6), True) == "valid"   # not published yet
    p1 = p0 + timedelta(days=1)
    o.serve("/crl/x.crl", GENUINE, p1, None)
    o.serve("/crl/x-delta.crl", FORGED)
    o.look(["/crl/x.crl", "/crl/x-delta.crl"])
    assert o.verdict(chain, p1 + timedelta(hours=1), True) == "revoked"  # listed anyway
    assert o.verdict([("/crl/x.crl", "/crl/x-delta.crl", "CA", 2)],
                     p1 + timedelta(hours=1), True) == "unavailable"      # no delta
    assert o.verdict([("/crl/x.crl", "/crl/x-delta.crl", "CA", 2)],
                     p1 + timedelta(hours=1), False) == "valid"
    assert o.verdict(chain, p1 + timedelta(days=5), False) == "revoked"   # expired, remembered


# --------------------------------------------------------------------------- stateful


@settings(max_examples=30, stateful_step_count=30, deadline=None,
          suppress_health_check=list(HealthCheck))
class RevocationOverTime(RuleBasedStateMachine):
    """publish, forge, plant, revoke, hold, release, advance, validate, restart."""

    pki_env = None  # set by the test below
    checks = 0
    tmp: Optional[Path] = None

    @initialize()
    def start(self) -> None:
        pki, server = _fresh_pki(self.pki_env)
        cache = Path(self.tmp) / f"cache-{id(self)}-{datetime.now().timestamp()}"
        shutil.rmtree(cache, ignore_errors=True)
        day = datetime(pki.reference_time.year, 3, 20, tzinfo=PARIS)
        self.day = day
        self.world = World(pki, server, cache, _paris(day, 7))
        self.world.publish(_paris(day, 7))
        self.world.clock.now = _paris(day, 8)

    @rule(modes=st.dictionaries(st.integers(0, 5), st.sampled_from(
        [GENUINE, FORGED, PLANTED, REPLAYED, DOWN]), max_size=3))
    def publish(self, modes: Dict[int, str]) -> None:
        """The next morning's publication, some URLs serving something else."""
        self.day += timedelta(days=1)
        paths = self.world.paths()
        self.world.publish(_paris(self.day, 7),
                           {paths[i % len(paths)]: m for i, m in modes.items()})
        self.world.clock.now = _paris(self.day, 8)
        self.validate()

    @rule(index=st.integers(0, 5), reason=st.sampled_from(
        [x509.ReasonFlags.key_compromise, x509.ReasonFlags.superseded,
         x509.ReasonFlags.unspecified]))
    def revoke(self, index: int, reason: x509.ReasonFlags) -> None:
        leaf = self.world.leaves[index]
        status = self.world.pki.revocation_status(leaf.ca, leaf.serial, self.world.clock.now)
        if status is not None and status[1] != x509.ReasonFlags.certificate_hold:
            return
        with contextlib.suppress(ValueError):  # the PKI refuses a contradiction
            self.world.revoke(leaf, self.world.clock.now, reason)

    @rule(index=st.integers(0, 5))
    def hold(self, index: int) -> None:
        leaf = self.world.leaves[index]
        if self.world.pki.revocation_status(leaf.ca, leaf.serial, self.world.clock.now):
            return
        with contextlib.suppress(ValueError):  # the PKI refuses a contradiction
            self.world.hold(leaf, self.world.clock.now)

    @rule(index=st.integers(0, 5))
    def release(self, index: int) -> None:
        leaf = self.world.leaves[index]
        status = self.world.pki.revocation_status(leaf.ca, leaf.serial, self.world.clock.now)
        if status is None or status[1] != x509.ReasonFlags.certificate_hold:
            return
        with contextlib.suppress(ValueError):  # the PKI refuses a contradiction
            self.world.release(leaf, self.world.clock.now)

    @rule()
    def revoke_a_ca(self) -> None:
        ca = self.world.pki.ca(OTHER_CA)
        if self.world.pki.revocation_status(ca.parent, ca.cert.serial_number,
                                            self.world.clock.now) is None:
            self.world.revoke(OTHER_CA, self.world.clock.now, x509.ReasonFlags.ca_compromise)

    @rule(hours=st.integers(1, 40))
    def advance(self, hours: int) -> None:
        """Time passes without a publication (the CRLs may expire)."""
        now = self.world.clock.now + timedelta(hours=hours)
        if now >= _paris(self.day + timedelta(days=1), 7):
            now = _paris(self.day + timedelta(days=1), 6, 59)  # publications are rules
        self.world.clock.now = max(now, self.world.clock.now)
        self.validate()

    @rule()
    def validate(self) -> None:
        self.world.check_all(through_verifier=False)
        type(self).checks += 1

    @rule()
    def restart(self) -> None:
        self.world.restart()
        self.validate()

    @invariant()
    def bounded(self) -> None:
        if hasattr(self, "world"):
            for validator in self.world.validators.values():
                assert len(validator._held) <= len(self.world.paths())


def test_revocation_state_machine(timeline_pki, tmp_path):
    RevocationOverTime.pki_env = timeline_pki
    RevocationOverTime.tmp = tmp_path
    RevocationOverTime.checks = 0
    RevocationOverTime.TestCase().runTest()
    assert RevocationOverTime.checks >= 100  # the model was compared, many times


def test_a_revocation_only_a_verified_delta_lists(timeline_pki, tmp_path):
    """BUG-57 (found by the state machine above): revoked, then the next morning the
    complete CRL's URL serves a forgery while the genuine delta CRL lists the
    revocation; the validators had never held a complete CRL. Hard-fail said
    "unavailable" and soft-fail accepted the certificate: a revocation a verified
    delta CRL lists is final, with or without its complete CRL."""
    RevocationOverTime.pki_env = timeline_pki
    RevocationOverTime.tmp = tmp_path
    machine = RevocationOverTime()
    machine.start()
    machine.revoke(index=0, reason=x509.ReasonFlags.key_compromise)
    machine.publish(modes={0: FORGED})          # validates both modes against the oracle
    leaf = machine.world.leaves[0]
    for validator in machine.world.validators.values():
        with pytest.raises(CertificateRevoked):
            validator.validate(leaf.cert)
