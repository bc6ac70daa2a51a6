"""Split virtqueues (VIRTIO 1.2, section 2.7), read from guest memory as hostile input.

Every index, address and length comes from the guest. The parser checks each descriptor
against guest memory, bounds every chain by the queue size (a loop cannot spin forever),
allows one level of indirection only (2.7.5.3.1), and reports a broken ring as
:class:`QueueError` so the device can enter DEVICE_NEEDS_RESET instead of raising.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from typing import NamedTuple

from ember.memory import GuestMemory, GuestMemoryError

# 2.7.5 The Virtqueue Descriptor Table: struct virtq_desc { le64 addr; le32 len; le16 flags;
# le16 next; }
DESC = struct.Struct("<QIHH")
DESC_SIZE = DESC.size
VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
# 2.7.6 The Virtqueue Available Ring: le16 flags; le16 idx; le16 ring[size]; le16 used_event;
VIRTQ_AVAIL_F_NO_INTERRUPT = 1
AVAIL_RING_OFFSET = 4
# 2.7.8 The Virtqueue Used Ring: le16 flags; le16 idx; struct { le32 id; le32 len; } ring[size];
# le16 avail_event;
USED_RING_OFFSET = 4
USED_ELEM = struct.Struct("<II")
# 2.7: queue sizes are powers of two up to 32768; ember offers at most 256 entries.
MAX_QUEUE_SIZE = 256
U16 = 0xFFFF


class QueueError(Exception):
    """The guest broke the virtqueue protocol; the device must be reset."""


class Descriptor(NamedTuple):
    """One guest buffer of a chain, checked to lie wholly in guest memory, with its
    zero-copy view (ready for preadv/pwritev)."""

    addr: int
    length: int
    writable: bool
    view: memoryview


class Chain(NamedTuple):
    head: int
    descriptors: tuple[Descriptor, ...]


class Queue:
    """One split virtqueue as configured by the driver through the transport."""

    def __init__(self, max_size: int = MAX_QUEUE_SIZE) -> None:
        self.max_size = max_size
        self.size = max_size
        self.ready = False
        self.desc_table = 0
        self.avail_ring = 0
        self.used_ring = 0
        self.event_idx = False
        self.next_avail = 0
        self.next_used = 0
        self._signalled_used = 0

    def reset(self) -> None:
        self.__init__(self.max_size)  # type: ignore[misc]

    def is_valid(self, mem: GuestMemory) -> bool:
        """The driver's configuration fits in guest memory (2.7: alignment and sizes)."""
        size = self.size
        if not 0 < size <= self.max_size or size & (size - 1):
            return False
        if self.desc_table % 16 or self.avail_ring % 2 or self.used_ring % 4:
            return False
        return (mem.contains(self.desc_table, DESC.size * size)
                and mem.contains(self.avail_ring, 6 + 2 * size)
                and mem.contains(self.used_ring, 6 + USED_ELEM.size * size))

    # -- available ring ----------------------------------------------------------------
    def _avail_idx(self, mem: GuestMemory) -> int:
        return int.from_bytes(mem.view(self.avail_ring + 2, 2), "little")

    def pending(self, mem: GuestMemory) -> int:
        """How many chains the driver has made available that the device has not taken."""
        count = (self._avail_idx(mem) - self.next_avail) & U16
        if count > self.size:
            raise QueueError(f"available index ran {count} entries ahead of a {self.size}-entry"
                             " queue")
        return count

    def pop(self, mem: GuestMemory) -> Chain | None:
        """The next available descriptor chain, validated; None when the ring is empty."""
        if not self.pending(mem):
            return None
        slot = self.avail_ring + AVAIL_RING_OFFSET + 2 * (self.next_avail % self.size)
        head = int.from_bytes(mem.view(slot, 2), "little")
        self.next_avail = (self.next_avail + 1) & U16
        if self.event_idx:
            self._set_avail_event(mem)
        return Chain(head, self._walk(mem, head))

    def undo_pop(self) -> None:
        """Give back the chain just popped (the device could not process it yet)."""
        self.next_avail = (self.next_avail - 1) & U16

    def _walk(self, mem: GuestMemory, head: int) -> tuple[Descriptor, ...]:
        return self._follow(mem, self.desc_table, self.size, head, top_level=True)

    def _follow(self, mem: GuestMemory, table: int, count: int, index: int,
                top_level: bool) -> tuple[Descriptor, ...]:
        """Walk one chain through ``table``; at most ``count`` steps, so loops end."""
        # The whole table in one bounds-checked view: this loop runs once per buffer of
        # every request, so it does no more than unpack, check and append.
        try:
            raw = mem.view(table, DESC.size * count)
        except GuestMemoryError as err:
            raise QueueError(str(err)) from None
        # GuestMemory.view, inlined, and descriptors built with tuple.__new__ (a
        # NamedTuple's own constructor is a Python-level call).
        unpack, find, (bases, sizes, whole) = DESC.unpack_from, bisect_right, mem.index
        new = tuple.__new__
        out: list[Descriptor] = []
        append = out.append
        for _ in range(count):
            if index >= count:
                raise QueueError(f"descriptor index {index} is outside a {count}-entry table")
            addr, length, flags, nxt = unpack(raw, DESC_SIZE * index)
            if flags & VIRTQ_DESC_F_INDIRECT:
                if not top_level or out or flags & VIRTQ_DESC_F_NEXT:
                    raise QueueError("an indirect table must be the only descriptor of a chain")
                return self._indirect(mem, addr, length)
            region = find(bases, addr) - 1
            if region < 0 or (offset := addr - bases[region]) + length > sizes[region]:
                raise QueueError(f"descriptor buffer {addr:#x}+{length:#x} is outside guest "
                                 "memory")
            append(new(Descriptor, (addr, length, flags & VIRTQ_DESC_F_WRITE != 0,
                                    whole[region][offset:offset + length])))
            if not flags & VIRTQ_DESC_F_NEXT:
                return tuple(out)
            index = nxt
        raise QueueError(f"descriptor chain is longer than its {count}-entry table (a loop?)")

    def _indirect(self, mem: GuestMemory, table: int, length: int) -> tuple[Descriptor, ...]:
        # 2.7.5.3: the table holds len/16 descriptors; ember caps it at the queue size.
        if length == 0 or length % DESC.size or length // DESC.size > self.max_size:
            raise QueueError(f"indirect descriptor table of {length} bytes")
        if not mem.contains(table, length):
            raise QueueError("indirect descriptor table outside guest memory")
        return self._follow(mem, table, length // DESC.size, 0, top_level=False)

    # -- used ring ---------------------------------------------------------------------
    def add_used(self, mem: GuestMemory, head: int, written: int) -> None:
        slot = self.used_ring + USED_RING_OFFSET + USED_ELEM.size * (self.next_used % self.size)
        try:
            mem.view(slot, USED_ELEM.size)[:] = USED_ELEM.pack(head, written)
            self.next_used = (self.next_used + 1) & U16
            mem.view(self.used_ring + 2, 2)[:] = self.next_used.to_bytes(2, "little")
        except GuestMemoryError as err:
            raise QueueError(str(err)) from None

    def needs_notification(self, mem: GuestMemory) -> bool:
        """Whether the driver wants an interrupt for the used entries added since the last one
        (2.7.7.2 with VIRTIO_F_EVENT_IDX, 2.7.7.1 without)."""
        new, old = self.next_used, self._signalled_used
        self._signalled_used = new
        if not self.event_idx:
            flags = int.from_bytes(mem.view(self.avail_ring, 2), "little")
            return not flags & VIRTQ_AVAIL_F_NO_INTERRUPT
        used_event = int.from_bytes(
            mem.view(self.avail_ring + AVAIL_RING_OFFSET + 2 * self.size, 2), "little")
        return (new - used_event - 1) & U16 < (new - old) & U16

    def _set_avail_event(self, mem: GuestMemory) -> None:
        addr = self.used_ring + USED_RING_OFFSET + USED_ELEM.size * self.size
        mem.view(addr, 2)[:] = self.next_avail.to_bytes(2, "little")
