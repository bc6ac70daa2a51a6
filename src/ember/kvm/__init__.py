"""Typed wrappers for /dev/kvm, VM and vCPU file descriptors."""

from ember.kvm.errors import KvmCapabilityMissing, KvmError, KvmIoctlError, KvmUnavailable
from ember.kvm.exits import ExitReason
from ember.kvm.system import Kvm, VcpuFd, VmFd

__all__ = ["ExitReason", "Kvm", "KvmCapabilityMissing", "KvmError", "KvmIoctlError",
           "KvmUnavailable", "VcpuFd", "VmFd"]
