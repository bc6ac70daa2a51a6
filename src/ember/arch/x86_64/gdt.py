"""The boot GDT, and its segment descriptors decoded into KVM segments.

Descriptor format: Intel SDM vol. 3, 3.4.5 "Segment Descriptors".
"""

from __future__ import annotations

from ember.kvm._structs import KvmSegment

# Flags/access words as (flags << 12 | access), in the style of Linux's GDT_ENTRY().
CODE64_FLAGS = 0xA09B  # G=1, L=1, present, DPL 0, code, execute/read, accessed
DATA_FLAGS = 0xC093    # G=1, D/B=1, present, DPL 0, data, read/write, accessed
TSS_FLAGS = 0x808B     # G=1, present, 64-bit busy TSS
GDT_CODE_INDEX = 1
GDT_DATA_INDEX = 2
GDT_TSS_INDEX = 3


def gdt_entry(flags: int, base: int, limit: int) -> int:
    """Encode one 8-byte segment descriptor."""
    return (
        ((base & 0xFF000000) << (56 - 24))
        | ((flags & 0x0000F0FF) << 40)
        | ((limit & 0x000F0000) << (48 - 16))
        | ((base & 0x00FFFFFF) << 16)
        | (limit & 0x0000FFFF)
    )


def boot_gdt() -> list[int]:
    """NULL, 64-bit code, data and TSS descriptors, all flat."""
    return [
        0,
        gdt_entry(CODE64_FLAGS, 0, 0xFFFFF),
        gdt_entry(DATA_FLAGS, 0, 0xFFFFF),
        gdt_entry(TSS_FLAGS, 0, 0xFFFFF),
    ]


def segment_from_entry(entry: int, index: int) -> KvmSegment:
    """Decode a descriptor into the struct kvm_segment KVM_SET_SREGS wants."""
    base = ((entry >> 16) & 0xFFFFFF) | (((entry >> 56) & 0xFF) << 24)
    limit = (entry & 0xFFFF) | (((entry >> 48) & 0xF) << 16)
    granular = (entry >> 55) & 1
    if granular:
        limit = (limit << 12) | 0xFFF
    seg = KvmSegment()
    seg.base = base
    seg.limit = limit
    seg.selector = index * 8
    seg.type = (entry >> 40) & 0xF
    seg.s = (entry >> 44) & 1
    seg.dpl = (entry >> 45) & 3
    seg.present = (entry >> 47) & 1
    seg.avl = (entry >> 52) & 1
    seg.l = (entry >> 53) & 1
    seg.db = (entry >> 54) & 1
    seg.g = granular
    seg.unusable = 0 if seg.present else 1
    return seg


def encode_gdt(entries: list[int]) -> bytes:
    return b"".join(e.to_bytes(8, "little") for e in entries)
