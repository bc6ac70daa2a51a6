"""Attaches virtio devices to the VM the way Firecracker does: one 4 KiB MMIO window each
from 0xC0001000 and one GSI each from 5, in attach order. Queue notifications arrive on
ioeventfds that the I/O thread serves; interrupts leave through irqfds. A vCPU never runs
device work."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ember.arch.x86_64 import layout
from ember.devices.virtio.mmio import QUEUE_NOTIFY, MmioTransport, VirtioDevice
from ember.kvm import VmFd
from ember.memory import GuestMemory
from ember.vmm.bus import MmioBus
from ember.vmm.event_loop import EventLoop, drain_eventfd

# Firecracker's first GSI for virtio-mmio devices (the legacy ISA devices use 0-4).
FIRST_DEVICE_GSI = 5
LAST_DEVICE_GSI = layout.IOAPIC_NUM_PINS - 1
# Mirrors the virtio-mmio window size that Linux's `virtio_mmio.device=` syntax names.
WINDOW_SIZE_TEXT = "4K"


class DeviceLimitError(Exception):
    """No MMIO window or interrupt line left for another device."""


@dataclass(frozen=True)
class Slot:
    base: int
    size: int
    gsi: int

    def cmdline_entry(self) -> str:
        """Linux's ``virtio_mmio.device=<size>@<base>:<irq>`` for kernels without ACPI."""
        return f"virtio_mmio.device={WINDOW_SIZE_TEXT}@{self.base:#x}:{self.gsi}"


class EdgeIrq:
    """An edge-triggered GSI of the in-kernel IOAPIC, raised by writing an irqfd."""

    def __init__(self, vm: VmFd, gsi: int) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        vm.register_irqfd(self.fd, gsi)

    def __call__(self) -> None:
        os.eventfd_write(self.fd, 1)


@dataclass
class DeviceManager:
    vm: VmFd
    memory: GuestMemory
    mmio_bus: MmioBus
    loop: EventLoop
    slots: list[Slot] = field(default_factory=list)

    def _next_slot(self) -> Slot:
        gsi = FIRST_DEVICE_GSI + len(self.slots)
        if gsi > LAST_DEVICE_GSI:
            raise DeviceLimitError(
                f"at most {LAST_DEVICE_GSI - FIRST_DEVICE_GSI + 1} virtio devices fit")
        base = layout.VIRTIO_MMIO_START + layout.MMIO_DEVICE_WINDOW * len(self.slots)
        return Slot(base, layout.MMIO_DEVICE_WINDOW, gsi)

    def attach(self, device: VirtioDevice,
               process: Callable[[int], None]) -> tuple[MmioTransport, Slot]:
        """Wire ``device`` up; ``process(queue_index)`` runs on the I/O thread."""
        slot = self._next_slot()
        events = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in device.queue_sizes]
        for index, fd in enumerate(events):
            self.vm.register_ioeventfd(fd, slot.base + QUEUE_NOTIFY, 4, datamatch=index)
            self.loop.add(fd, _queue_handler(fd, index, process))
        transport = MmioTransport(device, self.memory, EdgeIrq(self.vm, slot.gsi),
                                  lambda index: os.eventfd_write(events[index], 1))
        # The transport locks itself; the bus lock only orders the vCPUs' accesses.
        self.mmio_bus.register(slot.base, slot.size, transport, threading.Lock())
        self.slots.append(slot)
        return transport, slot


def _queue_handler(fd: int, index: int, process: Callable[[int], None]) -> Callable[[], None]:
    def handle() -> None:
        if drain_eventfd(fd):
            process(index)
    return handle
