"""`cps validate` and `cps crl fetch|show|status`: certificates and revocation lists.

Shared with `cps verify` and `cps auth test`: :func:`trust_options` (anchors,
CRLs, revocation mode, online fetching) and :func:`validator_from`.
Heavy libraries load inside the commands only (`cps --help` stays fast).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import click

from .util import CliFail, F, emit, json_option, style_bad, style_ok

__all__ = ["validate", "crl", "trust_options", "validator_from", "DownloadProgress",
           "parse_time", "fail_with_json"]


# --------------------------------------------------------------------------- shared helpers
def trust_options(f: F) -> F:
    """``--anchors``, ``--crl``, ``--revocation``, ``--online``, ``--cache-dir``."""
    f = click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="CRL cache used with --online (default: $CPS_CRL_CACHE_DIR, "
                          "else crl in the user cache, ~/.cache/cps on Linux).")(f)
    f = click.option("--online", is_flag=True,
                     help="Download the CRLs the certificates name (and ask OCSP when no "
                          "CRL answers).")(f)
    f = click.option("--revocation", type=click.Choice(["hard-fail", "soft-fail", "off"]),
                     default="hard-fail", show_default=True,
                     help="hard-fail: no revocation status, no validation; soft-fail: "
                          "report it unknown; off: do not check.")(f)
    f = click.option("--crl", "crls", multiple=True, metavar="FILE|DIR",
                     type=click.Path(exists=True),
                     help="A CRL (DER or PEM), or a directory of *.crl files. Repeatable.")(f)
    f = click.option("--anchors", multiple=True, metavar="igc-sante|test|FILE",
                     help="Trust anchors: igc-sante (the pinned production CAs, default), "
                          "test (the emulator's TEST PKI: for tests only), or certificate "
                          "files. Repeatable.")(f)
    return f


class DownloadProgress:
    """``Fetcher(progress=...)``: a click progress bar per download, on stderr, on a TTY only."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._bars: Dict[str, Any] = {}
        self._seen: Dict[str, int] = {}

    def __call__(self, url: str, received: int, total: Optional[int]) -> None:
        if not self.enabled:
            return
        label = url if len(url) <= 48 else "…" + url[-47:]
        if total:
            bar = self._bars.get(url)
            if bar is None:
                bar = click.progressbar(length=total, label=label,
                                        file=sys.stderr,
                                        show_pos=False, show_percent=True)
                self._bars[url] = bar
                self._seen[url] = 0
            bar.update(received - self._seen[url])
            self._seen[url] = received
            if received >= total:
                bar.render_finish()
        else:
            click.echo(f"\r{label}: {received // 1024} KiB", nl=False, err=True)
            self._seen[url] = received

    def close(self) -> None:
        """End the line of a download whose size was unknown."""
        if self.enabled and any(url not in self._bars for url in self._seen):
            click.echo("", err=True)


def validator_from(anchors: Sequence[str], crls: Sequence[str], revocation: str, online: bool,
                   cache_dir: Optional[str], progress: Optional[DownloadProgress] = None) -> Any:
    from .view import make_validator

    return make_validator(list(anchors) or ["igc-sante"], list(crls), revocation,
                          online=online, cache_dir=cache_dir, progress=progress)


def parse_time(value: Optional[str]) -> Any:
    """``--at``: ISO 8601; a time without a zone is UTC."""
    if value is None:
        return None
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time "
                                 "(e.g. 2026-03-01T12:00:00Z)", param_hint="--at") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def fail_with_json(exc: BaseException, as_json: bool, data: Dict[str, Any]) -> None:
    """With --json, print ``data`` plus the error and its exit code, then re-raise."""
    if as_json:
        from .exitcodes import exit_code_for
        from .view import error_to_dict

        emit({**data, "error": error_to_dict(exc), "exit_code": exit_code_for(exc)}, True, "")
    raise exc


