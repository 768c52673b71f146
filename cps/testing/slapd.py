"""A real OpenLDAP server (slapd) publishing the test PKI's CRLs, like IGC-Santé's directory.

.. warning::
   TEST-ONLY: anonymous read access, no TLS, a throw-away database.

IGC-Santé publishes its CA certificates and CRLs in an LDAP directory
(``annuaire-igc.esante.gouv.fr``), its delta CRLs *only* there. This starts
``slapd`` (Debian package ``slapd``, installed by ``make test``) on a free port
of 127.0.0.1 with a fresh database holding, for each CA of a
:class:`~cps.emulator.pki.TestPKI`, an entry named by the CA's subject with
``cACertificate;binary``, ``certificateRevocationList;binary`` and, for the
intermediates, ``deltaRevocationList;binary``::

    with Slapd.for_test_pki(pki, directory) as slapd:
        url = slapd.crl_url(pki, "FORT PERSONNES", delta=True)
        # ldap://127.0.0.1:<port>/CN=TEST%20AC%20...?deltaRevocationList;binary?base?
        #     objectClass=pkiCA
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:
    from cps.emulator.pki import TestPKI

__all__ = ["Slapd", "SlapdError", "pki_entries"]

_SCHEMA = "/etc/ldap/schema/core.schema"
_MODULES = "/usr/lib/ldap"

Value = Union[str, bytes]
Entry = Tuple[str, Dict[str, List[Value]]]


class SlapdError(RuntimeError):
    """slapd is missing or did not start."""


class Slapd:
    """One slapd process serving ``suffix`` from ``directory`` on 127.0.0.1.

    :param directory: an empty directory of its own (configuration, database).
    :param entries: ``(dn, {attribute: [values]})`` in parent-first order;
        bytes values are written base64 (``;binary`` attributes).
    :param suffix: the database's root (``c=FR`` for IGC-Santé-like names).
    """

    def __init__(self, directory: Union[str, Path], entries: Sequence[Entry],
                 suffix: str = "c=FR") -> None:
        self.directory = Path(directory)
        self.suffix = suffix
        self.entries = list(entries)
        self.port = 0
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def base_url(self) -> str:
        """``ldap://127.0.0.1:<port>`` (valid once started)."""
        return f"ldap://127.0.0.1:{self.port}"

    def url(self, dn: str, attribute: str, object_class: str = "pkiCA") -> str:
        """An RFC 4516 URL of ``attribute`` of the entry ``dn``, written like
        IGC-Santé writes them in certificates."""
        return (f"{self.base_url}/{urllib.parse.quote(dn, safe='=,')}?{attribute}?base?"
                f"objectClass={object_class}")

    # -- the test PKI -------------------------------------------------------------------
    @classmethod
    def for_test_pki(cls, pki: "TestPKI", directory: Union[str, Path],
                     at: Optional[datetime] = None) -> "Slapd":
        """A server publishing every CA of ``pki`` with its CRLs issued at ``at``."""
        return cls(directory, pki_entries(pki, at))

    def crl_url(self, pki: "TestPKI", ca_name: str, delta: bool = False) -> str:
        """The URL of a CA's complete (or delta) CRL on this server."""
        attribute = "deltaRevocationList;binary" if delta else "certificateRevocationList;binary"
        return self.url(pki.ca(ca_name).cert.subject.rfc4514_string(), attribute)

    # -- process ---------------------------------------------------------------------
    def start(self) -> "Slapd":
        slapd = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin")
        slapadd = shutil.which("slapadd") or shutil.which("slapadd", path="/usr/sbin")
        if slapd is None or slapadd is None or not Path(_SCHEMA).exists():
            raise SlapdError("slapd is missing: `make test` installs the Debian package slapd")
        database = self.directory / "db"
        database.mkdir(parents=True, exist_ok=True)
        config = self.directory / "slapd.conf"
        config.write_text(
            f"include {_SCHEMA}\n"
            f"pidfile {self.directory / 'slapd.pid'}\n"
            f"modulepath {_MODULES}\n"
            "moduleload back_mdb\n"
            "database mdb\n"
            f'suffix "{self.suffix}"\n'
            f'rootdn "cn=admin,{self.suffix}"\n'
            f"directory {database}\n"
            "maxsize 104857600\n"
            "access to * by * read\n")
        ldif = self.directory / "entries.ldif"
        ldif.write_text(_ldif(self.entries))
        loaded = subprocess.run([slapadd, "-f", str(config), "-l", str(ldif)],
                                capture_output=True, text=True, timeout=60)
        if loaded.returncode != 0:
            raise SlapdError(f"slapadd failed: {loaded.stderr.strip()[-500:]}")
        self.port = _free_port()
        log = (self.directory / "slapd.log").open("wb")
        # -d 0: stay in the foreground (no fork), so the process is ours to stop
        self._process = subprocess.Popen(
            [slapd, "-f", str(config), "-h", f"{self.base_url}/", "-d", "0"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SlapdError("slapd exited: "
                                 + (self.directory / "slapd.log").read_text()[-500:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SlapdError("slapd did not start listening within 20 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> "Slapd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pki_entries(pki: "TestPKI", at: Optional[datetime] = None) -> List[Entry]:
    """The directory entries of a test PKI: the parents of the CA names, then one
    ``pkiCA`` entry per CA with its certificate and CRLs."""
    from cryptography.hazmat.primitives.serialization import Encoding

    entries: List[Entry] = []
    seen = set()
    for name in list(pki.roots) + list(pki.intermediates):  # parents before children
        ca = pki.ca(name)
        rdns = ca.cert.subject.rfc4514_string().split(",")
        for depth in range(len(rdns) - 1, 0, -1):  # c=FR, o=..., ou=..., parents first
            dn = ",".join(rdns[depth:])
            if dn.lower() not in seen:
                seen.add(dn.lower())
                entries.append((dn, _container(rdns[depth])))
        attributes: Dict[str, List[Value]] = {
            "objectClass": ["applicationProcess", "pkiCA", "deltaCRL"],
            "cn": [rdns[0].split("=", 1)[1]],
            "cACertificate;binary": [ca.cert.public_bytes(Encoding.DER)],
            "certificateRevocationList;binary": [pki.crl(name, at)],
        }
        if ca.delta_crl_url:
            attributes["deltaRevocationList;binary"] = [pki.crl(name, at, delta=True)]
        entries.append((ca.cert.subject.rfc4514_string(), attributes))
    return entries


def _container(rdn: str) -> Dict[str, List[Value]]:
    kind, _, value = rdn.partition("=")
    kind = kind.lower()
    if kind == "c":
        return {"objectClass": ["country"], "c": [value]}
    if kind == "o":
        return {"objectClass": ["organization"], "o": [value]}
    if kind == "ou":
        return {"objectClass": ["organizationalUnit"], "ou": [value]}
    raise SlapdError(f"no container class for {rdn!r}")


def _ldif(entries: Sequence[Entry]) -> str:
    blocks = []
    for dn, attributes in entries:
        lines = [f"dn:: {base64.b64encode(dn.encode()).decode()}"]
        for attribute, values in attributes.items():
            for value in values:
                raw = value if isinstance(value, bytes) else value.encode("utf-8")
                lines.append(f"{attribute}:: {base64.b64encode(raw).decode()}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]     # (host, port) for an AF_INET socket
        return port
