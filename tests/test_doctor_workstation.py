"""`cps doctor`'s workstation checks on prepared fake roots of Linux, Windows and macOS.

Each scenario of tests/fixtures/doctor/ is a copy of what the ANS installers,
browsers and drivers leave on a machine (files, a regedit export, an ioreg dump);
the installed `cps` script looks at it with the hidden options --root, --platform,
--registry, --env-file and --ioreg, and its --json must equal the scenario's
expected.json, the time fields normalised. Set CPS_UPDATE_GOLDEN=1 to rewrite the
golden files after a deliberate change, and review the diff.

No PC/SC service is needed: --no-card runs the workstation checks alone.
"""

from __future__ import annotations

import json
import os
import plistlib
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from cps.cryptolib import CryptolibInstall, find_cryptolib, installed_version
from cps.diagnostics import CHECKS
from cps.diagnostics.machine import Machine
from cps.diagnostics.registry import RegistryExport, RegistryExportError
from cps.diagnostics.report import CARD_CHECKS, WORKSTATION_CHECKS
from cps.diagnostics.workstation import check_workstation
from cps.diagnostics.workstation.common import registrations
from cps.diagnostics.workstation.cryptolib import check_cryptolib
from cps.diagnostics.workstation.galss import channels

CPS = str(Path(sys.executable).with_name("cps"))
FIXTURES = Path(__file__).with_name("fixtures") / "doctor"
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if (p / "root").is_dir())


def args_for(scenario: str) -> List[str]:
    d = FIXTURES / scenario
    args = ["--root", str(d / "root"), "--platform", (d / "platform").read_text().strip(),
            "--env-file", str(d / "env")]
    if (d / "registry.reg").exists():
        args += ["--registry", str(d / "registry.reg")]
    if (d / "ioreg.txt").exists():
        args += ["--ioreg", str(d / "ioreg.txt")]
    return args


def machine_for(scenario: str) -> Machine:
    d = FIXTURES / scenario
    env = dict(line.split("=", 1) for line in (d / "env").read_text().splitlines() if line)
    return Machine((d / "platform").read_text().strip(), root=d / "root", environ=env,
                   registry=str(d / "registry.reg") if (d / "registry.reg").exists() else None,
                   ioreg=d / "ioreg.txt" if (d / "ioreg.txt").exists() else None)


def run_cli(args: List[str], as_json: bool = True) -> Tuple[int, Any, str]:
    # An empty HOME and no SESSIONNAME: nothing of this machine may leak into a scenario.
    env = {k: v for k, v in os.environ.items() if k not in ("SESSIONNAME", "SSH_CONNECTION")}
    env["HOME"] = "/nonexistent/cps-test-home"
    done = subprocess.run([CPS, "doctor", *(["--json"] if as_json else []), *args],  # noqa: S603
                          capture_output=True, text=True, env=env, timeout=60)
    if as_json:
        try:
            return done.returncode, json.loads(done.stdout), done.stderr
        except ValueError:
            pytest.fail(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr!r}")
    return done.returncode, done.stdout, done.stderr


def normalise(data: Dict[str, Any]) -> Dict[str, Any]:
    assert isinstance(data["elapsed"], (int, float)) and data["elapsed"] >= 0
    assert data["at"].endswith("+00:00")
    return dict(data, at="<at>", elapsed="<elapsed>")


