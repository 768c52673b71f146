"""Packaging: every package is listed; the light install works on its own.

The light-install tests build the wheel, install it without extras in a fresh
venv (binary wheels only) and use it there: about 15 s with a warm pip cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "cps").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    assert "cps_cli" in listed
    assert config.get("package-dir", {}).get("cps_cli", "cps_cli") == "cps_cli"


def test_py_typed_markers_ship():
    assert (ROOT / "cps" / "py.typed").exists() and (ROOT / "cps_cli" / "py.typed").exists()


# --------------------------------------------------------------------------- the light install
# Tracker issue 15: `pip install cps-middleware` (no extras) is enough for a login
# or document-verification server: no C compiler, no PC/SC library. The wheel is
# built from a copy of the tree, installed alone (binary wheels only) in a fresh
# venv, and used there like an integrator would.

#: seconds for one pip run (network to the package registry); the whole fixture
#: takes ~15 s with a warm pip cache.
PIP_TIMEOUT = 240
CARD_PACKAGES = ("pyscard", "python-pkcs11")


def _clean_env(venv: Path) -> dict:
    """The environment of a user of ``venv``: nothing of this checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "MYPYPATH",
                        "CPS_DEBUG", "PYTHONSAFEPATH", "__PYVENV_LAUNCHER__")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(venv), PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1")
    return env


def _run(what: str, cmd: list, *, cwd: Path, env: dict, timeout: float = 120,
         check: bool = True) -> subprocess.CompletedProcess:
    try:
        out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env,  # noqa: S603
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        said = [o if isinstance(o, str) else "" for o in (exc.stdout, exc.stderr)]
        pytest.fail(f"{what}: no answer within {timeout} s ({' '.join(map(str, cmd))})\n"
                    + "\n".join(said))
    if check and out.returncode != 0:
        pytest.fail(f"{what} failed (exit {out.returncode}): {' '.join(map(str, cmd))}\n"
                    f"--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}")
    return out


def _write_pki(directory: Path, pki) -> None:
    """A certificate to accept, one to refuse as revoked, anchors (PEM), CRLs (DER)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    directory.mkdir()
    at = pki.reference_time + timedelta(days=30)
    (directory / "anchors.pem").write_bytes(
        b"".join(c.public_bytes(Encoding.PEM) for c in pki.anchors()))
    (directory / "intermediates.pem").write_bytes(
        b"".join(c.public_bytes(Encoding.PEM) for c in pki.intermediates.values()))
    for profile in ("cps3-medecin", "cps3-revoked"):
        cert = pki.issue_card(profile).auth_cert
        (directory / f"{profile}.der").write_bytes(cert.public_bytes(Encoding.DER))
    for name in list(pki.intermediates) + list(pki.roots):
        (directory / f"{name}.crl").write_bytes(pki.crl(name, at=at))
    (directory / "at.txt").write_text(at.isoformat())


@pytest.fixture(scope="module")
def light(tmp_path_factory, cps_pki):
    """``(venv, work, wheel)``: a fresh venv holding the wheel without extras (and mypy)."""
    base = tmp_path_factory.mktemp("light-install")
    src, dist, venv, work = base / "src", base / "dist", base / "venv", base / "work"
    # A copy of the tree, so that building leaves nothing in the checkout and
    # concurrent runs do not share build/.
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("cps", "cps_cli"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for path in ROOT.iterdir():
        if path.name in ("pyproject.toml", "README.md") or path.name.startswith(
                ("LICENSE", "LICENCE", "COPYING")):
            shutil.copy2(path, src / path.name)
    work.mkdir()
    env = _clean_env(venv)
    _run("building the wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                                "-w", dist, src], cwd=base, env=env, timeout=PIP_TIMEOUT)
    wheels = list(dist.glob("cps_middleware-*.whl"))
    assert len(wheels) == 1, wheels
    _run("creating a venv", [sys.executable, "-m", "venv", venv], cwd=base, env=env)
    # Binary wheels only: had anything needed a compiler, this would fail.
    _run("installing the wheel without extras",
         [venv / "bin" / "python", "-m", "pip", "install", "-q", "--only-binary", ":all:",
          "--timeout", "60", wheels[0]], cwd=work, env=env, timeout=PIP_TIMEOUT)
    # The integrator's type checker, the version this project is checked with.
    try:
        mypy = f"mypy=={metadata.version('mypy')}"
    except metadata.PackageNotFoundError:  # the [test] extra's range
        mypy = "mypy>=1.10,<3"
    _run("installing mypy", [venv / "bin" / "python", "-m", "pip", "install", "-q",
                             "--timeout", "60", mypy],
         cwd=work, env=env, timeout=PIP_TIMEOUT)
    _write_pki(work / "pki", cps_pki)
    return venv, work, wheels[0]


def _python(light, what: str, code: str, *args: str) -> dict:
    """Run ``code`` (a script printing one JSON line) with the light venv's Python."""
    venv, work, _ = light
    script = work / f"{what.replace(' ', '_')}.py"
    script.write_text(textwrap.dedent(code))
    out = _run(what, [venv / "bin" / "python", script, *args], cwd=work,
               env=_clean_env(venv))
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_wheel_needs_no_card_package_without_the_card_extra(light):
    _, _, wheel = light
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in
                    zf.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
        names = set(zf.namelist())
    for package in CARD_PACKAGES:
        lines = [r for r in requires if r.lower().startswith(package)]
        assert lines and all("extra == \"card\"" in r for r in lines), requires
    assert any(r.startswith("redis") and "extra == \"redis\"" in r for r in requires), requires
    assert {"cps/py.typed", "cps/_extras.py", "cps_cli/__main__.py"} <= names
    assert not any(n.startswith("cli/") for n in names)


