"""NIST PKITS conformance of cps.trust (RFC 5280 6.1 path validation, 6.3 CRLs).

Every test of PKITS sections 4.1 to 4.16 is run through :class:`Validator`,
under the PKITS default settings (initial-policy-set any-policy, no explicit
policy, mapping and anyPolicy allowed) and, for the policy sections (4.8, 4.10,
4.12), under the extra settings PKITS prescribes for the test. Test ids are
"<PKITS number>-<setting>": "4.8.1-default", "4.8.1-explicit-p1p2"...

Inputs, per test: a TrustStore with the anchor TrustAnchorRootCertificate and,
as intermediates, the certificates PKITS lists in the test's "Certification
Path" (the CA chain, and the CRL-signing certificates where there are some);
the CRLs PKITS lists, plus TrustAnchorRootCRL; revocation "hard-fail" (every
PKITS path comes with its CRLs); a validation time at which every PKITS object
that is meant to be current is (the 2011 data set runs from 2010-01-01 to
2030-12-31). Files are read, and CRLs indexed, once per session.

A failure is checked for its kind (exception class, ``reason``, and the
position in the path where it is unambiguous); where two answers are
defensible both are accepted, and the constant that says so explains why.
Failing cases are neither skipped nor xfailed: they are the validator's
known non-conformities.

Sources of the expectations (test data facts only, no code taken):

* NIST, "Public Key Interoperability Test Suite (PKITS) Certification Path
  Validation", v1.0.1 (2011), section 4: the file names encode the default
  outcome (Valid.../Invalid...);
* the per-setting outcomes and the user-constrained-policy-set of each policy
  test, as transcribed from the PKITS text in Chromium/BoringSSL's
  ``pki/testdata/nist-pkits/generate_tests.py`` (TEST_OVERRIDES): for a run
  whose initial-policy-set is any-policy that set equals PKITS'
  authorities-constrained-policy-set; for the non-policy tests every
  certificate asserts NIST-test-policy-1, so valid paths give {test-policy-1};
* the certification path and CRL lists, and the kind of failure (revoked vs
  revocation status unknown), from pyHanko's
  ``tests/fixtures/nist_pkits/pkits.json`` (MatthiasValvekens/pyHanko);
* the authorities-constrained sets of 4.8.13 and 4.8.18 (default runs) follow
  from the sets above (each single-policy run that validates puts its policy in
  the set, and the CA asserts no other) and agree with the MA3/ESYA PKITS suite
  (CertificatePoliciesTest.java).

``result.policies`` is the user-constrained-policy-set (equal to the
authorities-constrained one when the initial-policy-set is any-policy).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import FrozenSet, List, Optional, Sequence, Tuple, Type

import pytest

from cps.errors import (
    CertificateExpired,
    CertificateInvalid,
    CertificateParseError,
    CertificatePolicyError,
    CertificateRevoked,
    CpsError,
    CrlError,
    RevocationUnavailable,
)
from cps.trust.anchors import TrustStore
from cps.trust.validate import Validator

PKITS = Path(__file__).resolve().parent.parent / "fixtures" / "pkits"
ANCHOR = "TrustAnchorRootCertificate"
ANCHOR_CRL = "TrustAnchorRootCRL"
#: Every certificate and CRL meant to be current is (2010-01-01 .. 2030-12-31);
#: the delta CRLs of 4.15 (thisUpdate 2011-01-01) too.
AT = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)

ANY = "2.5.29.32.0"
#: NIST-test-policy-1, -2, -3 and -6
P1, P2, P3, P6 = (f"2.16.840.1.101.3.2.1.48.{i}" for i in (1, 2, 3, 6))


# ------------------------------------------------------------------------------------ expectations
@dataclass(frozen=True)
class Err:
    """An expected failure: one of ``types``; for CertificateInvalid, one of ``reasons``."""

    types: Tuple[Type[BaseException], ...]
    reasons: Optional[FrozenSet[str]] = None
    position: Optional[int] = None
    label: str = ""

    def at(self, position: int) -> "Err":
        return Err(self.types, self.reasons, position, self.label)

    def problem(self, exc: BaseException) -> Optional[str]:
        """None if ``exc`` is an acceptable failure, else what is wrong with it."""
        if not isinstance(exc, self.types):
            return f"expected {self.label}, got {_describe(exc)}"
        if isinstance(exc, (CertificateInvalid, CrlError)):
            if self.reasons is not None and exc.reason not in self.reasons:
                return f"expected {self.label}, got {_describe(exc)}"
            if self.position is not None and getattr(exc, "position", None) != self.position:
                return (f"expected {self.label} at position {self.position}, "
                        f"got {_describe(exc)}")
        return None


def _describe(exc: BaseException) -> str:
    extra = []
    for attr in ("reason", "position"):
        if hasattr(exc, attr):
            extra.append(f"{attr}={getattr(exc, attr)!r}")
    return f"{type(exc).__name__}({', '.join(extra)}): {exc}"


def _err(label: str, *types: Type[BaseException], reasons: Sequence[str] = ()) -> Err:
    return Err(types, frozenset(reasons) or None, None, label)


#: 4.1.2/4.1.6: PKITS corrupts the signature by setting the BIT STRING's
#: unused-bits octet; a bad signature, or refusing the certificate as
#: malformed (an RSA/DSA signature is whole octets), are both rejections.
SIGNATURE_OR_MALFORMED = _err("CertificateInvalid('signature') or CertificateParseError",
                              CertificateInvalid, CertificateParseError, reasons=["signature"])
SIGNATURE = _err("CertificateInvalid('signature')", CertificateInvalid, reasons=["signature"])
NOT_YET_VALID = _err("CertificateExpired('not-yet-valid')", CertificateExpired,
                     reasons=["not-yet-valid"])
EXPIRED = _err("CertificateExpired('expired')", CertificateExpired, reasons=["expired"])
#: No issuer of that name: no path at all, or a name-chaining failure.
NAME_CHAINING = _err("UntrustedCertificate or CertificateInvalid('name-chaining')",
                     CertificateInvalid, reasons=["untrusted", "name-chaining"])
REVOKED = _err("CertificateRevoked", CertificateRevoked)
#: No usable CRL (missing, badly signed, stale, out of scope, unknown critical
#: extension...): the status is unknown, which hard-fail refuses.
NO_STATUS = _err("RevocationUnavailable", RevocationUnavailable)
#: 4.4.4: PKITS corrupts the CRL signature the same way as in 4.1.2; a CRL
#: refused as malformed when loaded (CrlError "malformed") is also a rejection.
NO_STATUS_OR_MALFORMED_CRL = Err((RevocationUnavailable, CrlError),
                                 frozenset({"malformed"}), None,
                                 "RevocationUnavailable or CrlError('malformed')")
#: 4.4.21: the certificate of the CRL signer is revoked, so the CRL cannot be
#: trusted (status unknown); reporting the revocation itself is also defensible.
NO_STATUS_OR_REVOKED = _err("RevocationUnavailable or CertificateRevoked",
                            RevocationUnavailable, CertificateRevoked)
NOT_CA = _err("CertificateInvalid('not-ca')", CertificateInvalid, reasons=["not-ca"])
PATH_LENGTH = _err("CertificateInvalid('path-length')", CertificateInvalid,
                   reasons=["path-length"])
KEY_USAGE = _err("CertificateInvalid('key-usage')", CertificateInvalid, reasons=["key-usage"])
POLICY = _err("CertificatePolicyError", CertificatePolicyError)
NAME_CONSTRAINTS = _err("CertificateInvalid('name-constraints')", CertificateInvalid,
                        reasons=["name-constraints"])
CRITICAL_EXTENSION = _err("CertificateInvalid('critical-extension')", CertificateInvalid,
                          reasons=["critical-extension"])
#: 4.5.8: the path goes through the CRL-signing certificate, which is neither
#: a CA (basicConstraints) nor a certificate signer (keyUsage): both violated.
NOT_CA_OR_KEY_USAGE = _err("CertificateInvalid('not-ca' or 'key-usage')", CertificateInvalid,
                           reasons=["not-ca", "key-usage"])

VALID = None


@dataclass(frozen=True)
class Setting:
    initial_policies: Optional[Tuple[str, ...]] = None
    explicit_policy: bool = False
    inhibit_policy_mapping: bool = False
    inhibit_any_policy: bool = False


SETTINGS = {
    "default": Setting(),
    "explicit": Setting(explicit_policy=True),
    "explicit-p1": Setting((P1,), explicit_policy=True),
    "explicit-p2": Setting((P2,), explicit_policy=True),
    "explicit-p1p2": Setting((P1, P2), explicit_policy=True),
    "p1": Setting((P1,)),
    "p2": Setting((P2,)),
    "p3": Setting((P3,)),
    "p6": Setting((P6,)),
    "p1p2": Setting((P1, P2)),
    "inhibit-mapping": Setting(inhibit_policy_mapping=True),
    "inhibit-any": Setting(inhibit_any_policy=True),
}


@dataclass(frozen=True)
class Case:
    number: str                       # PKITS test number, "4.8.1"
    setting: str                      # key of SETTINGS
    ee: str                           # end-entity file stem
    certs: Tuple[str, ...]            # other certificates PKITS lists for the path
    crls: Tuple[str, ...]             # CRLs PKITS lists (TrustAnchorRootCRL is added)
    expect: Optional[Err]             # None: the path must validate
    policies: Optional[FrozenSet[str]] = field(default=None)  # checked when valid and given

    @property
    def id(self) -> str:
        return f"{self.number}-{self.setting}"


ONLY_P1 = frozenset({P1})
NONE_: FrozenSet[str] = frozenset()
CASES: List[Case] = []


def t(number: str, ee: str, certs: Sequence[str], crls: Sequence[str],
      expect: Optional[Err] = VALID, policies: Optional[FrozenSet[str]] = ONLY_P1,
      *variants: Tuple[str, Optional[Err], Optional[FrozenSet[str]]]) -> None:
    """One PKITS test: its default-settings run, then the extra runs PKITS asks for."""
    runs = [("default", expect, policies if expect is VALID else None)] + list(variants)
    for setting, exp, pols in runs:
        CASES.append(Case(number, setting, ee, tuple(certs), tuple(crls), exp,
                          pols if exp is VALID else None))


def v(setting: str, expect: Optional[Err], policies: Optional[FrozenSet[str]] = None
      ) -> Tuple[str, Optional[Err], Optional[FrozenSet[str]]]:
    return (setting, expect, policies)


def _rep(n: str, depth: int) -> Tuple[List[str], List[str]]:
    """Certificates and CRLs of a requireExplicitPolicy<n> chain (4.9)."""
    names = ["CA", "subCA", "subsubCA", "subsubsubCA"][:depth]
    return ([f"requireExplicitPolicy{n}{x}Cert" for x in names],
            [f"requireExplicitPolicy{n}{x}CRL" for x in names])


def _nc(*cas: str) -> Tuple[List[str], List[str]]:
    """Certificates and CRLs of a nameConstraints chain (4.13); self-issued certificates
    are covered by their issuer's CRL."""
    return ([f"nameConstraints{c}Cert" for c in cas],
            [f"nameConstraints{c}CRL" for c in cas if "SelfIssued" not in c])


