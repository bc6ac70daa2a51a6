"""Parse an uncompressed ELF64 x86_64 kernel (vmlinux) into the segments to load.

Layouts: the System V gABI "ELF Header" and "Program Header" (ELF-64 Object File Format 1.5).
Nothing here reads files: bytes in, a :class:`KernelLayout` out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ember.loader.errors import LoaderError

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_X86_64 = 62
PT_LOAD = 1
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
# A kernel has a handful of program headers; refuse absurd counts from a corrupt file.
MAX_PROGRAM_HEADERS = 64
# How much of a kernel image the parsers need to see: the ELF and program headers of a
# vmlinux, or the setup header of a bzImage, both lie in its first page.
HEADER_READ_SIZE = 4096


@dataclass(frozen=True)
class Segment:
    file_offset: int
    guest_addr: int
    file_size: int
    mem_size: int


@dataclass(frozen=True)
class KernelLayout:
    entry: int
    segments: tuple[Segment, ...]

    @property
    def end(self) -> int:
        return max(s.guest_addr + s.mem_size for s in self.segments)


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def parse_elf(head: bytes, file_size: int, min_addr: int) -> KernelLayout:
    """Parse the ELF header and program headers found in ``head`` (the file's first bytes)."""
    if len(head) < EHDR.size or not is_elf(head):
        raise LoaderError("not an ELF file")
    ident, _type, machine, _v, entry, phoff, _sh, _fl, _eh, phentsize, phnum, *_ = (
        EHDR.unpack_from(head))
    if ident[4] != ELFCLASS64 or ident[5] != ELFDATA2LSB or machine != EM_X86_64:
        raise LoaderError("not a 64-bit little-endian x86_64 ELF kernel")
    if phentsize != PHDR.size or not 0 < phnum <= MAX_PROGRAM_HEADERS:
        raise LoaderError(f"corrupt ELF program header table ({phnum} entries of {phentsize})")
    if phoff + phnum * PHDR.size > len(head):
        raise LoaderError("corrupt ELF: program headers lie outside the file header area")
    segments = tuple(_segments(head, phoff, phnum, file_size, min_addr))
    if not segments:
        raise LoaderError("ELF kernel has no loadable segments")
    return KernelLayout(entry=entry, segments=segments)


def _segments(head: bytes, phoff: int, phnum: int, file_size: int, min_addr: int) -> list[Segment]:
    out = []
    for i in range(phnum):
        p_type, _f, offset, _va, paddr, filesz, memsz, _al = PHDR.unpack_from(
            head, phoff + i * PHDR.size)
        if p_type != PT_LOAD:
            continue
        if offset + filesz > file_size or filesz > memsz:
            raise LoaderError(f"corrupt ELF: segment {i} runs past the end of the file")
        if paddr < min_addr:
            raise LoaderError(
                f"ELF segment {i} loads at {paddr:#x}, below {min_addr:#x}; not a Linux kernel?")
        out.append(Segment(offset, paddr, filesz, memsz))
    return out
