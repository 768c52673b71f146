"""The trust layers: the card's certificates validate to the anchors (``chain``) and
their revocation information is current (``revocation``)."""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any, Dict, Iterable, List

from ..card import KeyRole
from ..errors import (
    CertificateExpired,
    CertificateInvalid,
    CertificateParseError,
    CertificateRevoked,
    CrlError,
    RevocationError,
    UntrustedCertificate,
)
from .report import (
    EXPIRY_WARNING,
    IGC_SANTE_CRL_HOST,
    ONLINE_DEADLINE,
    ONLINE_TIMEOUT,
    Check,
    _cn,
    _cn_of,
    _day,
    _duration,
    _fail,
    _iso,
    _ok,
    _revocation_advice,
    _State,
    _warn,
)


def _trust_store(anchors: Any) -> Any:
    from ..trust.files import trust_store

    return trust_store(anchors)


def _load_crls(items: Iterable[Any]) -> List[Any]:
    """CRLs for the validator: paths are read (DER or PEM) and keep their name as source."""
    from ..trust.crlindex import CrlIndex
    from ..trust.files import load_crls

    out: List[Any] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            out += [CrlIndex.load(der, source=source) for der, source in load_crls([item])]
        else:
            out.append(item)
    return out


def _check_chain(st: _State) -> Check:
    from ..trust import Validator

    store = _trust_store(st.anchors)
    kwargs: Dict[str, Any] = {}
    if st.online:
        from ..trust.fetch import Fetcher
        from ..trust.ocsp import OcspClient

        fetcher = Fetcher(timeout=ONLINE_TIMEOUT, deadline=ONLINE_DEADLINE)
        kwargs.update(fetcher=fetcher, ocsp=OcspClient(fetcher, timeout=ONLINE_TIMEOUT))
    st.revocation_mode = "soft-fail" if (st.crls or st.online) else "off"
    try:
        validator = Validator(store, crls=_load_crls(st.crls),
                              revocation=st.revocation_mode, **kwargs)
    except (CrlError, CertificateParseError) as exc:
        return _fail("chain", f"unusable CRL: {exc}",
                     "Pass CRL files in DER or PEM (as published at "
                     f"http://{IGC_SANTE_CRL_HOST}/CRL/).", exc,
                     source=getattr(exc, "source", None))
    data: Dict[str, Any] = {"anchors": store.name, "revocation_mode": st.revocation_mode,
                            "crl_urls": _crl_urls(st.certs.values())}
    try:
        for role, cert in st.certs.items():
            purpose = KeyRole.SIGN if role is KeyRole.SIGN else KeyRole.AUTH
            st.results[role] = validator.validate(cert, at=st.at, purpose=purpose)
    except CertificateInvalid as exc:
        data.update(role=role.value, position=exc.position, subject=exc.subject,
                    reason=exc.reason)
        return _chain_failure(exc, store, cert, data)
    except RevocationError as exc:
        data.update(role=role.value)
        return _fail("chain", f"revocation could not be checked: {exc}",
                     _revocation_advice(str(exc), exc), exc, **data)
    data["paths"] = {role.value: [_cn(c) for c in result.path]
                     for role, result in st.results.items()}
    anchor = _cn(next(iter(st.results.values())).anchor)
    not_after = min(c.not_valid_after_utc for c in st.certs.values())
    left = not_after - st.at
    data.update(expires=_iso(not_after), days_left=left.days)
    roles = " + ".join(r.value for r in st.results)
    summary = f"{roles} valid up to {anchor} ({store.name})"
    if st.revocation_mode == "off":
        return _warn("chain", f"{summary}; revocation not checked",
                     "Pass the CRLs with --crl FILE or use --online: without them a "
                     "revoked card looks valid.", **data)
    if left < EXPIRY_WARNING:
        return _warn("chain", f"{summary}; expires in {left.days} days ({not_after:%Y-%m-%d})",
                     "Renew the card now: the ANS issues a new CPS card before the old one "
                     "expires, if asked in time.", **data)
    return _ok("chain", summary, **data)


def _crl_urls(certs: Iterable[Any]) -> List[str]:
    """The CRL distribution points the certificates name (what --online would fetch)."""
    from cryptography import x509

    urls: List[str] = []
    for cert in certs:
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            continue
        for point in points:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) and name.value not in urls:
                    urls.append(name.value)
    return urls


