"""Errors raised by the KVM layer; each message tells the user what to do."""

from __future__ import annotations


class KvmError(Exception):
    """Base class for KVM failures."""


class KvmUnavailable(KvmError):
    """/dev/kvm is missing or cannot be opened."""


class KvmCapabilityMissing(KvmError):
    """The host KVM lacks a capability ember needs."""


class KvmIoctlError(KvmError):
    """A KVM ioctl failed."""

    def __init__(self, what: str, err: OSError) -> None:
        super().__init__(f"{what} failed: {err.strerror} (errno {err.errno})")
        self.errno = err.errno