# --------------------------------------------------------------------------- goldens
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_workstation_json_matches_golden(scenario):
    code, data, stderr = run_cli(["--no-card", *args_for(scenario)])
    assert [c["name"] for c in data["checks"]] == list(WORKSTATION_CHECKS), stderr
    assert data["exit_code"] == code
    data = normalise(data)
    golden = FIXTURES / scenario / "expected.json"
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("CPS_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing {golden}: run with CPS_UPDATE_GOLDEN=1"
    assert json.loads(golden.read_text(encoding="utf-8")) == data
    # the library, in process, finds the same
    found = {c.name: c.status for c in check_workstation(machine_for(scenario))}
    assert found == {c["name"]: c["status"] for c in data["checks"]}


def test_scenarios_cover_every_platform():
    platforms = {(FIXTURES / s / "platform").read_text().strip() for s in SCENARIOS}
    assert platforms == {"linux", "win32", "darwin"}


def statuses(scenario: str) -> Dict[str, str]:
    data = json.loads((FIXTURES / scenario / "expected.json").read_text(encoding="utf-8"))
    return {c["name"]: c["status"] for c in data["checks"]}


def check_of(scenario: str, name: str) -> Dict[str, Any]:
    data = json.loads((FIXTURES / scenario / "expected.json").read_text(encoding="utf-8"))
    return next(c for c in data["checks"] if c["name"] == name)


def test_clean_linux_is_healthy():
    code, data, _ = run_cli(["--no-card", *args_for("linux-clean")])
    assert code == 0 and data["ok"] and data["first_failure"] is None
    assert set(statuses("linux-clean").values()) == {"ok"}
    cryptolib = check_of("linux-clean", "cryptolib")["data"]
    assert cryptolib["version"] == "5.2.2" and cryptolib["version_source"] == "adm"


def test_conflict_and_snap_on_linux():
    code, data, _ = run_cli(["--no-card", *args_for("linux-conflict-snap")])
    assert code == 1 and data["first_failure"] == "middleware"
    middleware = check_of("linux-conflict-snap", "middleware")
    assert [c["app"] for c in middleware["data"]["conflicts"]] == ["nss"]
    assert "PIN twice" in middleware["summary"] and "modutil" in middleware["advice"]
    browsers = check_of("linux-conflict-snap", "browsers")
    assert browsers["status"] == "fail" and "snap" in browsers["summary"]
    assert "packages.mozilla.org" in browsers["advice"]
    assert check_of("linux-conflict-snap", "cryptolib")["data"]["version_source"] == "rpm"
    assert check_of("linux-conflict-snap", "galss")["status"] == "warn"
    ccid = check_of("linux-conflict-snap", "ccid")
    assert ccid["status"] == "warn" and "0B00:0090" in ccid["summary"]
    assert check_of("linux-conflict-snap", "remote")["data"]["kind"] == "xrdp"


def test_windows_old_cryptolib_in_rdp():
    found = statuses("windows-cryptolib-old-rdp")
    assert found["cryptolib"] == "warn" and found["remote"] == "fail"
    cryptolib = check_of("windows-cryptolib-old-rdp", "cryptolib")
    assert cryptolib["data"]["version"] == "5.1.4"
    assert cryptolib["data"]["version_source"] == "registry"
    assert {m["bits"] for m in cryptolib["data"]["modules"]} == {32, 64}
    assert ".msi" in cryptolib["advice"]
    remote = check_of("windows-cryptolib-old-rdp", "remote")
    assert "fEnableSmartCard" in remote["summary"] and "gpedit.msc" in remote["advice"]
    browsers = check_of("windows-cryptolib-old-rdp", "browsers")["data"]["browsers"]
    chrome = next(b for b in browsers if b["name"] == "chrome")
    assert chrome["status"] == "ok" and "Windows store" in chrome["summary"]


def test_macos_conflict_through_policies_and_manifest():
    middleware = check_of("darwin-conflict", "middleware")
    assert middleware["status"] == "fail"
    vias = {r["via"] for r in middleware["data"]["registrations"]}
    assert vias == {"policies.json", "manifest"}
    cryptolib = check_of("darwin-conflict", "cryptolib")["data"]
    assert (cryptolib["version"], cryptolib["version_source"]) == ("5.2.1", "receipt")
    ccid = check_of("darwin-conflict", "ccid")
    assert ccid["data"]["usb"][0]["vendor"] == "046a" and ccid["status"] == "warn"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_advice_speaks_the_platforms_language(scenario):
    platform = (FIXTURES / scenario / "platform").read_text().strip()
    data = json.loads((FIXTURES / scenario / "expected.json").read_text(encoding="utf-8"))
    for c in data["checks"]:
        text = c["advice"] + " " + c["summary"]
        if platform != "linux":
            for word in ("apt ", "systemctl", "dnf ", "journalctl", "alien"):
                assert word not in text, (c["name"], text)
        if platform == "win32":
            assert "/etc/" not in text and "/opt/" not in text, (c["name"], text)
        if c["status"] in ("warn", "fail"):
            assert c["advice"].endswith("."), c


def test_workstation_checks_run_after_the_card_walk_in_the_report():
    assert CHECKS == CARD_CHECKS + WORKSTATION_CHECKS
    assert not set(CARD_CHECKS) & set(WORKSTATION_CHECKS)


def test_the_card_walks_failure_keeps_its_exit_code():
    """No PC/SC service (its socket pointed nowhere: no pcscd is needed): the walk stops
    at its first layer, the workstation checks still run, and exit code 3 says the
    first broken layer even though a workstation check fails too. In a child process:
    pyscard keeps a PC/SC context per process, which an earlier test may have made."""
    scenario = FIXTURES / "windows-cryptolib-old-rdp"
    out = _finishes(f"""
import json, os
os.environ["PCSCLITE_CSOCK_NAME"] = "/nonexistent/cps-test/pcscd.comm"
from cps.diagnostics import diagnose
from cps.diagnostics.machine import Machine
from cps_cli.doctor import exit_code
d = {str(scenario)!r}
env = dict(l.split("=", 1) for l in open(os.path.join(d, "env")).read().splitlines() if l)
machine = Machine(open(os.path.join(d, "platform")).read().strip(),
                  root=os.path.join(d, "root"), environ=env,
                  registry=os.path.join(d, "registry.reg"))
report = diagnose(machine=machine)
print(json.dumps({{"exit": exit_code(report), "report": report.as_dict()}}))
""")
    result = json.loads(out)
    data = result["report"]
    assert result["exit"] == 3 and data["first_failure"] == "pcsc-service"
    found = {c["name"]: c["status"] for c in data["checks"]}
    assert [c["name"] for c in data["checks"]] == list(CHECKS)
    assert [found[n] for n in CARD_CHECKS] == ["fail"] + ["skipped"] * (len(CARD_CHECKS) - 1)
    assert {n: found[n] for n in WORKSTATION_CHECKS} == statuses("windows-cryptolib-old-rdp")


def test_a_prepared_root_implies_no_card(monkeypatch):
    """--root describes another machine: the live reader's card is not its card, so the
    card walk does not run (no PC/SC contact: its socket points nowhere here)."""
    monkeypatch.setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/cps-test/pcscd.comm")
    code, data, stderr = run_cli(args_for("linux-clean"))
    assert code == 0 and data["first_failure"] is None, stderr
    assert [c["name"] for c in data["checks"]] == list(WORKSTATION_CHECKS)


def test_text_output_for_a_broken_scenario():
    code, text, _ = run_cli(["--no-card", *args_for("windows-cryptolib-old-rdp")],
                            as_json=False)
    assert code == 1 and "broken at Middleware conflicts" in text and "\x1b[" not in text
    assert "Remote session" in text and "gpedit.msc" in text


def test_bad_test_options_are_usage_errors(tmp_path):
    bad_env = tmp_path / "env"
    bad_env.write_text("no equals sign here\n")
    code, _, err = run_cli(["--no-card", "--root", str(tmp_path), "--env-file", str(bad_env)],
                           as_json=False)
    assert code == 2 and "NAME=value" in err
    bad_reg = tmp_path / "bad.reg"
    bad_reg.write_bytes(b"not a registry export")
    code, _, err = run_cli(["--no-card", "--root", str(tmp_path), "--platform", "win32",
                            "--registry", str(bad_reg)], as_json=False)
    assert code == 2 and "registry" in err
    code, _, err = run_cli(["--no-card", "--platform", "win32"], as_json=False)
    assert code == 2 and "--root" in err


# --------------------------------------------------------------------------- the machine
def test_a_fake_root_reads_nothing_of_the_real_machine(tmp_path):
    m = Machine("linux", root=tmp_path)
    assert m.home() is None and m.usb_devices() is None
    assert registrations(m) == []
    assert check_workstation(m)[0].data["modules"] == []
    # a Windows fake root without export has no registry at all
    w = Machine("win32", root=tmp_path)
    assert w.registry.subkeys(r"HKLM\SOFTWARE") == [] and w.usb_devices() is None


def test_windows_paths_are_matched_without_case(tmp_path):
    (tmp_path / "WINDOWS" / "system32").mkdir(parents=True)
    (tmp_path / "WINDOWS" / "system32" / "CPS3_PKCS11_W64.DLL").write_bytes(b"")
    m = Machine("win32", root=tmp_path)
    found = m.find(r"C:\Windows\System32\cps3_pkcs11_w64.dll")
    assert found is not None and m.display(found) == r"C:\WINDOWS\system32\CPS3_PKCS11_W64.DLL"


def test_ioreg_dump_gives_usb_devices(tmp_path):
    dump = tmp_path / "ioreg.txt"
    dump.write_text('+-o Reader@1  <class IOUSBHostDevice>\n  "idVendor" = 2816\n'
                    '  "idProduct" = 144\n  "USB Product Name" = "Lecteur"\n')
    devices = Machine("darwin", root=tmp_path, ioreg=dump).usb_devices()
    assert devices is not None and [(d.vendor, d.product, d.name) for d in devices] == \
        [("0b00", "0090", "Lecteur")]
    assert Machine("darwin", root=tmp_path).usb_devices() is None


# --------------------------------------------------------------------------- registry
REG = ("Windows Registry Editor Version 5.00\r\n\r\n"
       "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test\\Sub]\r\n"
       "@=\"default\"\r\n"
       "\"Path\"=\"C:\\\\Program Files\\\\x \\\"quoted\\\"\"\r\n"
       "\"Count\"=dword:0000000a\r\n"
       "\"Multi\"=hex(7):61,00,00,00,62,00,00,00,00,00\r\n"
       "\"Bin\"=hex:01,02,\\\r\n  03,04\r\n"
       "\"Gone\"=-\r\n"
       "; a comment\r\n"
       "[hkey_local_machine\\software\\test\\Other]\r\n")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-8-sig"])
def test_registry_export_parses(encoding):
    reg = RegistryExport.parse(REG.encode(encoding))
    key = r"HKLM\Software\TEST\sub"
    assert reg.value(key, "") == "default"
    assert reg.value(key, "path") == 'C:\\Program Files\\x "quoted"'
    assert reg.value(key, "Count") == 10
    assert reg.value(key, "Multi") == ["a", "b"]
    assert reg.value(key, "Bin") == b"\x01\x02\x03\x04"
    assert reg.value(key, "Gone") is None
    assert reg.subkeys(r"HKEY_LOCAL_MACHINE\SOFTWARE\Test") == ["Other", "Sub"]


@pytest.mark.parametrize("data, message", [
    (b"", "not a registry export"),
    (b"REGEDIT4\n\"a\"=\"b\"\n", "outside any key"),
    (b"REGEDIT4\n[HKLM\\X\n", "unterminated key"),
    (b"REGEDIT4\n[HKLM\\X]\n\"a\"=dword:xyz\n", "bad dword"),
    (b"REGEDIT4\n[HKLM\\X]\n\"a\"=hex:0g\n", "bad hex"),
    (b"REGEDIT4\n[HKLM\\X]\n\"a\"=hex:01,\\\n", "continuation"),
    (b"REGEDIT4\n[HKLM\\X]\n\"a\"=\"unterminated\n", "unterminated string"),
    (b"REGEDIT4\n[HKLM\\X]\n\"a\"=qword:1\n", "unknown value type"),
    (b"\xff\xfe\x00\xd8", "not UTF-16 or UTF-8"),
])
def test_malformed_registry_exports_raise_a_typed_error(data, message):
    with pytest.raises(RegistryExportError, match=message):
        RegistryExport.parse(data)


def test_registry_export_is_bounded(tmp_path, monkeypatch):
    import cps.diagnostics.registry as registry

    monkeypatch.setattr(registry, "MAX_KEYS", 3)
    many = "REGEDIT4\n" + "".join(f"[HKLM\\K{i}]\n" for i in range(5))
    with pytest.raises(RegistryExportError, match="more than 3 keys"):
        RegistryExport.parse(many.encode())
    big = tmp_path / "big.reg"
    big.write_bytes(b"REGEDIT4\n" + b";" * registry.MAX_EXPORT_BYTES)
    with pytest.raises(RegistryExportError, match="larger than"):
        RegistryExport.from_file(str(big))


# --------------------------------------------------------------------------- Cryptolib
def test_find_cryptolib_reads_the_version_without_loading(tmp_path):
    root = FIXTURES / "linux-clean" / "root"
    install = find_cryptolib(platform="linux", root=root)
    assert install == CryptolibInstall(str(root / "opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so"),
                                       "5.2.2", "adm")
    assert install.supports_cps4 and install.version_tuple == (5, 2, 2)
    assert find_cryptolib(platform="linux", root=tmp_path) is None


def test_version_from_a_real_rpm_database(tmp_path):
    """rpmbuild makes a CryptolibCPS package, rpm installs it (--justdb) into a root: the
    version is read from the rpmdb.sqlite rpm wrote, as on RHEL 9."""
    for version in ("5.1.8", "5.2.2"):
        top, root = tmp_path / version / "top", tmp_path / version / "root"
        (top / "SPECS").mkdir(parents=True)
        (top / "SPECS" / "c.spec").write_text(
            f"Name: CryptolibCPS\nVersion: {version}\nRelease: 1\nSummary: stand-in\n"
            "License: none\nBuildArch: noarch\n%description\nstand-in\n%files\n")
        subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "-bb",  # noqa: S603,S607
                        str(top / "SPECS" / "c.spec")], check=True, capture_output=True,
                       timeout=120)
        rpm = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
        subprocess.run([*rpm, "--initdb"], check=True, capture_output=True, timeout=60)  # noqa: S603
        package = next((top / "RPMS" / "noarch").glob("*.rpm"))
        subprocess.run([*rpm, "-i", "--justdb", "--nodeps", "--noscripts",  # noqa: S603
                        str(package)], check=True, capture_output=True, timeout=60)
        assert installed_version(platform="linux", root=root) == (version, "rpm")
        (root / "opt/santesocial/CPS/lib").mkdir(parents=True)
        (root / "opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so").write_bytes(b"")
        install = find_cryptolib(platform="linux", root=root)
        assert install is not None and install.supports_cps4 is (version == "5.2.2")


