"""Parse a bzImage (Linux boot protocol >= 2.12 with a 64-bit entry point).

Offsets: Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ember.loader.elf import KernelLayout, Segment
from ember.loader.errors import LoaderError

SETUP_SECTS = 0x1F1
BOOT_FLAG = 0x1FE
JUMP = 0x200  # 2-byte jump; the byte at 0x201 is the header length past 0x202
HEADER = 0x202
VERSION = 0x206
LOADFLAGS = 0x211
CMDLINE_SIZE = 0x238
XLOADFLAGS = 0x236
INIT_SIZE = 0x260
PREF_ADDRESS = 0x258
BOOT_FLAG_MAGIC = 0xAA55
HEADER_MAGIC = b"HdrS"
MIN_PROTOCOL = 0x020C  # 2.12: xloadflags and the 64-bit entry
LOADED_HIGH = 0x01
XLF_KERNEL_64 = 0x01
SECTOR_SIZE = 512
DEFAULT_SETUP_SECTS = 4  # "if this field is 0, the real value is 4"
# The 64-bit entry point is 0x200 bytes into the protected-mode kernel.
ENTRY_64_OFFSET = 0x200


@dataclass(frozen=True)
class BzImage:
    layout: KernelLayout
    setup_header: bytes
    cmdline_size: int
    init_end: int


def is_bzimage(head: bytes) -> bool:
    return len(head) > HEADER + 4 and head[HEADER:HEADER + 4] == HEADER_MAGIC


def parse_bzimage(head: bytes, file_size: int, load_addr: int) -> BzImage:
    """Validate the setup header in ``head`` and describe where the kernel goes."""
    if len(head) < INIT_SIZE + 4 or not is_bzimage(head):
        raise LoaderError("not a bzImage (no 'HdrS' setup header)")
    if struct.unpack_from("<H", head, BOOT_FLAG)[0] != BOOT_FLAG_MAGIC:
        raise LoaderError("corrupt bzImage: bad boot flag")
    version = struct.unpack_from("<H", head, VERSION)[0]
    if version < MIN_PROTOCOL:
        raise LoaderError(f"bzImage boot protocol {version >> 8}.{version & 0xFF} is too old; "
                          "ember needs 2.12 or newer")
    if not head[LOADFLAGS] & LOADED_HIGH or not head[XLOADFLAGS] & XLF_KERNEL_64:
        raise LoaderError("bzImage has no 64-bit entry point (XLF_KERNEL_64)")
    setup_sects = head[SETUP_SECTS] or DEFAULT_SETUP_SECTS
    kernel_offset = (setup_sects + 1) * SECTOR_SIZE
    if kernel_offset >= file_size:
        raise LoaderError("corrupt bzImage: no protected-mode kernel after the setup code")
    header_end = HEADER + head[JUMP + 1]
    size = file_size - kernel_offset
    init_size, = struct.unpack_from("<I", head, INIT_SIZE)
    pref_address, = struct.unpack_from("<Q", head, PREF_ADDRESS)
    segment = Segment(kernel_offset, load_addr, size, size)
    return BzImage(
        layout=KernelLayout(entry=load_addr + ENTRY_64_OFFSET, segments=(segment,)),
        setup_header=bytes(head[SETUP_SECTS:header_end]),
        cmdline_size=struct.unpack_from("<I", head, CMDLINE_SIZE)[0],
        init_end=max(load_addr, pref_address) + init_size,
    )
