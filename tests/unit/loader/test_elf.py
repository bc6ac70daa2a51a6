"""ELF kernel parsing, on ELF files built byte by byte in the test."""

import struct

import pytest

from ember.loader import LoaderError, parse_elf
from ember.loader.elf import EHDR, PHDR

HIMEM = 0x100000


def make_elf(segments: list[tuple[int, int, int, int]], entry: int = 0x1000000,
             machine: int = 62, cls: int = 2, phnum: int | None = None) -> bytes:
    ident = b"\x7fELF" + bytes([cls, 1, 1]) + bytes(9)
    count = len(segments) if phnum is None else phnum
    head = EHDR.pack(ident, 2, machine, 1, entry, EHDR.size, 0, 0, EHDR.size, PHDR.size,
                     count, 0, 0, 0)
    for p_type, offset, paddr, size in segments:
        head += PHDR.pack(p_type, 5, offset, paddr | 0xFFFFFFFF80000000, paddr, size, size * 2,
                          0x1000)
    return head


def test_parses_load_segments_and_entry() -> None:
    head = make_elf([(1, 0x1000, 0x1000000, 0x2000), (4, 0, 0, 0), (1, 0x3000, 0x2000000, 0x10)])
    layout = parse_elf(head, 0x4000, HIMEM)
    assert layout.entry == 0x1000000
    assert [(s.file_offset, s.guest_addr, s.file_size, s.mem_size) for s in layout.segments] == [
        (0x1000, 0x1000000, 0x2000, 0x4000), (0x3000, 0x2000000, 0x10, 0x20)]
    assert layout.end == 0x2000020


@pytest.mark.parametrize("head, message", [
    (b"MZ" + bytes(100), "not an ELF"),
    (make_elf([(1, 0x1000, 0x1000000, 0x10)], machine=3), "x86_64"),
    (make_elf([(1, 0x1000, 0x1000000, 0x10)], cls=1), "64-bit"),
    (make_elf([(1, 0x1000, 0x1000000, 0x10)], phnum=0), "program header"),
    (make_elf([(1, 0x1000, 0x1000000, 0x10)], phnum=60000), "program header"),
    (make_elf([(1, 0x1000, 0x1000000, 0x100000)]), "past the end"),
    (make_elf([(1, 0x1000, 0x1000, 0x10)]), "below"),
    (make_elf([(4, 0, 0, 0)]), "no loadable"),
])
def test_rejects_bad_kernels(head: bytes, message: str) -> None:
    with pytest.raises(LoaderError, match=message):
        parse_elf(head, 0x4000, HIMEM)


def test_truncated_program_header_table() -> None:
    head = make_elf([(1, 0x1000, 0x1000000, 0x10)], phnum=2)
    with pytest.raises(LoaderError, match="outside"):
        parse_elf(head, 0x4000, HIMEM)


def test_phdr_is_56_bytes() -> None:
    assert PHDR.size == 56 and EHDR.size == 64
    assert struct.calcsize("<Q") == 8
