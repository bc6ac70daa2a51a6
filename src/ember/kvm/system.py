"""The KVM object chain in the order KVM creates it: /dev/kvm → VM fd → vCPU fd."""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any

from ember._sys.ioctl import bound_ioctl, ioctl, last_errno
from ember.kvm import _structs as s
from ember.kvm import ioctls as k
from ember.kvm.errors import (
    KvmCapabilityMissing,
    KvmError,
    KvmIoctlError,
    KvmUnavailable,
)

KVM_DEVICE = "/dev/kvm"
# Index of exit_reason among struct kvm_run's 32-bit words (byte offset 8).
EXIT_REASON_WORD = 2
# Upper bound on CPUID entries asked of KVM_GET_SUPPORTED_CPUID (KVM answers E2BIG if short).
MAX_CPUID_ENTRIES = 256

REQUIRED_CAPS = {
    k.KVM_CAP_IRQCHIP: "KVM_CAP_IRQCHIP",
    k.KVM_CAP_USER_MEMORY: "KVM_CAP_USER_MEMORY",
    k.KVM_CAP_SET_TSS_ADDR: "KVM_CAP_SET_TSS_ADDR",
    k.KVM_CAP_EXT_CPUID: "KVM_CAP_EXT_CPUID",
    k.KVM_CAP_PIT2: "KVM_CAP_PIT2",
    k.KVM_CAP_IMMEDIATE_EXIT: "KVM_CAP_IMMEDIATE_EXIT",
}


def _call(fd: int, request: int, arg: Any, what: str) -> int:
    try:
        return ioctl(fd, request, arg)
    except OSError as err:
        raise KvmIoctlError(what, err) from None


