"""x86_64 boot structures: zero page, e820, page tables, GDT, MP table, CPUID, LAPIC."""

import struct

from ember.arch.x86_64 import gdt, layout, mptable, paging, regs
from ember.arch.x86_64.bootparams import E820_RAM, BootParams, e820_map
from ember.arch.x86_64.cpuid import Topology, vcpu_cpuid, without_xsave
from ember.kvm._structs import KvmCpuidEntry2, KvmLapicState, KvmSregs

MIB = 1 << 20


def test_e820_small_memory() -> None:
    entries = e820_map(256 * MIB)
    assert [(e.addr, e.size, e.kind) for e in entries] == [
        (0, 0x9FC00, E820_RAM), (0x100000, 256 * MIB - 0x100000, E820_RAM)]


def test_e820_moves_ram_above_4g() -> None:
    entries = e820_map(4096 * MIB)
    assert entries[1].addr + entries[1].size == 0xC000_0000
    assert (entries[2].addr, entries[2].size) == (1 << 32, 1024 * MIB)
    assert layout.ram_regions(4096 * MIB) == [(0, 0xC000_0000), (1 << 32, 1024 * MIB)]
    assert layout.ram_regions(512 * MIB) == [(0, 512 * MIB)]


def test_zero_page_fields() -> None:
    params = BootParams(cmdline_size=42, initrd_addr=0x0FF0_0000, initrd_size=0x1234,
                        e820=e820_map(256 * MIB), acpi_rsdp_addr=0xE0000)
    page = params.encode()
    assert len(page) == 4096
    assert struct.unpack_from("<H", page, 0x1FE)[0] == 0xAA55
    assert page[0x202:0x206] == b"HdrS"
    assert page[0x210] == 0xFF  # type_of_loader: undefined
    assert struct.unpack_from("<I", page, 0x228)[0] == 0x20000
    assert struct.unpack_from("<I", page, 0x238)[0] == 42
    assert struct.unpack_from("<II", page, 0x218) == (0x0FF0_0000, 0x1234)
    assert page[0x1E8] == 2
    assert struct.unpack_from("<Q", page, 0x070)[0] == 0xE0000
    assert struct.unpack_from("<QQI", page, 0x2D0 + 20) == (0x100000, 256 * MIB - 0x100000, 1)


def test_zero_page_keeps_bzimage_header() -> None:
    header = bytes([0x1B]) + bytes(12) + b"\x55\xaa" + b"\xeb\x6a" + b"HdrS" + b"\x0f\x02"
    page = BootParams(setup_header=header).encode()
    assert page[0x1F1] == 0x1B and page[0x206:0x208] == b"\x0f\x02"


def test_identity_page_tables_cover_first_gib() -> None:
    tables = paging.identity_page_tables()
    pml4 = struct.unpack_from("<Q", tables[0x9000])[0]
    pdpt = struct.unpack_from("<Q", tables[0xA000])[0]
    assert pml4 == 0xA003 and pdpt == 0xB003
    pd = tables[0xB000]
    assert len(pd) == 4096
    entries = struct.unpack("<512Q", pd)
    assert entries[0] == 0x83 and entries[511] == (511 << 21) | 0x83


def test_gdt_encoding_and_decoding() -> None:
    entries = gdt.boot_gdt()
    assert entries[1] == 0x00AF9B000000FFFF
    assert entries[2] == 0x00CF93000000FFFF
    assert entries[3] == 0x008F8B000000FFFF
    code = gdt.segment_from_entry(entries[1], 1)
    assert (code.selector, code.l, code.db, code.g, code.present, code.type, code.s) == (
        8, 1, 0, 1, 1, 0xB, 1)
    assert code.limit == 0xFFFFFFFF and code.base == 0
    tss = gdt.segment_from_entry(entries[3], 3)
    assert tss.selector == 0x18 and tss.s == 0 and tss.type == 0xB


def test_sregs_long_mode() -> None:
    sregs = regs.boot_sregs(KvmSregs(), gdt.boot_gdt())
    assert sregs.cr0 & 0x80000001 == 0x80000001
    assert sregs.cr4 & 0x20 and sregs.efer & 0x500 == 0x500
    assert sregs.cr3 == 0x9000 and sregs.gdt.base == 0x500 and sregs.gdt.limit == 31
    assert sregs.cs.l == 1 and sregs.ds.selector == 0x10
    r = regs.boot_regs(0x1000000)
    assert (r.rip, r.rsi, r.rsp, r.rflags) == (0x1000000, 0x7000, 0x8FF0, 2)
    fpu = regs.boot_fpu()
    assert (fpu.fcw, fpu.mxcsr) == (0x37F, 0x1F80)


