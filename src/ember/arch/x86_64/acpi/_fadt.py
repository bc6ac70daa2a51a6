"""The Fixed ACPI Description Table of a hardware-reduced ACPI platform.

Layout: ACPI 6.5, 5.2.9. On a hardware-reduced platform (flag HW_REDUCED_ACPI; 4.1
"Hardware-Reduced ACPI") every fixed-hardware register block is absent, so all SCI, PM1, GPE
and PM timer fields stay zero and only the DSDT pointers and the flags carry information.
"""

from __future__ import annotations

import struct

from ember.arch.x86_64.acpi import _sdt

FADT_SIGNATURE = b"FACP"
FADT_REVISION = 6  # ACPI 6.x FADT major version
FADT_MINOR_REVISION = 5  # "FADT Minor Version": this table follows ACPI 6.5
FADT_OEM_TABLE_ID = b"EMBRFACP"
FADT_LENGTH = 276  # 0x114, the full ACPI 6.x layout ending with the hypervisor vendor id

# Byte offsets into the table (5.2.9, the FADT format table).
DSDT_OFFSET = 40  # 32-bit DSDT address
IAPC_BOOT_ARCH_OFFSET = 109
FLAGS_OFFSET = 112
MINOR_REVISION_OFFSET = 131
X_DSDT_OFFSET = 140  # 64-bit DSDT address
HYPERVISOR_VENDOR_ID_OFFSET = 268

# 5.2.9.3 IA-PC Boot Architecture Flags.
IAPC_8042 = 1 << 1  # a port 0x60/0x64 keyboard controller is present (ember's i8042)
IAPC_VGA_NOT_PRESENT = 1 << 2  # the OS must not blindly probe VGA hardware
IAPC_MSI_NOT_SUPPORTED = 1 << 3  # the OS must not enable MSI (there is no PCI)
IAPC_PCIE_ASPM_CONTROLS = 1 << 4  # the OS must not enable PCIe ASPM
IAPC_CMOS_RTC_NOT_PRESENT = 1 << 5  # no MC146818 RTC at ports 0x70/0x71
IAPC_BOOT_ARCH = (IAPC_8042 | IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED
                  | IAPC_PCIE_ASPM_CONTROLS | IAPC_CMOS_RTC_NOT_PRESENT)

# 5.2.9, "Fixed ACPI Description Table Fixed Feature Flags".
FLAG_PWR_BUTTON = 1 << 4  # no fixed-feature power button
FLAG_SLP_BUTTON = 1 << 5  # no fixed-feature sleep button
FLAG_HW_REDUCED_ACPI = 1 << 20  # no ACPI fixed hardware: no SCI, PM1, GPE or PM timer
FADT_FLAGS = FLAG_PWR_BUTTON | FLAG_SLP_BUTTON | FLAG_HW_REDUCED_ACPI

# "Hypervisor Vendor Identity" (8 bytes, ACPI 6.0+): tells the guest who its hypervisor is.
HYPERVISOR_VENDOR_ID = b"EMBERVMM"


def fadt(dsdt_address: int) -> bytes:
    """The FADT pointing at the DSDT through both the 32-bit DSDT and the 64-bit X_DSDT."""
    body = bytearray(FADT_LENGTH - _sdt.SDT_HEADER_LENGTH)
    _put(body, DSDT_OFFSET, "<I", dsdt_address)
    _put(body, IAPC_BOOT_ARCH_OFFSET, "<H", IAPC_BOOT_ARCH)
    _put(body, FLAGS_OFFSET, "<I", FADT_FLAGS)
    _put(body, MINOR_REVISION_OFFSET, "<B", FADT_MINOR_REVISION)
    _put(body, X_DSDT_OFFSET, "<Q", dsdt_address)
    _put(body, HYPERVISOR_VENDOR_ID_OFFSET, "<8s", HYPERVISOR_VENDOR_ID)
    return _sdt.sdt(FADT_SIGNATURE, FADT_REVISION, FADT_OEM_TABLE_ID, bytes(body))


def _put(body: bytearray, table_offset: int, fmt: str, value: int | bytes) -> None:
    """Write a field given by its offset in the whole table (header included)."""
    struct.pack_into(fmt, body, table_offset - _sdt.SDT_HEADER_LENGTH, value)