GOOD = (["GoodCACert"], ["GoodCACRL"])

# ---------------------------------------------------------------------------------- 4.1 signatures
t("4.1.1", "ValidCertificatePathTest1EE", *GOOD)
t("4.1.2", "InvalidCASignatureTest2EE", ["BadSignedCACert"], ["BadSignedCACRL"],
  SIGNATURE_OR_MALFORMED.at(1))
t("4.1.3", "InvalidEESignatureTest3EE", *GOOD, SIGNATURE.at(0))
t("4.1.4", "ValidDSASignaturesTest4EE", ["DSACACert"], ["DSACACRL"])
t("4.1.5", "ValidDSAParameterInheritanceTest5EE",
  ["DSACACert", "DSAParametersInheritedCACert"],
  ["DSACACRL", "DSAParametersInheritedCACRL"])
t("4.1.6", "InvalidDSASignatureTest6EE", ["DSACACert"], ["DSACACRL"],
  SIGNATURE_OR_MALFORMED.at(0))

# ------------------------------------------------------------------------------------ 4.2 validity
t("4.2.1", "InvalidCAnotBeforeDateTest1EE", ["BadnotBeforeDateCACert"],
  ["BadnotBeforeDateCACRL"], NOT_YET_VALID.at(1))
t("4.2.2", "InvalidEEnotBeforeDateTest2EE", *GOOD, NOT_YET_VALID.at(0))
t("4.2.3", "Validpre2000UTCnotBeforeDateTest3EE", *GOOD)
t("4.2.4", "ValidGeneralizedTimenotBeforeDateTest4EE", *GOOD)
t("4.2.5", "InvalidCAnotAfterDateTest5EE", ["BadnotAfterDateCACert"],
  ["BadnotAfterDateCACRL"], EXPIRED.at(1))
t("4.2.6", "InvalidEEnotAfterDateTest6EE", *GOOD, EXPIRED.at(0))
t("4.2.7", "Invalidpre2000UTCEEnotAfterDateTest7EE", *GOOD, EXPIRED.at(0))
t("4.2.8", "ValidGeneralizedTimenotAfterDateTest8EE", *GOOD)

# ------------------------------------------------------------------------------- 4.3 name chaining
t("4.3.1", "InvalidNameChainingTest1EE", *GOOD, NAME_CHAINING)
t("4.3.2", "InvalidNameChainingOrderTest2EE", ["NameOrderingCACert"], ["NameOrderCACRL"],
  NAME_CHAINING)
t("4.3.3", "ValidNameChainingWhitespaceTest3EE", *GOOD)
t("4.3.4", "ValidNameChainingWhitespaceTest4EE", *GOOD)
t("4.3.5", "ValidNameChainingCapitalizationTest5EE", *GOOD)
t("4.3.6", "ValidNameUIDsTest6EE", ["UIDCACert"], ["UIDCACRL"])
t("4.3.7", "ValidRFC3280MandatoryAttributeTypesTest7EE",
  ["RFC3280MandatoryAttributeTypesCACert"], ["RFC3280MandatoryAttributeTypesCACRL"])
t("4.3.8", "ValidRFC3280OptionalAttributeTypesTest8EE",
  ["RFC3280OptionalAttributeTypesCACert"], ["RFC3280OptionalAttributeTypesCACRL"])
t("4.3.9", "ValidUTF8StringEncodedNamesTest9EE", ["UTF8StringEncodedNamesCACert"],
  ["UTF8StringEncodedNamesCACRL"])
t("4.3.10", "ValidRolloverfromPrintableStringtoUTF8StringTest10EE",
  ["RolloverfromPrintableStringtoUTF8StringCACert"],
  ["RolloverfromPrintableStringtoUTF8StringCACRL"])
