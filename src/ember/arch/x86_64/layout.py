"""Every fixed guest-physical address of ember's x86_64 microVM, as Firecracker lays it out.

Sources: Firecracker's ``arch/x86_64/layout.rs``; the Linux x86 boot protocol
(Documentation/arch/x86/boot.rst); the MultiProcessor Specification 1.4 (EBDA placement).
"""

from __future__ import annotations

MIB = 1 << 20
GIB = 1 << 30

# Global descriptor table and an empty IDT, right after the real-mode IVT/BDA.
BOOT_GDT_OFFSET = 0x500
BOOT_IDT_OFFSET = 0x520
# Initial stack for the boot vCPU (grows down from below the zero page).
BOOT_STACK_POINTER = 0x8FF0
# struct boot_params ("zero page"), handed to the kernel in RSI.
ZERO_PAGE_START = 0x7000
# Identity-mapped page tables: PML4, PDPT and one PD of 2 MiB pages = the first 1 GiB.
PML4_START = 0x9000
PDPTE_START = 0xA000
PDE_START = 0xB000
# Kernel command line and its maximum size including the terminating NUL.
CMDLINE_START = 0x20000
CMDLINE_MAX_SIZE = 2048
# Extended BIOS data area: the MP floating pointer and tables live here.
EBDA_START = 0x9FC00
# First address above the legacy hole: where kernels load ("HIGH_MEMORY").
HIMEM_START = 0x100000
# bzImage protected-mode code is loaded here; its 64-bit entry is at +0x200.
BZIMAGE_LOAD_ADDR = HIMEM_START
# The x86 32-bit MMIO gap: [3 GiB, 4 GiB). RAM that would fall in it moves above 4 GiB.
MMIO32_START = 0xC000_0000
MMIO32_SIZE = 1 * GIB
FIRST_ADDR_PAST_32BITS = 1 << 32
# Firecracker's boot timer device sits at the start of the MMIO gap; virtio-mmio
# device windows follow it, one 4 KiB window each.
BOOT_TIMER_START = MMIO32_START
MMIO_DEVICE_WINDOW = 0x1000
VIRTIO_MMIO_START = MMIO32_START + MMIO_DEVICE_WINDOW
# Local APIC and IOAPIC register windows (Intel SDM vol. 3, 10.4.1; 82093AA datasheet).
APIC_DEFAULT_PHYS_BASE = 0xFEE0_0000
IOAPIC_DEFAULT_PHYS_BASE = 0xFEC0_0000
# KVM's three-page TSS region for Intel without unrestricted guest; just below the BIOS.
KVM_TSS_ADDRESS = 0xFFFB_D000
# The ISA IRQ lines of the legacy devices.
SERIAL_COM1_PORT = 0x3F8
SERIAL_COM1_IRQ = 4
I8042_DATA_PORT = 0x60
I8042_COMMAND_PORT = 0x64
I8042_IRQ = 1
# Highest IOAPIC input: KVM's in-kernel IOAPIC has 24 pins.
IOAPIC_NUM_PINS = 24


def ram_regions(mem_size: int) -> list[tuple[int, int]]:
    """Guest RAM as (base, size) pairs, skipping the 32-bit MMIO gap."""
    if mem_size <= MMIO32_START:
        return [(0, mem_size)]
    return [(0, MMIO32_START), (FIRST_ADDR_PAST_32BITS, mem_size - MMIO32_START)]


def low_memory_end(mem_size: int) -> int:
    """The end of RAM below 4 GiB."""
    return min(mem_size, MMIO32_START)
