"""The virtio-mmio register file and its driver-initialisation state machine (4.2.3.1)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from driver import AVAIL, DESC_TABLE, MEM_SIZE, USED

from ember.devices.virtio import mmio as m
from ember.devices.virtio.queue import Queue
from ember.memory import GuestMemory

FEATURES = m.VIRTIO_F_VERSION_1 | m.VIRTIO_RING_F_EVENT_IDX | (1 << 5)


class FakeDevice:
    """A device double recording what the transport hands it."""

    device_type = 2
    queue_sizes: Sequence[int] = (16,)

    def __init__(self) -> None:
        self.activated: list[int] = []
        self.resets = 0
        self.config = bytearray(b"\x01\x02\x03\x04\x05\x06\x07\x08")

    def features(self) -> int:
        return FEATURES

    def read_config(self, offset: int, length: int) -> bytes:
        return bytes(self.config[offset:offset + length]).ljust(length, b"\0")

    def write_config(self, offset: int, data: bytes) -> None:
        self.config[offset:offset + len(data)] = data

    def activate(self, mem: GuestMemory, queues: list[Queue], features: int) -> None:
        self.activated.append(features)

    def reset(self) -> None:
        self.resets += 1


class Harness:
    def __init__(self) -> None:
        self.mem = GuestMemory([(0, MEM_SIZE)])
        self.device = FakeDevice()
        self.irqs = 0
        self.notified: list[int] = []
        self.t = m.MmioTransport(self.device, self.mem, self._irq, self.notified.append)

    def _irq(self) -> None:
        self.irqs += 1

    def r(self, offset: int) -> int:
        return int(struct.unpack("<I", self.t.read(offset, 4))[0])

    def w(self, offset: int, value: int) -> None:
        self.t.write(offset, struct.pack("<I", value))

    def negotiate(self, accept: int = FEATURES) -> None:
        self.w(m.STATUS, m.STATUS_ACKNOWLEDGE)
        self.w(m.STATUS, m.STATUS_ACKNOWLEDGE | m.STATUS_DRIVER)
        for sel in (0, 1):
            self.w(m.DRIVER_FEATURES_SEL, sel)
            self.w(m.DRIVER_FEATURES, (accept >> (32 * sel)) & 0xFFFFFFFF)
        self.w(m.STATUS, m.STATUS_ACKNOWLEDGE | m.STATUS_DRIVER | m.STATUS_FEATURES_OK)

    def setup_queue(self, size: int = 16) -> None:
        self.w(m.QUEUE_SEL, 0)
        self.w(m.QUEUE_NUM, size)
        for low, value in ((m.QUEUE_DESC_LOW, DESC_TABLE), (m.QUEUE_DRIVER_LOW, AVAIL),
                           (m.QUEUE_DEVICE_LOW, USED)):
            self.w(low, value)
            self.w(low + 4, 0)
        self.w(m.QUEUE_READY, 1)

    def driver_ok(self) -> int:
        self.w(m.STATUS, self.r(m.STATUS) | m.STATUS_DRIVER_OK)
        return self.r(m.STATUS)


def test_identity_registers() -> None:
    h = Harness()
    assert h.r(m.MAGIC_VALUE) == 0x74726976
    assert h.r(m.VERSION) == 2 and h.r(m.DEVICE_ID) == 2
    h.w(m.DEVICE_FEATURES_SEL, 1)
    assert h.r(m.DEVICE_FEATURES) == 1  # VIRTIO_F_VERSION_1 is bit 32
    h.w(m.DEVICE_FEATURES_SEL, 0)
    assert h.r(m.DEVICE_FEATURES) == FEATURES & 0xFFFFFFFF
    assert h.r(m.QUEUE_NUM_MAX) == 16
    h.w(m.QUEUE_SEL, 5)
    assert h.r(m.QUEUE_NUM_MAX) == 0


def test_full_initialisation_activates_device() -> None:
    h = Harness()
    h.negotiate()
    assert h.r(m.STATUS) & m.STATUS_FEATURES_OK
    h.setup_queue()
    status = h.driver_ok()
    assert status & m.STATUS_DRIVER_OK and not status & m.STATUS_DEVICE_NEEDS_RESET
    assert h.device.activated == [FEATURES]
    assert h.t.queues[0].event_idx and h.t.queues[0].desc_table == DESC_TABLE


def test_features_without_version_1_are_refused() -> None:
    h = Harness()
    h.negotiate(accept=FEATURES & ~m.VIRTIO_F_VERSION_1)
    assert not h.r(m.STATUS) & m.STATUS_FEATURES_OK


def test_unoffered_feature_is_refused() -> None:
    h = Harness()
    h.negotiate(accept=FEATURES | (1 << 7))
    assert not h.r(m.STATUS) & m.STATUS_FEATURES_OK


def test_bad_queue_configuration_needs_reset() -> None:
    h = Harness()
    h.negotiate()
    h.setup_queue(size=3)  # not a power of two
    status = h.driver_ok()
    assert status & m.STATUS_DEVICE_NEEDS_RESET and h.device.activated == []


def test_queue_outside_memory_needs_reset() -> None:
    h = Harness()
    h.negotiate()
    h.setup_queue()
    h.w(m.QUEUE_READY, 0)
    h.w(m.QUEUE_DESC_HIGH, 0x10)  # 64 GiB up: no guest memory there
    h.w(m.QUEUE_READY, 1)
    assert h.driver_ok() & m.STATUS_DEVICE_NEEDS_RESET


def test_notify_and_interrupt_ack() -> None:
    h = Harness()
    h.w(m.QUEUE_NOTIFY, 0)
    assert h.notified == []  # not activated yet
    h.negotiate()
    h.setup_queue()
    h.driver_ok()
    h.w(m.QUEUE_NOTIFY, 0)
    h.w(m.QUEUE_NOTIFY, 7)  # no such queue
    assert h.notified == [0]
    h.t.signal_used()
    assert h.irqs == 1 and h.r(m.INTERRUPT_STATUS) == m.INT_USED_BUFFER
    h.w(m.INTERRUPT_ACK, m.INT_USED_BUFFER)
    assert h.r(m.INTERRUPT_STATUS) == 0


def test_config_change_bumps_generation() -> None:
    h = Harness()
    before = h.r(m.CONFIG_GENERATION)
    h.t.signal_config_change()
    assert h.r(m.CONFIG_GENERATION) == before + 1
    assert h.r(m.INTERRUPT_STATUS) & m.INT_CONFIG_CHANGE


def test_reset_clears_everything() -> None:
    h = Harness()
    h.negotiate()
    h.setup_queue()
    h.driver_ok()
    h.w(m.STATUS, 0)
    assert h.device.resets == 1
    assert h.r(m.STATUS) == 0 and h.r(m.QUEUE_READY) == 0


def test_clearing_status_bits_is_ignored_and_odd_accesses_are_harmless() -> None:
    h = Harness()
    h.negotiate()
    h.w(m.STATUS, m.STATUS_ACKNOWLEDGE)  # tries to clear DRIVER and FEATURES_OK
    assert h.r(m.STATUS) & m.STATUS_FEATURES_OK
    assert h.t.read(m.STATUS, 2) == b"\0\0"  # registers are 32-bit only
    h.t.write(m.STATUS + 1, b"\xff")
    assert h.r(m.STATUS) & 0xFF00 == 0


def test_config_space_access() -> None:
    h = Harness()
    assert h.t.read(m.CONFIG_SPACE + 2, 2) == b"\x03\x04"
    assert h.t.read(m.CONFIG_SPACE + 100, 4) == b"\0\0\0\0"
