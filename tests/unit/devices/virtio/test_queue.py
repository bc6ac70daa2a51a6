"""The split virtqueue parser against well-formed and hostile rings."""

from __future__ import annotations

import struct

import pytest
from driver import AVAIL, DESC_TABLE, MEM_SIZE, Driver
from hypothesis import given, settings
from hypothesis import strategies as st

from ember.devices.virtio.queue import DESC, Queue, QueueError


def test_pop_returns_chain_in_order() -> None:
    d = Driver()
    a, b = d.buffer(b"hdr"), d.buffer(64)
    head = d.post([(a, 3, False), (b, 64, True)])
    chain = d.queue.pop(d.mem)
    assert chain is not None and chain.head == head
    assert [(x.addr, x.length, x.writable) for x in chain.descriptors] == [
        (a, 3, False), (b, 64, True)]
    assert d.queue.pop(d.mem) is None


def test_add_used_and_notification_without_event_idx() -> None:
    d = Driver()
    d.post([(d.buffer(8), 8, True)])
    chain = d.queue.pop(d.mem)
    assert chain is not None
    d.queue.add_used(d.mem, chain.head, 8)
    assert d.used() == [(chain.head, 8)]
    assert d.queue.needs_notification(d.mem)
    d.mem.write(AVAIL, struct.pack("<H", 1))  # VIRTQ_AVAIL_F_NO_INTERRUPT
    d.queue.add_used(d.mem, chain.head, 8)
    assert not d.queue.needs_notification(d.mem)


def test_event_idx_suppresses_until_used_event() -> None:
    d = Driver(size=8, event_idx=True)
    used_event_addr = AVAIL + 4 + 2 * 8
    d.mem.write(used_event_addr, struct.pack("<H", 2))  # interrupt after the 3rd used entry
    results = []
    for _ in range(3):
        d.post([(d.buffer(8), 8, True)])
        chain = d.queue.pop(d.mem)
        assert chain is not None
        d.queue.add_used(d.mem, chain.head, 1)
        results.append(d.queue.needs_notification(d.mem))
    assert results == [False, False, True]


def test_descriptor_loop_is_bounded() -> None:
    d = Driver(size=4)
    addr = d.buffer(16)
    d.write_desc(0, addr, 16, 1, 1)
    d.write_desc(1, addr, 16, 1, 0)  # 1 → 0 → 1 → …
    d.publish(0)
    with pytest.raises(QueueError, match="loop"):
        d.queue.pop(d.mem)


@pytest.mark.parametrize("addr, length", [(MEM_SIZE - 8, 16), (MEM_SIZE + 4096, 1),
                                          (2**64 - 8, 16)])
def test_buffer_outside_memory(addr: int, length: int) -> None:
    d = Driver()
    d.write_desc(0, addr, length, 0, 0)
    d.publish(0)
    with pytest.raises(QueueError, match="outside guest memory"):
        d.queue.pop(d.mem)


def test_head_index_out_of_range() -> None:
    d = Driver(size=4)
    d.publish(9)
    with pytest.raises(QueueError, match="outside"):
        d.queue.pop(d.mem)


def test_avail_index_running_ahead() -> None:
    d = Driver(size=4)
    d.mem.write(AVAIL + 2, struct.pack("<H", 100))
    with pytest.raises(QueueError, match="ahead"):
        d.queue.pop(d.mem)


def test_indirect_table() -> None:
    d = Driver()
    table = d.buffer(DESC.size * 2)
    a, b = d.buffer(16), d.buffer(32)
    d.write_desc(0, a, 16, 1, 1, table=table)
    d.write_desc(1, b, 32, 2, 0, table=table)
    d.write_desc(0, table, DESC.size * 2, 4, 0)
    d.publish(0)
    chain = d.queue.pop(d.mem)
    assert chain is not None
    assert [(x.addr, x.writable) for x in chain.descriptors] == [(a, False), (b, True)]


def test_nested_indirect_refused() -> None:
    d = Driver()
    table = d.buffer(DESC.size)
    d.write_desc(0, table, DESC.size, 4, 0, table=table)
    d.write_desc(0, table, DESC.size, 4, 0)
    d.publish(0)
    with pytest.raises(QueueError, match="indirect"):
        d.queue.pop(d.mem)


def test_queue_validity_checks() -> None:
    d = Driver()
    assert d.queue.is_valid(d.mem)
    d.queue.size = 3  # not a power of two
    assert not d.queue.is_valid(d.mem)
    d.queue.size = 16
    d.queue.desc_table = MEM_SIZE - 16
    assert not d.queue.is_valid(d.mem)
    d.queue.desc_table = DESC_TABLE + 1
    assert not d.queue.is_valid(d.mem)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), min_size=8,
                max_size=8),
       st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8),
       st.integers(0, 0xFFFF))
def test_random_rings_never_crash_or_hang(descs: list[tuple[int, int, int, int]],
                                          ring: list[int], avail_idx: int) -> None:
    """Whatever the guest writes, pop() returns a chain of in-memory buffers or QueueError."""
    d = Driver(size=8)
    for i, (addr, length, flags, nxt) in enumerate(descs):
        d.write_desc(i, addr, length, flags, nxt)
    for i, head in enumerate(ring):
        d.mem.write(AVAIL + 4 + 2 * i, struct.pack("<H", head))
    d.mem.write(AVAIL + 2, struct.pack("<H", avail_idx))
    for _ in range(10):
        try:
            chain = d.queue.pop(d.mem)
        except QueueError:
            return
        if chain is None:
            return
        assert 1 <= len(chain.descriptors) <= 8 * 8
        for desc in chain.descriptors:
            assert d.mem.contains(desc.addr, desc.length)


def test_reset_restores_defaults() -> None:
    q = Queue(16)
    q.size, q.ready, q.next_avail = 8, True, 5
    q.reset()
    assert (q.size, q.ready, q.next_avail) == (16, False, 0)
