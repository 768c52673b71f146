"""`import cps` stays light; the CLI starts without heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["click", "smartcard", "pkcs11", "cryptography", "asn1crypto"]
CPS = Path(sys.executable).with_name("cps")


def _loaded_after(code: str) -> list:
    probe = (f"import sys; {code}; import json; "
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_cps_loads_no_heavy_dependency():
    loaded = _loaded_after("import cps; cps.errors; cps.list_readers")
    for name in HEAVY:
        assert name not in loaded, f"import cps imported {name}"


def test_library_source_never_imports_click():
    root = Path(__file__).resolve().parents[1] / "cps"
    offenders = [str(p) for p in root.rglob("*.py")
                 if any(line.strip().startswith(("import click", "from click"))
                        for line in p.read_text(encoding="utf-8").splitlines())]
    assert offenders == []


def test_cps_version():
    import cps

    out = subprocess.run([str(CPS), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"cps {cps.__version__}"


def test_cli_help_and_version_do_not_import_heavy_dependencies():
    code = ("import sys; sys.argv=['cps','--version']\n"
            "from cps_cli.__main__ import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n")
    loaded = _loaded_after(f"exec({code!r})")
    for name in ("smartcard", "pkcs11", "cryptography"):
        assert name not in loaded


def test_cli_package_is_not_installed_as_cli():
    out = subprocess.run([sys.executable, "-c", "import cli"], capture_output=True,
                         text=True, cwd="/")
    assert out.returncode != 0
