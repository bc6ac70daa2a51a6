"""Firecracker's boot timer: a guest writes the magic byte 123 at offset 0 when init runs."""

from __future__ import annotations

from collections.abc import Callable

MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE = 123


class BootTimer:
    """Calls ``on_boot`` once per magic write; other accesses are ignored."""

    def __init__(self, on_boot: Callable[[], None]) -> None:
        self._on_boot = on_boot
        self.signalled = 0

    def read(self, offset: int, length: int) -> bytes:
        return bytes(length)

    def write(self, offset: int, data: bytes) -> None:
        if offset == 0 and data and data[0] == MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE:
            self.signalled += 1
            self._on_boot()