def test_opensc_version_from_the_real_dpkg_status():
    """The installed OpenSC's version, read from this Debian machine's dpkg status
    (setup.sh installs opensc-pkcs11), as dpkg-query says it."""
    from cps.diagnostics.workstation.middleware import _opensc_version

    said = {subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name],  # noqa: S603,S607
                           capture_output=True, text=True, timeout=30).stdout.split(":")[-1]
            for name in ("opensc-pkcs11", "opensc")}
    assert _opensc_version(Machine("linux", root="/")) in said - {""}


def test_windows_clean_utf8_export():
    found = statuses("windows-clean")
    assert found["cryptolib"] == "ok" and found["middleware"] == "ok"
    assert found["ccid"] == "ok" and found["remote"] == "ok"
    browsers = check_of("windows-clean", "browsers")
    assert browsers["status"] == "warn" and "services.msc" in browsers["advice"]
    edge = next(b for b in browsers["data"]["browsers"] if b["name"] == "edge")
    assert "disabled" in edge["summary"]
    usb = check_of("windows-clean", "ccid")["data"]["usb"]
    assert usb == [{"vendor": "046a", "product": "003e", "ccid": True, "listed": None,
                    "name": "Microsoft Usbccid Smartcard Reader (WUDF)"}]


def test_windows_version_from_the_uninstall_entry(tmp_path):
    reg = RegistryExport.parse((
        "Windows Registry Editor Version 5.00\r\n"
        "[HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\"
        "Uninstall\\{78B84B59-7F21-427E-BAFC-F01CE1B25502}]\r\n"
        "\"DisplayName\"=\"Cryptolib CPS\"\r\n\"DisplayVersion\"=\"5.2.2\"\r\n").encode("utf-16"))
    assert installed_version(platform="win32", root=tmp_path, registry=reg) == ("5.2.2", "registry")
    assert installed_version(platform="win32", root=tmp_path) == (None, "unknown")


