"""Where an initrd goes: page-aligned, as high as possible below the top of low memory."""

from __future__ import annotations

from ember.loader.errors import LoaderError

PAGE_SIZE = 4096


def initrd_address(size: int, low_mem_end: int, kernel_end: int) -> int:
    """The guest address for an initrd of ``size`` bytes, above ``kernel_end``."""
    if size <= 0:
        raise LoaderError("the initrd is empty")
    addr = (low_mem_end - size) & ~(PAGE_SIZE - 1)
    if addr < kernel_end:
        raise LoaderError(
            f"the initrd ({size} bytes) does not fit in guest memory above the kernel; "
            "give the microVM more memory (mem_size_mib)")
    return addr