t("4.3.11", "ValidUTF8StringCaseInsensitiveMatchTest11EE",
  ["UTF8StringCaseInsensitiveMatchCACert"], ["UTF8StringCaseInsensitiveMatchCACRL"])

# ---------------------------------------------------------------------------- 4.4 basic revocation
t("4.4.1", "InvalidMissingCRLTest1EE", ["NoCRLCACert"], [], NO_STATUS)
t("4.4.2", "InvalidRevokedCATest2EE", ["GoodCACert", "RevokedsubCACert"],
  ["GoodCACRL", "RevokedsubCACRL"], REVOKED.at(1))
t("4.4.3", "InvalidRevokedEETest3EE", *GOOD, REVOKED.at(0))
t("4.4.4", "InvalidBadCRLSignatureTest4EE", ["BadCRLSignatureCACert"],
  ["BadCRLSignatureCACRL"], NO_STATUS_OR_MALFORMED_CRL)
t("4.4.5", "InvalidBadCRLIssuerNameTest5EE", ["BadCRLIssuerNameCACert"],
  ["BadCRLIssuerNameCACRL"], NO_STATUS)
t("4.4.6", "InvalidWrongCRLTest6EE", ["WrongCRLCACert"], ["WrongCRLCACRL"], NO_STATUS)
t("4.4.7", "ValidTwoCRLsTest7EE", ["TwoCRLsCACert"], ["TwoCRLsCAGoodCRL", "TwoCRLsCABadCRL"])
t("4.4.8", "InvalidUnknownCRLEntryExtensionTest8EE", ["UnknownCRLEntryExtensionCACert"],
  ["UnknownCRLEntryExtensionCACRL"], NO_STATUS)
t("4.4.9", "InvalidUnknownCRLExtensionTest9EE", ["UnknownCRLExtensionCACert"],
  ["UnknownCRLExtensionCACRL"], NO_STATUS)
t("4.4.10", "InvalidUnknownCRLExtensionTest10EE", ["UnknownCRLExtensionCACert"],
  ["UnknownCRLExtensionCACRL"], NO_STATUS)
t("4.4.11", "InvalidOldCRLnextUpdateTest11EE", ["OldCRLnextUpdateCACert"],
  ["OldCRLnextUpdateCACRL"], NO_STATUS)
t("4.4.12", "Invalidpre2000CRLnextUpdateTest12EE", ["pre2000CRLnextUpdateCACert"],
  ["pre2000CRLnextUpdateCACRL"], NO_STATUS)
t("4.4.13", "ValidGeneralizedTimeCRLnextUpdateTest13EE",
  ["GeneralizedTimeCRLnextUpdateCACert"], ["GeneralizedTimeCRLnextUpdateCACRL"])
t("4.4.14", "ValidNegativeSerialNumberTest14EE", ["NegativeSerialNumberCACert"],
  ["NegativeSerialNumberCACRL"])
t("4.4.15", "InvalidNegativeSerialNumberTest15EE", ["NegativeSerialNumberCACert"],
  ["NegativeSerialNumberCACRL"], REVOKED.at(0))
t("4.4.16", "ValidLongSerialNumberTest16EE", ["LongSerialNumberCACert"],
  ["LongSerialNumberCACRL"])
t("4.4.17", "ValidLongSerialNumberTest17EE", ["LongSerialNumberCACert"],
  ["LongSerialNumberCACRL"])
t("4.4.18", "InvalidLongSerialNumberTest18EE", ["LongSerialNumberCACert"],
  ["LongSerialNumberCACRL"], REVOKED.at(0))
SEPARATE = (["SeparateCertificateandCRLKeysCertificateSigningCACert",
             "SeparateCertificateandCRLKeysCRLSigningCert"],
            ["SeparateCertificateandCRLKeysCRL"])
t("4.4.19", "ValidSeparateCertificateandCRLKeysTest19EE", *SEPARATE)
t("4.4.20", "InvalidSeparateCertificateandCRLKeysTest20EE", *SEPARATE, REVOKED.at(0))
t("4.4.21", "InvalidSeparateCertificateandCRLKeysTest21EE",
  ["SeparateCertificateandCRLKeysCA2CertificateSigningCACert",
   "SeparateCertificateandCRLKeysCA2CRLSigningCert"],
  ["SeparateCertificateandCRLKeysCA2CRL"], NO_STATUS_OR_REVOKED)

# --------------------------------------------------------------------------------- 4.5 self-issued
NEW_KEY = (["BasicSelfIssuedNewKeyCACert", "BasicSelfIssuedNewKeyOldWithNewCACert"],
           ["BasicSelfIssuedNewKeyCACRL"])
OLD_KEY = (["BasicSelfIssuedOldKeyCACert", "BasicSelfIssuedOldKeyNewWithOldCACert"],
           ["BasicSelfIssuedOldKeyCACRL", "BasicSelfIssuedOldKeySelfIssuedCertCRL"])
CRL_KEY = (["BasicSelfIssuedCRLSigningKeyCACert", "BasicSelfIssuedCRLSigningKeyCRLCert"],
           ["BasicSelfIssuedCRLSigningKeyCACRL", "BasicSelfIssuedCRLSigningKeyCRLCertCRL"])
t("4.5.1", "ValidBasicSelfIssuedOldWithNewTest1EE", *NEW_KEY)
t("4.5.2", "InvalidBasicSelfIssuedOldWithNewTest2EE", *NEW_KEY, REVOKED.at(0))
t("4.5.3", "ValidBasicSelfIssuedNewWithOldTest3EE", *OLD_KEY)
t("4.5.4", "ValidBasicSelfIssuedNewWithOldTest4EE", *OLD_KEY)
t("4.5.5", "InvalidBasicSelfIssuedNewWithOldTest5EE", *OLD_KEY, REVOKED.at(0))
t("4.5.6", "ValidBasicSelfIssuedCRLSigningKeyTest6EE", *CRL_KEY)
t("4.5.7", "InvalidBasicSelfIssuedCRLSigningKeyTest7EE", *CRL_KEY, REVOKED.at(0))
t("4.5.8", "InvalidBasicSelfIssuedCRLSigningKeyTest8EE", *CRL_KEY, NOT_CA_OR_KEY_USAGE.at(1))

# --------------------------------------------------------------------------- 4.6 basic constraints
t("4.6.1", "InvalidMissingbasicConstraintsTest1EE", ["MissingbasicConstraintsCACert"],
  ["MissingbasicConstraintsCACRL"], NOT_CA.at(1))
t("4.6.2", "InvalidcAFalseTest2EE", ["basicConstraintsCriticalcAFalseCACert"],
  ["basicConstraintsCriticalcAFalseCACRL"], NOT_CA.at(1))
t("4.6.3", "InvalidcAFalseTest3EE", ["basicConstraintsNotCriticalcAFalseCACert"],
  ["basicConstraintsNotCriticalcAFalseCACRL"], NOT_CA.at(1))
t("4.6.4", "ValidbasicConstraintsNotCriticalTest4EE", ["basicConstraintsNotCriticalCACert"],
  ["basicConstraintsNotCriticalCACRL"])
PL0 = (["pathLenConstraint0CACert", "pathLenConstraint0subCACert"],
       ["pathLenConstraint0CACRL", "pathLenConstraint0subCACRL"])
