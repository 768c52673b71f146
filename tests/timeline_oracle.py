"""An oracle for revocation over time, written without cps.trust.

It knows what the CA did (revocations, holds, releases, with their times), what
each CRL URL served each time it was published (genuine, forged, planted,
replayed, nothing), and from that alone says what a validator that looks at the
network after each publication must answer. It never parses a CRL: the rules
below are RFC 5280's, stated in terms of publication times.

The rules it encodes (the issue's, docs/trust.md's):

* a CRL counts only when it is the CA's own (genuine, or replayed but newer than
  the one held), at the URL the certificate names; anything else leaves what
  was held in place;
* a complete CRL published at P is usable at t while t <= P + next_update;
  online, in hard-fail, only with a delta CRL that applies to it (its base
  <= P <= the delta's time) and is current; in soft-fail it is used alone then;
* the answer from complete P (+ delta D) is the CA's state at D (or P);
* a revocation (not a hold) that any genuine CRL taken listed is final: the
  certificate is revoked whatever came after;
* without a usable answer, the newest genuine CRL held (with its newest
  applicable delta) still says "revoked" (revocation and hold); otherwise
  hard-fail is "unavailable" and soft-fail lets the certificate through;
* every certificate of the path is judged (the intermediate by its root's CRL,
  the leaf by its CA's); one known revoked makes the path revoked, otherwise one
  without status makes it unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Dict, List, Optional, Tuple

GENUINE, FORGED, PLANTED, REPLAYED, DOWN = "genuine", "forged", "planted", "replayed", "down"


@dataclass
class Held:
    """What a validator holds for one URL: the publication times of genuine CRLs."""

    complete: Optional[datetime] = None
    delta: Optional[Tuple[datetime, datetime]] = None  # (published, base)


@dataclass
class Oracle:
    next_update: timedelta = timedelta(days=1)
    #: (ca, serial) -> [(time, "revoke" | "hold" | "release")]
    events: Dict[Tuple[str, int], List[Tuple[datetime, str]]] = field(default_factory=dict)
    #: url path -> what is served now: (mode, published at, delta base)
    served: Dict[str, Tuple[str, Optional[datetime], Optional[datetime]]] = \
        field(default_factory=dict)
    held: Dict[str, Held] = field(default_factory=dict)
    #: url path -> the time spans whose revocations a CRL taken from it listed:
    #: (-inf, P] for a complete CRL of P, (base, P] for a delta CRL
    seen: Dict[str, List[Tuple[Optional[datetime], datetime]]] = field(default_factory=dict)

    # -- what the CA does --------------------------------------------------------------
    def revoke(self, ca: str, serial: int, at: datetime) -> None:
        self.events.setdefault((ca, serial), []).append((at, "revoke"))

    def hold(self, ca: str, serial: int, at: datetime) -> None:
        self.events.setdefault((ca, serial), []).append((at, "hold"))

    def release(self, ca: str, serial: int, at: datetime) -> None:
        self.events.setdefault((ca, serial), []).append((at, "release"))

    def known_revoked(self, ca: str, serial: int, paths: List[Optional[str]]) -> bool:
        """Whether a genuine CRL taken from one of ``paths`` listed a revocation (not a
        hold) of the serial: revocations are final, whatever came after."""
        for at, kind in self.events.get((ca, serial), []):
            if kind != "revoke":
                continue
            for path in paths:
                for start, end in self.seen.get(path or "", []):
                    if (start is None or start < at) and at <= end:
                        return True
        return False

    def listed(self, ca: str, serial: int, moment: datetime) -> bool:
        """Whether the CA's state at ``moment`` lists the serial (revoked or held)."""
        held = False
        for at, kind in sorted(self.events.get((ca, serial), []), key=lambda e: e[0]):
            if at > moment:
                break
            if kind == "revoke":
                return True
            held = kind == "hold"
        return held

    # -- what the URLs serve -----------------------------------------------------------
    def serve(self, path: str, mode: str, published: Optional[datetime] = None,
              base: Optional[datetime] = None) -> None:
        self.served[path] = (mode, published, base)

    def look(self, paths: List[str]) -> None:
        """A validation after a publication: genuine CRLs newer than the one held are
        taken (a replayed one too, if it is news), nothing else."""
        for path in paths:
            mode, published, base = self.served.get(path, (DOWN, None, None))
            if mode not in (GENUINE, REPLAYED) or published is None:
                continue
            held = self.held.setdefault(path, Held())
            span = (base if path.endswith("-delta.crl") else None, published)
            if span not in self.seen.setdefault(path, []):
                self.seen[path].append(span)
            if path.endswith("-delta.crl"):
                if held.delta is None or published > held.delta[0]:
                    held.delta = (published, base or published)
            elif held.complete is None or published > held.complete:
                held.complete = published

    def restart(self) -> None:
        """A restart keeps what was accepted (the disk cache holds exactly that)."""

    # -- verdicts ----------------------------------------------------------------------
    def status(self, complete_path: str, delta_path: Optional[str], ca: str, serial: int,
               t: datetime, hard: bool) -> str:
        if self.known_revoked(ca, serial, [complete_path, delta_path]):
            return "revoked"
        held = self.held.get(complete_path, Held())
        p = held.complete
        if p is None:
            return "unavailable" if hard else "unknown"
        d = self.held.get(delta_path, Held()).delta if delta_path else None
        applies = d is not None and d[1] <= p <= d[0]
        current = t <= p + self.next_update
        delta_current = applies and d is not None and t <= d[0] + self.next_update
        newest = d[0] if applies and d is not None else p
        if current and (delta_path is None or delta_current or not hard):
            used = d[0] if delta_path is not None and delta_current and d is not None else p
            return "revoked" if self.listed(ca, serial, used) else "good"
        if self.listed(ca, serial, newest):
            return "revoked"
        return "unavailable" if hard else "unknown"

    def verdict(self, chain: List[Tuple[str, Optional[str], str, int]], t: datetime,
                hard: bool) -> str:
        """``chain``: (complete path, delta path, issuing CA, serial), top down.

        A certificate known to be revoked is reported as such even when a CA
        above it has no revocation status (the more telling answer)."""
        found = [self.status(complete_path, delta_path, ca, serial, t, hard)
                 for complete_path, delta_path, ca, serial in chain]
        for status in ("revoked", "unavailable"):
            if status in found:
                return status
        return "valid"