def test_unreadable_installer_records_are_skipped(tmp_path):
    (tmp_path / "var/db/receipts").mkdir(parents=True)
    (tmp_path / "var/db/receipts/fr.asipsante.pkg.cryptolibCPS.plist").write_bytes(b"\x00garbage")
    assert installed_version(platform="darwin", root=tmp_path) == (None, "unknown")
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    (tmp_path / "var/lib/rpm/rpmdb.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 100)
    assert installed_version(platform="linux", root=tmp_path) == (None, "unknown")
    db = sqlite3.connect(tmp_path / "var/lib/rpm/x.sqlite")
    db.execute("CREATE TABLE Packages (hnum INTEGER, blob BLOB)")
    db.execute("INSERT INTO Packages VALUES (1, ?)", (b"\xff\xff\xff\xffCryptolibCPS",))
    db.commit()
    db.close()
    os.replace(tmp_path / "var/lib/rpm/x.sqlite", tmp_path / "var/lib/rpm/rpmdb.sqlite")
    assert installed_version(platform="linux", root=tmp_path) == (None, "unknown")
    plist = plistlib.dumps({"PackageVersion": "5.3.0"})
    (tmp_path / "var/db/receipts/fr.asipsante.pkg.cryptolibCPS.plist").write_bytes(plist)
    assert installed_version(platform="darwin", root=tmp_path) == ("5.3.0", "receipt")


@pytest.mark.parametrize("scenario, status", [("linux-clean", "ok"),
                                              ("linux-flatpak-old", "fail"),
                                              ("windows-cryptolib-old-rdp", "fail")])
def test_a_cps4_in_the_reader_needs_cryptolib_5_2(scenario, status, tmp_path):
    check = check_cryptolib(machine_for(scenario), card_kind="cps4")
    assert check.status == status
    if status == "fail":
        assert "5.2" in check.advice and "older than 5.2" in check.summary
    empty = check_cryptolib(Machine("linux", root=tmp_path), "cps4")
    assert empty.status == "fail" and "not installed" in empty.summary


@pytest.mark.parametrize("scenario, status", [("linux-clean", "ok"), ("linux-flatpak-old", "fail")])
def test_the_atr_check_passes_a_cps4_when_the_cryptolib_suits(scenario, status):
    import datetime as dt

    from cps.atr import identify
    from cps.diagnostics.pcsc import _check_atr
    from cps.diagnostics.report import _State
    from cps.readers import ReaderInfo

    atr = bytes.fromhex("3BDC18FF00001225006480000401009000")
    assert identify(atr) is not None and identify(atr).kind.value == "cps4"
    machine = machine_for(scenario)
    # The scenario's Cryptolib is used only when given deliberately (never by default:
    # a prepared root describes another machine).
    machine.cryptolib = find_cryptolib(platform=machine.platform, root=machine.root,
                                       environ=dict(machine.environ) or None,
                                       registry=machine.registry)
    st = _State(reader=None, module=None, anchors=None, crls=(), online=False,
                at=dt.datetime.now(dt.timezone.utc), machine=machine)
    st.info = ReaderInfo(name="Reader 0", card_present=True, atr=atr,
                         card_kind=identify(atr).kind)
    check = _check_atr(st)
    assert check.status == status
    assert (st.cps4 is not None) is (status == "ok")
    if status == "fail":
        assert "5.1.4" in check.advice and "CryptolibCPS" in check.advice


# --------------------------------------------------------------------------- GALSS
def test_galss_ini_channels():
    text = (FIXTURES / "windows-cryptolib-old-rdp" / "root" / "Windows" / "galss.ini").read_text()
    found = channels(text)
    assert [(c["channel"], c["kind"], c["library"]) for c in found] == \
        [(1, "pcsc", "PCSCW64.DLL"), (2, "pcsc", "PCSCW64.DLL")]
    serial = channels("[PROTOCOLE0]\nNomLib=PSSINW32.DLL\n[CANAL1]\nProtocole=0\n"
                      "Caracteristiques=9600,1,8,0,0\n")
    assert serial[0]["kind"] == "serial"
    assert channels("\x00\xff binary garbage [CANAL") == []


# --------------------------------------------------------------------------- isolation
def test_module_probe_hides_pcscd_in_a_mount_namespace(tmp_path, monkeypatch):
    """The child that loads a module cannot reach the PC/SC socket even when it ignores
    pcsc-lite's variable: its socket directory is an empty tmpfs there."""
    import cps.diagnostics.pkcs11 as pkcs11

    directory = tmp_path / "pcscd"
    directory.mkdir()
    path = str(directory / "pcscd.comm")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        monkeypatch.setenv("PCSCLITE_CSOCK_NAME", path)
        monkeypatch.setattr(pkcs11, "_NAMESPACE", [])
        prefix = pkcs11._namespace_prefix()
        assert prefix, "unshare could not make a mount namespace"
        connect = ("import socket, sys; s = socket.socket(socket.AF_UNIX); "
                   "s.connect(sys.argv[1]); print('connected')")
        outside = subprocess.run([sys.executable, "-c", connect, path],  # noqa: S603
                                 capture_output=True, text=True, timeout=30, check=False)
        assert outside.stdout.strip() == "connected"
        inside = subprocess.run([*prefix, sys.executable, "-c", connect, path],  # noqa: S603
                                capture_output=True, text=True, timeout=30, check=False)
        assert inside.returncode != 0 and "FileNotFoundError" in inside.stderr
        # and a real module is probed that way
        from cps.pkcs11_modules import OPENSC, module_candidates

        opensc = next(c.path for c in module_candidates() if c.kind == OPENSC and c.exists)
        probed = pkcs11._probe_module(opensc)
        assert probed["isolation"] == "mount namespace" and probed["loadable"], probed
    finally:
        server.close()


def test_modules_are_not_loaded_on_windows_and_macos(tmp_path):
    from cps.diagnostics.pkcs11 import _probe_module

    bogus = tmp_path / "opensc-pkcs11.dll"
    bogus.write_bytes(b"MZ not really a DLL")
    for platform in ("win32", "darwin"):
        probed = _probe_module(str(bogus), platform=platform)
        assert probed["loadable"] is None and probed["probed"] is False
        assert probed["kind"] == "opensc"
    assert _probe_module(str(bogus), platform="linux")["loadable"] is False


# --------------------------------------------------------------------------- hostile roots
def _finishes(code: str, limit: float = 60.0) -> str:
    """Run ``code`` in a child Python; its output, or fail when it is still running after
    ``limit`` seconds (a hang guard, far above the milliseconds the code needs)."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {limit:g} s")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_card_walk_never_loads_a_module_from_a_prepared_root(tmp_path):
    """A root describes another machine: a CPS4 in the live reader is read through this
    computer's Cryptolib, never through a module found under the root."""
    import shutil
    from types import SimpleNamespace

    from cps.atr import identify
    from cps.diagnostics.card import _check_cps4_token
    from cps.diagnostics.pcsc import _cps4
    from cps.diagnostics.report import _State
    from cps.testing.cryptolib import install_fake_cryptolib

    gcc = shutil.which("gcc")
    assert gcc, "gcc is installed by scripts/setup.sh"
    marker = tmp_path / "loaded"
    source = tmp_path / "evil.c"
    source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void f(void)'
                      f'{{FILE*o=fopen("{marker}","w");if(o){{fputs("x",o);fclose(o);}}}}\n')
    lib = tmp_path / "evil.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    root = install_fake_cryptolib(tmp_path / "root", str(lib), "5.2.2")
    atr = bytes.fromhex("3BDC18FF00001225006480000401009000")
    import datetime as dt
    st = _State(reader=None, module=None, anchors=None, crls=(), online=False,
                at=dt.datetime.now(dt.timezone.utc),
                machine=Machine("linux", root=root, environ={"HOME": "/home/alice"}))
    st.info = SimpleNamespace(name="no such reader", atr=atr)
    check = _cps4(st, identify(atr), atr, {})
    if st.cps4 is not None:
        _check_cps4_token(st)
        st.close()
    assert not marker.exists()
    assert not (check.data.get("cryptolib_module") or "").startswith(str(root))
    # Deliberately given, the fake Cryptolib is used (tests/test_doctor.py reads a CPS4
    # through SoftHSM2 so).
    st.machine = Machine("linux", root=root, environ={"HOME": "/home/alice"},
                         cryptolib=find_cryptolib(platform="linux", root=root))
    assert _cps4(st, identify(atr), atr, {}).status == "ok"
    assert st.cps4.module.startswith(str(root)) and st.cps4.version == "5.2.2"


