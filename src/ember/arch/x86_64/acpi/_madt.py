"""The Multiple APIC Description Table: one local APIC per vCPU and KVM's IOAPIC.

Layout: ACPI 6.5, 5.2.12 (the MADT and its Multiple APIC Flags), with the interrupt
controller structures of 5.2.12.2 (Processor Local APIC) and 5.2.12.3 (I/O APIC).

Choices, for KVM's in-kernel irqchip (KVM_CREATE_IRQCHIP: a dual 8259 PIC, an IOAPIC with 24
pins, a local APIC per vCPU) under KVM's default GSI routing, which ember keeps:

* PCAT_COMPAT is set: the dual 8259 really exists, wired to the boot vCPU's LINT0, and the
  flag tells an OS that one is present and must be masked before it uses the APICs. Linux on
  a hardware-reduced platform drives no 8259 whichever way the flag is set.
* No Interrupt Source Override: the default routing sends GSI n to 8259 input n and IOAPIC
  pin n for each ISA IRQ, the in-kernel PIT's IRQ 0 included (it raises GSI 0, so pin 0). That
  is the 1:1 mapping an OS assumes where no override is listed (5.2.12.5). The classic
  IRQ0 -> GSI 2 override belongs to VMMs that re-route GSI 0 to pin 2 (as QEMU does); here it
  would point the timer at a pin nothing drives. Linux on a hardware-reduced platform sets up
  no PIT timer anyway.
* The IOAPIC's id is 0: KVM's IOAPIC resets its ID register to 0, and no other IOAPIC exists
  for it to clash with (the MP table's num_cpus + 1 only matters for the old shared APIC bus).
"""

from __future__ import annotations

import struct

from ember.arch.x86_64 import layout
from ember.arch.x86_64.acpi import _sdt

MADT_SIGNATURE = b"APIC"
MADT_REVISION = 6  # ACPI 6.5
MADT_OEM_TABLE_ID = b"EMBRAPIC"
# 5.2.12 Multiple APIC Flags, bit 0: the system also has a PC-AT-compatible dual 8259.
MADT_FLAG_PCAT_COMPAT = 1 << 0
MADT_FLAGS = MADT_FLAG_PCAT_COMPAT
# 5.2.12.2 Processor Local APIC Structure: type 0, length 8.
LOCAL_APIC_TYPE = 0
LOCAL_APIC_LENGTH = 8
LOCAL_APIC_ENABLED = 1 << 0  # 5.2.12.2 Local APIC Flags: the processor is usable
# 5.2.12.3 I/O APIC Structure: type 1, length 12.
IO_APIC_TYPE = 1
IO_APIC_LENGTH = 12
IO_APIC_ID = 0
IO_APIC_GSI_BASE = 0  # the IOAPIC's pin 0 is GSI 0


def local_apic(cpu_index: int) -> bytes:
    """A Processor Local APIC entry: ACPI processor UID = APIC id = vCPU index, enabled."""
    return struct.pack("<BBBBI", LOCAL_APIC_TYPE, LOCAL_APIC_LENGTH, cpu_index, cpu_index,
                       LOCAL_APIC_ENABLED)


def io_apic() -> bytes:
    """The I/O APIC entry for KVM's in-kernel IOAPIC."""
    return struct.pack("<BBBxII", IO_APIC_TYPE, IO_APIC_LENGTH, IO_APIC_ID,
                       layout.IOAPIC_DEFAULT_PHYS_BASE, IO_APIC_GSI_BASE)


def madt(num_cpus: int) -> bytes:
    """The MADT for ``num_cpus`` vCPUs."""
    header = struct.pack("<II", layout.APIC_DEFAULT_PHYS_BASE, MADT_FLAGS)
    entries = b"".join(local_apic(index) for index in range(num_cpus)) + io_apic()
    return _sdt.sdt(MADT_SIGNATURE, MADT_REVISION, MADT_OEM_TABLE_ID, header + entries)
