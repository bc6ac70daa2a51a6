"""The Intel MultiProcessor Specification 1.4 tables, placed in the EBDA.

Layouts: MP spec 1.4, 4.1 (floating pointer), 4.2 (configuration table header) and 4.3
(base table entries). Linux uses these to find the vCPUs and the IOAPIC when no ACPI
tables are present.
"""

from __future__ import annotations

import struct

from ember.arch.x86_64 import layout

MPF_SIGNATURE = b"_MP_"
MPC_SIGNATURE = b"PCMP"
MP_SPEC_REV = 4
MPC_OEM = b"EMBER   "
MPC_PRODUCT = b"MICROVM     "
# Entry types (MP spec table 4-3)
MP_PROCESSOR = 0
MP_BUS = 1
MP_IOAPIC = 2
MP_INTSRC = 3
MP_LINTSRC = 4
# Interrupt types (table 4-10)
MP_INT = 0
MP_NMI = 1
MP_EXTINT = 3
CPU_ENABLED = 1
CPU_BOOTPROCESSOR = 2
APIC_VERSION = 0x14
IOAPIC_VERSION = 0x11
MPC_APIC_USABLE = 1
BUS_ID_ISA = 0
# Processor signature/features: family 6; FPU and APIC present (table 4-5).
CPU_SIGNATURE = 0x600
CPU_FEATURES = (1 << 0) | (1 << 9)
ALL_LAPICS = 0xFF
MPF_SIZE = 16
MPC_HEADER_SIZE = 44
MAX_CPUS = 254


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def _processor(apic_id: int) -> bytes:
    flags = CPU_ENABLED | (CPU_BOOTPROCESSOR if apic_id == 0 else 0)
    return struct.pack("<BBBBII8x", MP_PROCESSOR, apic_id, APIC_VERSION, flags,
                       CPU_SIGNATURE, CPU_FEATURES)


def _entries(num_cpus: int) -> list[bytes]:
    ioapic_id = num_cpus + 1
    entries = [_processor(i) for i in range(num_cpus)]
    entries.append(struct.pack("<BB6s", MP_BUS, BUS_ID_ISA, b"ISA   "))
    entries.append(struct.pack("<BBBBI", MP_IOAPIC, ioapic_id, IOAPIC_VERSION, MPC_APIC_USABLE,
                               layout.IOAPIC_DEFAULT_PHYS_BASE))
    for irq in range(layout.IOAPIC_NUM_PINS):
        entries.append(struct.pack("<BBHBBBB", MP_INTSRC, MP_INT, 0, BUS_ID_ISA, irq,
                                   ioapic_id, irq))
    entries.append(struct.pack("<BBHBBBB", MP_LINTSRC, MP_EXTINT, 0, BUS_ID_ISA, 0,
                               ALL_LAPICS, 0))
    entries.append(struct.pack("<BBHBBBB", MP_LINTSRC, MP_NMI, 0, BUS_ID_ISA, 0,
                               ALL_LAPICS, 1))
    return entries


def mptable(num_cpus: int, base: int = layout.EBDA_START) -> bytes:
    """The floating pointer followed by the configuration table, to be written at ``base``."""
    if not 1 <= num_cpus <= MAX_CPUS:
        raise ValueError(f"an MP table describes 1..{MAX_CPUS} CPUs, not {num_cpus}")
    entries = _entries(num_cpus)
    body = b"".join(entries)
    table_addr = base + MPF_SIZE
    header = bytearray(struct.pack(
        "<4sHBB8s12sIHHIHBx", MPC_SIGNATURE, MPC_HEADER_SIZE + len(body), MP_SPEC_REV, 0,
        MPC_OEM, MPC_PRODUCT, 0, 0, len(entries), layout.APIC_DEFAULT_PHYS_BASE, 0, 0))
    header[7] = _checksum(bytes(header) + body)
    mpf = bytearray(struct.pack("<4sIBBB5x", MPF_SIGNATURE, table_addr, 1, MP_SPEC_REV, 0))
    mpf[10] = _checksum(bytes(mpf))
    return bytes(mpf) + bytes(header) + body
