"""The 64-bit entry state of a vCPU: registers, segments, control registers, FPU and LAPIC.

Linux boot protocol, "64-bit BOOT PROTOCOL": long mode with paging, a flat __BOOT_CS/__BOOT_DS,
RSI pointing at struct boot_params, interrupts off.
"""

from __future__ import annotations

import struct

from ember.arch.x86_64 import gdt, layout
from ember.kvm._structs import KvmFpu, KvmLapicState, KvmRegs, KvmSregs

# Intel SDM vol. 3, 2.5 "Control Registers" and 2.2.1 "Extended Feature Enable Register".
X86_CR0_PE = 1 << 0
X86_CR0_PG = 1 << 31
X86_CR4_PAE = 1 << 5
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
RFLAGS_RESERVED_1 = 1 << 1
# x87 control word after FNINIT, and MXCSR's power-up value (SDM vol. 1, 8.1.5 and 10.2.3).
FPU_CONTROL_WORD = 0x37F
MXCSR_DEFAULT = 0x1F80
# Local APIC registers (SDM vol. 3, table 10-1) and LVT delivery modes (10.5.1).
APIC_LVT0 = 0x350
APIC_LVT1 = 0x360
APIC_MODE_NMI = 0x4
APIC_MODE_EXTINT = 0x7
LVT_DELIVERY_MODE_MASK = 0x700


def boot_regs(entry: int) -> KvmRegs:
    regs = KvmRegs()
    regs.rflags = RFLAGS_RESERVED_1
    regs.rip = entry
    regs.rsp = layout.BOOT_STACK_POINTER
    regs.rbp = layout.BOOT_STACK_POINTER
    regs.rsi = layout.ZERO_PAGE_START
    return regs


def boot_sregs(sregs: KvmSregs, gdt_entries: list[int]) -> KvmSregs:
    """Fill segments, descriptor tables and control registers for 64-bit entry."""
    code = gdt.segment_from_entry(gdt_entries[gdt.GDT_CODE_INDEX], gdt.GDT_CODE_INDEX)
    data = gdt.segment_from_entry(gdt_entries[gdt.GDT_DATA_INDEX], gdt.GDT_DATA_INDEX)
    tss = gdt.segment_from_entry(gdt_entries[gdt.GDT_TSS_INDEX], gdt.GDT_TSS_INDEX)
    sregs.gdt.base = layout.BOOT_GDT_OFFSET
    sregs.gdt.limit = len(gdt_entries) * 8 - 1
    sregs.idt.base = layout.BOOT_IDT_OFFSET
    sregs.idt.limit = 8 - 1
    sregs.cs = code
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data
    sregs.tr = tss
    sregs.cr0 |= X86_CR0_PE | X86_CR0_PG
    sregs.cr3 = layout.PML4_START
    sregs.cr4 |= X86_CR4_PAE
    sregs.efer |= EFER_LME | EFER_LMA
    return sregs


def boot_fpu() -> KvmFpu:
    fpu = KvmFpu()
    fpu.fcw = FPU_CONTROL_WORD
    fpu.mxcsr = MXCSR_DEFAULT
    return fpu


def _set_lvt_mode(state: KvmLapicState, reg: int, mode: int) -> None:
    raw = bytes(state.regs[reg:reg + 4])
    value = struct.unpack("<I", raw)[0]
    value = (value & ~LVT_DELIVERY_MODE_MASK) | (mode << 8)
    for i, b in enumerate(struct.pack("<I", value)):
        state.regs[reg + i] = b


def configure_lint(state: KvmLapicState) -> KvmLapicState:
    """LINT0 delivers the PIC's ExtINT, LINT1 delivers NMIs (as on a PC)."""
    _set_lvt_mode(state, APIC_LVT0, APIC_MODE_EXTINT)
    _set_lvt_mode(state, APIC_LVT1, APIC_MODE_NMI)
    return state
