"""`cps tls get URL`: does this card open this service?"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import click

from .pinflow import pin_option, verify_pin_for
from .trustcmd import fail_with_json
from .util import (
    CliFail,
    emit,
    force_option,
    json_option,
    printable,
    style_bad,
    style_ok,
    with_card,
)

__all__ = ["tls", "tls_get"]


@click.group()
def tls() -> None:
    """TLS client authentication with the card"""


@tls.command("get")
@with_card
@click.argument("url")
@click.option("--ca", "ca", metavar="PATH",
              help="Trust this CA bundle (PEM/DER file) or directory for the server "
                   "(default: the system's store plus the IGC-Santé roots).")
@click.option("--igc-sante", "igc_only", is_flag=True,
              help="Trust only the IGC-Santé roots for the server.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=300), default=30.0,
              show_default=True, help="Seconds for the connection and each read.")
@pin_option
@force_option
@json_option
def tls_get_command(card: Any, url: str, ca: Optional[str], igc_only: bool, timeout: float,
                    pin_spec: Optional[str], force: bool, as_json: bool) -> None:
    """GET an https URL, authenticating with the card

    Opens TLS 1.2 to the server with the card's authentication certificate
    (PIN needed on the contact interface), then shows the negotiated version,
    cipher and signature scheme, the server's chain verdict and the HTTP
    status. Exit codes: 18 no TLS connection (refused handshake, network),
    19 server certificate or name not trusted, 20 HTTP status >= 400.
    """
    from cps import errors

    if ca and igc_only:
        raise CliFail("--ca and --igc-sante are exclusive", 2)
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        # checked before the PIN is asked: a typo costs nothing
        raise CliFail(f"not an https URL: {url!r}", 2)
    base: Dict[str, Any] = {"url": url, "connected": False}
    try:
        trust = _trust(ca, igc_only)
        if not card.contactless:
            verify_pin_for(card, pin_spec, force)
        data = tls_get(card, url, trust, timeout)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, base)
        raise
    status = data["http"]["status"]
    line = f"HTTP {status} {data['http']['reason']}"
    scheme = data["tls"]["signature_scheme"] or (
        "none: session resumed" if data["tls"]["resumed"] else "none: not asked")
    text = "\n".join([
        (style_ok("Connected") if status < 400 else style_bad("Connected"))
        + f" to {printable(url)}",
        f"  {data['tls']['version']}, {data['tls']['cipher']}, client signature {scheme}",
        f"  server: {data['server']['subject']}",
        f"          trusted via {data['server']['anchor']} ({data['server']['trust']})",
        f"  {line} ({data['http']['bytes']} bytes"
        f"{', the first MiB only' if data['http']['truncated'] else ''}, "
        f"{data['elapsed_ms']} ms)",
    ])
    emit(data, as_json, text)
    if status >= 400:
        from .exitcodes import HTTP_ERROR

        said = f" ({data['http']['error']})" if data["http"].get("error") else ""
        click.echo(f"error: the service answered {line}{said}", err=True)
        click.get_current_context().exit(HTTP_ERROR)


def _trust(ca: Optional[str], igc_only: bool) -> Any:
    from cps.tls.server_trust import ServerTrust

    if ca:
        try:
            return ServerTrust.from_path(ca)
        except FileNotFoundError as exc:
            raise CliFail(str(exc), 2) from None
    igc = ServerTrust.igc_sante()
    if igc_only:
        return igc
    system = ServerTrust.system() if _has_system_store() else None
    if system is None:
        return igc
    return ServerTrust(system.anchors + igc.anchors, intermediates=igc.intermediates,
                       name="system + IGC-Santé")


def _has_system_store() -> bool:
    import ssl

    return bool(ssl.create_default_context().get_ca_certs())


def tls_get(card: Any, url: str, trust: Any, timeout: float) -> Dict[str, Any]:
    """GET ``url`` over TLS authenticated with ``card``; what was negotiated and answered.

    :raises TlsError: no connection (``ServerCertificateError`` for the server's
        certificate or name).
    :raises CpsError: the card (removed, PIN not verified...).
    """
    import requests

    from cps.errors import TlsError
    from cps.tls.adapter import CardHTTPAdapter, CardSSLError
    from cps.tls.client import TlsSettings

    session = requests.Session()
    session.trust_env = False  # a diagnostic reaches the server itself: no proxy from env
    adapter = CardHTTPAdapter(card, trust=trust, settings=TlsSettings(timeout=timeout))
    session.mount("https://", adapter)
    started = time.perf_counter()
    try:
        # streamed: the command reads at most MAX_BODY bytes, whatever the server sends
        response = session.get(url, timeout=timeout, allow_redirects=False, stream=True)
        body, truncated = _read_at_most(response, MAX_BODY)
    except CardSSLError as exc:
        raise exc.cps_error from None
    except requests.exceptions.InvalidURL as exc:
        raise CliFail(f"not an https URL: {exc}", 2) from None
    except requests.exceptions.RequestException as exc:
        raise TlsError(f"{url}: {exc}", reason="connect") from None
    finally:
        adapter.close()
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    info = response.cps_tls  # type: ignore[attr-defined]
    server = info.server
    return {
        "url": url,
        "connected": True,
        "tls": {"version": info.version, "cipher": info.cipher,
                "signature_scheme": info.signature_scheme, "resumed": info.resumed,
                "client_certificate_requested": info.client_certificate_requested},
        "server": {"subject": _printable(server.subject, 1000),
                   "anchor": _printable(server.anchor, 1000), "trust": _printable(trust.name),
                   "chain": [_printable(c.subject.rfc4514_string(), 1000)
                             for c in server.chain],
                   "verified": True},
        "http": {"status": response.status_code, "reason": _printable(response.reason),
                 "bytes": len(body), "truncated": truncated,
                 "content_type": _printable(response.headers.get("Content-Type", "")),
                 "error": _refusal_reason(response, body)},
        "elapsed_ms": elapsed,
    }


def _printable(text: str, limit: int = 200) -> str:
    # the server's words reach a terminal: no control characters, bounded
    return printable(text, limit)


#: what `cps tls get` reads of an answer at most (it reports the size it read)
MAX_BODY = 1024 * 1024


def _read_at_most(response: Any, limit: int) -> tuple[bytes, bool]:
    parts, size = [], 0
    try:
        for part in response.iter_content(65536):
            parts.append(part[:limit - size])
            size += len(part)
            if size >= limit:
                return b"".join(parts), True
    finally:
        response.close()
    return b"".join(parts), False


def _refusal_reason(response: Any, body: bytes) -> Optional[str]:
    """The reason a cps.tls server side gave (``{"error": reason}``), if any."""
    if response.status_code < 400 or "json" not in response.headers.get("Content-Type", ""):
        return None
    import json

    try:
        data = json.loads(body[:65536])
        reason = data.get("error") if isinstance(data, dict) else None
    except ValueError:
        return None
    return _printable(reason, 80) if isinstance(reason, str) else None
