"""Port-I/O and MMIO dispatch from vCPU exits to devices.

Each device is registered with a lock: vCPU threads and host-side threads (console input,
API actions) reach the same device, and the devices themselves are not thread-safe.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Protocol


class PioDevice(Protocol):
    def read(self, offset: int) -> int: ...
    def write(self, offset: int, value: int) -> None: ...


class MmioDevice(Protocol):
    def read(self, offset: int, length: int) -> bytes: ...
    def write(self, offset: int, data: bytes) -> None: ...


class BusConflict(Exception):
    """Two devices claim the same address."""


@dataclass
class PioBus:
    """Maps each I/O port to (device, offset within the device, lock)."""

    ports: dict[int, tuple[PioDevice, int, threading.Lock]] = field(default_factory=dict)

    def register(self, base: int, length: int, device: PioDevice, lock: threading.Lock) -> None:
        for port in range(base, base + length):
            if port in self.ports:
                raise BusConflict(f"I/O port {port:#x} is already taken")
            self.ports[port] = (device, port - base, lock)


@dataclass
class MmioBus:
    """Sorted, non-overlapping MMIO windows."""

    bases: list[int] = field(default_factory=list)
    entries: list[tuple[int, int, MmioDevice, threading.Lock]] = field(default_factory=list)

    def register(self, base: int, length: int, device: MmioDevice, lock: threading.Lock) -> None:
        i = bisect.bisect_left(self.bases, base)
        if i > 0 and self.entries[i - 1][0] + self.entries[i - 1][1] > base:
            raise BusConflict(f"MMIO window {base:#x} overlaps another device")
        if i < len(self.bases) and base + length > self.bases[i]:
            raise BusConflict(f"MMIO window {base:#x} overlaps another device")
        self.bases.insert(i, base)
        self.entries.insert(i, (base, length, device, lock))

    def find(self, addr: int, length: int) -> tuple[MmioDevice, int, threading.Lock] | None:
        i = bisect.bisect_right(self.bases, addr) - 1
        if i < 0:
            return None
        base, size, device, lock = self.entries[i]
        if addr + length > base + size:
            return None
        return device, addr - base, lock
