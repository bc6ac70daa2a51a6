"""The tables acpi_tables() returns: checksums, the pointer chain, placement and contents."""

import struct

import pytest

from ember.arch.x86_64.acpi import (
    ACPI_TABLES_END,
    ACPI_TABLES_START,
    RSDP_ADDR,
    AcpiConfigError,
    MmioDevice,
    acpi_tables,
)


def virtio(count: int, first_irq: int = 5) -> list[MmioDevice]:
    return [MmioDevice(0xC000_1000 + 0x1000 * i, 0x1000, first_irq + i) for i in range(count)]


def by_signature(tables: list[tuple[int, bytes]]) -> dict[bytes, tuple[int, bytes]]:
    return {data[:8] if data[:8] == b"RSD PTR " else data[:4]: (addr, data)
            for addr, data in tables}


def lapic_entries(madt: bytes) -> list[tuple[int, int, int]]:
    """(processor uid, apic id, flags) of every type-0 entry, walking the entry list."""
    found, offset = [], 44
    while offset < len(madt):
        kind, length = madt[offset], madt[offset + 1]
        assert length >= 2
        if kind == 0:
            found.append(struct.unpack_from("<BBI", madt, offset + 2))
        offset += length
    assert offset == len(madt)
    return found


@pytest.mark.parametrize(("cpus", "devices"), [(1, 0), (2, 3), (32, 19)])
def test_every_table_sums_to_zero(cpus: int, devices: int) -> None:
    for _addr, data in acpi_tables(cpus, virtio(devices)):
        length = 36 if data.startswith(b"RSD PTR ") else struct.unpack_from("<I", data, 4)[0]
        assert length == len(data)
        assert sum(data) % 256 == 0


def test_rsdp_fields_and_both_checksums() -> None:
    tables = by_signature(acpi_tables(2, virtio(3)))
    addr, rsdp = tables[b"RSD PTR "]
    assert addr == RSDP_ADDR == 0xE0000
    signature, _, oem, revision, rsdt, length, _xsdt, _ = struct.unpack("<8sB6sBIIQB3x", rsdp)
    assert (oem, revision, rsdt, length) == (b"EMBER ", 2, 0, 36)
    assert sum(rsdp[:20]) % 256 == 0


def test_pointer_chain_rsdp_xsdt_fadt_dsdt() -> None:
    tables = by_signature(acpi_tables(2, virtio(3)))
    xsdt_addr = struct.unpack_from("<Q", tables[b"RSD PTR "][1], 24)[0]
    assert tables[b"XSDT"][0] == xsdt_addr
    xsdt = tables[b"XSDT"][1]
    entries = struct.unpack_from("<2Q", xsdt, 36)
    assert len(xsdt) == 36 + 16
    assert entries == (tables[b"FACP"][0], tables[b"APIC"][0])
    fadt = tables[b"FACP"][1]
    assert struct.unpack_from("<I", fadt, 40)[0] == tables[b"DSDT"][0]
    assert struct.unpack_from("<Q", fadt, 140)[0] == tables[b"DSDT"][0]


def test_tables_lie_in_the_system_area_without_overlap() -> None:
    tables = acpi_tables(32, virtio(19))
    assert ACPI_TABLES_START == 0x9FC00 + 0x400
    spans = sorted((addr, addr + len(data)) for addr, data in tables if addr != RSDP_ADDR)
    assert spans[0][0] >= ACPI_TABLES_START
    assert spans[-1][1] <= ACPI_TABLES_END == RSDP_ADDR
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start
    assert all(start % 8 == 0 for start, _ in spans)


def test_headers_carry_ember_ids_and_revisions() -> None:
    tables = by_signature(acpi_tables(1, []))
    revisions = {b"XSDT": 1, b"FACP": 6, b"APIC": 6, b"DSDT": 2}
    for signature, revision in revisions.items():
        data = tables[signature][1]
        assert data[8] == revision
        assert data[10:16] == b"EMBER "
        assert data[28:32] == b"EMBR"


def test_fadt_is_hardware_reduced() -> None:
    fadt = by_signature(acpi_tables(1, []))[b"FACP"][1]
    assert len(fadt) == 276
    flags = struct.unpack_from("<I", fadt, 112)[0]
    assert flags == (1 << 20) | (1 << 4) | (1 << 5)
    boot_arch = struct.unpack_from("<H", fadt, 109)[0]
    assert boot_arch == 0b111110  # 8042, no VGA, no MSI, no ASPM, no CMOS RTC
    assert fadt[131] == 5
    assert fadt[268:276] == b"EMBERVMM"
    assert fadt[44:109] == bytes(65)  # no SCI, SMI, PM1, GPE or PM timer


