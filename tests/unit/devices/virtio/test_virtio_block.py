"""virtio-blk on a real backing file, driven through a real split virtqueue in guest memory."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from driver import Driver
from hypothesis import given, settings
from hypothesis import strategies as st

from ember.devices.rate_limiter import RateLimiter, RateLimiterConfig, TokenBucketConfig
from ember.devices.virtio.block import Block, FileBackend
from ember.devices.virtio.block.device import VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO
from ember.devices.virtio.block.request import (
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
)
from ember.devices.virtio.mmio import VIRTIO_F_VERSION_1

SECTORS = 64


class Rig:
    def __init__(self, path: Path, read_only: bool = False, writeback: bool = False) -> None:
        self.driver = Driver(size=16)
        self.block = Block("data1", FileBackend(str(path), read_only), writeback)
        self.block.activate(self.driver.mem, [self.driver.queue], VIRTIO_F_VERSION_1)
        self.interrupts = 0
        self.resets = 0
        self.block.signal_used = self._irq
        self.block.needs_reset = self._reset

    def _irq(self) -> None:
        self.interrupts += 1

    def _reset(self) -> None:
        self.resets += 1

    def request(self, kind: int, sector: int, data: list[tuple[bytes | int, bool]]
                ) -> tuple[int, list[int]]:
        """Post one request; returns (status address, data buffer addresses)."""
        d = self.driver
        header = d.buffer(struct.pack("<IIQ", kind, 0, sector))
        bufs = [(d.buffer(b), len(b) if isinstance(b, bytes) else b, w) for b, w in data]
        status = d.buffer(b"\xee")
        d.post([(header, 16, False), *bufs, (status, 1, True)])
        return status, [a for a, _, _ in bufs]

    def status(self, addr: int) -> int:
        return self.driver.mem.read(addr, 1)[0]


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * (SECTORS * 2))
    return path


def test_read_goes_straight_into_guest_buffers(disk: Path) -> None:
    r = Rig(disk)
    status, (a, b) = r.request(VIRTIO_BLK_T_IN, 2, [(512, True), (1024, True)])
    r.block.process_queue()
    expected = disk.read_bytes()[1024:1024 + 1536]
    assert r.driver.mem.read(a, 512) + r.driver.mem.read(b, 1024) == expected
    assert r.status(status) == VIRTIO_BLK_S_OK
    assert r.driver.used()[-1][1] == 1536 + 1
    assert r.interrupts == 1
    assert r.block.metrics["read_bytes"] == 1536


def test_write_reaches_the_file(disk: Path) -> None:
    r = Rig(disk)
    payload = os.urandom(1024)
    status, _ = r.request(VIRTIO_BLK_T_OUT, 5, [(payload[:512], False), (payload[512:], False)])
    r.block.process_queue()
    assert r.status(status) == VIRTIO_BLK_S_OK
    with open(disk, "rb") as f:
        f.seek(5 * 512)
        assert f.read(1024) == payload
    assert r.driver.used()[-1][1] == 1


def test_read_only_drive_refuses_writes(disk: Path) -> None:
    before = disk.read_bytes()
    r = Rig(disk, read_only=True)
    assert r.block.features() & VIRTIO_BLK_F_RO
    status, _ = r.request(VIRTIO_BLK_T_OUT, 0, [(b"\xff" * 512, False)])
    r.block.process_queue()
    assert r.status(status) == VIRTIO_BLK_S_IOERR
    assert disk.read_bytes() == before


def test_flush_and_writeback_feature(disk: Path) -> None:
    assert not Rig(disk).block.features() & VIRTIO_BLK_F_FLUSH
    r = Rig(disk, writeback=True)
    assert r.block.features() & VIRTIO_BLK_F_FLUSH
    status, _ = r.request(VIRTIO_BLK_T_FLUSH, 0, [])
    r.block.process_queue()
    assert r.status(status) == VIRTIO_BLK_S_OK and r.block.metrics["flush_count"] == 1


def test_get_id_and_unsupported(disk: Path) -> None:
    r = Rig(disk)
    status, (buf,) = r.request(VIRTIO_BLK_T_GET_ID, 0, [(20, True)])
    bad, _ = r.request(99, 0, [])
    r.block.process_queue()
    assert r.driver.mem.read(buf, 20) == b"data1".ljust(20, b"\0")
    assert r.status(status) == VIRTIO_BLK_S_OK
    assert r.status(bad) == VIRTIO_BLK_S_UNSUPP


@pytest.mark.parametrize("sector, length", [(SECTORS - 1, 1024), (2**63, 512), (0, 100)])
def test_out_of_range_or_unaligned_is_ioerr(disk: Path, sector: int, length: int) -> None:
    r = Rig(disk)
    status, _ = r.request(VIRTIO_BLK_T_IN, sector, [(length, True)])
    r.block.process_queue()
    assert r.status(status) == VIRTIO_BLK_S_IOERR


def test_wrong_direction_is_an_invalid_request(disk: Path) -> None:
    r = Rig(disk)
    status, (buf,) = r.request(VIRTIO_BLK_T_IN, 0, [(b"\x5a" * 512, False)])
    r.block.process_queue()  # a read into a buffer the device may not write
    assert r.block.metrics["invalid_reqs_count"] == 1
    assert r.driver.used()[-1][1] == 0
    assert r.driver.mem.read(buf, 512) == b"\x5a" * 512
    assert r.status(status) == 0xEE  # no status could be given


def test_capacity_in_config_space_and_resize(disk: Path, tmp_path: Path) -> None:
    r = Rig(disk)
    assert struct.unpack("<Q", r.block.read_config(0, 8))[0] == SECTORS
    assert struct.unpack("<I", r.block.read_config(12, 4))[0] == 254  # seg_max
    bigger = tmp_path / "bigger.img"
    bigger.write_bytes(bytes(512 * 200))
    changed = []
    r.block.config_changed = lambda: changed.append(True)
    r.block.swap_backend(FileBackend(str(bigger), False))
    assert struct.unpack("<Q", r.block.read_config(0, 8))[0] == 200 and changed


def test_broken_ring_requests_reset_not_exception(disk: Path) -> None:
    r = Rig(disk)
    r.driver.write_desc(0, 2**60, 16, 0, 0)
    r.driver.publish(0)
    r.block.process_queue()
    assert r.resets == 1
    r.block.process_queue()  # stays quiet until the driver resets the device
    assert r.resets == 1


def test_rate_limiter_throttles_and_timer_resumes(disk: Path) -> None:
    r = Rig(disk)
    now = [0]
    config = RateLimiterConfig(bandwidth=None, ops=TokenBucketConfig(size=2, refill_time=1000))
    r.block.limiter = RateLimiter(config, clock=lambda: now[0])
    timers: list[tuple[int, object]] = []
    r.block.schedule = lambda ns, cb: timers.append((ns, cb))
    statuses = [r.request(VIRTIO_BLK_T_IN, 0, [(512, True)])[0] for _ in range(3)]
    r.block.process_queue()
    assert [r.status(s) for s in statuses] == [0, 0, 0xEE]  # the third waits
    assert len(timers) == 1 and r.block.metrics["rate_limiter_throttled_events"] == 1
    now[0] += 1_000_000_000
    callback = timers[0][1]
    assert callable(callback)
    callback()
    assert r.status(statuses[2]) == VIRTIO_BLK_S_OK


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([0, 1, 4, 8, 3, 0xFFFFFFFF]), sector=st.integers(0, 2**64 - 1),
       lengths=st.lists(st.integers(0, 4096), max_size=4), writable=st.lists(st.booleans(),
                                                                            max_size=4),
       status_len=st.integers(0, 2), header_len=st.integers(0, 32))
def test_random_requests_never_raise(tmp_path_factory: pytest.TempPathFactory, kind: int,
                                     sector: int, lengths: list[int], writable: list[bool],
                                     status_len: int, header_len: int) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "d.img"
    path.write_bytes(bytes(512 * 8))
    r = Rig(path)
    d = r.driver
    header = d.buffer(struct.pack("<IIQ", kind, 0, sector))
    chain = [(header, header_len, False)]
    chain += [(d.buffer(n), n, w) for n, w in zip(lengths, writable, strict=False)]
    chain.append((d.buffer(1), status_len, True))
    d.post(chain)
    r.block.process_queue()
    assert len(d.used()) == 1
    assert path.stat().st_size == 512 * 8
