"""The coalesced ring reader on an anonymous page laid out as KVM lays it out (the real ring
is exercised on /dev/kvm in tests/unit/vmm/test_vcpu_on_kvm.py)."""

import mmap

import pytest

from ember.kvm.coalesced import (
    ENTRY,
    PAGE_SIZE,
    RING_CAPACITY,
    RING_HEADER,
    CoalescedRing,
    RingError,
)

Write = tuple[int, int, int, bytes]


def _ring(entries: list[Write], first: int = 0) -> tuple[mmap.mmap, CoalescedRing]:
    page = mmap.mmap(-1, 2 * PAGE_SIZE)
    base = PAGE_SIZE
    for i, entry in enumerate(entries):
        ENTRY.pack_into(page, base + RING_HEADER.size + ((first + i) % RING_CAPACITY) * ENTRY.size,
                        *entry)
    RING_HEADER.pack_into(page, base, first, (first + len(entries)) % RING_CAPACITY)
    return page, CoalescedRing(page, 1)


def test_capacity_is_kvms() -> None:
    assert RING_CAPACITY == 170  # (4096 - 8) / 24 on x86_64


def test_drains_in_order_across_the_wrap_and_advances_first() -> None:
    writes = [(0x3F8, 1, 1, bytes([c]) + bytes(7)) for c in b"wrap"]
    page, ring = _ring(writes, first=RING_CAPACITY - 2)
    seen: list[tuple[int, int, bytes, bool]] = []
    assert ring.pending()
    assert ring.drain(lambda a, n, d, pio: seen.append((a, n, d[:n], pio))) == 4
    assert [d for _, _, d, _ in seen] == [b"w", b"r", b"a", b"p"]
    assert all(a == 0x3F8 and pio for a, _, _, pio in seen)
    assert not ring.pending() and ring.indices[0] == 2


def test_length_is_clamped_to_the_entry() -> None:
    page, ring = _ring([(0x10, 4096, 0, b"12345678")])
    seen: list[int] = []
    ring.drain(lambda a, n, d, pio: seen.append(n))
    assert seen == [8]


@pytest.mark.parametrize("first,last", [(RING_CAPACITY, 0), (0, RING_CAPACITY + 5),
                                        (0xFFFFFFFF, 3)])
def test_indices_out_of_range_are_refused(first: int, last: int) -> None:
    page, ring = _ring([])
    RING_HEADER.pack_into(page, PAGE_SIZE, first, last)
    with pytest.raises(RingError):
        ring.drain(lambda *a: None)


def test_a_ring_page_outside_the_mapping_is_refused() -> None:
    with pytest.raises(RingError):
        CoalescedRing(mmap.mmap(-1, PAGE_SIZE), 1)