PL0_ONLY = (["pathLenConstraint0CACert"], ["pathLenConstraint0CACRL"])
PL6_00 = (["pathLenConstraint6CACert", "pathLenConstraint6subCA0Cert",
           "pathLenConstraint6subsubCA00Cert"],
          ["pathLenConstraint6CACRL", "pathLenConstraint6subCA0CRL",
           "pathLenConstraint6subsubCA00CRL"])
PL6_11X = (["pathLenConstraint6CACert", "pathLenConstraint6subCA1Cert",
            "pathLenConstraint6subsubCA11Cert", "pathLenConstraint6subsubsubCA11XCert"],
           ["pathLenConstraint6CACRL", "pathLenConstraint6subCA1CRL",
            "pathLenConstraint6subsubCA11CRL", "pathLenConstraint6subsubsubCA11XCRL"])
PL6_41X = (["pathLenConstraint6CACert", "pathLenConstraint6subCA4Cert",
            "pathLenConstraint6subsubCA41Cert", "pathLenConstraint6subsubsubCA41XCert"],
           ["pathLenConstraint6CACRL", "pathLenConstraint6subCA4CRL",
            "pathLenConstraint6subsubCA41CRL", "pathLenConstraint6subsubsubCA41XCRL"])
t("4.6.5", "InvalidpathLenConstraintTest5EE", *PL0, PATH_LENGTH)
t("4.6.6", "InvalidpathLenConstraintTest6EE", *PL0, PATH_LENGTH)
t("4.6.7", "ValidpathLenConstraintTest7EE", *PL0_ONLY)
t("4.6.8", "ValidpathLenConstraintTest8EE", *PL0_ONLY)
t("4.6.9", "InvalidpathLenConstraintTest9EE", *PL6_00, PATH_LENGTH)
t("4.6.10", "InvalidpathLenConstraintTest10EE", *PL6_00, PATH_LENGTH)
t("4.6.11", "InvalidpathLenConstraintTest11EE", *PL6_11X, PATH_LENGTH)
t("4.6.12", "InvalidpathLenConstraintTest12EE", *PL6_11X, PATH_LENGTH)
t("4.6.13", "ValidpathLenConstraintTest13EE", *PL6_41X)
t("4.6.14", "ValidpathLenConstraintTest14EE", *PL6_41X)
t("4.6.15", "ValidSelfIssuedpathLenConstraintTest15EE",
  ["pathLenConstraint0CACert", "pathLenConstraint0SelfIssuedCACert"],
  ["pathLenConstraint0CACRL"])
t("4.6.16", "InvalidSelfIssuedpathLenConstraintTest16EE",
  ["pathLenConstraint0CACert", "pathLenConstraint0SelfIssuedCACert",
   "pathLenConstraint0subCA2Cert"],
  ["pathLenConstraint0CACRL", "pathLenConstraint0subCA2CRL"], PATH_LENGTH)
t("4.6.17", "ValidSelfIssuedpathLenConstraintTest17EE",
  ["pathLenConstraint1CACert", "pathLenConstraint1SelfIssuedCACert",
   "pathLenConstraint1subCACert", "pathLenConstraint1SelfIssuedsubCACert"],
  ["pathLenConstraint1CACRL", "pathLenConstraint1subCACRL"])

# ----------------------------------------------------------------------------------- 4.7 key usage
t("4.7.1", "InvalidkeyUsageCriticalkeyCertSignFalseTest1EE",
  ["keyUsageCriticalkeyCertSignFalseCACert"], ["keyUsageCriticalkeyCertSignFalseCACRL"],
  KEY_USAGE.at(1))
t("4.7.2", "InvalidkeyUsageNotCriticalkeyCertSignFalseTest2EE",
  ["keyUsageNotCriticalkeyCertSignFalseCACert"], ["keyUsageNotCriticalkeyCertSignFalseCACRL"],
  KEY_USAGE.at(1))
t("4.7.3", "ValidkeyUsageNotCriticalTest3EE", ["keyUsageNotCriticalCACert"],
  ["keyUsageNotCriticalCACRL"])
# The CA may not sign CRLs (keyUsage without cRLSign): its CRL is unusable.
t("4.7.4", "InvalidkeyUsageCriticalcRLSignFalseTest4EE",
  ["keyUsageCriticalcRLSignFalseCACert"], ["keyUsageCriticalcRLSignFalseCACRL"], NO_STATUS)
t("4.7.5", "InvalidkeyUsageNotCriticalcRLSignFalseTest5EE",
  ["keyUsageNotCriticalcRLSignFalseCACert"], ["keyUsageNotCriticalcRLSignFalseCACRL"],
  NO_STATUS)

# ------------------------------------------------------------------------ 4.8 certificate policies
# PKITS runs 4.8.1 with initial-explicit-policy set only; its default run is 4.1.1.
t("4.8.1", "ValidCertificatePathTest1EE", *GOOD, VALID, ONLY_P1,
  v("explicit", VALID, ONLY_P1),
  v("explicit-p1", VALID, ONLY_P1),
  v("explicit-p2", POLICY),
  v("explicit-p1p2", VALID, ONLY_P1))
t("4.8.2", "AllCertificatesNoPoliciesTest2EE", ["NoPoliciesCACert"], ["NoPoliciesCACRL"],
  VALID, NONE_,
  v("explicit", POLICY))
t("4.8.3", "DifferentPoliciesTest3EE", ["GoodCACert", "PoliciesP2subCACert"],
  ["GoodCACRL", "PoliciesP2subCACRL"], VALID, NONE_,
  v("explicit", POLICY),
  v("explicit-p1p2", POLICY))
t("4.8.4", "DifferentPoliciesTest4EE", ["GoodCACert", "GoodsubCACert"],
  ["GoodCACRL", "GoodsubCACRL"], POLICY)
t("4.8.5", "DifferentPoliciesTest5EE", ["GoodCACert", "PoliciesP2subCA2Cert"],
  ["GoodCACRL", "PoliciesP2subCA2CRL"], POLICY)
P1234 = (["PoliciesP1234CACert", "PoliciesP1234subCAP123Cert",
          "PoliciesP1234subsubCAP123P12Cert"],
         ["PoliciesP1234CACRL", "PoliciesP1234subCAP123CRL", "PoliciesP1234subsubCAP123P12CRL"])
t("4.8.6", "OverlappingPoliciesTest6EE", *P1234, VALID, ONLY_P1,
  v("p1", VALID, ONLY_P1),
  v("p2", POLICY))
t("4.8.7", "DifferentPoliciesTest7EE",
  ["PoliciesP123CACert", "PoliciesP123subCAP12Cert", "PoliciesP123subsubCAP12P1Cert"],
  ["PoliciesP123CACRL", "PoliciesP123subCAP12CRL", "PoliciesP123subsubCAP12P1CRL"], POLICY)
t("4.8.8", "DifferentPoliciesTest8EE",
  ["PoliciesP12CACert", "PoliciesP12subCAP1Cert", "PoliciesP12subsubCAP1P2Cert"],
  ["PoliciesP12CACRL", "PoliciesP12subCAP1CRL", "PoliciesP12subsubCAP1P2CRL"], POLICY)
t("4.8.9", "DifferentPoliciesTest9EE",
  ["PoliciesP123CACert", "PoliciesP123subCAP12Cert", "PoliciesP123subsubCAP12P2Cert",
   "PoliciesP123subsubsubCAP12P2P1Cert"],
  ["PoliciesP123CACRL", "PoliciesP123subCAP12CRL", "PoliciesP123subsubCAP2P2CRL",
   "PoliciesP123subsubsubCAP12P2P1CRL"], POLICY)
