"""PKCS#11 module discovery and the cache directory, per platform, simulated.

CI runs on Linux: Windows and macOS are simulated through the platform facts
(``platform``, ``bits``, ``environ``) and a fake file-system root (``root``),
with empty files named like the real modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cps import errors
from cps.pkcs11_modules import (
    CRYPTOLIB,
    OPENSC,
    candidate_paths,
    find_module,
    install_advice,
    module_candidates,
)
from cps.platform_paths import user_cache_dir

WIN_ENV = {"WINDIR": "C:\\Windows", "ProgramFiles": "C:\\Program Files",
           "ProgramFiles(x86)": "C:\\Program Files (x86)", "ProgramW6432": "C:\\Program Files"}
# What a 32-bit process on 64-bit Windows sees (WOW64 sets %ProgramFiles% to the x86 folder).
WOW64_ENV = dict(WIN_ENV, ProgramFiles="C:\\Program Files (x86)", PROCESSOR_ARCHITEW6432="AMD64")
OPENSC_WIN = ("Program Files", "OpenSC Project", "OpenSC", "pkcs11", "opensc-pkcs11.dll")
OPENSC_WIN_X86 = ("Program Files (x86)",) + OPENSC_WIN[1:]


def put(root: Path, *parts: str) -> str:
    path = root.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF not really")
    return str(path)


def found(**facts: object) -> list[tuple[str, str]]:
    return [(c.kind, c.path) for c in module_candidates(**facts) if c.exists]  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_env_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CPS_PKCS11_MODULE", raising=False)


# ------------------------------------------------------------------ Windows
def test_windows_64_bit(tmp_path: Path) -> None:
    facts = {"platform": "win32", "bits": 64, "environ": WIN_ENV, "root": tmp_path}
    with pytest.raises(errors.NotSupported) as nothing:
        find_module(**facts)
    text = str(nothing.value)
    assert "Cryptolib CPS for Windows" in text and "cps3_pkcs11_w64.dll" in text
    assert "win64.msi" in text and "apt" not in text and "dnf" not in text
    assert str(tmp_path / "Windows" / "System32" / "cps3_pkcs11_w64.dll") in text
    assert str(tmp_path.joinpath(*OPENSC_WIN)) in text
    assert "w32" not in text and "(x86)" not in text   # never a module of the other width
    opensc = put(tmp_path, *OPENSC_WIN)
    assert find_module(**facts) == opensc                  # OpenSC only
    cryptolib = put(tmp_path, "Windows", "System32", "cps3_pkcs11_w64.dll")
    assert find_module(**facts) == cryptolib               # both: the Cryptolib first
    assert found(**facts) == [(CRYPTOLIB, cryptolib), (OPENSC, opensc)]


def test_windows_32_bit_python_on_64_bit_windows(tmp_path: Path) -> None:
    """The 32-bit DLL lives in SysWOW64; a 32-bit process also sees it as System32."""
    facts = {"platform": "win32", "bits": 32, "environ": WOW64_ENV, "root": tmp_path}
    put(tmp_path, "Windows", "System32", "cps3_pkcs11_w64.dll")   # the 64-bit one: unusable
    put(tmp_path, *OPENSC_WIN)                                    # 64-bit OpenSC: unusable
    with pytest.raises(errors.NotSupported) as nothing:
        find_module(**facts)
    text = str(nothing.value)
    assert "cps3_pkcs11_w32.dll" in text and "win32.msi" in text
    assert "this Python is 32-bit" in text and "cps3_pkcs11_w64.dll is installed" in text
    assert str(tmp_path.joinpath(*OPENSC_WIN_X86)) in text
    wow = put(tmp_path, "Windows", "SysWOW64", "cps3_pkcs11_w32.dll")
    assert find_module(**facts) == wow
    # WOW64 redirection: System32\cps3_pkcs11_w32.dll is the same file; it counts once.
    system32 = tmp_path / "Windows" / "System32" / "cps3_pkcs11_w32.dll"
    system32.hardlink_to(wow)
    assert found(**facts) == [(CRYPTOLIB, str(system32))]
    opensc = put(tmp_path, *OPENSC_WIN_X86)
    assert found(**facts) == [(CRYPTOLIB, str(system32)), (OPENSC, opensc)]


def test_windows_32_bit(tmp_path: Path) -> None:
    """32-bit Windows: no SysWOW64, no (x86) folder; everything 32-bit in System32."""
    env = {"SystemRoot": "D:\\WINNT", "ProgramFiles": "D:\\Programs"}
    facts = {"platform": "win32", "bits": 32, "environ": env, "root": tmp_path}
    assert candidate_paths(platform="win32", bits=32, environ=env)[0] == \
        "D:\\WINNT\\System32\\cps3_pkcs11_w32.dll"
    opensc = put(tmp_path, "Programs", *OPENSC_WIN[1:])
    assert find_module(**facts) == opensc
    cryptolib = put(tmp_path, "WINNT", "System32", "cps3_pkcs11_w32.dll")
    assert find_module(**facts) == cryptolib


def test_windows_64_bit_python_with_only_the_32_bit_cryptolib(tmp_path: Path) -> None:
    put(tmp_path, "Windows", "SysWOW64", "cps3_pkcs11_w32.dll")
    with pytest.raises(errors.NotSupported, match="this Python is 64-bit"):
        find_module(platform="win32", bits=64, environ=WIN_ENV, root=tmp_path)


def test_windows_defaults_and_case_insensitive_environment() -> None:
    assert candidate_paths(CRYPTOLIB, platform="win32", bits=64, environ={}) == \
        ("C:\\Windows\\System32\\cps3_pkcs11_w64.dll",)
    assert candidate_paths(CRYPTOLIB, platform="win32", bits=32, environ={"windir": "E:\\W"}) \
        == ("E:\\W\\System32\\cps3_pkcs11_w32.dll", "E:\\W\\SysWOW64\\cps3_pkcs11_w32.dll")
    assert candidate_paths(OPENSC, platform="win32", bits=64, environ=WIN_ENV)[0] == \
        "C:\\Program Files\\OpenSC Project\\OpenSC\\pkcs11\\opensc-pkcs11.dll"
    assert candidate_paths(OPENSC, platform="win32", bits=32, environ=WOW64_ENV)[0] == \
        "C:\\Program Files (x86)\\OpenSC Project\\OpenSC\\pkcs11\\opensc-pkcs11.dll"


# ------------------------------------------------------------------ macOS
def test_macos(tmp_path: Path) -> None:
    facts = {"platform": "darwin", "bits": 64, "environ": {}, "root": tmp_path}
    with pytest.raises(errors.NotSupported) as nothing:
        find_module(**facts)
    text = str(nothing.value)
    assert "Cryptolib CPS for macOS" in text and "brew install opensc" in text
    assert "apt" not in text and ".so" in text and ".dll" not in text
    assert str(tmp_path / "usr/local/lib/libcps3_pkcs11_osx.dylib") in text
    homebrew = put(tmp_path, "opt", "homebrew", "lib", "opensc-pkcs11.so")
    assert find_module(**facts) == homebrew
    pkg = put(tmp_path, "Library", "OpenSC", "lib", "opensc-pkcs11.so")
    assert find_module(**facts) == pkg                      # OpenSC's own .pkg before Homebrew
    old = put(tmp_path, "usr", "lib", "libcps3_pkcs11_osx.dylib")
    assert find_module(**facts) == old
    new = put(tmp_path, "usr", "local", "lib", "libcps3_pkcs11_osx.dylib")
    assert [p for _, p in found(**facts)] == [new, old, pkg, homebrew]


# ------------------------------------------------------------------ Linux
def test_linux(tmp_path: Path) -> None:
    facts = {"platform": "linux", "environ": {}, "root": tmp_path}
    with pytest.raises(errors.NotSupported) as nothing:
        find_module(**facts)
    text = str(nothing.value)
    assert "apt install opensc-pkcs11" in text and "Cryptolib CPS for Linux" in text
    assert "dylib" not in text and "/Library/" not in text
    looked = text.split("Looked for ")[1]
    assert looked.index("/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so") < \
        looked.index("/usr/lib64/libcps3_pkcs11_lux.so") < \
        looked.index("/usr/local/galss/libcps3_pkcs11_lux.so") < looked.index("opensc-pkcs11.so")
    opensc = put(tmp_path, "usr", "lib64", "pkcs11", "opensc-pkcs11.so")
    assert find_module(**facts) == opensc
    lib64 = put(tmp_path, "usr", "lib64", "libcps3_pkcs11_lux.so")
    assert find_module(**facts) == lib64
    santesocial = put(tmp_path, "opt", "santesocial", "CPS", "lib", "libcps3_pkcs11_lux.so")
    assert find_module(**facts) == santesocial
    # a symbolic link to a module already found counts once
    (tmp_path / "usr" / "lib").mkdir()
    os.symlink(santesocial, tmp_path / "usr" / "lib" / "libcps3_pkcs11_lux.so")
    assert found(**facts) == [(CRYPTOLIB, santesocial), (CRYPTOLIB, lib64), (OPENSC, opensc)]


def test_linux_multiarch_and_p11kit_directories() -> None:
    paths = candidate_paths(OPENSC, platform="linux")
    assert any(p.endswith("-linux-gnu/opensc-pkcs11.so") for p in paths)
    assert any(p.endswith("-linux-gnu/pkcs11/opensc-pkcs11.so") for p in paths)
    assert candidate_paths(CRYPTOLIB, platform="linux")[:3] == (
        "/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so", "/usr/lib64/libcps3_pkcs11_lux.so",
        "/usr/local/galss/libcps3_pkcs11_lux.so")


def test_bsd_advice(tmp_path: Path) -> None:
    with pytest.raises(errors.NotSupported, match="pkg install opensc"):
        find_module(platform="freebsd14", environ={}, root=tmp_path)


# ------------------------------------------------------------------ explicit module
def test_explicit_module_and_environment(tmp_path: Path) -> None:
    module = put(tmp_path, "softhsm", "libsofthsm2.so")
    put(tmp_path, "opt", "santesocial", "CPS", "lib", "libcps3_pkcs11_lux.so")
    facts = {"platform": "linux", "root": tmp_path}
    assert find_module(module, environ={}, **facts) == module   # before any installed one
    assert find_module(environ={"CPS_PKCS11_MODULE": module}, **facts) == module
    missing = str(tmp_path / "nowhere" / "cps3_pkcs11_w64.dll")
    with pytest.raises(errors.NotSupported, match="no PKCS#11 module at .*cps3_pkcs11_w64.dll"):
        find_module(missing, platform="win32", bits=64, environ={}, root=tmp_path)
    with pytest.raises(errors.NotSupported, match=r"\$CPS_PKCS11_MODULE"):
        find_module(environ={"CPS_PKCS11_MODULE": missing}, **facts)


def test_pkcs11_backend_uses_the_same_search(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    from cps import pkcs11 as backend

    assert backend.find_module is find_module
    assert backend.CRYPTOLIB_PATHS == candidate_paths(CRYPTOLIB)
    assert backend.OPENSC_PATHS == candidate_paths(OPENSC)
    missing = str(tmp_path / "libcps3_pkcs11_lux.so")
    with pytest.raises(errors.NotSupported, match="libcps3_pkcs11_lux.so"):
        backend.Pkcs11Card.open(module=missing)


def test_install_advice_per_platform() -> None:
    for platform in ("win32", "darwin"):
        advice = install_advice(platform=platform, bits=64)
        assert "apt" not in advice and "dnf" not in advice and "Cryptolib CPS" in advice
    assert "apt install" in install_advice(platform="linux")
    assert "32-bit" in install_advice(platform="win32", bits=32)
    with pytest.raises(ValueError):
        install_advice(platform="win32", bits=16)


def test_discovery_imports_no_heavy_module() -> None:
    probe = ("import sys, cps.pkcs11_modules, cps.platform_paths; "
             "print(sorted(m for m in ('pkcs11', 'cryptography', 'smartcard', 'click') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                         check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the cache directory
def test_user_cache_dir_per_platform(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert user_cache_dir(platform="linux", environ={}, home=home) == home / ".cache" / "cps"
    assert user_cache_dir(platform="linux", environ={"XDG_CACHE_HOME": str(tmp_path / "x")},
                          home=home) == tmp_path / "x" / "cps"
    # the XDG specification ignores relative paths
    assert user_cache_dir(platform="linux", environ={"XDG_CACHE_HOME": "rel"}, home=home) == \
        home / ".cache" / "cps"
    assert user_cache_dir(platform="freebsd14", environ={}, home=home) == home / ".cache" / "cps"
    assert user_cache_dir(platform="darwin", environ={"XDG_CACHE_HOME": "/x"}, home=home) == \
        home / "Library" / "Caches" / "cps"
    local = str(tmp_path / "AppData" / "Local")
    assert user_cache_dir(platform="win32", environ={"localappdata": local}, home=home) == \
        Path(local) / "cps" / "Cache"
    assert user_cache_dir(platform="win32", environ={}, home=home) == \
        home / "AppData" / "Local" / "cps" / "Cache"


def test_crl_cache_under_the_user_cache(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    from cps.trust.files import default_crl_cache_dir

    monkeypatch.delenv("CPS_CRL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_crl_cache_dir() == user_cache_dir() / "crl"
    if sys.platform.startswith("linux"):
        assert default_crl_cache_dir() == tmp_path / "cps" / "crl"
    monkeypatch.setenv("CPS_CRL_CACHE_DIR", str(tmp_path / "mine"))
    assert default_crl_cache_dir() == tmp_path / "mine"
