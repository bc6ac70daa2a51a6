"""Lay out guest memory for a 64-bit Linux boot: kernel, initrd, command line, zero page,
GDT, page tables and MP table. Works on GuestMemory only; knows nothing of KVM."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ember.arch.x86_64 import acpi, gdt, layout, mptable, paging
from ember.arch.x86_64.acpi import MmioDevice
from ember.arch.x86_64.bootparams import BootParams, e820_map
from ember.loader import (
    HEADER_READ_SIZE,
    KernelLayout,
    LoaderError,
    encode_cmdline,
    initrd_address,
    is_bzimage,
    is_elf,
    parse_bzimage,
    parse_elf,
)
from ember.memory import GuestMemory, GuestMemoryError


@dataclass(frozen=True)
class BootPlan:
    entry: int
    gdt: list[int]


def _open(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LoaderError(f"{what} {path!r} does not exist") from None
    except IsADirectoryError:
        raise LoaderError(f"{what} {path!r} is a directory") from None
    except PermissionError:
        raise LoaderError(f"{what} {path!r} is not readable") from None


def _copy_in(mem: GuestMemory, fd: int, file_offset: int, addr: int, size: int,
             what: str) -> None:
    """Read ``size`` bytes of ``fd`` straight into guest memory (no intermediate copy)."""
    try:
        view = mem.view(addr, size)
    except GuestMemoryError:
        raise LoaderError(f"{what} does not fit in guest memory at {addr:#x} (+{size:#x}); "
                          "give the microVM more memory") from None
    done = 0
    while done < size:
        n = os.preadv(fd, [view[done:]], file_offset + done)
        if n <= 0:
            raise LoaderError(f"{what} is shorter than its headers say (truncated file?)")
        done += n


def _load_kernel(mem: GuestMemory, path: str, params: BootParams) -> tuple[KernelLayout, int]:
    """Load the kernel; returns its layout and the first address free above it."""
    fd = _open(path, "kernel image")
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEADER_READ_SIZE, 0)
        if is_elf(head):
            kernel = parse_elf(head, size, layout.HIMEM_START)
            end = kernel.end
        elif is_bzimage(head):
            bz = parse_bzimage(head, size, layout.BZIMAGE_LOAD_ADDR)
            kernel, end = bz.layout, max(bz.layout.end, bz.init_end)
            params.setup_header = bz.setup_header
        else:
            raise LoaderError(f"kernel image {path!r} is neither an ELF vmlinux nor a bzImage")
        for seg in kernel.segments:
            _copy_in(mem, fd, seg.file_offset, seg.guest_addr, seg.file_size, "the kernel")
        return kernel, end
    except LoaderError as err:
        if path in str(err):
            raise
        raise LoaderError(f"kernel image {path!r}: {err}") from None
    finally:
        os.close(fd)


def _load_initrd(mem: GuestMemory, path: str, mem_size: int, kernel_end: int,
                 params: BootParams) -> None:
    fd = _open(path, "initrd")
    try:
        size = os.fstat(fd).st_size
        addr = initrd_address(size, layout.low_memory_end(mem_size), kernel_end)
        _copy_in(mem, fd, 0, addr, size, f"initrd {path!r}")
        params.initrd_addr, params.initrd_size = addr, size
    finally:
        os.close(fd)


def load_boot_image(mem: GuestMemory, mem_size: int, num_cpus: int, kernel_path: str,
                    initrd_path: str | None, cmdline: str,
                    devices: Sequence[MmioDevice] = ()) -> BootPlan:
    """Write everything the guest needs at its first instruction into ``mem``: the kernel,
    initrd, command line, zero page, GDT, page tables, MP table and ACPI tables."""
    params = BootParams(e820=e820_map(mem_size), acpi_rsdp_addr=acpi.RSDP_ADDR)
    kernel, kernel_end = _load_kernel(mem, kernel_path, params)
    if initrd_path:
        _load_initrd(mem, initrd_path, mem_size, kernel_end, params)
    raw_cmdline = encode_cmdline(cmdline, layout.CMDLINE_MAX_SIZE)
    mem.write(layout.CMDLINE_START, raw_cmdline)
    params.cmdline_addr, params.cmdline_size = layout.CMDLINE_START, len(raw_cmdline) - 1
    mem.write(layout.ZERO_PAGE_START, params.encode())
    entries = gdt.boot_gdt()
    mem.write(layout.BOOT_GDT_OFFSET, gdt.encode_gdt(entries))
    mem.write(layout.BOOT_IDT_OFFSET, bytes(8))
    for addr, table in paging.identity_page_tables().items():
        mem.write(addr, table)
    mem.write(layout.EBDA_START, mptable.mptable(num_cpus))
    for addr, table in acpi.acpi_tables(num_cpus, devices):
        mem.write(addr, table)
    return BootPlan(entry=kernel.entry, gdt=entries)