t("4.8.10", "AllCertificatesSamePoliciesTest10EE", ["PoliciesP12CACert"],
  ["PoliciesP12CACRL"], VALID, frozenset({P1, P2}),
  v("p1", VALID, ONLY_P1),
  v("p2", VALID, frozenset({P2})))
t("4.8.11", "AllCertificatesanyPolicyTest11EE", ["anyPolicyCACert"], ["anyPolicyCACRL"],
  VALID, frozenset({ANY}),
  v("p1", VALID, ONLY_P1))
t("4.8.12", "DifferentPoliciesTest12EE", ["PoliciesP3CACert"], ["PoliciesP3CACRL"], POLICY)
t("4.8.13", "AllCertificatesSamePoliciesTest13EE", ["PoliciesP123CACert"],
  ["PoliciesP123CACRL"], VALID, frozenset({P1, P2, P3}),
  v("p1", VALID, ONLY_P1),
  v("p2", VALID, frozenset({P2})),
  v("p3", VALID, frozenset({P3})))
t("4.8.14", "AnyPolicyTest14EE", ["anyPolicyCACert"], ["anyPolicyCACRL"], VALID, ONLY_P1,
  v("p1", VALID, ONLY_P1),
  v("p2", POLICY))
t("4.8.15", "UserNoticeQualifierTest15EE", [], [])
t("4.8.16", "UserNoticeQualifierTest16EE", *GOOD)
t("4.8.17", "UserNoticeQualifierTest17EE", *GOOD)
t("4.8.18", "UserNoticeQualifierTest18EE", ["PoliciesP12CACert"], ["PoliciesP12CACRL"],
  VALID, frozenset({P1, P2}),
  v("p1", VALID, ONLY_P1),
  v("p2", VALID, frozenset({P2})))
t("4.8.19", "UserNoticeQualifierTest19EE", [], [])
# PKITS recommends running 4.8.20 with initial-explicit-policy set; its
# expected result: rejected when the initial-policy-set lacks test-policy-1.
t("4.8.20", "CPSPointerQualifierTest20EE", *GOOD, VALID, ONLY_P1,
  v("explicit-p1", VALID, ONLY_P1),
  v("explicit-p2", POLICY))

# --------------------------------------------------------------------- 4.9 require explicit policy
t("4.9.1", "ValidrequireExplicitPolicyTest1EE", *_rep("10", 4), VALID, NONE_)
t("4.9.2", "ValidrequireExplicitPolicyTest2EE", *_rep("5", 4), VALID, NONE_)
t("4.9.3", "InvalidrequireExplicitPolicyTest3EE", *_rep("4", 4), POLICY)
t("4.9.4", "ValidrequireExplicitPolicyTest4EE", *_rep("0", 4))
t("4.9.5", "InvalidrequireExplicitPolicyTest5EE",
  ["requireExplicitPolicy7CACert", "requireExplicitPolicy7subCARE2Cert",
   "requireExplicitPolicy7subsubCARE2RE4Cert", "requireExplicitPolicy7subsubsubCARE2RE4Cert"],
  ["requireExplicitPolicy7CACRL", "requireExplicitPolicy7subCARE2CRL",
   "requireExplicitPolicy7subsubCARE2RE4CRL", "requireExplicitPolicy7subsubsubCARE2RE4CRL"],
  POLICY)
t("4.9.6", "ValidSelfIssuedrequireExplicitPolicyTest6EE",
  ["requireExplicitPolicy2CACert", "requireExplicitPolicy2SelfIssuedCACert"],
  ["requireExplicitPolicy2CACRL"], VALID, NONE_)
t("4.9.7", "InvalidSelfIssuedrequireExplicitPolicyTest7EE",
  ["requireExplicitPolicy2CACert", "requireExplicitPolicy2SelfIssuedCACert",
   "requireExplicitPolicy2subCACert"],
  ["requireExplicitPolicy2CACRL", "requireExplicitPolicy2subCACRL"], POLICY)
t("4.9.8", "InvalidSelfIssuedrequireExplicitPolicyTest8EE",
  ["requireExplicitPolicy2CACert", "requireExplicitPolicy2SelfIssuedCACert",
   "requireExplicitPolicy2subCACert", "requireExplicitPolicy2SelfIssuedsubCACert"],
  ["requireExplicitPolicy2CACRL", "requireExplicitPolicy2subCACRL"], POLICY)

# ---------------------------------------------------------------------------- 4.10 policy mappings
# Default runs PKITS does not describe (4.10.1, 3, 5, 6, 12): validity only.
MAP12 = (["Mapping1to2CACert"], ["Mapping1to2CACRL"])
P12MAP = (["P12Mapping1to3CACert", "P12Mapping1to3subCACert", "P12Mapping1to3subsubCACert"],
          ["P12Mapping1to3CACRL", "P12Mapping1to3subCACRL", "P12Mapping1to3subsubCACRL"])
P1MAP = (["P1Mapping1to234CACert", "P1Mapping1to234subCACert"],
         ["P1Mapping1to234CACRL", "P1Mapping1to234subCACRL"])
GOOD_PANY = (["GoodCACert", "GoodsubCAPanyPolicyMapping1to2CACert"],
             ["GoodCACRL", "GoodsubCAPanyPolicyMapping1to2CACRL"])
P1ANY = (["P1anyPolicyMapping1to2CACert"], ["P1anyPolicyMapping1to2CACRL"])
t("4.10.1", "ValidPolicyMappingTest1EE", *MAP12, VALID, None,
  v("p1", VALID, ONLY_P1),
  v("p2", POLICY),
  v("inhibit-mapping", POLICY))
t("4.10.2", "InvalidPolicyMappingTest2EE", *MAP12, POLICY, None,
  v("inhibit-mapping", POLICY))
t("4.10.3", "ValidPolicyMappingTest3EE", *P12MAP, VALID, None,
  v("p1", POLICY),
  v("p2", VALID, frozenset({P2})))
t("4.10.4", "InvalidPolicyMappingTest4EE", *P12MAP, POLICY)
t("4.10.5", "ValidPolicyMappingTest5EE", *P1MAP, VALID, None,
  v("p1", VALID, ONLY_P1),
  v("p6", POLICY))
t("4.10.6", "ValidPolicyMappingTest6EE", *P1MAP, VALID, None,
  v("p1", VALID, ONLY_P1),
  v("p6", POLICY))
# A mapping from or to anyPolicy is itself an error (RFC 5280 6.1.4 (a)).
t("4.10.7", "InvalidMappingFromanyPolicyTest7EE", ["MappingFromanyPolicyCACert"],
  ["MappingFromanyPolicyCACRL"], POLICY)
t("4.10.8", "InvalidMappingToanyPolicyTest8EE", ["MappingToanyPolicyCACert"],
  ["MappingToanyPolicyCACRL"], POLICY)
t("4.10.9", "ValidPolicyMappingTest9EE", ["PanyPolicyMapping1to2CACert"],
  ["PanyPolicyMapping1to2CACRL"])
t("4.10.10", "InvalidPolicyMappingTest10EE", *GOOD_PANY, POLICY)
t("4.10.11", "ValidPolicyMappingTest11EE", *GOOD_PANY)
t("4.10.12", "ValidPolicyMappingTest12EE", ["P12Mapping1to3CACert"], ["P12Mapping1to3CACRL"],
  VALID, None,
  v("p1", VALID, ONLY_P1),
  v("p2", VALID, frozenset({P2})))