def read_input(path: str) -> bytes:
    """A file's bytes, ``-`` for stdin."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliFail(f"cannot read {path}: {exc.strerror}", 2) from None


def _short(subject: str, width: int = 70) -> str:
    return subject if len(subject) <= width else subject[:width - 1] + "…"


def render_validation(summary: Dict[str, Any]) -> str:
    """Text of a successful validation (path, revocation, policies)."""
    purpose = f" for {summary['purpose']}" if summary.get("purpose") else ""
    lines = [style_ok("VALID") + f"{purpose} at {summary['validated_at']} "
             f"(anchor {summary['anchor']})"]
    statuses = {s["position"]: s for s in summary["revocation"]}
    for cert in summary["path"]:
        status = statuses.get(cert["position"])
        if cert["position"] == len(summary["path"]) - 1:
            note = "trust anchor"
        elif status is None:
            note = "revocation not checked"
        else:
            source = f" ({status['source']})" if status.get("source") else ""
            note = f"revocation: {status['status']}{source}"
        lines.append(f"  {cert['position']}  {_short(cert['subject'])}")
        lines.append(f"     valid until {cert['not_after'][:10]}; {note}")
    if summary["policies"]:
        lines.append("Policies: " + ", ".join(summary["policies"]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- cps validate
@click.command()
@click.argument("cert", metavar="CERT", type=click.Path(dir_okay=False, allow_dash=True))
@trust_options
@click.option("--intermediate", "intermediates", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="An intermediate CA certificate offered to path building. Repeatable.")
@click.option("--at", "at", metavar="ISO",
              help="Validate at this time (default: now), e.g. 2026-03-01T12:00:00Z.")
@click.option("--purpose", type=click.Choice(["auth", "sign"]),
              help="Also require an authentication or a signature certificate.")
@json_option
def validate(cert: str, anchors: Sequence[str], crls: Sequence[str], revocation: str,
             online: bool, cache_dir: Optional[str], intermediates: Sequence[str],
             at: Optional[str], purpose: Optional[str], as_json: bool) -> None:
    """check a certificate: chain, dates, purpose, revocation

    Chains the certificate to the anchors, checks dates, purpose and revocation.

    CERT is a PEM or DER file, or - for standard input, e.g.
    `cps certs export --role auth | cps validate --online -`.
    Exit codes: 9 invalid, 10 revoked, 11 revocation status unavailable.
    """
    from cps import KeyRole, errors

    from .view import load_certificate_der, load_certificates_der, validation_summary

    moment = parse_time(at)
    progress = DownloadProgress() if online else None
    try:
        der = load_certificate_der(read_input(cert))
        extra: List[bytes] = []
        for path in intermediates:
            extra += load_certificates_der(read_input(path))
        validator = validator_from(anchors, crls, revocation, online, cache_dir, progress)
        result = validator.validate(der, intermediates=extra, at=moment,
                                    purpose=KeyRole(purpose) if purpose else None)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"valid": False, "certificate": cert})
        raise  # unreachable: fail_with_json always raises
    finally:
        if progress is not None:
            progress.close()
    data = {"certificate": cert, **validation_summary(result)}
    emit(data, as_json, render_validation(data))


# --------------------------------------------------------------------------- cps crl
@click.group()
def crl() -> None:
    """certificate revocation lists: download, inspect, cache"""


def _crl_text(d: Dict[str, Any]) -> List[str]:
    kind = f"delta CRL (base {d['base_crl_number']})" if d["delta"] else "complete CRL"
    state = style_ok("fresh") if d["fresh"] else style_bad("STALE")
    return [f"Issuer:       {d['issuer']}",
            f"Kind:         {kind}, number {d['crl_number']}",
            f"This update:  {d['this_update']}",
            f"Next update:  {d['next_update']}  [{state}]",
            f"Entries:      {d['entry_count']}",
            f"Size:         {d['size']} bytes, SHA-256 {d['sha256']}"]


@crl.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("-n", "--entries", type=click.IntRange(0), default=10, show_default=True,
              help="How many revoked entries to list.")
@json_option
def crl_show(file: str, entries: int, as_json: bool) -> None:
    """show a CRL: issuer, updates, number, delta, entries"""
    from cps.errors import CrlError

    from .view import crl_summary, load_crls

    if file == "-":
        der, source = read_input("-"), "-"
    else:
        found = load_crls([file])
        if not found:
            raise CrlError(f"{file}: no CRL", source=file, reason="malformed")
        der, source = found[0]
    data = crl_summary(der, entries=entries, source=source)
    lines = _crl_text(data)
    if data["freshest_crl_urls"]:
        lines.append("Delta CRLs:   " + ", ".join(data["freshest_crl_urls"]))
    if data["entries"]:
        lines.append(f"First {len(data['entries'])} entries:")
        for e in data["entries"]:
            reason = f"  {e['reason']}" if e["reason"] else ""
            lines.append(f"  {e['serial']}  {e['revocation_date']}{reason}")
    emit(data, as_json, "\n".join(lines))


@crl.command("fetch")
@click.argument("urls", nargs=-1, metavar="[URL]...")
@click.option("--cert", "cert", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Fetch the CRLs (complete and delta) this certificate names.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache directory (default: $CPS_CRL_CACHE_DIR, else crl in the user "
                   "cache, ~/.cache/cps on Linux).")
@click.option("--force", is_flag=True, help="Download even when the cached copy is current.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Also write the CRL to this file (one URL only).")
@click.option("--anchors", multiple=True, metavar="igc-sante|test|FILE",
              help="Only CRLs signed by a CA of these anchors (and their known "
                   "intermediates) are cached: igc-sante (default), test, or files.")
@json_option
def crl_fetch(urls: Sequence[str], cert: Optional[str], cache_dir: Optional[str], force: bool,
              output: Optional[str], anchors: Sequence[str], as_json: bool) -> None:
    """download CRLs into the cache (progress bar on a terminal)

    A CRL is cached only once its signature verified under a CA of the trust
    anchors: on plain HTTP anyone may answer, and a forged CRL must never
    stand in the cache for the real one."""
    from cps.trust.fetch import Fetcher

    from .view import (
        certificate_summary,
        crl_summary,
        default_crl_cache_dir,
        iso,
        load_certificate_der,
    )

    wanted = list(urls)
    if cert:
        summary = certificate_summary(load_certificate_der(read_input(cert)))
        wanted += [u for u in summary["crl_urls"] + summary["delta_crl_urls"] if u not in wanted]
    if not wanted:
        raise click.UsageError("give a URL or --cert CERT (whose CRL distribution points "
                               "are fetched)")
    if output and len(wanted) != 1:
        raise click.UsageError(f"-o takes one CRL; {len(wanted)} URLs to fetch")
    directory = cache_dir or str(default_crl_cache_dir())
    progress = DownloadProgress()
    checker = validator_from(anchors, (), "off", False, None)
    fetcher = Fetcher(cache_dir=directory, progress=progress, verify_crl=checker.verify_crl)
    results = []
    try:
        for url in wanted:
            fetched = fetcher.fetch_crl(url, force=force)
            facts = crl_summary(fetched.der, entries=0, source=url)
            results.append({
                "url": url, "from_cache": fetched.from_cache, "revalidated": fetched.revalidated,
                "path": str(fetched.path) if fetched.path else None, "size": len(fetched.der),
                "sha256": facts["sha256"], "fetched_at": iso(fetched.fetched_at),
                "this_update": iso(fetched.this_update), "next_update": iso(fetched.next_update),
                "issuer": facts["issuer"], "crl_number": facts["crl_number"],
                "delta": facts["delta"], "entry_count": facts["entry_count"],
                "network_error": str(fetched.network_error) if fetched.network_error else None})
            if output:
                Path(output).write_bytes(fetched.der)
    finally:
        progress.close()
    data = {"cache_dir": directory, "crls": results}
    lines = []
    for r in results:
        how = ("from cache" if not r["revalidated"] else "not modified") if r["from_cache"] \
            else "downloaded"
        lines.append(f"{r['url']}: {how}, {r['entry_count']} entries, "
                     f"next update {r['next_update']}")
        if r["network_error"]:
            lines.append(f"  (network error, cached copy still current: {r['network_error']})")
    emit(data, as_json, "\n".join(lines))


@crl.command("status")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache directory (default: $CPS_CRL_CACHE_DIR, else crl in the user "
                   "cache, ~/.cache/cps on Linux).")
@json_option
def crl_status(cache_dir: Optional[str], as_json: bool) -> None:
    """what the CRL cache holds, fresh or stale"""
    from .view import crl_cache_status

    data = crl_cache_status(cache_dir)
    if not data["entries"]:
        text = f"{data['cache_dir']}: no cached CRL"
    else:
        lines = [f"{data['cache_dir']}:"]
        for e in data["entries"]:
            state = {"fresh": style_ok("fresh"), "stale": style_bad("STALE"),
                     "corrupt": style_bad("CORRUPT")}.get(e["state"], e["state"])
            due = ", refresh due" if e["refresh_due"] and e["state"] == "fresh" else ""
            lines.append(f"  [{state}{due}] {e['url']}  next update {e['next_update']}, "
                         f"{e['size']} bytes")
        text = "\n".join(lines)
    emit(data, as_json, text)
