"""`cps sign --format cades|xades|pades|raw [--timestamp URL]` with the emulated card
through pcscd, and `cps verify` recognising what it is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_pades import minimal_pdf

pytestmark = pytest.mark.pcsc

PIN = "7395"


def sign(cli: Any, emu: Any, *args: str) -> Any:
    return cli.json("sign", "-r", emu.reader, *args, "--pin", "env:P", env={"P": PIN})


def test_xades_enveloped_and_detached(cli: Any, serve: Any, tmp_path: Path,
                                      crl_dir: str) -> None:
    doc = tmp_path / "cr.xml"
    doc.write_text('<?xml version="1.0" encoding="UTF-8"?><compteRendu>Radio du thorax'
                   '</compteRendu>', encoding="utf-8")
    blob = tmp_path / "scan.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    with serve(pin=PIN) as emu:
        enveloped = sign(cli, emu, str(doc), "--format", "xades")
        detached = sign(cli, emu, str(blob), "--format", "xades", "--xades-mode", "detached")
    assert enveloped["output"] == str(tmp_path / "cr.xades.xml")
    assert detached["output"] == str(blob) + ".xades.xml"

    data = cli.json("verify", enveloped["output"], "--anchors", "test", "--crl", crl_dir)
    assert data["format"] == "xades" and data["level"] == "B-B"
    assert data["practitioner"]["validated"] and data["practitioner"]["idnat"] == "810100123453"
    assert [c["kind"] for c in data["covered"]] == ["document"]
    data = cli.json("verify", str(blob), detached["output"], "--anchors", "test",
                    "--crl", crl_dir)
    assert data["format"] == "xades" and data["covered"][0]["size"] == 1024

    blob.write_bytes(b"changed")
    bad = cli.json("verify", str(blob), detached["output"], "--anchors", "test",
                   "--crl", crl_dir, code=17)
    assert bad["valid"] is False


def test_pades_with_a_timestamp(cli: Any, serve: Any, tmp_path: Path, crl_dir: str,
                                cps_tsa: Any) -> None:
    pdf = tmp_path / "ordonnance.pdf"
    pdf.write_bytes(minimal_pdf())
    with serve(pin=PIN) as emu:
        signed = sign(cli, emu, str(pdf), "--format", "pades", "--timestamp", cps_tsa.url)
    assert signed["output"] == str(tmp_path / "ordonnance.signed.pdf")
    data = cli.json("verify", signed["output"], "--anchors", "test", "--crl", crl_dir)
    assert data["format"] == "pades" and len(data["signatures"]) == 1
    one = data["signatures"][0]
    assert one["covers_whole_file"] and one["updates_after"] == 0
    assert one["timestamp"] and one["validation_time_source"] == "timestamp"
    text = cli("verify", signed["output"], "--anchors", "test", "--crl", crl_dir)
    assert text.returncode == 0 and "Timestamp:" in text.stdout
    assert "the timestamp's time" in text.stdout


def test_cades_t_and_the_legacy_switches(cli: Any, serve: Any, tmp_path: Path, crl_dir: str,
                                         cps_tsa: Any) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("compte rendu\n", encoding="utf-8")
    with serve(pin=PIN) as emu:
        signed = sign(cli, emu, str(doc), "--timestamp", cps_tsa.url)
        legacy = sign(cli, emu, str(doc), "--cms", "-o", str(tmp_path / "legacy.p7s"))
        clash = cli("sign", "-r", emu.reader, str(doc), "--raw", "--format", "xades",
                    "--pin", "env:P", env={"P": PIN})
        raw_ts = cli("sign", "-r", emu.reader, str(doc), "--raw", "--timestamp", cps_tsa.url,
                     "--pin", "env:P", env={"P": PIN})
        cms_xades = cli("sign", "-r", emu.reader, str(doc), "--cms", "--format", "xades",
                        "--pin", "env:P", env={"P": PIN})
    assert signed["format"] == "cades" and legacy["format"] == "cades"
    assert clash.returncode == 2 and raw_ts.returncode == 2 and cms_xades.returncode == 2
    data = cli.json("verify", str(doc), signed["output"], "--anchors", "test", "--crl", crl_dir)
    assert data["format"] == "cades" and data["timestamp"]["gen_time"]
    assert data["validation_time_source"] == "timestamp"
    plain = cli.json("verify", str(doc), legacy["output"], "--anchors", "test", "--crl", crl_dir)
    assert plain["timestamp"] is None and plain["validation_time_source"] == "now"