def test_paths_never_climb_out_of_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside.json").write_text('{"path": "/outside/module.so"}')
    m = Machine("linux", root=root, environ={"HOME": "/../.."})
    assert m.path("/../../outside.json") == str(root / "outside.json")
    assert m.read_text("/../outside.json") is None
    assert m.read_text("~/../outside.json") is None
    w = Machine("win32", root=root)
    assert w.read_text("C:\\..\\..\\outside.json") is None
    reg = tmp_path / "m.reg"
    reg.write_text("Windows Registry Editor Version 5.00\n\n"
                   "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Mozilla\\PKCS11Modules\\cps]\n"
                   '@="C:\\\\..\\\\..\\\\outside.json"\n', encoding="utf-8")
    w = Machine("win32", root=root, registry=str(reg))
    assert [r.module for r in registrations(w)] == ["(manifest C:\\..\\..\\outside.json)"]


def test_symlinks_out_of_the_root_are_not_followed(tmp_path):
    root = tmp_path / "root"
    modules = root / "etc" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    secret = tmp_path / "secret.module"
    secret.write_text("module: /outside/SECRET.so\n")
    (modules / "evil.module").symlink_to(secret)
    (root / "inside.module").write_text("module: /usr/lib/inside.so\n")
    (modules / "fine.module").symlink_to(root / "inside.module")
    m = Machine("linux", root=root)
    assert [r.module for r in registrations(m)] == ["/usr/lib/inside.so"]
    assert m.read_text("/etc/pkcs11/modules/evil.module") is None
    adm = root / "var" / "opt" / "santesocial" / "commun" / "adm"
    adm.mkdir(parents=True)
    (tmp_path / "155.adm").write_text("050202\n")
    (adm / "155.adm").symlink_to(tmp_path / "155.adm")
    assert installed_version(platform="linux", root=root) == (None, "unknown")