# 4.10.13's expected result also covers other initial-policy-sets (Chromium
# runs these two as a regression test, crbug.com/1403258).
t("4.10.13", "ValidPolicyMappingTest13EE", *P1ANY, VALID, ONLY_P1,
  v("p1p2", VALID, ONLY_P1),
  v("p2", POLICY))
t("4.10.14", "ValidPolicyMappingTest14EE", *P1ANY)

# --------------------------------------------------------------------- 4.11 inhibit policy mapping
IPM1P12 = ["inhibitPolicyMapping1P12CACert", "inhibitPolicyMapping1P12subCACert"]
IPM1P12_CRL = ["inhibitPolicyMapping1P12CACRL", "inhibitPolicyMapping1P12subCACRL"]
IPM1P1 = ["inhibitPolicyMapping1P1CACert", "inhibitPolicyMapping1P1SelfIssuedCACert",
          "inhibitPolicyMapping1P1subCACert"]
IPM1P1_CRL = ["inhibitPolicyMapping1P1CACRL", "inhibitPolicyMapping1P1subCACRL"]
t("4.11.1", "InvalidinhibitPolicyMappingTest1EE",
  ["inhibitPolicyMapping0CACert", "inhibitPolicyMapping0subCACert"],
  ["inhibitPolicyMapping0CACRL", "inhibitPolicyMapping0subCACRL"], POLICY)
t("4.11.2", "ValidinhibitPolicyMappingTest2EE", IPM1P12, IPM1P12_CRL)
t("4.11.3", "InvalidinhibitPolicyMappingTest3EE",
  IPM1P12 + ["inhibitPolicyMapping1P12subsubCACert"],
  IPM1P12_CRL + ["inhibitPolicyMapping1P12subsubCACRL"], POLICY)
t("4.11.4", "ValidinhibitPolicyMappingTest4EE",
  IPM1P12 + ["inhibitPolicyMapping1P12subsubCACert"],
  IPM1P12_CRL + ["inhibitPolicyMapping1P12subsubCACRL"], VALID, frozenset({P2}))
t("4.11.5", "InvalidinhibitPolicyMappingTest5EE",
  ["inhibitPolicyMapping5CACert", "inhibitPolicyMapping5subCACert",
   "inhibitPolicyMapping5subsubCACert", "inhibitPolicyMapping5subsubsubCACert"],
  ["inhibitPolicyMapping5CACRL", "inhibitPolicyMapping5subCACRL",
   "inhibitPolicyMapping5subsubCACRL", "inhibitPolicyMapping5subsubsubCACRL"], POLICY)
t("4.11.6", "InvalidinhibitPolicyMappingTest6EE",
  ["inhibitPolicyMapping1P12CACert", "inhibitPolicyMapping1P12subCAIPM5Cert",
   "inhibitPolicyMapping1P12subsubCAIPM5Cert"],
  ["inhibitPolicyMapping1P12CACRL", "inhibitPolicyMapping1P12subCAIPM5CRL",
   "inhibitPolicyMapping1P12subsubCAIPM5CRL"], POLICY)
t("4.11.7", "ValidSelfIssuedinhibitPolicyMappingTest7EE", IPM1P1, IPM1P1_CRL)
t("4.11.8", "InvalidSelfIssuedinhibitPolicyMappingTest8EE",
  IPM1P1 + ["inhibitPolicyMapping1P1subsubCACert"],
  IPM1P1_CRL + ["inhibitPolicyMapping1P1subsubCACRL"], POLICY)
t("4.11.9", "InvalidSelfIssuedinhibitPolicyMappingTest9EE",
  IPM1P1 + ["inhibitPolicyMapping1P1subsubCACert"],
  IPM1P1_CRL + ["inhibitPolicyMapping1P1subsubCACRL"], POLICY)
t("4.11.10", "InvalidSelfIssuedinhibitPolicyMappingTest10EE",
  IPM1P1 + ["inhibitPolicyMapping1P1SelfIssuedsubCACert"], IPM1P1_CRL, POLICY)
t("4.11.11", "InvalidSelfIssuedinhibitPolicyMappingTest11EE",
  IPM1P1 + ["inhibitPolicyMapping1P1SelfIssuedsubCACert"], IPM1P1_CRL, POLICY)

# -------------------------------------------------------------------------- 4.12 inhibit anyPolicy
IAP1 = (["inhibitAnyPolicy1CACert", "inhibitAnyPolicy1subCA1Cert"],
        ["inhibitAnyPolicy1CACRL", "inhibitAnyPolicy1subCA1CRL"])
IAP1SI = ["inhibitAnyPolicy1CACert", "inhibitAnyPolicy1SelfIssuedCACert",
          "inhibitAnyPolicy1subCA2Cert"]
IAP1SI_CRL = ["inhibitAnyPolicy1CACRL", "inhibitAnyPolicy1subCA2CRL"]
t("4.12.1", "InvalidinhibitAnyPolicyTest1EE", ["inhibitAnyPolicy0CACert"],
  ["inhibitAnyPolicy0CACRL"], POLICY)
t("4.12.2", "ValidinhibitAnyPolicyTest2EE", ["inhibitAnyPolicy0CACert"],
  ["inhibitAnyPolicy0CACRL"])
t("4.12.3", "inhibitAnyPolicyTest3EE", *IAP1, VALID, ONLY_P1,
  v("inhibit-any", POLICY))
t("4.12.4", "InvalidinhibitAnyPolicyTest4EE", *IAP1, POLICY)
t("4.12.5", "InvalidinhibitAnyPolicyTest5EE",
  ["inhibitAnyPolicy5CACert", "inhibitAnyPolicy5subCACert", "inhibitAnyPolicy5subsubCACert"],
  ["inhibitAnyPolicy5CACRL", "inhibitAnyPolicy5subCACRL", "inhibitAnyPolicy5subsubCACRL"],
  POLICY)
t("4.12.6", "InvalidinhibitAnyPolicyTest6EE",
  ["inhibitAnyPolicy1CACert", "inhibitAnyPolicy1subCAIAP5Cert"],
  ["inhibitAnyPolicy1CACRL", "inhibitAnyPolicy1subCAIAP5CRL"], POLICY)
t("4.12.7", "ValidSelfIssuedinhibitAnyPolicyTest7EE", IAP1SI, IAP1SI_CRL)
t("4.12.8", "InvalidSelfIssuedinhibitAnyPolicyTest8EE",
  IAP1SI + ["inhibitAnyPolicy1subsubCA2Cert"], IAP1SI_CRL + ["inhibitAnyPolicy1subsubCA2CRL"],
  POLICY)
t("4.12.9", "ValidSelfIssuedinhibitAnyPolicyTest9EE",
  IAP1SI + ["inhibitAnyPolicy1SelfIssuedsubCA2Cert"], IAP1SI_CRL)
t("4.12.10", "InvalidSelfIssuedinhibitAnyPolicyTest10EE", IAP1SI, IAP1SI_CRL, POLICY)

