"""ACPI tables that describe ember's x86_64 microVM to the guest, as Firecracker's do.

``acpi_tables(num_cpus, devices)`` returns the bytes to write into guest memory and where:

* the RSDP at 0xE0000, inside the range the OS scans for it (ACPI 6.5, 5.2.5.1);
* the XSDT, listing the FADT and the MADT;
* a hardware-reduced FADT pointing at the DSDT;
* the MADT: one local APIC per vCPU and the IOAPIC;
* the DSDT: AML for every virtio-mmio device, COM1 and the i8042.

Every table but the RSDP lies in the system area between the MP table's kilobyte at the start
of the EBDA and the RSDP. Pure functions: no KVM, no guest memory, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from ember.arch.x86_64 import layout
from ember.arch.x86_64.acpi import _dsdt, _fadt, _madt, _sdt
from ember.arch.x86_64.acpi._device import AcpiConfigError, MmioDevice

__all__ = [
    "ACPI_TABLES_END",
    "ACPI_TABLES_START",
    "MAX_CPUS",
    "RSDP_ADDR",
    "AcpiConfigError",
    "MmioDevice",
    "acpi_tables",
]

# 5.2.5.1: on IA-PC the OS searches 0xE0000..0xFFFFF for the RSDP on 16-byte boundaries.
RSDP_ADDR = 0xE0000
# The MP table (mptable.py) takes the first KiB of the EBDA; the other tables follow it.
MPTABLE_RESERVED = 0x400
ACPI_TABLES_START = layout.EBDA_START + MPTABLE_RESERVED
ACPI_TABLES_END = RSDP_ADDR
# Not required by the spec; keeps each table, and the XSDT's 64-bit entries, 8-byte aligned.
TABLE_ALIGNMENT = 8
# Firecracker's vCPU limit, which the MADT's 8-bit APIC ids easily cover.
MAX_CPUS = 32
# ISA IRQs that the DSDT gives to COM1 and the i8042, exclusively. Virtio devices may share
# a GSI with each other (the DSDT then marks their interrupts Shared), never with these.
LEGACY_IRQS = frozenset({layout.SERIAL_COM1_IRQ, layout.I8042_IRQ})


def acpi_tables(num_cpus: int, devices: Sequence[MmioDevice]) -> list[tuple[int, bytes]]:
    """(guest-physical address, bytes) pairs to write into guest memory: the RSDP at 0xE0000
    and every other table in the system area [0x9FC00 + 1 KiB, 0xE0000)."""
    _check_cpus(num_cpus)
    _check_devices(devices)
    placed: list[tuple[int, bytes]] = []
    dsdt_addr = _place(placed, _dsdt.dsdt(devices))
    fadt_addr = _place(placed, _fadt.fadt(dsdt_addr))
    madt_addr = _place(placed, _madt.madt(num_cpus))
    xsdt_addr = _place(placed, _sdt.xsdt([fadt_addr, madt_addr]))
    return [(RSDP_ADDR, _sdt.rsdp(xsdt_addr)), *placed]


def _place(placed: list[tuple[int, bytes]], table: bytes) -> int:
    """Append ``table`` after the last placed one; its address, or an error if it overflows."""
    addr = ACPI_TABLES_START
    if placed:
        last_addr, last = placed[-1]
        addr = _align_up(last_addr + len(last), TABLE_ALIGNMENT)
    if addr + len(table) > ACPI_TABLES_END:
        raise AcpiConfigError(
            f"the ACPI tables need more than the {ACPI_TABLES_END - ACPI_TABLES_START:#x} "
            f"bytes of [{ACPI_TABLES_START:#x}, {ACPI_TABLES_END:#x}); use fewer devices")
    placed.append((addr, table))
    return addr


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _check_cpus(num_cpus: int) -> None:
    if isinstance(num_cpus, bool) or not 1 <= num_cpus <= MAX_CPUS:
        raise AcpiConfigError(f"the MADT describes 1..{MAX_CPUS} vCPUs, not {num_cpus}")


def _check_devices(devices: Sequence[MmioDevice]) -> None:
    taken = sorted({device.irq for device in devices} & LEGACY_IRQS)
    if taken:
        raise AcpiConfigError(
            f"virtio-mmio IRQs {taken} belong to COM1 or the i8042; pick GSIs other than "
            f"{sorted(LEGACY_IRQS)}")
    ordered = sorted(devices, key=lambda device: device.base)
    for left, right in zip(ordered, ordered[1:], strict=False):
        if right.base < left.end:
            raise AcpiConfigError(
                f"virtio-mmio windows at {left.base:#x} and {right.base:#x} overlap")
