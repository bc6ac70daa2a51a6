"""KVM ioctl request numbers, computed as ``include/uapi/linux/kvm.h`` defines them."""

from __future__ import annotations

import ctypes

from ember._sys.ioctl import io, ior, iow, iowr
from ember.kvm import _structs as s

KVMIO = 0xAE

# System ioctls (on the /dev/kvm fd).
KVM_GET_API_VERSION = io(KVMIO, 0x00)
KVM_CREATE_VM = io(KVMIO, 0x01)
KVM_CHECK_EXTENSION = io(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE = io(KVMIO, 0x04)
KVM_GET_SUPPORTED_CPUID = iowr(KVMIO, 0x05, s.KvmCpuid2Header)

# VM ioctls.
KVM_CREATE_VCPU = io(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION = iow(KVMIO, 0x46, s.KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = io(KVMIO, 0x47)
KVM_SET_IDENTITY_MAP_ADDR = iow(KVMIO, 0x48, ctypes.c_uint64)
KVM_CREATE_IRQCHIP = io(KVMIO, 0x60)
KVM_IRQ_LINE = iow(KVMIO, 0x61, s.KvmIrqLevel)
KVM_REGISTER_COALESCED_MMIO = iow(KVMIO, 0x67, s.KvmCoalescedMmioZone)
KVM_UNREGISTER_COALESCED_MMIO = iow(KVMIO, 0x68, s.KvmCoalescedMmioZone)
KVM_IRQFD = iow(KVMIO, 0x76, s.KvmIrqfd)
KVM_CREATE_PIT2 = iow(KVMIO, 0x77, s.KvmPitConfig)
KVM_IOEVENTFD = iow(KVMIO, 0x79, s.KvmIoeventfd)

# vCPU ioctls.
KVM_RUN = io(KVMIO, 0x80)
KVM_GET_REGS = ior(KVMIO, 0x81, s.KvmRegs)
KVM_SET_REGS = iow(KVMIO, 0x82, s.KvmRegs)
KVM_GET_SREGS = ior(KVMIO, 0x83, s.KvmSregs)
KVM_SET_SREGS = iow(KVMIO, 0x84, s.KvmSregs)
KVM_SET_MSRS = iow(KVMIO, 0x89, s.KvmMsrsHeader)
KVM_GET_FPU = ior(KVMIO, 0x8C, s.KvmFpu)
KVM_SET_FPU = iow(KVMIO, 0x8D, s.KvmFpu)
KVM_GET_LAPIC = ior(KVMIO, 0x8E, s.KvmLapicState)
KVM_SET_LAPIC = iow(KVMIO, 0x8F, s.KvmLapicState)
KVM_SET_CPUID2 = iow(KVMIO, 0x90, s.KvmCpuid2Header)

# KVM_CHECK_EXTENSION capabilities (include/uapi/linux/kvm.h).
KVM_CAP_IRQCHIP = 0
KVM_CAP_HLT = 1
KVM_CAP_USER_MEMORY = 3
KVM_CAP_SET_TSS_ADDR = 4
KVM_CAP_EXT_CPUID = 7
KVM_CAP_COALESCED_MMIO = 15  # answers the ring's page offset in the vCPU mapping, or 0
KVM_CAP_IRQ_ROUTING = 25
KVM_CAP_IRQ_INJECT_STATUS = 26
KVM_CAP_IOEVENTFD = 36
KVM_CAP_PIT2 = 33
KVM_CAP_IRQFD = 32
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_COALESCED_PIO = 162

KVM_API_VERSION = 12
# struct kvm_ioeventfd flags
KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0
# KVM_CREATE_PIT2 flag: emulate the PC speaker port 0x61 as a dummy.
KVM_PIT_SPEAKER_DUMMY = 1