# --------------------------------------------------------------------------- 4.13 name constraints
for _num, _ee, _cas in [
    (1, "ValidDNnameConstraintsTest1EE", ("DN1CA",)),
    (2, "InvalidDNnameConstraintsTest2EE", ("DN1CA",)),
    (3, "InvalidDNnameConstraintsTest3EE", ("DN1CA",)),
    (4, "ValidDNnameConstraintsTest4EE", ("DN1CA",)),
    (5, "ValidDNnameConstraintsTest5EE", ("DN2CA",)),
    (6, "ValidDNnameConstraintsTest6EE", ("DN3CA",)),
    (7, "InvalidDNnameConstraintsTest7EE", ("DN3CA",)),
    (8, "InvalidDNnameConstraintsTest8EE", ("DN4CA",)),
    (9, "InvalidDNnameConstraintsTest9EE", ("DN4CA",)),
    (10, "InvalidDNnameConstraintsTest10EE", ("DN5CA",)),
    (11, "ValidDNnameConstraintsTest11EE", ("DN5CA",)),
    (12, "InvalidDNnameConstraintsTest12EE", ("DN1CA", "DN1subCA1")),
    (13, "InvalidDNnameConstraintsTest13EE", ("DN1CA", "DN1subCA2")),
    (14, "ValidDNnameConstraintsTest14EE", ("DN1CA", "DN1subCA2")),
    (15, "InvalidDNnameConstraintsTest15EE", ("DN3CA", "DN3subCA1")),
    (16, "InvalidDNnameConstraintsTest16EE", ("DN3CA", "DN3subCA1")),
    (17, "InvalidDNnameConstraintsTest17EE", ("DN3CA", "DN3subCA2")),
    (18, "ValidDNnameConstraintsTest18EE", ("DN3CA", "DN3subCA2")),
    (19, "ValidDNnameConstraintsTest19EE", ("DN1CA", "DN1SelfIssuedCA")),
    (20, "InvalidDNnameConstraintsTest20EE", ("DN1CA",)),
    (21, "ValidRFC822nameConstraintsTest21EE", ("RFC822CA1",)),
    (22, "InvalidRFC822nameConstraintsTest22EE", ("RFC822CA1",)),
    (23, "ValidRFC822nameConstraintsTest23EE", ("RFC822CA2",)),
    (24, "InvalidRFC822nameConstraintsTest24EE", ("RFC822CA2",)),
    (25, "ValidRFC822nameConstraintsTest25EE", ("RFC822CA3",)),
    (26, "InvalidRFC822nameConstraintsTest26EE", ("RFC822CA3",)),
    (27, "ValidDNandRFC822nameConstraintsTest27EE", ("DN1CA", "DN1subCA3")),
    (28, "InvalidDNandRFC822nameConstraintsTest28EE", ("DN1CA", "DN1subCA3")),
    (29, "InvalidDNandRFC822nameConstraintsTest29EE", ("DN1CA", "DN1subCA3")),
    (30, "ValidDNSnameConstraintsTest30EE", ("DNS1CA",)),
    (31, "InvalidDNSnameConstraintsTest31EE", ("DNS1CA",)),
    (32, "ValidDNSnameConstraintsTest32EE", ("DNS2CA",)),
    (33, "InvalidDNSnameConstraintsTest33EE", ("DNS2CA",)),
    (34, "ValidURInameConstraintsTest34EE", ("URI1CA",)),
    (35, "InvalidURInameConstraintsTest35EE", ("URI1CA",)),
    (36, "ValidURInameConstraintsTest36EE", ("URI2CA",)),
    (37, "InvalidURInameConstraintsTest37EE", ("URI2CA",)),
    (38, "InvalidDNSnameConstraintsTest38EE", ("DNS1CA",)),
]:
    t(f"4.13.{_num}", _ee, *_nc(*_cas), VALID if _ee.startswith("Valid") else NAME_CONSTRAINTS)

# ------------------------------------------------------------------------ 4.14 distribution points
DP1 = (["distributionPoint1CACert"], ["distributionPoint1CACRL"])
DP2 = (["distributionPoint2CACert"], ["distributionPoint2CACRL"])
t("4.14.1", "ValiddistributionPointTest1EE", *DP1)
t("4.14.2", "InvaliddistributionPointTest2EE", *DP1, REVOKED.at(0))
t("4.14.3", "InvaliddistributionPointTest3EE", *DP1, NO_STATUS)
t("4.14.4", "ValiddistributionPointTest4EE", *DP1)
t("4.14.5", "ValiddistributionPointTest5EE", *DP2)
t("4.14.6", "InvaliddistributionPointTest6EE", *DP2, REVOKED.at(0))
t("4.14.7", "ValiddistributionPointTest7EE", *DP2)
t("4.14.8", "InvaliddistributionPointTest8EE", *DP2, NO_STATUS)
t("4.14.9", "InvaliddistributionPointTest9EE", *DP2, NO_STATUS)
t("4.14.10", "ValidNoissuingDistributionPointTest10EE",
  ["NoissuingDistributionPointCACert"], ["NoissuingDistributionPointCACRL"])
t("4.14.11", "InvalidonlyContainsUserCertsTest11EE", ["onlyContainsUserCertsCACert"],
  ["onlyContainsUserCertsCACRL"], NO_STATUS)
t("4.14.12", "InvalidonlyContainsCACertsTest12EE", ["onlyContainsCACertsCACert"],
  ["onlyContainsCACertsCACRL"], NO_STATUS)
t("4.14.13", "ValidonlyContainsCACertsTest13EE", ["onlyContainsCACertsCACert"],
  ["onlyContainsCACertsCACRL"])
t("4.14.14", "InvalidonlyContainsAttributeCertsTest14EE",
  ["onlyContainsAttributeCertsCACert"], ["onlyContainsAttributeCertsCACRL"], NO_STATUS)
OSR = {i: ([f"onlySomeReasonsCA{i}Cert"],
           [f"onlySomeReasonsCA{i}compromiseCRL", f"onlySomeReasonsCA{i}otherreasonsCRL"])
       for i in (1, 3, 4)}
OSR[2] = (["onlySomeReasonsCA2Cert"], ["onlySomeReasonsCA2CRL1", "onlySomeReasonsCA2CRL2"])
t("4.14.15", "InvalidonlySomeReasonsTest15EE", *OSR[1], REVOKED.at(0))
t("4.14.16", "InvalidonlySomeReasonsTest16EE", *OSR[1], REVOKED.at(0))
# Together the two CRLs do not cover every reason: the status is unknown.
t("4.14.17", "InvalidonlySomeReasonsTest17EE", *OSR[2], NO_STATUS)
t("4.14.18", "ValidonlySomeReasonsTest18EE", *OSR[3])
t("4.14.19", "ValidonlySomeReasonsTest19EE", *OSR[4])
t("4.14.20", "InvalidonlySomeReasonsTest20EE", *OSR[4], REVOKED.at(0))
t("4.14.21", "InvalidonlySomeReasonsTest21EE", *OSR[4], REVOKED.at(0))
IND1 = (["indirectCRLCA1Cert"], ["indirectCRLCA1CRL"])
IND12 = (["indirectCRLCA1Cert", "indirectCRLCA2Cert"], ["indirectCRLCA1CRL"])
IND56 = (["indirectCRLCA5Cert", "indirectCRLCA6Cert"], ["indirectCRLCA5CRL"])
IND5 = (["indirectCRLCA5Cert"], ["indirectCRLCA5CRL"])
t("4.14.22", "ValidIDPwithindirectCRLTest22EE", *IND1)
t("4.14.23", "InvalidIDPwithindirectCRLTest23EE", *IND1, REVOKED.at(0))
t("4.14.24", "ValidIDPwithindirectCRLTest24EE", *IND12)
t("4.14.25", "ValidIDPwithindirectCRLTest25EE", *IND12)
t("4.14.26", "InvalidIDPwithindirectCRLTest26EE", *IND12, NO_STATUS)
t("4.14.27", "InvalidcRLIssuerTest27EE", ["GoodCACert", "indirectCRLCA2Cert"],
  ["GoodCACRL"], NO_STATUS)
