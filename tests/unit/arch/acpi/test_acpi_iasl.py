"""Cross-check the tables with ACPICA (Debian package acpica-tools): every table must
disassemble with ``iasl -d`` and say what ember meant, and acpiexec must load the DSDT and
decode each _CRS. Skipped when the tools are missing, except in CI (CI=true), where that fails.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ember.arch.x86_64.acpi import RSDP_ADDR, MmioDevice, acpi_tables

TIMEOUT_S = 60
DEVICES = [MmioDevice(0xC000_1000 + 0x1000 * i, 0x1000, 5 + i) for i in range(3)]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install the Debian package acpica-tools"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def write_tables(directory: Path, cpus: int = 2) -> dict[str, Path]:
    """Each table in its own file, named after its signature; the RSDP as ``rsdp.dat``."""
    files: dict[str, Path] = {}
    for addr, data in acpi_tables(cpus, DEVICES):
        name = "rsdp" if addr == RSDP_ADDR else data[:4].decode().lower()
        files[name] = directory / f"{name}.dat"
        files[name].write_bytes(data)
    return files


def disassemble(path: Path) -> str:
    output = run([tool("iasl"), "-d", path.name], path.parent)
    assert not re.search(r"\b(Error|Warning)\b", output), output
    dsl = path.with_suffix(".dsl").read_text()
    assert "Incorrect checksum" not in dsl
    assert "Invalid" not in dsl
    return dsl


def test_dsdt_disassembles_to_the_intended_devices(tmp_path: Path) -> None:
    dsl = disassemble(write_tables(tmp_path)["dsdt"])
    assert 'DefinitionBlock ("", "DSDT", 2, "EMBER ", "EMBRDSDT", 0x00000001)' in dsl
    assert "Scope (\\_SB)" in dsl
    for index, device in enumerate(DEVICES):
        block = dsl.split(f"Device (V{index:03X})")[1].split("Device (")[0]
        assert 'Name (_HID, "LNRO0005")' in block
        assert "Name (_CCA, One)" in block
        assert f"0x{device.base:08X},         // Address Base" in block
        assert "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )" in block
        assert f"0x{device.irq:08X}," in block
    com1 = dsl.split("Device (COM1)")[1].split("Device (")[0]
    assert 'EisaId ("PNP0501")' in com1 and "Name (_UID, Zero)" in com1
    assert re.search(r"IO \(Decode16,\s+0x03F8,.*\s+0x03F8,.*\s+0x01,.*\s+0x08,", com1)
    assert re.search(r"IRQNoFlags \(\)\s+\{4\}", com1)
    ps2 = dsl.split("Device (PS2)")[1]
    assert 'EisaId ("PNP0303")' in ps2
    assert "0x0060," in ps2 and "0x0064," in ps2
    assert re.search(r"IRQNoFlags \(\)\s+\{1\}", ps2)


def test_fadt_disassembles_as_hardware_reduced(tmp_path: Path) -> None:
    files = write_tables(tmp_path)
    dsl = disassemble(files["facp"])
    dsdt_addr = next(a for a, d in acpi_tables(2, DEVICES) if d[:4] == b"DSDT")
    assert re.search(r"Revision : 06", dsl)
    assert re.search(r"Hardware Reduced \(V5\) : 1", dsl)
    assert re.search(r"Control Method Power Button \(V1\) : 1", dsl)
    assert re.search(r"CMOS RTC Not Present \(V5\) : 1", dsl)
    assert re.search(r"VGA Not Present \(V4\) : 1", dsl)
    assert re.search(r"MSI Not Supported \(V4\) : 1", dsl)
    assert re.search(rf"\] +DSDT Address : {dsdt_addr:08X}\n", dsl)
    assert re.search(rf"\] +DSDT Address : {dsdt_addr:016X}\n", dsl)
    assert "FADT Minor Revision : 05" in dsl


def test_madt_disassembles_with_every_lapic(tmp_path: Path) -> None:
    dsl = disassemble(write_tables(tmp_path, cpus=4)["apic"])
    assert "Local Apic Address : FEE00000" in dsl
    assert "PC-AT Compatibility : 1" in dsl
    assert len(re.findall(r"Subtable Type : 00 \[Processor Local APIC\]", dsl)) == 4
    assert len(re.findall(r"Processor Enabled : 1", dsl)) == 4
    for cpu in range(4):
        assert re.search(rf"Local Apic ID : {cpu:02X}", dsl)
    assert "Subtable Type : 01 [I/O APIC]" in dsl
    assert "Address : FEC00000" in dsl
    assert "Interrupt Source Override" not in dsl


def test_xsdt_disassembles_with_fadt_and_madt(tmp_path: Path) -> None:
    dsl = disassemble(write_tables(tmp_path)["xsdt"])
    addrs = {d[:4]: a for a, d in acpi_tables(2, DEVICES)}
    assert re.search(rf"ACPI Table Address +0 : {addrs[b'FACP']:016X}", dsl)
    assert re.search(rf"ACPI Table Address +1 : {addrs[b'APIC']:016X}", dsl)


def test_rsdp_matches_what_iasl_compiles(tmp_path: Path) -> None:
    """iasl cannot disassemble a lone RSDP (it looks for a table header), so compile the same
    RSDP with iasl's data table compiler, which fills in both checksums, and compare."""
    rsdp = write_tables(tmp_path)["rsdp"].read_bytes()
    xsdt_addr = int.from_bytes(rsdp[24:32], "little")
    source = tmp_path / "expected.asl"
    source.write_text("\n".join([
        '[0008] Signature : "RSD PTR "', "[0001] Checksum : 00", '[0006] Oem ID : "EMBER "',
        "[0001] Revision : 02", "[0004] RSDT Address : 00000000", "[0004] Length : 00000024",
        f"[0008] XSDT Address : {xsdt_addr:016X}", "[0001] Extended Checksum : 00",
        "[0003] Reserved : 000000", ""]))
    run([tool("iasl"), source.name], tmp_path)
    assert (tmp_path / "expected.aml").read_bytes() == rsdp


def test_acpiexec_loads_the_namespace_and_decodes_resources(tmp_path: Path) -> None:
    files = write_tables(tmp_path)
    commands = "; ".join(["namespace", "resources \\_SB.V002", "resources \\_SB.PS2_"])
    output = run([tool("acpiexec"), "-b", commands, str(files["dsdt"]), str(files["facp"]),
                  str(files["apic"])], tmp_path)
    assert "5 Devices" in output
    assert "Namespace contains" in output
    assert re.search(r"Address : C0003000", output)
    assert re.search(r"Triggering : Edge\s+Polarity : ActiveHigh\s+Sharing : Exclusive", output)
    assert re.search(r"Dword00 : 00000007", output)
    assert re.search(r"Interrupt List : 1 ", output)
