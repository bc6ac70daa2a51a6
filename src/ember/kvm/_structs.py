"""ctypes mirrors of the structures in ``include/uapi/linux/kvm.h`` and
``arch/x86/include/uapi/asm/kvm.h`` that ember uses. Each docstring quotes the C layout."""

from __future__ import annotations

import ctypes

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class KvmUserspaceMemoryRegion(ctypes.Structure):
    """struct kvm_userspace_memory_region {
        __u32 slot; __u32 flags; __u64 guest_phys_addr;
        __u64 memory_size; __u64 userspace_addr; };"""

    _fields_ = [("slot", u32), ("flags", u32), ("guest_phys_addr", u64),
                ("memory_size", u64), ("userspace_addr", u64)]


class KvmRegs(ctypes.Structure):
    """struct kvm_regs { __u64 rax, rbx, rcx, rdx; __u64 rsi, rdi, rsp, rbp;
        __u64 r8..r15; __u64 rip, rflags; };"""

    _fields_ = [(n, u64) for n in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class KvmSegment(ctypes.Structure):
    """struct kvm_segment { __u64 base; __u32 limit; __u16 selector; __u8 type;
        __u8 present, dpl, db, s, l, g, avl; __u8 unusable; __u8 padding; };"""

    _fields_ = [("base", u64), ("limit", u32), ("selector", u16), ("type", u8),
                ("present", u8), ("dpl", u8), ("db", u8), ("s", u8), ("l", u8),
                ("g", u8), ("avl", u8), ("unusable", u8), ("padding", u8)]


class KvmDtable(ctypes.Structure):
    """struct kvm_dtable { __u64 base; __u16 limit; __u16 padding[3]; };"""

    _fields_ = [("base", u64), ("limit", u16), ("padding", u16 * 3)]


KVM_NR_INTERRUPTS = 256


class KvmSregs(ctypes.Structure):
    """struct kvm_sregs { struct kvm_segment cs, ds, es, fs, gs, ss; struct kvm_segment tr, ldt;
        struct kvm_dtable gdt, idt; __u64 cr0, cr2, cr3, cr4, cr8; __u64 efer; __u64 apic_base;
        __u64 interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64]; };"""

    _fields_ = [(n, KvmSegment) for n in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")] + [
        ("gdt", KvmDtable), ("idt", KvmDtable),
        ("cr0", u64), ("cr2", u64), ("cr3", u64), ("cr4", u64), ("cr8", u64),
        ("efer", u64), ("apic_base", u64),
        ("interrupt_bitmap", u64 * ((KVM_NR_INTERRUPTS + 63) // 64))]


class KvmFpu(ctypes.Structure):
    """struct kvm_fpu { __u8 fpr[8][16]; __u16 fcw; __u16 fsw; __u8 ftwx; __u8 pad1;
        __u16 last_opcode; __u64 last_ip; __u64 last_dp; __u8 xmm[16][16]; __u32 mxcsr;
        __u32 pad2; };"""

    _fields_ = [("fpr", (u8 * 16) * 8), ("fcw", u16), ("fsw", u16), ("ftwx", u8),
                ("pad1", u8), ("last_opcode", u16), ("last_ip", u64), ("last_dp", u64),
                ("xmm", (u8 * 16) * 16), ("mxcsr", u32), ("pad2", u32)]


class KvmMsrEntry(ctypes.Structure):
    """struct kvm_msr_entry { __u32 index; __u32 reserved; __u64 data; };"""

    _fields_ = [("index", u32), ("reserved", u32), ("data", u64)]


class KvmMsrsHeader(ctypes.Structure):
    """struct kvm_msrs { __u32 nmsrs; __u32 pad; struct kvm_msr_entry entries[0]; };"""

    _fields_ = [("nmsrs", u32), ("pad", u32)]


def kvm_msrs(count: int) -> type[ctypes.Structure]:
    """A struct kvm_msrs with room for ``count`` entries."""

    class KvmMsrs(ctypes.Structure):
        _fields_ = [("nmsrs", u32), ("pad", u32), ("entries", KvmMsrEntry * count)]

    return KvmMsrs


class KvmCpuidEntry2(ctypes.Structure):
    """struct kvm_cpuid_entry2 { __u32 function; __u32 index; __u32 flags;
        __u32 eax; __u32 ebx; __u32 ecx; __u32 edx; __u32 padding[3]; };"""

    _fields_ = [("function", u32), ("index", u32), ("flags", u32), ("eax", u32),
                ("ebx", u32), ("ecx", u32), ("edx", u32), ("padding", u32 * 3)]


class KvmCpuid2Header(ctypes.Structure):
    """struct kvm_cpuid2 { __u32 nent; __u32 padding; struct kvm_cpuid_entry2 entries[0]; };"""

    _fields_ = [("nent", u32), ("padding", u32)]


def kvm_cpuid2(count: int) -> type[ctypes.Structure]:
    """A struct kvm_cpuid2 with room for ``count`` entries."""

    class KvmCpuid2(ctypes.Structure):
        _fields_ = [("nent", u32), ("padding", u32), ("entries", KvmCpuidEntry2 * count)]

    return KvmCpuid2


KVM_APIC_REG_SIZE = 0x400


class KvmLapicState(ctypes.Structure):
    """struct kvm_lapic_state { char regs[KVM_APIC_REG_SIZE]; };"""

    _fields_ = [("regs", ctypes.c_uint8 * KVM_APIC_REG_SIZE)]


class KvmPitConfig(ctypes.Structure):
    """struct kvm_pit_config { __u32 flags; __u32 pad[15]; };"""

    _fields_ = [("flags", u32), ("pad", u32 * 15)]


class KvmIrqLevel(ctypes.Structure):
    """struct kvm_irq_level { union { __u32 irq; __s32 status; }; __u32 level; };"""

    _fields_ = [("irq", u32), ("level", u32)]


class KvmIrqfd(ctypes.Structure):
    """struct kvm_irqfd { __u32 fd; __u32 gsi; __u32 flags; __u32 resamplefd; __u8 pad[16]; };"""

    _fields_ = [("fd", u32), ("gsi", u32), ("flags", u32), ("resamplefd", u32),
                ("pad", u8 * 16)]


class KvmIoeventfd(ctypes.Structure):
    """struct kvm_ioeventfd { __u64 datamatch; __u64 addr; __u32 len; __s32 fd;
        __u32 flags; __u8 pad[36]; };"""

    _fields_ = [("datamatch", u64), ("addr", u64), ("len", u32), ("fd", ctypes.c_int32),
                ("flags", u32), ("pad", u8 * 36)]


class KvmCoalescedMmioZone(ctypes.Structure):
    """struct kvm_coalesced_mmio_zone { __u64 addr; __u32 size; union { __u32 pad;
        __u32 pio; }; };"""

    _fields_ = [("addr", u64), ("size", u32), ("pio", u32)]


class KvmRunIo(ctypes.Structure):
    """struct { __u8 direction; __u8 size; __u16 port; __u32 count; __u64 data_offset; } io;"""

    _fields_ = [("direction", u8), ("size", u8), ("port", u16), ("count", u32),
                ("data_offset", u64)]


class KvmRunMmio(ctypes.Structure):
    """struct { __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write; } mmio;"""

    _fields_ = [("phys_addr", u64), ("data", u8 * 8), ("len", u32), ("is_write", u8)]


class KvmRunInternal(ctypes.Structure):
    """struct { __u32 suberror; __u32 ndata; __u64 data[16]; } internal;"""

    _fields_ = [("suberror", u32), ("ndata", u32), ("data", u64 * 16)]


class KvmRunSystemEvent(ctypes.Structure):
    """struct { __u32 type; __u32 ndata; union { __u64 flags; __u64 data[16]; }; } system_event;"""

    _fields_ = [("type", u32), ("ndata", u32), ("data", u64 * 16)]


class KvmRunFailEntry(ctypes.Structure):
    """struct { __u64 hardware_entry_failure_reason; __u32 cpu; } fail_entry;"""

    _fields_ = [("hardware_entry_failure_reason", u64), ("cpu", u32)]


class KvmRunExit(ctypes.Union):
    """The exit-reason union of struct kvm_run (256 bytes of padding in C)."""

    _fields_ = [("io", KvmRunIo), ("mmio", KvmRunMmio), ("internal", KvmRunInternal),
                ("system_event", KvmRunSystemEvent), ("fail_entry", KvmRunFailEntry),
                ("padding", ctypes.c_char * 256)]


class KvmRun(ctypes.Structure):
    """struct kvm_run { __u8 request_interrupt_window; __u8 immediate_exit; __u8 padding1[6];
        __u32 exit_reason; __u8 ready_for_interrupt_injection; __u8 if_flag; __u16 flags;
        __u64 cr8; __u64 apic_base; union { ... }; ... };  (the head shared with userspace)"""

    _fields_ = [("request_interrupt_window", u8), ("immediate_exit", u8), ("padding1", u8 * 6),
                ("exit_reason", u32), ("ready_for_interrupt_injection", u8), ("if_flag", u8),
                ("flags", u16), ("cr8", u64), ("apic_base", u64), ("u", KvmRunExit)]