def test_a_fifo_never_hangs_the_doctor(tmp_path):
    """A named pipe where a file is expected (in a root, or on the live machine) is not
    a file: nothing blocks on it."""
    root = tmp_path / "root"
    for folder in ("etc/pkcs11/modules", "var/opt/santesocial/commun/adm", "var/lib/dpkg",
                   "etc/firefox/policies", "usr/lib/mozilla/pkcs11-modules"):
        (root / folder).mkdir(parents=True)
    for fifo in ("etc/pkcs11/modules/evil.module", "var/opt/santesocial/commun/adm/155.adm",
                 "var/lib/dpkg/status", "etc/firefox/policies/policies.json",
                 "usr/lib/mozilla/pkcs11-modules/x.json"):
        os.mkfifo(root / fifo)
    os.mkfifo(tmp_path / "live.fifo")
    out = _finishes(f"""
from cps.diagnostics.machine import Machine
from cps.diagnostics.workstation import check_workstation
from cps.cryptolib import installed_version
m = Machine("linux", root={str(root)!r}, environ={{"HOME": "/home/a"}})
print(len(check_workstation(m)))
print(installed_version(platform="linux", root={str(root)!r}))
print(Machine().read_bytes({str(tmp_path / "live.fifo")!r}))
print(Machine("darwin", root={str(root)!r}, ioreg={str(tmp_path / "live.fifo")!r}).usb_devices())
""")
    assert out.splitlines()[1:] == ["(None, 'unknown')", "None", "None"]