@pytest.mark.slow
def test_light_install_holds_no_card_package(light):
    installed = _python(light, "installed", """
        import json
        from importlib import metadata
        print(json.dumps(sorted(d.metadata["Name"].lower() for d in metadata.distributions())))
    """)
    assert "cps-middleware" in installed
    for package in CARD_PACKAGES + ("redis",):
        assert package not in installed, f"{package} came with the light install: {installed}"


@pytest.mark.slow
def test_light_install_validates_a_certificate(light):
    facts = _python(light, "validate", """
        import datetime as dt
        import json
        import sys
        from pathlib import Path

        from cryptography import x509

        import cps
        import cps.auth
        import cps.sign
        from cps.card import KeyRole
        from cps.errors import CertificateRevoked
        from cps.trust import TrustStore, Validator

        pki = Path(sys.argv[1])
        at = dt.datetime.fromisoformat((pki / "at.txt").read_text())
        store = TrustStore.from_certificates(
            x509.load_pem_x509_certificates((pki / "anchors.pem").read_bytes()),
            x509.load_pem_x509_certificates((pki / "intermediates.pem").read_bytes()),
            name="TEST")
        validator = Validator(store, crls=[p.read_bytes() for p in sorted(pki.glob("*.crl"))],
                              revocation="hard-fail")
        result = validator.validate((pki / "cps3-medecin.der").read_bytes(), at=at,
                                    purpose=KeyRole.AUTH)
        try:
            validator.validate((pki / "cps3-revoked.der").read_bytes(), at=at,
                               purpose=KeyRole.AUTH)
            revoked = "accepted"
        except CertificateRevoked as exc:
            revoked = exc.reason
        print(json.dumps({"cps": cps.__file__, "path": len(result.path_der),
                          "revocation": [s.status for s in result.revocation],
                          "revoked": revoked,
                          "modules": sorted({m.split(".")[0] for m in sys.modules})}))
    """, "pki")
    venv, _, _ = light
    assert facts["cps"].startswith(str(venv)), facts["cps"]  # the installed copy, not ROOT
    assert facts["path"] == 3 and facts["revocation"] == ["good", "good", "not-checked"]
    assert facts["revoked"] == "revoked"
    assert not {"smartcard", "pkcs11", "redis"} & set(facts["modules"])


