"""Vectored transfers into guest buffers: short transfers continue where they stopped."""

from __future__ import annotations

import os

import pytest

from ember.devices.virtio.block.backend import IOV_MAX, _vectored


def _chunked_reader(source: bytes, most: int):  # type: ignore[no-untyped-def]
    """A preadv that moves at most ``most`` bytes per call, as a real one may."""
    calls = []

    def preadv(fd: int, views: list[memoryview], offset: int) -> int:
        calls.append(len(views))
        moved = 0
        for view in views:
            take = min(len(view), most - moved, len(source) - offset - moved)
            if take <= 0:
                break
            view[:take] = source[offset + moved:offset + moved + take]
            moved += take
        return moved

    return preadv, calls


@pytest.mark.parametrize("most", [1, 7, 512, 1000, 1 << 20])
def test_short_reads_continue_in_place(most: int) -> None:
    source = os.urandom(8192)
    buffers = [bytearray(n) for n in (100, 4096, 1, 2000, 995)]
    preadv, _ = _chunked_reader(source, most)
    total = _vectored(preadv, 0, [memoryview(b) for b in buffers], 1000)
    assert total == sum(len(b) for b in buffers)
    assert b"".join(buffers) == source[1000:1000 + total]


def test_more_views_than_iov_max_take_several_calls() -> None:
    source = os.urandom(IOV_MAX + 10)
    buffers = [bytearray(1) for _ in range(IOV_MAX + 10)]
    preadv, calls = _chunked_reader(source, 1 << 30)
    assert _vectored(preadv, 0, [memoryview(b) for b in buffers], 0) == IOV_MAX + 10
    assert calls == [IOV_MAX, 10]
    assert b"".join(buffers) == source


def test_a_file_that_ends_early_is_an_io_error() -> None:
    preadv, _ = _chunked_reader(b"abc", 1 << 20)
    with pytest.raises(OSError, match="short transfer"):
        _vectored(preadv, 0, [memoryview(bytearray(10))], 0)


def test_no_views_moves_nothing() -> None:
    assert _vectored(lambda fd, views, offset: 0, 0, [], 0) == 0
