"""Certificate policy processing, RFC 5280 section 6.1 (the valid_policy_tree).

Written to the RFC's steps, which are cited as comments; policy OIDs are the
raw DER contents of the OID (``cps.trust.certs.OID.ANY_POLICY`` is anyPolicy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from .certs import OID

ANY = OID.ANY_POLICY

__all__ = ["PolicyNode", "PolicyState"]


@dataclass(eq=False)
class PolicyNode:
    valid_policy: bytes
    qualifiers: bytes
    expected: Set[bytes]
    parent: Optional["PolicyNode"] = None
    children: List["PolicyNode"] = field(default_factory=list)

    def add(self, valid_policy: bytes, qualifiers: bytes, expected: Set[bytes]) -> "PolicyNode":
        child = PolicyNode(valid_policy, qualifiers, set(expected), self)
        self.children.append(child)
        return child


@dataclass
class PolicyState:
    """The policy part of the RFC 5280 6.1 state variables.

    :param n: path length (certificates, anchor excluded).
    """

    n: int
    explicit_policy: int
    inhibit_any_policy: int
    policy_mapping: int
    root: Optional[PolicyNode] = None
    levels: List[List[PolicyNode]] = field(default_factory=list)
    #: a policy mapping changed the tree: the leaf fast path does not apply
    mapped: bool = False

    @classmethod
    def initial(cls, n: int, explicit: bool, inhibit_mapping: bool,
                inhibit_any: bool) -> "PolicyState":
        # 6.1.2 (a), (d)-(f)
        root = PolicyNode(ANY, b"", {ANY})
        return cls(n=n, explicit_policy=0 if explicit else n + 1,
                   inhibit_any_policy=0 if inhibit_any else n + 1,
                   policy_mapping=0 if inhibit_mapping else n + 1,
                   root=root, levels=[[root]])

    # ------------------------------------------------------------------ helpers
    def copy(self) -> "PolicyState":
        """A deep copy (the CA part of a path is computed once and reused per leaf)."""
        new = PolicyState(self.n, self.explicit_policy, self.inhibit_any_policy,
                          self.policy_mapping, mapped=self.mapped)
        if self.root is None:
            return new
        mapping: Dict[int, PolicyNode] = {}

        def clone(node: PolicyNode, parent: Optional[PolicyNode]) -> PolicyNode:
            copy = PolicyNode(node.valid_policy, node.qualifiers, set(node.expected), parent)
            mapping[id(node)] = copy
            copy.children = [clone(c, copy) for c in node.children]
            return copy

        new.root = clone(self.root, None)
        new.levels = [[mapping[id(x)] for x in level] for level in self.levels]
        return new

    def _prune(self, depth: int) -> None:
        """Delete nodes of depth ``depth`` and above-up-the-tree that have no children."""
        for d in range(depth, -1, -1):
            keep = []
            for node in self.levels[d]:
                if node.children or d == len(self.levels) - 1:
                    keep.append(node)
                else:
                    if node.parent is not None:
                        node.parent.children.remove(node)
            self.levels[d] = keep
        if not self.levels[0]:
            self.root = None
            self.levels = []

    # ------------------------------------------------------------------ 6.1.3 (d)-(f)
    def process_certificate(self, i: int, policies: Optional[List[Tuple[bytes, bytes]]],
                            self_issued: bool) -> None:
        """Steps (d) and (e) of 6.1.3 for certificate ``i`` (1-based)."""
        if self.root is None:
            return
        if policies is None:  # (e): no certificatePolicies extension
            self.root, self.levels = None, []
            return
        previous = self.levels[i - 1]
        level: List[PolicyNode] = []
        any_qualifiers: Optional[bytes] = None
        for oid, quals in policies:
            if oid == ANY:
                any_qualifiers = quals
                continue
            # (d)(1)(i): every node of depth i-1 expecting P gets a child P
            matched = False
            for node in previous:
                if oid in node.expected:
                    level.append(node.add(oid, quals, {oid}))
                    matched = True
            # (d)(1)(ii): else a child of the anyPolicy node of depth i-1
            if not matched:
                for node in previous:
                    if node.valid_policy == ANY:
                        level.append(node.add(oid, quals, {oid}))
        # (d)(2): anyPolicy in the certificate
        if any_qualifiers is not None and (self.inhibit_any_policy > 0
                                           or (i < self.n and self_issued)):
            for node in previous:
                present = {c.valid_policy for c in node.children}
                for p in sorted(node.expected):
                    if p not in present:
                        level.append(node.add(p, any_qualifiers, {p}))
        self.levels.append(level)
        # (d)(3): prune childless nodes of depth i-1 and upwards
        if level:
            self._prune(i - 1)
        else:
            self.root, self.levels = None, []

    def satisfied(self) -> bool:
        """Step (f): explicit_policy > 0 or a non-NULL tree."""
        return self.explicit_policy > 0 or self.root is not None

    # ------------------------------------------------------------------ 6.1.4 (a)-(b)
    def process_mappings(self, i: int, mappings: List[Tuple[bytes, bytes]]) -> bool:
        """Steps (a)-(b) of 6.1.4; False when a mapping involves anyPolicy."""
        for issuer_p, subject_p in mappings:
            if issuer_p == ANY or subject_p == ANY:
                return False  # (a)
        if self.root is None or not mappings:
            return True
        self.mapped = True
        by_issuer: Dict[bytes, List[bytes]] = {}
        for issuer_p, subject_p in mappings:
            by_issuer.setdefault(issuer_p, [])
            if subject_p not in by_issuer[issuer_p]:
                by_issuer[issuer_p].append(subject_p)
        level = self.levels[i]
        if self.policy_mapping > 0:  # (b)(1)
            for issuer_p, targets in by_issuer.items():
                nodes = [x for x in level if x.valid_policy == issuer_p]
                if nodes:
                    for node in nodes:
                        node.expected = set(targets)
                else:
                    for any_node in [x for x in level if x.valid_policy == ANY]:
                        parent = any_node.parent
                        if parent is not None:
                            level.append(parent.add(issuer_p, any_node.qualifiers,
                                                    set(targets)))
        else:  # (b)(2): delete the mapped nodes, then prune
            for issuer_p in by_issuer:
                for node in [x for x in level if x.valid_policy == issuer_p]:
                    level.remove(node)
                    if node.parent is not None:
                        node.parent.children.remove(node)
            if level:
                self._prune(i - 1)
            else:
                self.root, self.levels = None, []
        return True

    # ------------------------------------------------------------------ 6.1.4 (h)-(j), 6.1.5
    def next_certificate(self, self_issued: bool, require_explicit: Optional[int],
                         inhibit_mapping: Optional[int], inhibit_any: Optional[int]) -> None:
        if not self_issued:  # (h)
            if self.explicit_policy:
                self.explicit_policy -= 1
            if self.policy_mapping:
                self.policy_mapping -= 1
            if self.inhibit_any_policy:
                self.inhibit_any_policy -= 1
        if require_explicit is not None:  # (i)
            self.explicit_policy = min(self.explicit_policy, require_explicit)
        if inhibit_mapping is not None:
            self.policy_mapping = min(self.policy_mapping, inhibit_mapping)
        if inhibit_any is not None:  # (j)
            self.inhibit_any_policy = min(self.inhibit_any_policy, inhibit_any)

    def wrap_up(self, require_explicit: Optional[int],
                user_policies: Optional[Iterable[bytes]]) -> FrozenSet[bytes]:
        """6.1.5 (a), (b), (g); returns the valid policies (empty set if the tree is NULL).

        :param user_policies: the user-initial-policy-set; None means any-policy.
        """
        if self.explicit_policy:  # (a)
            self.explicit_policy -= 1
        if require_explicit == 0:  # (b)
            self.explicit_policy = 0
        if self.root is None:
            return frozenset()
        depth_n = len(self.levels) - 1
        if depth_n == 0:
            return frozenset()
        # The valid_policy_node_set: nodes whose ancestors are all anyPolicy
        # (the policies in the trust anchor's domain, before any mapping).
        node_set: List[Tuple[PolicyNode, int]] = []
        stack = [(self.root, 0)]
        while stack:
            node, depth = stack.pop()
            for child in node.children:
                node_set.append((child, depth + 1))
                if child.valid_policy == ANY:
                    stack.append((child, depth + 1))
        user = None if user_policies is None else set(user_policies)
        if user is not None and ANY not in user:  # (g)(iii)
            present = {node.valid_policy for node, _ in node_set}
            for node, depth in list(node_set):
                if node.valid_policy != ANY and node.valid_policy not in user:
                    self._delete_subtree(node, depth)  # (g)(iii)(2)
            for node, depth in list(node_set):
                if node.valid_policy == ANY and depth == depth_n:  # (g)(iii)(3)
                    parent = node.parent
                    if parent is None:  # depth_n >= 1: only the root has no parent
                        raise AssertionError("a policy node below the root without a parent")
                    for p in sorted(user - present):
                        child = parent.add(p, node.qualifiers, {p})
                        self.levels[depth_n].append(child)
                        node_set.append((child, depth_n))
                    self._delete_subtree(node, depth)
            self._prune(depth_n - 1)  # (g)(iii)(4)
            if self.root is None or not self.levels[depth_n]:
                self.root, self.levels = None, []
                return frozenset()
        alive = {id(x) for x in self.levels[depth_n]}
        out: Set[bytes] = set()
        for node, depth in node_set:
            if node.valid_policy == ANY and depth < depth_n:
                continue
            if self._reaches(node, depth, depth_n, alive):
                out.add(node.valid_policy)
        return frozenset(out)

    def _reaches(self, node: PolicyNode, depth: int, depth_n: int, alive: Set[int]) -> bool:
        if depth == depth_n:
            return id(node) in alive
        return any(self._reaches(c, depth + 1, depth_n, alive) for c in node.children)

    def _delete_subtree(self, node: PolicyNode, depth: int) -> None:
        stack = [(node, depth)]
        while stack:
            current, d = stack.pop()
            if current in self.levels[d]:
                self.levels[d].remove(current)
            stack.extend((c, d + 1) for c in current.children)
        if node.parent is not None and node in node.parent.children:
            node.parent.children.remove(node)

    def leaf_outcome(self, policies: Optional[List[Tuple[bytes, bytes]]],
                     require_explicit: Optional[int]) -> Tuple[bool, FrozenSet[bytes]]:
        """Steps 6.1.3 (d)-(f) for the last certificate and 6.1.5 (a), (b), (g)(ii)
        (user-initial-policy-set = any-policy), computed without touching the tree.

        The CA part of a path is processed once and its tree shared by every
        leaf; this spares a copy per leaf. Returns (acceptable, valid policies).
        """
        explicit = self.explicit_policy
        if explicit:
            explicit -= 1                          # 6.1.5 (a)
        if require_explicit == 0:
            explicit = 0                           # 6.1.5 (b)
        found: Set[bytes] = set()
        if self.root is not None and policies is not None:
            previous = self.levels[self.n - 1]
            any_quals = None
            for oid, quals in policies:
                if oid == ANY:
                    any_quals = quals
                    continue
                if any(oid in node.expected for node in previous) or \
                        any(node.valid_policy == ANY for node in previous):
                    found.add(oid)                 # (d)(1)
            if any_quals is not None and self.inhibit_any_policy > 0:
                for node in previous:              # (d)(2): every expected policy not yet there
                    found.update(node.expected)
        # (f) at certificate n uses the counters before the wrap-up decrement
        if not (self.explicit_policy > 0 or found):
            return False, frozenset()
        return explicit > 0 or bool(found), frozenset(found)