def _chain_failure(exc: CertificateInvalid, store: Any, cert: Any,
                   data: Dict[str, Any]) -> Check:
    leaf = exc.position in (0, None)
    if isinstance(exc, CertificateRevoked):
        when = _day(exc.revocation_date)
        why = f" ({exc.revocation_reason})" if exc.revocation_reason else ""
        data.update(revocation_date=_iso(exc.revocation_date),
                    revocation_reason=exc.revocation_reason)
        if leaf:
            return _fail("chain", f"the card's certificate was revoked on {when}{why}",
                         "The card was revoked (opposition) and can no longer be used: ask the "
                         "ANS for a replacement card.", exc, **data)
        return _fail("chain", f"a CA of the path was revoked on {when}{why}: {exc.subject}",
                     "Every card of that CA is refused: check the ANS announcements and "
                     "update cps.", exc, **data)
    if isinstance(exc, CertificateExpired):
        data.update(not_before=_iso(exc.not_before), not_after=_iso(exc.not_after))
        if exc.reason == "not-yet-valid":
            return _fail("chain", f"certificate not valid before {_day(exc.not_before)}: "
                         f"{exc.subject}", "Check this computer's date, time and time zone "
                         "(`timedatectl`); a card fresh from the ANS is valid from its "
                         "issue date.", exc, **data)
        if leaf:
            return _fail("chain", f"the card's certificates expired on {_day(exc.not_after)}",
                         "The card must be renewed: order a new CPS card from the ANS (the "
                         "expired one cannot be extended).", exc, **data)
        return _fail("chain", f"a CA certificate of the path expired: {exc.subject}",
                     "Update cps (its bundled anchors), or the anchors given with --anchors.",
                     exc, **data)
    if isinstance(exc, UntrustedCertificate):
        issuer = cert.issuer.rfc4514_string()
        data["issuer"] = issuer
        if "TEST" in issuer.upper() and store.name == "IGC-Santé":
            return _fail("chain", f"a TEST card: its issuer ({_cn_of(issuer)}) is not a "
                         "production IGC-Santé CA", "This card comes from a TEST PKI: use "
                         "--anchors test (the emulator's) or the TEST CA certificates with "
                         "--anchors FILE.", exc, **data)
        return _fail("chain", f"no path to the trust anchors ({store.name}): issuer "
                     f"{_cn_of(issuer)}", "This is not a genuine IGC-Santé card, or its CA is "
                     "not among the anchors: give the right ones with --anchors FILE.",
                     exc, **data)
    return _fail("chain", f"the certificate path is invalid ({exc.reason}): {exc}",
                 "The card does not meet the IGC-Santé certificate profile and cannot be "
                 "used: report it to the ANS.", exc, **data)


def _check_revocation(st: _State) -> Check:
    if st.revocation_mode == "off":
        return Check("revocation", "skipped",
                     "not checked: no CRL given (--crl) and not online (--online)",
                     data={"mode": "off"})
    entries = _revocation_entries(st)
    unknown = [e for e in entries if e["status"] != "good"]
    public = [{k: (_iso(v) if k == "next_update" else v) for k, v in e.items()
               if k != "issuer"} for e in entries]
    if unknown:
        e = unknown[0]
        detail = _dedupe_url(e["failures"][0]) if e["failures"] else "no revocation source"
        return _fail("revocation", f"no usable revocation information for {e['certificate']}: "
                     f"{detail}", _revocation_advice(detail, None, e["issuer"], st.online),
                     None, sources=public)
    dated = [e["next_update"] for e in entries if e["next_update"] is not None]
    if not dated:
        return _ok("revocation", "not revoked (the answers carry no next update)",
                   sources=public)
    soonest = min(dated)
    left = soonest - st.at
    summary = (f"not revoked; CRLs current for {_duration(left)} more (until "
               f"{soonest:%Y-%m-%d %H:%M} UTC)")
    if left < dt.timedelta(hours=1):
        return _warn("revocation", summary,
                     "Fetch fresh CRLs soon: IGC-Santé publishes them daily from 07:00 "
                     f"(Paris time) at http://{IGC_SANTE_CRL_HOST}/CRL/.", sources=public,
                     next_update=_iso(soonest), seconds_left=int(left.total_seconds()))
    return _ok("revocation", summary, sources=public, next_update=_iso(soonest),
               seconds_left=int(left.total_seconds()))


def _revocation_entries(st: _State) -> List[Dict[str, Any]]:
    """One entry per certificate of the validated paths (anchors excluded)."""
    seen: Dict[bytes, Dict[str, Any]] = {}
    for role, result in st.results.items():
        path = result.path
        for status in result.revocation:
            if status.status == "not-checked" or status.subject_der in seen:
                continue
            position = status.position
            label = (f"the {role.value} certificate" if position == 0
                     else _cn(path[position]))
            issuer = _cn(path[position + 1]) if position + 1 < len(path) else ""
            seen[status.subject_der] = {
                "certificate": label, "issuer": issuer, "status": status.status,
                "source": status.source, "next_update": status.next_update,
                "failures": list(status.failures)}
    return list(seen.values())


def _dedupe_url(text: str) -> str:
    # The validator prefixes the URL, and the fetcher's message repeats it.
    return re.sub(r"^(\S+): \1: ", r"\1: ", text)


