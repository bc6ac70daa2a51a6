"""Does this host's KVM run guests natively, so that it can boot a stock Linux kernel?

Some hosts expose a /dev/kvm whose guests are emulated instruction by instruction: CPUID
there returns the host's values whatever KVM_SET_CPUID2 said, and Linux does not boot. The
probe runs a few real-mode instructions that read a CPUID leaf ember set to a marker value
and report it through port I/O; only a KVM that honours the CPUID it was given passes.
"""

from __future__ import annotations

import ctypes
import mmap
import struct

from ember.kvm._structs import KvmCpuidEntry2
from ember.kvm.errors import KvmError
from ember.kvm.exits import KVM_EXIT_IO_OUT, ExitReason
from ember.kvm.system import KVM_DEVICE, Kvm, VcpuFd

# Leaf 1 (feature flags). A KVM that emulates guests may honour the hypervisor leaves it was
# given and still answer leaf 1 from the host, so the probe rewrites leaf 1 ECX to a pattern
# no real CPU reports: SSE3 and the hypervisor bit only (Intel SDM vol. 2A, CPUID leaf 1).
PROBE_LEAF = 0x1
PROBE_MARKER = (1 << 31) | (1 << 0)
# ECX bit 27 (OSXSAVE) mirrors CR4.OSXSAVE at run time whatever CPUID says; ignore it.
DYNAMIC_BITS = 1 << 27
PROBE_PORT = 0x10
CODE_ADDR = 0x1000
MEM_SIZE = 0x10000
MAX_EXITS = 16
# mov eax, PROBE_LEAF; cpuid; mov eax, ecx; mov dx, PROBE_PORT; out dx, eax; hlt
PROBE_CODE = (b"\x66\xb8" + struct.pack("<I", PROBE_LEAF) + b"\x0f\xa2" + b"\x66\x89\xc8"
              + b"\xba" + struct.pack("<H", PROBE_PORT) + b"\x66\xef" + b"\xf4")


def kvm_boots_linux(path: str = KVM_DEVICE) -> bool:
    """True if ``path`` is a KVM whose guests see the CPUID they were given."""
    try:
        seen = _probe(path)
    except (KvmError, OSError):
        return False
    return seen is not None and seen & ~DYNAMIC_BITS == PROBE_MARKER


def _probe(path: str) -> int | None:
    kvm = Kvm(path)
    vm = kvm.create_vm()
    mem = mmap.mmap(-1, MEM_SIZE)
    try:
        vm.set_user_memory_region(0, 0, MEM_SIZE, ctypes.addressof(ctypes.c_char.from_buffer(mem)))
        mem[CODE_ADDR:CODE_ADDR + len(PROBE_CODE)] = PROBE_CODE
        vcpu = vm.create_vcpu(0)
        try:
            vcpu.set_cpuid([_marked(e) for e in kvm.supported_cpuid()])
            sregs = vcpu.get_sregs()
            sregs.cs.base, sregs.cs.selector = 0, 0
            vcpu.set_sregs(sregs)
            regs = vcpu.get_regs()
            regs.rip, regs.rflags = CODE_ADDR, 0x2
            vcpu.set_regs(regs)
            return _run_until_out(vcpu)
        finally:
            vcpu.close()
    finally:
        vm.close()
        kvm.close()


def _marked(entry: KvmCpuidEntry2) -> KvmCpuidEntry2:
    copy = KvmCpuidEntry2.from_buffer_copy(entry)
    if copy.function == PROBE_LEAF:
        copy.ecx = PROBE_MARKER
    return copy


def _run_until_out(vcpu: VcpuFd) -> int | None:
    io = vcpu.kvm_run.u.io
    for _ in range(MAX_EXITS):
        reason = vcpu.run()
        if reason == ExitReason.IO:
            if io.direction == KVM_EXIT_IO_OUT and io.port == PROBE_PORT and io.size == 4:
                start = int(io.data_offset)
                return int(struct.unpack("<I", vcpu.run_map[start:start + 4])[0])
        elif reason != ExitReason.INTR:
            return None
    return None
