"""Typed KVM exits, decoded from the shared ``kvm_run`` page.

Exit reason numbers are ``KVM_EXIT_*`` from ``include/uapi/linux/kvm.h``.
"""

from __future__ import annotations

import enum


class ExitReason(enum.IntEnum):
    UNKNOWN = 0
    EXCEPTION = 1
    IO = 2
    HYPERCALL = 3
    DEBUG = 4
    HLT = 5
    MMIO = 6
    IRQ_WINDOW_OPEN = 7
    SHUTDOWN = 8
    FAIL_ENTRY = 9
    INTR = 10
    SET_TPR = 11
    TPR_ACCESS = 12
    NMI = 16
    INTERNAL_ERROR = 17
    SYSTEM_EVENT = 24


# struct kvm_run io.direction
KVM_EXIT_IO_IN = 0
KVM_EXIT_IO_OUT = 1

# struct kvm_run system_event.type
KVM_SYSTEM_EVENT_SHUTDOWN = 1
KVM_SYSTEM_EVENT_RESET = 2
KVM_SYSTEM_EVENT_CRASH = 3


def exit_name(reason: int) -> str:
    """A stable lower-case name for an exit reason, for counters and logs."""
    try:
        return ExitReason(reason).name.lower()
    except ValueError:
        return f"reason_{reason}"