class Kvm:
    """An open /dev/kvm."""

    def __init__(self, path: str = KVM_DEVICE) -> None:
        self.fd = _open_kvm(path)
        version = _call(self.fd, k.KVM_GET_API_VERSION, None, "KVM_GET_API_VERSION")
        if version != k.KVM_API_VERSION:
            os.close(self.fd)
            raise KvmError(f"{path}: KVM API version {version}, expected {k.KVM_API_VERSION}")
        self.vcpu_mmap_size = _call(self.fd, k.KVM_GET_VCPU_MMAP_SIZE, None,
                                    "KVM_GET_VCPU_MMAP_SIZE")

    def check_extension(self, cap: int) -> int:
        return _call(self.fd, k.KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION")

    def require_capabilities(self) -> None:
        for cap, name in REQUIRED_CAPS.items():
            if not self.check_extension(cap):
                raise KvmCapabilityMissing(
                    f"the host KVM lacks {name}, which ember needs; use a newer host kernel")

    def supported_cpuid(self) -> list[s.KvmCpuidEntry2]:
        buf = s.kvm_cpuid2(MAX_CPUID_ENTRIES)()
        buf.nent = MAX_CPUID_ENTRIES
        _call(self.fd, k.KVM_GET_SUPPORTED_CPUID, buf, "KVM_GET_SUPPORTED_CPUID")
        return [s.KvmCpuidEntry2.from_buffer_copy(buf.entries[i]) for i in range(buf.nent)]

    def create_vm(self) -> VmFd:
        fd = _call(self.fd, k.KVM_CREATE_VM, 0, "KVM_CREATE_VM")
        return VmFd(fd, self)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_kvm(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KvmUnavailable(
            f"{path} does not exist: load the kvm module (kvm_intel or kvm_amd) or run on a "
            "host with virtualization; on hosts without it, run under `ember-rig run --`"
        ) from None
    except PermissionError:
        raise KvmUnavailable(
            f"{path} is not accessible: run as root or add this user to the 'kvm' group"
        ) from None


class VmFd:
    """A KVM virtual machine."""

    def __init__(self, fd: int, kvm: Kvm) -> None:
        self.fd = fd
        self.kvm = kvm

    def set_user_memory_region(self, slot: int, guest_addr: int, size: int, host_addr: int,
                               flags: int = 0) -> None:
        region = s.KvmUserspaceMemoryRegion(slot, flags, guest_addr, size, host_addr)
        _call(self.fd, k.KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")

    def set_tss_address(self, addr: int) -> None:
        _call(self.fd, k.KVM_SET_TSS_ADDR, addr, "KVM_SET_TSS_ADDR")

    def create_irqchip(self) -> None:
        _call(self.fd, k.KVM_CREATE_IRQCHIP, None, "KVM_CREATE_IRQCHIP")

    def create_pit2(self, flags: int = k.KVM_PIT_SPEAKER_DUMMY) -> None:
        _call(self.fd, k.KVM_CREATE_PIT2, s.KvmPitConfig(flags), "KVM_CREATE_PIT2")

    def set_irq_line(self, irq: int, level: int) -> None:
        _call(self.fd, k.KVM_IRQ_LINE, s.KvmIrqLevel(irq, level), "KVM_IRQ_LINE")

    def register_irqfd(self, eventfd: int, gsi: int) -> None:
        _call(self.fd, k.KVM_IRQFD, s.KvmIrqfd(fd=eventfd, gsi=gsi), "KVM_IRQFD")

    def register_ioeventfd(self, eventfd: int, addr: int, length: int,
                           datamatch: int | None = None) -> None:
        """Have KVM signal ``eventfd`` on a guest MMIO write to ``addr`` without exiting."""
        flags = 0 if datamatch is None else k.KVM_IOEVENTFD_FLAG_DATAMATCH
        req = s.KvmIoeventfd(datamatch=datamatch or 0, addr=addr, len=length, fd=eventfd,
                             flags=flags)
        _call(self.fd, k.KVM_IOEVENTFD, req, "KVM_IOEVENTFD")

    def register_coalesced_io(self, addr: int, size: int, pio: bool) -> None:
        """Have KVM queue guest writes to [addr, addr + size) in the coalesced ring
        (see ember.kvm.coalesced) instead of exiting."""
        zone = s.KvmCoalescedMmioZone(addr=addr, size=size, pio=int(pio))
        _call(self.fd, k.KVM_REGISTER_COALESCED_MMIO, zone, "KVM_REGISTER_COALESCED_MMIO")

    def unregister_coalesced_io(self, addr: int, size: int, pio: bool) -> None:
        zone = s.KvmCoalescedMmioZone(addr=addr, size=size, pio=int(pio))
        _call(self.fd, k.KVM_UNREGISTER_COALESCED_MMIO, zone, "KVM_UNREGISTER_COALESCED_MMIO")

    def create_vcpu(self, index: int) -> VcpuFd:
        fd = _call(self.fd, k.KVM_CREATE_VCPU, index, "KVM_CREATE_VCPU")
        return VcpuFd(fd, index, self.kvm.vcpu_mmap_size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class VcpuFd:
    """A KVM vCPU with its shared ``kvm_run`` page."""

    def __init__(self, fd: int, index: int, mmap_size: int) -> None:
        self.fd = fd
        self.index = index
        self.run_map = mmap.mmap(fd, mmap_size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        self.kvm_run = s.KvmRun.from_buffer(self.run_map)
        # kvm_run as 32-bit words: exit_reason is word 2; reading it this way is about
        # twice as fast as through the ctypes structure, and it is read on every exit.
        self.words = memoryview(self.run_map).cast("I")
        # KVM_RUN as one bound C call (the exit loop calls this directly): >= 0 when the
        # guest exited, with the reason in words[EXIT_REASON_WORD]; else see run_failed().
        self.enter = bound_ioctl(fd, k.KVM_RUN)

    def run(self) -> int:
        """Enter the guest until the next exit; returns a KVM_EXIT_* reason (see exits.ExitReason).

        Returns ``ExitReason.INTR`` when a signal or ``immediate_exit`` interrupted the run.
        The exit's details stay in ``self.kvm_run`` for the caller to decode.
        """
        if self.enter() >= 0:
            return self.words[EXIT_REASON_WORD]
        return self.run_failed()

    @staticmethod
    def run_failed() -> int:
        """After KVM_RUN returned -1: ExitReason.INTR for a signal or immediate_exit, else
        KvmIoctlError."""
        err = last_errno()
        if err in (errno.EINTR, errno.EAGAIN):
            return 10  # ExitReason.INTR
        raise KvmIoctlError("KVM_RUN", OSError(err, os.strerror(err)))

    def get_regs(self) -> s.KvmRegs:
        regs = s.KvmRegs()
        _call(self.fd, k.KVM_GET_REGS, regs, "KVM_GET_REGS")
        return regs

    def set_regs(self, regs: s.KvmRegs) -> None:
        _call(self.fd, k.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> s.KvmSregs:
        sregs = s.KvmSregs()
        _call(self.fd, k.KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
        return sregs

    def set_sregs(self, sregs: s.KvmSregs) -> None:
        _call(self.fd, k.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def set_fpu(self, fpu: s.KvmFpu) -> None:
        _call(self.fd, k.KVM_SET_FPU, fpu, "KVM_SET_FPU")

    def set_msrs(self, entries: list[tuple[int, int]]) -> None:
        msrs = s.kvm_msrs(len(entries))()
        msrs.nmsrs = len(entries)
        for i, (index, data) in enumerate(entries):
            msrs.entries[i].index = index
            msrs.entries[i].data = data
        written = _call(self.fd, k.KVM_SET_MSRS, msrs, "KVM_SET_MSRS")
        if written != len(entries):
            bad = entries[written][0]
            raise KvmError(f"KVM_SET_MSRS: the host refused MSR {bad:#x}")

    def set_cpuid(self, entries: list[s.KvmCpuidEntry2]) -> None:
        buf = s.kvm_cpuid2(len(entries))()
        buf.nent = len(entries)
        for i, entry in enumerate(entries):
            buf.entries[i] = entry
        _call(self.fd, k.KVM_SET_CPUID2, buf, "KVM_SET_CPUID2")

    def get_lapic(self) -> s.KvmLapicState:
        state = s.KvmLapicState()
        _call(self.fd, k.KVM_GET_LAPIC, state, "KVM_GET_LAPIC")
        return state

    def set_lapic(self, state: s.KvmLapicState) -> None:
        _call(self.fd, k.KVM_SET_LAPIC, state, "KVM_SET_LAPIC")

    def close(self) -> None:
        if self.fd >= 0:
            del self.kvm_run
            self.words.release()
            self.run_map.close()
            os.close(self.fd)
            self.fd = -1
