"""struct boot_params (the "zero page") and the e820 memory map.

Offsets are from Documentation/arch/x86/zero-page.rst and boot.rst (boot protocol 2.12+).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ember.arch.x86_64 import layout

ZERO_PAGE_SIZE = 4096
# zero-page.rst offsets
ACPI_RSDP_ADDR = 0x070
EXT_RAMDISK_IMAGE = 0x0C0
EXT_RAMDISK_SIZE = 0x0C4
EXT_CMD_LINE_PTR = 0x0C8
E820_ENTRIES = 0x1E8
SETUP_HEADER = 0x1F1
E820_TABLE = 0x2D0
E820_MAX_ENTRIES = 128
E820_ENTRY_SIZE = 20
# boot.rst setup header fields (absolute offsets in the zero page)
HDR_BOOT_FLAG = 0x1FE
HDR_HEADER = 0x202
HDR_VERSION = 0x206
HDR_TYPE_OF_LOADER = 0x210
HDR_LOADFLAGS = 0x211
HDR_RAMDISK_IMAGE = 0x218
HDR_RAMDISK_SIZE = 0x21C
HDR_CMD_LINE_PTR = 0x228
HDR_KERNEL_ALIGNMENT = 0x230
HDR_CMDLINE_SIZE = 0x238
BOOT_FLAG_MAGIC = 0xAA55
HEADER_MAGIC = 0x53726448  # "HdrS"
LOADER_TYPE_UNDEFINED = 0xFF
KERNEL_ALIGNMENT_DEFAULT = 0x0100_0000
LOADFLAG_LOADED_HIGH = 0x01
LOADFLAG_KEEP_SEGMENTS = 0x40
# e820 entry types (ACPI spec, "Address Range Types")
E820_RAM = 1
E820_RESERVED = 2


@dataclass
class E820Entry:
    addr: int
    size: int
    kind: int


def e820_map(mem_size: int) -> list[E820Entry]:
    """Firecracker's map: low RAM up to the EBDA, RAM from 1 MiB, and RAM past 4 GiB."""
    entries = [E820Entry(0, layout.EBDA_START, E820_RAM)]
    low_end = layout.low_memory_end(mem_size)
    if low_end > layout.HIMEM_START:
        entries.append(E820Entry(layout.HIMEM_START, low_end - layout.HIMEM_START, E820_RAM))
    if mem_size > layout.MMIO32_START:
        entries.append(E820Entry(layout.FIRST_ADDR_PAST_32BITS,
                                 mem_size - layout.MMIO32_START, E820_RAM))
    return entries


@dataclass
class BootParams:
    """The fields ember fills in; everything else stays zero or comes from the kernel image."""

    setup_header: bytes = b""  # raw header copied from a bzImage at offset 0x1f1
    cmdline_addr: int = layout.CMDLINE_START
    cmdline_size: int = 0
    initrd_addr: int = 0
    initrd_size: int = 0
    e820: list[E820Entry] = field(default_factory=list)
    acpi_rsdp_addr: int = 0

    def encode(self) -> bytes:
        page = bytearray(ZERO_PAGE_SIZE)
        if self.setup_header:
            page[SETUP_HEADER:SETUP_HEADER + len(self.setup_header)] = self.setup_header
        else:
            struct.pack_into("<H", page, HDR_BOOT_FLAG, BOOT_FLAG_MAGIC)
            struct.pack_into("<I", page, HDR_HEADER, HEADER_MAGIC)
            struct.pack_into("<I", page, HDR_KERNEL_ALIGNMENT, KERNEL_ALIGNMENT_DEFAULT)
        page[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED
        page[HDR_LOADFLAGS] |= LOADFLAG_LOADED_HIGH | LOADFLAG_KEEP_SEGMENTS
        self._pack_pointers(page)
        self._pack_e820(page)
        return bytes(page)

    def _pack_pointers(self, page: bytearray) -> None:
        struct.pack_into("<I", page, HDR_CMD_LINE_PTR, self.cmdline_addr & 0xFFFFFFFF)
        struct.pack_into("<I", page, EXT_CMD_LINE_PTR, self.cmdline_addr >> 32)
        struct.pack_into("<I", page, HDR_CMDLINE_SIZE, self.cmdline_size)
        struct.pack_into("<I", page, HDR_RAMDISK_IMAGE, self.initrd_addr & 0xFFFFFFFF)
        struct.pack_into("<I", page, EXT_RAMDISK_IMAGE, self.initrd_addr >> 32)
        struct.pack_into("<I", page, HDR_RAMDISK_SIZE, self.initrd_size & 0xFFFFFFFF)
        struct.pack_into("<I", page, EXT_RAMDISK_SIZE, self.initrd_size >> 32)
        struct.pack_into("<Q", page, ACPI_RSDP_ADDR, self.acpi_rsdp_addr)

    def _pack_e820(self, page: bytearray) -> None:
        if len(self.e820) > E820_MAX_ENTRIES:
            raise ValueError(f"too many e820 entries ({len(self.e820)})")
        page[E820_ENTRIES] = len(self.e820)
        for i, entry in enumerate(self.e820):
            struct.pack_into("<QQI", page, E820_TABLE + i * E820_ENTRY_SIZE,
                             entry.addr, entry.size, entry.kind)
