"""The one fact the ACPI tables need about each virtio-mmio device: its window and its GSI."""

from __future__ import annotations

from dataclasses import dataclass

from ember.arch.x86_64 import layout

ADDRESS_SPACE_32 = 1 << 32  # Memory32Fixed (ACPI 6.5, 6.4.3.4) describes 32-bit ranges only


class AcpiConfigError(ValueError):
    """The vCPUs or devices cannot be described by ember's ACPI tables."""


@dataclass(frozen=True)
class MmioDevice:
    """One virtio-mmio device window and the IOAPIC input (GSI) its interrupt arrives on."""

    base: int  # e.g. 0xC0001000
    size: int  # e.g. 0x1000
    irq: int  # GSI, e.g. 5

    def __post_init__(self) -> None:
        if self.size <= 0 or self.base < 0 or self.base + self.size > ADDRESS_SPACE_32:
            raise AcpiConfigError(
                f"virtio-mmio window {self.base:#x}+{self.size:#x} must be a non-empty range "
                "below 4 GiB")
        if not 0 <= self.irq < layout.IOAPIC_NUM_PINS:
            raise AcpiConfigError(
                f"virtio-mmio IRQ {self.irq} is not an IOAPIC input; use a GSI in "
                f"0..{layout.IOAPIC_NUM_PINS - 1}")

    @property
    def end(self) -> int:
        """The first address past the window."""
        return self.base + self.size
