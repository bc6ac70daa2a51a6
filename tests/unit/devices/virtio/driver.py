"""A minimal virtio driver for tests: lays out a split virtqueue in guest memory and posts
descriptor chains, as a guest kernel would (VIRTIO 1.2, 2.7)."""

from __future__ import annotations

import struct

from ember.devices.virtio.queue import DESC, Queue
from ember.memory import GuestMemory

MEM_SIZE = 1 << 20
DESC_TABLE = 0x1000
AVAIL = 0x2000
USED = 0x3000
DATA = 0x10000


class Driver:
    def __init__(self, size: int = 16, event_idx: bool = False) -> None:
        self.mem = GuestMemory([(0, MEM_SIZE)])
        self.queue = Queue(size)
        self.queue.size = size
        self.queue.desc_table, self.queue.avail_ring, self.queue.used_ring = DESC_TABLE, AVAIL, USED
        self.queue.ready = True
        self.queue.event_idx = event_idx
        self.size = size
        self.next_desc = 0
        self.avail_idx = 0
        self.next_data = DATA

    def buffer(self, data: bytes | int) -> int:
        """Place bytes (or reserve n zero bytes) in guest memory; returns the address."""
        raw = bytes(data) if isinstance(data, int) else data
        addr = self.next_data
        self.mem.write(addr, raw)
        self.next_data += (len(raw) + 15) // 16 * 16 or 16
        return addr

    def write_desc(self, index: int, addr: int, length: int, flags: int, nxt: int,
                   table: int = DESC_TABLE) -> None:
        self.mem.write(table + DESC.size * index, DESC.pack(addr, length, flags, nxt))

    def post(self, buffers: list[tuple[int, int, bool]]) -> int:
        """Post a chain of (addr, len, device_writable); returns its head index."""
        head = self.next_desc
        for i, (addr, length, writable) in enumerate(buffers):
            index = (head + i) % self.size
            last = i == len(buffers) - 1
            flags = (2 if writable else 0) | (0 if last else 1)
            self.write_desc(index, addr, length, flags, (index + 1) % self.size)
        self.next_desc = (head + len(buffers)) % self.size
        self.publish(head)
        return head

    def publish(self, head: int) -> None:
        slot = AVAIL + 4 + 2 * (self.avail_idx % self.size)
        self.mem.write(slot, struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write(AVAIL + 2, struct.pack("<H", self.avail_idx))

    def used(self) -> list[tuple[int, int]]:
        idx = struct.unpack("<H", self.mem.read(USED + 2, 2))[0]
        return [struct.unpack("<II", self.mem.read(USED + 4 + 8 * (i % self.size), 8))
                for i in range(idx)]
