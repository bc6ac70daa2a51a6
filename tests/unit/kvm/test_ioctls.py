"""ioctl numbers computed by ember equal the values the kernel headers produce."""

import ctypes

import pytest

from ember._sys.ioctl import _ioc, io, ior, iow, iowr
from ember.kvm import ioctls as k

# Values as compiled from <linux/kvm.h> on x86_64.
KNOWN = {
    "KVM_GET_API_VERSION": 0xAE00,
    "KVM_CREATE_VM": 0xAE01,
    "KVM_GET_VCPU_MMAP_SIZE": 0xAE04,
    "KVM_GET_SUPPORTED_CPUID": 0xC008AE05,
    "KVM_CREATE_VCPU": 0xAE41,
    "KVM_SET_USER_MEMORY_REGION": 0x4020AE46,
    "KVM_SET_TSS_ADDR": 0xAE47,
    "KVM_CREATE_IRQCHIP": 0xAE60,
    "KVM_IRQ_LINE": 0x4008AE61,
    "KVM_IRQFD": 0x4020AE76,
    "KVM_CREATE_PIT2": 0x4040AE77,
    "KVM_IOEVENTFD": 0x4040AE79,
    "KVM_RUN": 0xAE80,
    "KVM_GET_REGS": 0x8090AE81,
    "KVM_SET_REGS": 0x4090AE82,
    "KVM_GET_SREGS": 0x8138AE83,
    "KVM_SET_SREGS": 0x4138AE84,
    "KVM_SET_MSRS": 0x4008AE89,
    "KVM_GET_FPU": 0x81A0AE8C,
    "KVM_SET_FPU": 0x41A0AE8D,
    "KVM_GET_LAPIC": 0x8400AE8E,
    "KVM_SET_LAPIC": 0x4400AE8F,
    "KVM_SET_CPUID2": 0x4008AE90,
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_kvm_ioctl_numbers(name: str) -> None:
    assert getattr(k, name) == KNOWN[name], f"{name} = {getattr(k, name):#x}"


def test_encoders_directions() -> None:
    assert io(0xAE, 1) == 0xAE01
    assert ior(0x54, 0x13, ctypes.c_int) == 0x80045413
    assert iow(0x54, 0x14, ctypes.c_int) == 0x40045414
    assert iowr(0xAE, 5, ctypes.c_uint64) == 0xC008AE05


def test_size_overflow_rejected() -> None:
    with pytest.raises(ValueError):
        _ioc(1, 0xAE, 0, 1 << 14)