t("4.14.28", "ValidcRLIssuerTest28EE", ["indirectCRLCA3Cert", "indirectCRLCA3cRLIssuerCert"],
  ["indirectCRLCA3CRL", "indirectCRLCA3cRLIssuerCRL"])
t("4.14.29", "ValidcRLIssuerTest29EE", ["indirectCRLCA3Cert", "indirectCRLCA3cRLIssuerCert"],
  ["indirectCRLCA3CRL", "indirectCRLCA3cRLIssuerCRL"])
t("4.14.30", "ValidcRLIssuerTest30EE", ["indirectCRLCA4Cert", "indirectCRLCA4cRLIssuerCert"],
  ["indirectCRLCA4cRLIssuerCRL"])
t("4.14.31", "InvalidcRLIssuerTest31EE", *IND56, REVOKED.at(0))
t("4.14.32", "InvalidcRLIssuerTest32EE", *IND56, REVOKED.at(0))
t("4.14.33", "ValidcRLIssuerTest33EE", *IND56)
t("4.14.34", "InvalidcRLIssuerTest34EE", *IND5, REVOKED.at(0))
t("4.14.35", "InvalidcRLIssuerTest35EE", *IND5, NO_STATUS)

# --------------------------------------------------------------------------------- 4.15 delta-CRLs
DELTA1 = (["deltaCRLCA1Cert"], ["deltaCRLCA1CRL", "deltaCRLCA1deltaCRL"])
DELTA2 = (["deltaCRLCA2Cert"], ["deltaCRLCA2CRL", "deltaCRLCA2deltaCRL"])
t("4.15.1", "InvaliddeltaCRLIndicatorNoBaseTest1EE", ["deltaCRLIndicatorNoBaseCACert"],
  ["deltaCRLIndicatorNoBaseCACRL"], NO_STATUS)
t("4.15.2", "ValiddeltaCRLTest2EE", *DELTA1)
t("4.15.3", "InvaliddeltaCRLTest3EE", *DELTA1, REVOKED.at(0))
t("4.15.4", "InvaliddeltaCRLTest4EE", *DELTA1, REVOKED.at(0))
t("4.15.5", "ValiddeltaCRLTest5EE", *DELTA1)
t("4.15.6", "InvaliddeltaCRLTest6EE", *DELTA1, REVOKED.at(0))
t("4.15.7", "ValiddeltaCRLTest7EE", *DELTA1)
t("4.15.8", "ValiddeltaCRLTest8EE", *DELTA2)
t("4.15.9", "InvaliddeltaCRLTest9EE", *DELTA2, REVOKED.at(0))
# The complete CRL is stale (nextUpdate 2010-06-01); a fresh delta cannot make up for it.
t("4.15.10", "InvaliddeltaCRLTest10EE", ["deltaCRLCA3Cert"],
  ["deltaCRLCA3CRL", "deltaCRLCA3deltaCRL"], NO_STATUS)

# ------------------------------------------------------------------------- 4.16 private extensions
t("4.16.1", "ValidUnknownNotCriticalCertificateExtensionTest1EE", [], [])
t("4.16.2", "InvalidUnknownCriticalCertificateExtensionTest2EE", [], [],
  CRITICAL_EXTENSION.at(0))

#: PKITS 4.1 to 4.16: 6+8+11+21+8+17+5+20+8+14+11+10+38+35+10+2 tests.
PKITS_TEST_COUNT = 224


# ---------------------------------------------------------------------------- fixtures (read once)
@functools.lru_cache(maxsize=None)
def _der(kind: str, stem: str) -> bytes:
    suffix = ".crt" if kind == "certs" else ".crl"
    return (PKITS / kind / f"{stem}{suffix}").read_bytes()


@functools.lru_cache(maxsize=None)
def _crl(stem: str):
    """A parsed, indexed CRL, shared by every validator of the session."""
    from cps.trust.crlindex import CrlIndex

    return CrlIndex.load(_der("crls", stem), source=f"{stem}.crl")


@functools.lru_cache(maxsize=None)
def _store(certs: Tuple[str, ...]) -> TrustStore:
    """The anchor, and the certificates PKITS lists for the path as intermediates
    (the CA chain, plus the CRL-signing certificates of 4.4.19-21, 4.5 and 4.14)."""
    return TrustStore.from_certificates([_der("certs", ANCHOR)],
                                        intermediates=[_der("certs", n) for n in certs],
                                        name="PKITS")


def _validate(case: Case, via: str = "store"):
    """Everything the case exercises: trust store, CRLs, settings, validation.

    ``via="store"``: the certificates PKITS lists are the store's intermediates;
    ``via="intermediates"``: the store holds the anchor only and they are given
    to ``validate(intermediates=...)``, as a caller holding a chain does: they
    must serve to find CRL signers too (RFC 5280 6.3.3 (f)).
    """
    s = SETTINGS[case.setting]
    store = _store(case.certs) if via == "store" else _store(())
    validator = Validator(store, crls=[_crl(n) for n in (ANCHOR_CRL,) + case.crls],
                          revocation="hard-fail", initial_policies=s.initial_policies,
                          explicit_policy=s.explicit_policy,
                          inhibit_policy_mapping=s.inhibit_policy_mapping,
                          inhibit_any_policy=s.inhibit_any_policy)
    extra = [_der("certs", n) for n in case.certs] if via == "intermediates" else []
    return validator.validate(_der("certs", case.ee), intermediates=extra, at=AT)


# --------------------------------------------------------------------------------------- the suite
@pytest.mark.parametrize("via", ["store", "intermediates"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pkits(case: Case, via: str) -> None:
    error: Optional[CpsError] = None
    result = None
    try:
        result = _validate(case, via)
    except CpsError as exc:
        error = exc
    if case.expect is VALID:
        if error is not None:
            pytest.fail(f"{case.id} {case.ee}: expected a valid path, got {_describe(error)}",
                        pytrace=False)
        assert result is not None
        if case.policies is not None and result.policies != case.policies:
            pytest.fail(f"{case.id} {case.ee}: policy set {sorted(result.policies)}, "
                        f"PKITS expects {sorted(case.policies)}", pytrace=False)
        return
    if error is None:
        pytest.fail(f"{case.id} {case.ee}: validated, PKITS expects {case.expect.label}",
                    pytrace=False)
    problem = case.expect.problem(error)
    if problem:
        pytest.fail(f"{case.id} {case.ee}: {problem}", pytrace=False)


def test_table_covers_pkits() -> None:
    """Every PKITS 4.1-4.16 test is in the table, each setting once, with real files."""
    assert len({c.number for c in CASES}) == PKITS_TEST_COUNT
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert {p.stem for p in (PKITS / "certs").glob("*EE.crt")} == {c.ee for c in CASES}
    for case in CASES:
        for stem in (case.ee,) + case.certs:
            assert (PKITS / "certs" / f"{stem}.crt").is_file(), stem
        for stem in case.crls:
            assert (PKITS / "crls" / f"{stem}.crl").is_file(), stem
        # Valid.../Invalid... file names encode the default-settings outcome.
        if case.setting == "default" and case.ee.startswith(("Valid", "Invalid")):
            assert case.ee.startswith("Valid") == (case.expect is VALID), case.id