@pytest.mark.slow
def test_light_install_card_access_names_the_card_extra(light):
    facts = _python(light, "card_access", """
        import json

        import cps
        import cps.pcsc  # importable: pyscard is loaded when a reader is used
        from cps.errors import MissingExtra, NotSupported
        from cps.pkcs11 import Pkcs11Card

        out = {}
        for name, call in [("list_readers", cps.list_readers), ("open_card", cps.open_card),
                           ("pkcs11", lambda: cps.open_card(backend="pkcs11", module="/x.so")),
                           ("Pkcs11Card", Pkcs11Card.open)]:
            try:
                call()
                out[name] = "no error"
            except MissingExtra as exc:
                assert isinstance(exc, NotSupported)
                out[name] = [exc.extra, exc.package, str(exc)]
        print(json.dumps(out))
    """)
    assert facts["list_readers"][:2] == ["card", "pyscard"], facts
    assert facts["open_card"][:2] == ["card", "pyscard"], facts
    assert facts["pkcs11"][:2] == ["card", "python-pkcs11"], facts
    assert facts["Pkcs11Card"][:2] == ["card", "python-pkcs11"], facts
    for _, _, message in facts.values():
        assert "pip install 'cps-middleware[card]'" in message, message


@pytest.mark.slow
def test_light_install_cps_command_says_which_extra(light):
    venv, work, _ = light
    from cps_cli.exitcodes import CERT_REVOKED, NOT_SUPPORTED

    env = _clean_env(venv)
    version = _run("cps --version", [venv / "bin" / "cps", "--version"], cwd=work, env=env)
    assert version.stdout.startswith("cps ")
    out = _run("cps readers", [venv / "bin" / "cps", "readers"], cwd=work, env=env,
               check=False)
    assert out.returncode == NOT_SUPPORTED, (out.returncode, out.stdout, out.stderr)
    assert "cps-middleware[card]" in out.stderr, out.stderr
    # `cps validate` needs no extra (README "Install").
    at = (work / "pki" / "at.txt").read_text()
    for profile, code in (("cps3-medecin", 0), ("cps3-revoked", CERT_REVOKED)):
        out = _run(f"cps validate {profile}", [
            venv / "bin" / "cps", "validate", f"pki/{profile}.der", "--anchors",
            "pki/anchors.pem", "--intermediate", "pki/intermediates.pem", "--crl", "pki",
            "--at", at, "--purpose", "auth", "--json"], cwd=work, env=env, check=False)
        assert out.returncode == code, (profile, out.returncode, out.stdout, out.stderr)


@pytest.mark.slow
def test_light_install_redis_store_names_the_redis_extra(light):
    facts = _python(light, "redis_store", """
        import json

        from cps.auth.nonces import RedisNonceStore
        from cps.errors import MissingExtra

        try:
            RedisNonceStore("redis://127.0.0.1:1/0")
            out = "no error"
        except MissingExtra as exc:
            out = [exc.extra, exc.package, str(exc)]
        print(json.dumps(out))
    """)
    assert facts[:2] == ["redis", "redis"] and "cps-middleware[redis]" in facts[2], facts


@pytest.mark.slow
def test_light_install_tls_server_side_and_the_client_extra(light):
    # the server side (middleware) needs no extra; the client names [tls]
    facts = _python(light, "tls_extra", """
        import json
        from urllib.parse import quote

        from cps.errors import MissingExtra
        from cps.tls import CertificateAuthenticator, TlsSettings, WsgiMiddleware

        out = {"middleware": WsgiMiddleware.__name__}
        for name, call in [("adapter", lambda: __import__("cps.tls", fromlist=["x"])
                            .CardHTTPAdapter),
                           ("client", lambda: TlsSettings().handshake_settings())]:
            try:
                call()
                out[name] = "no error"
            except MissingExtra as exc:
                out[name] = [exc.extra, exc.package, str(exc)]
        import sys
        out["modules"] = sorted(m for m in ("tlslite", "requests") if m in sys.modules)
        print(json.dumps(out))
    """)
    assert facts["middleware"] == "WsgiMiddleware"
    assert facts["adapter"][:2] == ["tls", "requests"], facts
    assert facts["client"][:2] == ["tls", "tlslite-ng"], facts
    assert "pip install 'cps-middleware[tls]'" in facts["client"][2]
    assert facts["modules"] == []