def test_registry_continuations_are_linear(tmp_path):
    """A hex value continued over 1.3 million lines (under the 4 Mi characters a value
    may have) is joined at once; a longer one is a typed error, not minutes of work."""
    head = ["Windows Registry Editor Version 5.00", "", "[HKEY_LOCAL_MACHINE\\SOFTWARE\\X]",
            '"v"=hex:00,\\']
    (tmp_path / "long.reg").write_text("\n".join(head + ["00,\\"] * 1_300_000 + ["00"]))
    (tmp_path / "huge.reg").write_text("\n".join(
        head + ["  00,00,00,00,00,00,00,00,\\"] * 300_000 + ["  00"]))
    out = _finishes(f"""
from cps.diagnostics.registry import RegistryExportError, _logical_lines
print(len(_logical_lines(open({str(tmp_path / "long.reg")!r}).read(), "t")))
try:
    _logical_lines(open({str(tmp_path / "huge.reg")!r}).read(), "t")
except RegistryExportError as exc:
    print("refused:", exc)
""")
    count, refused = out.splitlines()
    assert count == "4" and "too long" in refused


def test_ioreg_lines_without_class_are_linear(tmp_path):
    dump = tmp_path / "ioreg.txt"
    dump.write_text("+-o " + " " * 300_000 + "x\n+-o Reader@14100000  <class IOUSBHostDevice>\n"
                    '    "idVendor" = 2816\n    "idProduct" = 144\n')
    out = _finishes(f"""
from cps.diagnostics.machine import Machine
print([(d.vendor, d.product, d.name) for d in Machine("darwin", root={str(tmp_path)!r},
      ioreg={str(dump)!r}).usb_devices()])
""")
    assert out.strip() == "[('0b00', '0090', 'Reader')]"


