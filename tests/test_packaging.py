"""Every package of the source tree is listed in pyproject.toml."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cps").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    assert "cps_cli" in listed and config["package-dir"]["cps_cli"] == "cli"


def test_py_typed_markers_ship():
    assert (ROOT / "cps" / "py.typed").exists() and (ROOT / "cli" / "py.typed").exists()
