"""The virtio block device (VIRTIO 1.2, section 5.2).

Processing runs on the VMM's I/O thread, never on a vCPU: the transport forwards queue
notifications there. Each request moves data between the backing file and guest memory
with one preadv/pwritev over zero-copy views of the guest's buffers.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

from ember.devices.rate_limiter import (
    RateLimiter,
    RateLimiterConfig,
    SpuriousRateLimiterEvent,
    TokenType,
)
from ember.devices.virtio.block.backend import BackingFileError, FileBackend
from ember.devices.virtio.block.request import (
    SECTOR_SIZE,
    VIEW,
    VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    BadRequest,
    Request,
    parse_request,
)
from ember.devices.virtio.mmio import VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX
from ember.devices.virtio.queue import Queue, QueueError
from ember.memory import GuestMemory, GuestMemoryError

# 5.2.1 Device ID
VIRTIO_ID_BLOCK = 2
# 5.2.3 Feature bits
VIRTIO_BLK_F_SEG_MAX = 1 << 2
VIRTIO_BLK_F_RO = 1 << 5
VIRTIO_BLK_F_FLUSH = 1 << 9
QUEUE_SIZE = 256
# 5.2.4: struct virtio_blk_config { le64 capacity; le32 size_max; le32 seg_max; ... }.
CONFIG = struct.Struct("<QII")
# Data segments per request: without SEG_MAX a driver may send one segment (one page) per
# request; the header and status descriptors need two more entries of the queue.
SEG_MAX = QUEUE_SIZE - 2

METRIC_NAMES = (
    "activate_fails", "cfg_fails", "no_avail_buffer", "event_fails", "execute_fails",
    "invalid_reqs_count", "flush_count", "queue_event_count", "rate_limiter_event_count",
    "update_count", "update_fails", "read_bytes", "write_bytes", "read_count", "write_count",
    "rate_limiter_throttled_events", "io_engine_throttled_events",
)


def _noop() -> None:
    pass


class Block:
    """One virtio-blk device backed by a file."""

    device_type = VIRTIO_ID_BLOCK
    queue_sizes = (QUEUE_SIZE,)

    def __init__(self, drive_id: str, backend: FileBackend, writeback: bool,
                 limiter: RateLimiterConfig | None = None) -> None:
        self.drive_id = drive_id
        self.backend = backend
        self.writeback = writeback
        self.signal_used: Callable[[], None] = _noop
        self.needs_reset: Callable[[], None] = _noop
        self.config_changed: Callable[[], None] = _noop
        # schedule(delay_ns, callback): run callback later on the I/O thread (the VMM's timer).
        self.schedule: Callable[[int, Callable[[], None]], None] = lambda _ns, _cb: None
        self.limiter = RateLimiter(limiter)
        self._timer_armed = False
        self.metrics = dict.fromkeys(METRIC_NAMES, 0)
        self._lock = threading.Lock()
        self._mem: GuestMemory | None = None
        self._queue: Queue | None = None
        self._broken = False

    # -- transport interface -----------------------------------------------------------
    def features(self) -> int:
        features = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_BLK_F_SEG_MAX
        if self.backend.read_only:
            features |= VIRTIO_BLK_F_RO
        if self.writeback:
            features |= VIRTIO_BLK_F_FLUSH
        return features

    def read_config(self, offset: int, length: int) -> bytes:
        config = CONFIG.pack(self.backend.capacity, 0, SEG_MAX)
        return config[offset:offset + length].ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        self.metrics["cfg_fails"] += 1  # the block config space is read-only

    def activate(self, mem: GuestMemory, queues: list[Queue], features: int) -> None:
        with self._lock:
            self._mem, self._queue, self._broken = mem, queues[0], False

    def reset(self) -> None:
        with self._lock:
            self._mem = self._queue = None

    # -- host side ---------------------------------------------------------------------
    def swap_backend(self, backend: FileBackend) -> None:
        """PATCH /drives: a new (or resized) backing file; the guest sees the new size."""
        with self._lock:
            old, self.backend = self.backend, backend
        old.close()
        self.metrics["update_count"] += 1
        self.config_changed()

    def process_queue(self) -> None:
        """Serve every available request; interrupt the driver if it asked for one."""
        self.metrics["queue_event_count"] += 1
        with self._lock:
            mem, queue = self._mem, self._queue
            if mem is None or queue is None or self._broken:
                return
            try:
                served = self._serve(mem, queue)
                notify = served and queue.needs_notification(mem)
            except (QueueError, GuestMemoryError):
                self._broken = True
                self.metrics["event_fails"] += 1
                notify = False
                self.needs_reset()
        if notify:
            self.signal_used()

    def _serve(self, mem: GuestMemory, queue: Queue) -> bool:
        served = False
        for _ in range(queue.size):  # bounded: at most one ring's worth per call
            chain = queue.pop(mem)
            if chain is None:
                break
            try:
                request = parse_request(chain, mem.read)
            except BadRequest:
                self.metrics["invalid_reqs_count"] += 1
                queue.add_used(mem, chain.head, 0)
                served = True
                continue
            if not self._allow(request):
                queue.undo_pop()
                self.metrics["rate_limiter_throttled_events"] += 1
                break
            written = self._execute(mem, request)
            queue.add_used(mem, chain.head, written)
            served = True
        return served

    # -- rate limiting -----------------------------------------------------------------
    def update_limiter(self, config: RateLimiterConfig) -> None:
        """PATCH /drives rate_limiter: replace the buckets that ``config`` names."""
        with self._lock:
            self.limiter.update(bandwidth=config.bandwidth, ops=config.ops)
        self.metrics["update_count"] += 1

    def _allow(self, req: Request) -> bool:
        """Take one op and the request's bytes from the limiter, or arm its retry timer."""
        limiter = self.limiter
        if limiter.is_noop:
            return True
        if not limiter.consume(1, TokenType.OPS):
            self._arm_timer()
            return False
        if req.kind in (VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT) and not limiter.consume(
                req.data_length, TokenType.BYTES):
            limiter.manual_replenish(1, TokenType.OPS)
            self._arm_timer()
            return False
        return True

    def _arm_timer(self) -> None:
        delay = self.limiter.time_until_refill_ns()
        if delay is not None and not self._timer_armed:
            self._timer_armed = True
            self.schedule(delay, self._on_timer)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer_armed = False
            self.metrics["rate_limiter_event_count"] += 1
            try:
                self.limiter.event_handler()
            except SpuriousRateLimiterEvent:
                return
        self.process_queue()

    def _execute(self, mem: GuestMemory, req: Request) -> int:
        """Run one request; returns the bytes written into guest buffers (status included)."""
        try:
            status, written = self._dispatch(mem, req)
        except (OSError, GuestMemoryError, BackingFileError):
            self.metrics["execute_fails"] += 1
            status, written = VIRTIO_BLK_S_IOERR, 0
        mem.write(req.status.addr, bytes((status,)))
        return written + 1

    def _dispatch(self, mem: GuestMemory, req: Request) -> tuple[int, int]:
        if req.kind == VIRTIO_BLK_T_IN:
            return self._read(mem, req)
        if req.kind == VIRTIO_BLK_T_OUT:
            return self._write(mem, req)
        if req.kind == VIRTIO_BLK_T_FLUSH:
            self.metrics["flush_count"] += 1
            if self.writeback and not self.backend.read_only:
                self.backend.flush()
            return VIRTIO_BLK_S_OK, 0
        if req.kind == VIRTIO_BLK_T_GET_ID:
            return self._get_id(mem, req)
        return VIRTIO_BLK_S_UNSUPP, 0

    def _in_range(self, req: Request) -> bool:
        length = req.data_length
        end_sector = req.sector + length // SECTOR_SIZE
        return length % SECTOR_SIZE == 0 and end_sector <= self.backend.capacity

    def _read(self, mem: GuestMemory, req: Request) -> tuple[int, int]:
        if not self._in_range(req):
            return VIRTIO_BLK_S_IOERR, 0
        views = list(map(VIEW, req.data))
        n = self.backend.read_into(views, req.sector * SECTOR_SIZE)
        self.metrics["read_count"] += 1
        self.metrics["read_bytes"] += n
        return VIRTIO_BLK_S_OK, n

    def _write(self, mem: GuestMemory, req: Request) -> tuple[int, int]:
        if self.backend.read_only or not self._in_range(req):
            return VIRTIO_BLK_S_IOERR, 0
        views = list(map(VIEW, req.data))
        n = self.backend.write_from(views, req.sector * SECTOR_SIZE)
        self.metrics["write_count"] += 1
        self.metrics["write_bytes"] += n
        return VIRTIO_BLK_S_OK, 0

    def _get_id(self, mem: GuestMemory, req: Request) -> tuple[int, int]:
        ident = self.drive_id.encode()[:VIRTIO_BLK_ID_BYTES].ljust(VIRTIO_BLK_ID_BYTES, b"\0")
        written = 0
        for d in req.data:
            chunk = ident[written:written + d.length]
            mem.write(d.addr, chunk)
            written += len(chunk)
        return VIRTIO_BLK_S_OK, written