def test_a_hostile_rpm_database_does_not_hang(tmp_path):
    """Packages as a view over an endless recursive query of rows the size filter skips:
    version unknown, at once."""
    rpm = tmp_path / "root" / "var" / "lib" / "rpm"
    rpm.mkdir(parents=True)
    db = sqlite3.connect(rpm / "rpmdb.sqlite")
    db.execute("CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
               "SELECT x+1 FROM c) SELECT CASE WHEN x > 0 THEN zeroblob(2000000) "
               "ELSE x'00' END AS blob FROM c")
    db.commit()
    db.close()
    out = _finishes(f"""
from cps.cryptolib import installed_version
print(installed_version(platform="linux", root={str(tmp_path / "root")!r}))
""")
    assert out.strip() == "(None, 'unknown')"


def test_a_dpkg_status_without_newlines_is_read_bounded(tmp_path):
    status = tmp_path / "root" / "var" / "lib" / "dpkg" / "status"
    status.parent.mkdir(parents=True)
    with open(status, "wb") as f:
        f.truncate(300 * 1024 * 1024)       # sparse: 300 MiB of NULs, no newline
    # VmHWM: this process's own peak (ru_maxrss would include the forking pytest's
    # memory, which Linux carries across execve).
    out = _finishes(f"""
from cps.cryptolib import installed_version
print(installed_version(platform="linux", root={str(tmp_path / "root")!r}))
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(int(peak.split()[1]) // 1024)
""")
    version, rss = out.splitlines()
    assert version == "(None, 'unknown')"
    assert int(rss) < 200                   # MiB: the file is not held whole in memory


@pytest.mark.parametrize("name", ["policies", "manifest"])
def test_deeply_nested_json_is_a_malformed_file(tmp_path, name):
    root = tmp_path / "root"
    path = root / ("etc/firefox/policies/policies.json" if name == "policies"
                   else "usr/lib/mozilla/pkcs11-modules/deep.json")
    path.parent.mkdir(parents=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert registrations(Machine("linux", root=root)) == []


@pytest.mark.parametrize(("status", "version"), [
    ("Package: libfoo\nVersion: 1.0\n\nPackage: cryptolibcps\nStatus: install ok installed\n"
     "Version: 5.2.2-2\n\nPackage: cryptolibcps-doc\nVersion: 9\n", "5.2.2"),
    ("Package: cryptolibcps\nVersion: 1:5.2.1-1\n", "5.2.1"),          # first stanza, epoch
    ("Package: cryptolibcps-doc\nVersion: 9.9\n", None),                 # another package
    ("Package: libfoo\nDescription: see Package: cryptolibcps\nVersion: 7\n", None),
])
def test_cryptolib_version_from_a_dpkg_status(tmp_path, status, version):
    """The RPM converted with alien: dpkg's status names the package cryptolibcps; only
    its own stanza's Version counts."""
    from cps.cryptolib import installed_version

    path = tmp_path / "root" / "var" / "lib" / "dpkg" / "status"
    path.parent.mkdir(parents=True)
    path.write_text(status)
    found = installed_version(platform="linux", root=tmp_path / "root")
    assert found == ((version, "dpkg") if version else (None, "unknown"))
