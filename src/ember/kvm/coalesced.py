"""The coalesced I/O ring: guest writes KVM records instead of exiting to the VMM.

KVM API, "KVM_(UN)REGISTER_COALESCED_MMIO": writes that fall in a registered zone are
appended to a ring shared with userspace, which must apply them (in order) before it
handles the next exit. The ring is one page of every vCPU's mapping, at the page offset
that KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO) answers; all vCPUs share it.

    struct kvm_coalesced_mmio_ring { __u32 first, last; struct kvm_coalesced_mmio e[]; };
    struct kvm_coalesced_mmio { __u64 phys_addr; __u32 len; __u32 pio; __u8 data[8]; };

KVM only ever appends at ``last`` and reads ``first``; the VMM consumes at ``first``.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable

PAGE_SIZE = mmap.PAGESIZE
RING_HEADER = struct.Struct("<II")
ENTRY = struct.Struct("<QII8s")
# KVM_COALESCED_MMIO_MAX: the entries that fit in the page after the header.
RING_CAPACITY = (PAGE_SIZE - RING_HEADER.size) // ENTRY.size
ENTRY_DATA_MAX = 8

# (address or port, length, data, is port I/O)
WriteHandler = Callable[[int, int, bytes, bool], None]


class RingError(Exception):
    """The ring's indices are out of range: the shared page cannot be trusted."""


class CoalescedRing:
    """A view of the ring in a vCPU's kvm_run mapping. Not thread-safe: one consumer at
    a time (the caller serializes drains)."""

    def __init__(self, run_map: mmap.mmap, page_offset: int) -> None:
        self._base = page_offset * PAGE_SIZE
        if page_offset <= 0 or self._base + PAGE_SIZE > len(run_map):
            raise RingError(f"coalesced ring page {page_offset} is outside the vCPU mapping")
        self._map = run_map
        self._entries = self._base + RING_HEADER.size
        # first and last as 32-bit words: checked on every exit, so kept cheap.
        self.indices = memoryview(run_map)[self._base:self._base + RING_HEADER.size].cast("I")

    def pending(self) -> bool:
        return self.indices[0] != self.indices[1]

    def drain(self, handle: WriteHandler) -> int:
        """Hand every queued write, oldest first, to ``handle``; returns how many."""
        indices = self.indices
        first, last = indices[0], indices[1]
        if first >= RING_CAPACITY or last >= RING_CAPACITY:
            raise RingError(f"coalesced ring indices out of range: first={first} last={last}")
        count = 0
        while first != last and count < RING_CAPACITY:
            addr, length, pio, data = ENTRY.unpack_from(self._map,
                                                        self._entries + first * ENTRY.size)
            handle(addr, min(length, ENTRY_DATA_MAX), data, bool(pio))
            first = (first + 1) % RING_CAPACITY
            indices[0] = first
            count += 1
        return count