@pytest.mark.parametrize("cpus", [1, 2, 7, 32])
def test_madt_has_one_enabled_lapic_per_vcpu(cpus: int) -> None:
    madt = by_signature(acpi_tables(cpus, []))[b"APIC"][1]
    assert struct.unpack_from("<II", madt, 36) == (0xFEE0_0000, 1)
    assert lapic_entries(madt) == [(i, i, 1) for i in range(cpus)]
    ioapic = madt[-12:]
    assert struct.unpack("<BBBxII", ioapic) == (1, 12, 0, 0xFEC0_0000, 0)
    assert len(madt) == 44 + 8 * cpus + 12  # no interrupt source overrides


def test_dsdt_names_every_device() -> None:
    dsdt = by_signature(acpi_tables(2, virtio(3)))[b"DSDT"][1]
    assert dsdt.count(b"LNRO0005") == 3
    for name in (b"V000", b"V001", b"V002", b"COM1", b"PS2_", b"\\_SB_"):
        assert name in dsdt
    assert (0x0105D041).to_bytes(4, "little") in dsdt
    assert (0x0303D041).to_bytes(4, "little") in dsdt


def test_virtio_devices_sharing_a_gsi_are_marked_shared() -> None:
    devices = [MmioDevice(0xC000_1000, 0x1000, 5), MmioDevice(0xC000_2000, 0x1000, 5),
               MmioDevice(0xC000_3000, 0x1000, 6)]
    dsdt = by_signature(acpi_tables(1, devices))[b"DSDT"][1]
    assert dsdt.count(b"\x89\x06\x00\x0b\x01\x05\x00\x00\x00") == 2  # shared
    assert dsdt.count(b"\x89\x06\x00\x03\x01\x06\x00\x00\x00") == 1  # exclusive


def test_sixty_four_devices_fit() -> None:
    devices = [MmioDevice(0xC000_1000 + 0x1000 * i, 0x1000, 5 + i % 19) for i in range(64)]
    tables = by_signature(acpi_tables(32, devices))
    assert tables[b"DSDT"][1].count(b"LNRO0005") == 64


def test_output_is_deterministic() -> None:
    assert acpi_tables(4, virtio(2)) == acpi_tables(4, virtio(2))


@pytest.mark.parametrize("cpus", [0, 33, -1, True])
def test_bad_cpu_counts(cpus: int) -> None:
    with pytest.raises(AcpiConfigError, match="vCPUs"):
        acpi_tables(cpus, [])


@pytest.mark.parametrize(("base", "size", "irq", "match"), [
    (0xC000_1000, 0, 5, "non-empty"),
    (0xFFFF_F000, 0x2000, 5, "below 4 GiB"),
    (-0x1000, 0x1000, 5, "non-empty"),
    (0xC000_1000, 0x1000, 24, "IOAPIC"),
    (0xC000_1000, 0x1000, -1, "IOAPIC"),
])
def test_bad_devices(base: int, size: int, irq: int, match: str) -> None:
    with pytest.raises(AcpiConfigError, match=match):
        MmioDevice(base, size, irq)


@pytest.mark.parametrize("irq", [1, 4])
def test_legacy_irqs_are_not_for_virtio(irq: int) -> None:
    with pytest.raises(AcpiConfigError, match="COM1 or the i8042"):
        acpi_tables(1, [MmioDevice(0xC000_1000, 0x1000, irq)])


def test_overlapping_windows() -> None:
    devices = [MmioDevice(0xC000_1000, 0x2000, 5), MmioDevice(0xC000_2000, 0x1000, 6)]
    with pytest.raises(AcpiConfigError, match="overlap"):
        acpi_tables(1, devices)


def test_too_many_devices_for_the_system_area() -> None:
    devices = [MmioDevice(0x1000_0000 + 0x1000 * i, 0x1000, 5 + i % 19) for i in range(4000)]
    with pytest.raises(AcpiConfigError, match="fewer devices"):
        acpi_tables(1, devices)


def test_errors_are_value_errors() -> None:
    assert issubclass(AcpiConfigError, ValueError)


def test_device_names_run_out_after_4096() -> None:
    devices = [MmioDevice(0x1000_0000 + 0x100 * i, 0x100, 5) for i in range(4097)]
    with pytest.raises(AcpiConfigError, match="at most 4096"):
        acpi_tables(1, devices)


def test_the_mp_table_fits_below_the_acpi_tables() -> None:
    from ember.arch.x86_64 import layout, mptable

    assert layout.EBDA_START + len(mptable.mptable(32)) <= ACPI_TABLES_START