def _checksum_ok(data: bytes) -> bool:
    return sum(data) & 0xFF == 0


def test_mptable_structure() -> None:
    table = mptable.mptable(4)
    assert table[:4] == b"_MP_" and _checksum_ok(table[:16])
    ptr = struct.unpack_from("<I", table, 4)[0]
    assert ptr == layout.EBDA_START + 16
    header = table[16:]
    assert header[:4] == b"PCMP"
    length, = struct.unpack_from("<H", header, 4)
    assert _checksum_ok(header[:length])
    count, lapic = struct.unpack_from("<HI", header, 34)
    assert lapic == 0xFEE00000
    body = header[44:length]
    kinds = []
    off = 0
    for _ in range(count):
        kinds.append(body[off])
        off += 20 if body[off] == 0 else 8
    assert off == len(body)
    assert kinds.count(0) == 4 and kinds.count(2) == 1 and kinds.count(3) == 24
    assert kinds.count(4) == 2
    assert body[3] & 2  # cpu 0 is the BSP


def test_mptable_fits_in_ebda_for_32_cpus() -> None:
    assert layout.EBDA_START + len(mptable.mptable(32)) <= 0xA0000


def _entry(function: int, index: int = 0, **regs_: int) -> KvmCpuidEntry2:
    e = KvmCpuidEntry2()
    e.function, e.index = function, index
    for name, value in regs_.items():
        setattr(e, name, value)
    return e


def test_cpuid_topology_per_vcpu() -> None:
    supported = [_entry(1, ebx=0xFF00FFFF, ecx=0, edx=0), _entry(0xB, 0), _entry(0xB, 1),
                 _entry(6, eax=7), _entry(0x8000_0008, ecx=0xFF)]
    out = vcpu_cpuid(supported, Topology(cpu_index=3, cpu_count=4))
    leaf1 = out[0]
    assert leaf1.ebx >> 24 == 3 and (leaf1.ebx >> 16) & 0xFF == 4
    assert leaf1.ecx & (1 << 31) and leaf1.edx & (1 << 28)
    assert (out[1].ebx, out[1].edx, out[1].ecx >> 8) == (1, 3, 1)
    assert (out[2].eax, out[2].ebx, out[2].ecx >> 8) == (2, 4, 2)
    assert out[3].eax == 0
    assert out[4].ecx == (2 << 12) | 3
    assert supported[0].ebx == 0xFF00FFFF  # the host's table is not modified


def test_single_vcpu_has_no_htt() -> None:
    out = vcpu_cpuid([_entry(1, edx=1 << 28)], Topology(0, 1))
    assert not out[0].edx & (1 << 28)


def test_lapic_lint_modes() -> None:
    state = regs.configure_lint(KvmLapicState())
    lvt0 = struct.unpack("<I", bytes(state.regs[0x350:0x354]))[0]
    lvt1 = struct.unpack("<I", bytes(state.regs[0x360:0x364]))[0]
    assert (lvt0 >> 8) & 7 == 7 and (lvt1 >> 8) & 7 == 4


def test_without_xsave_hides_xsave_and_avx() -> None:
    table = [_entry(1, ecx=0xFFFFFFFF), _entry(7, 0, ebx=0xFFFFFFFF, ecx=0xFFFFFFFF),
             _entry(0xD, 0, eax=7), _entry(0xD, 1), _entry(0x8000_0001, ecx=0xFFFFFFFF),
             _entry(0)]
    out = without_xsave(table)
    assert [e.function for e in out] == [1, 7, 0x8000_0001, 0]
    assert not out[0].ecx & ((1 << 26) | (1 << 27) | (1 << 28))
    assert out[0].ecx & (1 << 31) and out[0].ecx & 1  # hypervisor bit and SSE3 stay
    assert not out[1].ebx & (1 << 5) and out[1].ebx & (1 << 0)  # AVX2 gone, FSGSBASE stays
    assert not out[2].ecx & (1 << 16)
    assert table[0].ecx == 0xFFFFFFFF
