"""The virtio-mmio transport, version 2 (VIRTIO 1.2, section 4.2.2), as a state machine.

The transport owns the register file, feature negotiation, the device status and the
queue configuration. It hands a configured device its queues when the driver sets
DRIVER_OK, and forwards queue notifications to an injected ``notify`` callable (the VMM
turns them into work on its I/O thread). Interrupts leave through an injected callable.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from ember.devices.virtio.queue import Queue
from ember.memory import GuestMemory

# 4.2.2 MMIO Device Register Layout (offsets)
MAGIC_VALUE = 0x000
VERSION = 0x004
DEVICE_ID = 0x008
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_READY = 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
CONFIG_GENERATION = 0x0FC
CONFIG_SPACE = 0x100
MAGIC = 0x74726976  # "virt"
MMIO_VERSION = 2
VENDOR = 0x454D4252  # "EMBR"
# 2.1 Device Status Field
STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8
STATUS_DEVICE_NEEDS_RESET = 64
STATUS_FAILED = 128
# 4.2.2: InterruptStatus bits
INT_USED_BUFFER = 1
INT_CONFIG_CHANGE = 2
# 6 Reserved Feature Bits
VIRTIO_F_VERSION_1 = 1 << 32
VIRTIO_RING_F_EVENT_IDX = 1 << 29
U32 = 0xFFFFFFFF


class VirtioDevice(Protocol):
    """What a device behind the transport provides."""

    @property
    def device_type(self) -> int: ...
    @property
    def queue_sizes(self) -> Sequence[int]: ...

    def features(self) -> int: ...
    def read_config(self, offset: int, length: int) -> bytes: ...
    def write_config(self, offset: int, data: bytes) -> None: ...
    def activate(self, mem: GuestMemory, queues: list[Queue], features: int) -> None: ...
    def reset(self) -> None: ...


class MmioTransport:
    """One device's 4 KiB register window. Thread-safe."""

    def __init__(self, device: VirtioDevice, mem: GuestMemory,
                 interrupt: Callable[[], None], notify: Callable[[int], None]) -> None:
        self.device = device
        self.mem = mem
        self._interrupt = interrupt
        self._notify = notify
        self.queues = [Queue(size) for size in device.queue_sizes]
        self.lock = threading.Lock()  # registers and interrupt status
        self._reset_state()

    def _reset_state(self) -> None:
        self.status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.queue_sel = 0
        self.interrupt_status = 0
        self.config_generation = 0
        self.activated = False
        for q in self.queues:
            q.reset()

    # -- signalling from the device side -----------------------------------------------
    def signal_used(self) -> None:
        with self.lock:
            self.interrupt_status |= INT_USED_BUFFER
        self._interrupt()

    def signal_config_change(self) -> None:
        with self.lock:
            self.interrupt_status |= INT_CONFIG_CHANGE
            self.config_generation = (self.config_generation + 1) & U32
        self._interrupt()

    def needs_reset(self) -> None:
        """The device found the driver's rings broken (2.1.2)."""
        with self.lock:
            self.status |= STATUS_DEVICE_NEEDS_RESET
        if self.status & STATUS_DRIVER_OK:
            self.signal_config_change()

    # -- guest register accesses -------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        if offset >= CONFIG_SPACE:
            return self.device.read_config(offset - CONFIG_SPACE, length)
        if length != 4 or offset % 4:
            return bytes(length)  # 4.2.2.2: registers are 32-bit, aligned
        with self.lock:
            return struct.pack("<I", self._register(offset) & U32)

    def write(self, offset: int, data: bytes) -> None:
        if offset >= CONFIG_SPACE:
            if self.status & STATUS_DRIVER:
                self.device.write_config(offset - CONFIG_SPACE, data)
            return
        if len(data) != 4 or offset % 4:
            return
        value = struct.unpack("<I", data)[0]
        if offset == QUEUE_NOTIFY:
            self._queue_notify(value)
            return
        with self.lock:
            self._set_register(offset, value)

    def _register(self, offset: int) -> int:
        if offset == MAGIC_VALUE:
            return MAGIC
        if offset == VERSION:
            return MMIO_VERSION
        if offset == DEVICE_ID:
            return self.device.device_type
        if offset == VENDOR_ID:
            return VENDOR
        if offset == DEVICE_FEATURES:
            return (self.device.features() >> (32 * self.device_features_sel)) \
                if self.device_features_sel < 2 else 0
        if offset == QUEUE_NUM_MAX:
            q = self._selected()
            return q.max_size if q else 0
        if offset == QUEUE_READY:
            q = self._selected()
            return int(q.ready) if q else 0
        if offset == INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == STATUS:
            return self.status
        if offset == CONFIG_GENERATION:
            return self.config_generation
        return 0

    def _set_register(self, offset: int, value: int) -> None:
        if offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == QUEUE_SEL:
            self.queue_sel = value
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
        elif offset == STATUS:
            self._write_status(value)
        else:
            self._write_queue_register(offset, value)

    def _selected(self) -> Queue | None:
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

    def _write_driver_features(self, value: int) -> None:
        # 3.1.1: features may only be written between DRIVER and FEATURES_OK.
        if self.status & STATUS_FEATURES_OK or not self.status & STATUS_DRIVER:
            return
        if self.driver_features_sel < 2:
            shift = 32 * self.driver_features_sel
            self.driver_features &= ~(U32 << shift)
            self.driver_features |= value << shift

    def _write_queue_register(self, offset: int, value: int) -> None:
        q = self._selected()
        # 4.2.3.2: queue registers may only change while the queue is not ready and the
        # driver has not finished (DRIVER_OK); otherwise the write is ignored.
        if q is None or self.status & STATUS_DRIVER_OK or (q.ready and offset != QUEUE_READY):
            return
        if offset == QUEUE_NUM:
            q.size = value
        elif offset == QUEUE_READY:
            q.ready = value == 1
        elif offset == QUEUE_DESC_LOW:
            q.desc_table = (q.desc_table & ~U32) | value
        elif offset == QUEUE_DESC_HIGH:
            q.desc_table = (q.desc_table & U32) | (value << 32)
        elif offset == QUEUE_DRIVER_LOW:
            q.avail_ring = (q.avail_ring & ~U32) | value
        elif offset == QUEUE_DRIVER_HIGH:
            q.avail_ring = (q.avail_ring & U32) | (value << 32)
        elif offset == QUEUE_DEVICE_LOW:
            q.used_ring = (q.used_ring & ~U32) | value
        elif offset == QUEUE_DEVICE_HIGH:
            q.used_ring = (q.used_ring & U32) | (value << 32)

    def _write_status(self, value: int) -> None:
        if value == 0:
            self._reset_device()
            return
        added = value & ~self.status
        if value & self.status != self.status:
            return  # 2.1.1: the driver never clears a bit except by writing 0
        if added & STATUS_FEATURES_OK and not self._features_acceptable():
            value &= ~STATUS_FEATURES_OK
        if added & STATUS_DRIVER_OK and not self._activate():
            value |= STATUS_DEVICE_NEEDS_RESET
        self.status = value

    def _features_acceptable(self) -> bool:
        offered = self.device.features()
        accepted = self.driver_features
        return accepted & ~offered == 0 and bool(accepted & VIRTIO_F_VERSION_1)

    def _activate(self) -> bool:
        if not self.status & STATUS_FEATURES_OK:
            return False
        ready = [q for q in self.queues if q.ready]
        if not ready or not all(q.is_valid(self.mem) for q in ready):
            return False
        for q in self.queues:
            q.event_idx = bool(self.driver_features & VIRTIO_RING_F_EVENT_IDX)
        self.device.activate(self.mem, self.queues, self.driver_features)
        self.activated = True
        return True

    def _reset_device(self) -> None:
        if self.activated:
            self.device.reset()
        self._reset_state()

    def _queue_notify(self, value: int) -> None:
        if self.activated and value < len(self.queues):
            self._notify(value)