@pytest.mark.slow
def test_light_install_document_signatures_name_their_extras(light):
    # timestamps need no extra; XAdES names [xml], PAdES [pdf]
    facts = _python(light, "doc_extras", """
        import json

        from cps.errors import MissingExtra
        import cps.timestamp  # base install: asn1crypto + cryptography

        out = {}
        for name, call in [("xades", lambda: __import__("cps.xades", fromlist=["x"])
                            .verify_xades(b"<a/>")),
                           ("pades", lambda: __import__("cps.pades", fromlist=["x"]))]:
            try:
                call()
                out[name] = "no error"
            except MissingExtra as exc:
                out[name] = [exc.extra, exc.package]
        print(json.dumps(out))
    """)
    assert facts == {"xades": ["xml", "lxml"], "pades": ["pdf", "pyHanko"]}, facts


def _mypy(light, name: str, code: str) -> subprocess.CompletedProcess:
    venv, work, _ = light
    (work / "mypy.ini").write_text("[mypy]\n")  # none of this checkout's settings
    script = work / name
    script.write_text(textwrap.dedent(code))
    return _run(f"mypy {name}", [venv / "bin" / "python", "-m", "mypy", "--config-file",
                                 "mypy.ini", "--cache-dir", work / ".mypy_cache",
                                 "--no-error-summary", script],
                cwd=work, env=_clean_env(venv), timeout=180, check=False)


INTEGRATOR = """
    from __future__ import annotations

    import datetime as dt

    from cps.card import KeyRole
    from cps.errors import CertificateInvalid, MissingExtra
    from cps.trust import TrustStore, ValidationResult, Validator


    def check(leaf: bytes, anchors: list[bytes], at: dt.datetime) -> ValidationResult | None:
        validator = Validator(TrustStore.from_certificates(anchors), revocation="off")
        try:
            return validator.validate(leaf, at=at, purpose=KeyRole.AUTH)
        except CertificateInvalid as exc:
            print(exc.reason)
            return None


    def what_to_install(exc: MissingExtra) -> str:
        return f"{exc.package} (extra {exc.extra})"
"""


@pytest.mark.slow
def test_integrator_script_type_checks_against_the_installed_package(light):
    out = _mypy(light, "integrator.py", INTEGRATOR)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_type_checker_catches_an_integrator_typo(light):
    out = _mypy(light, "typo.py", """
        import cps.trust
        from cps.trust import TrustStore

        validator = cps.trust.Validatr(TrustStore.igc_sante())
        reason: int = cps.trust.Validator(TrustStore.igc_sante()).revocation
    """)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'Module has no attribute "Validatr"' in out.stdout, out.stdout
    assert "typo.py:6: error" in out.stdout, out.stdout  # a str is no int: signatures are typed


@pytest.mark.slow
def test_type_checker_catches_a_typo_in_the_top_level_names(light):
    # cps/__init__.py loads its names lazily at run time, but shows them to type
    # checkers as plain imports: a typo is an error, and the real types flow.
    out = _mypy(light, "typo_top.py", """
        import cps

        card = cps.open_crd()
    """)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'has no attribute "open_crd"' in out.stdout, out.stdout
    typed = _mypy(light, "typed_top.py", """
        import cps

        def number(card: cps.Card) -> str:
            return card.card_number

        who: cps.Practitioner = cps.open_card().practitioner
        status: int = cps.open_card().pin_status()
    """)
    errors = [line for line in typed.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "PinStatus" in errors[0] and "int" in errors[0], typed.stdout


def test_make_test_fails_when_pytest_collects_nothing(tmp_path):
    # A broken testpaths (or a suite that vanished) must fail `make test` and
    # `.ci/run`, not pass them: run the recipe's pytest step on an empty folder
    # (setup and the type/lint check are taken as done: -o).
    out = subprocess.run(["make", "-s", "-o", "setup", "-o", "check", "test",
                          f"PYTEST_ARGS={tmp_path} -p no:cacheprovider -q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "no tests ran" in out.stdout, out.stdout
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and '"5"' not in ci and "= 5" not in ci  # no exit code 5 masked
