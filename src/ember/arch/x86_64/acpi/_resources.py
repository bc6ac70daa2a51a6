"""Resource data descriptors for a device's _CRS, and the ResourceTemplate buffer around them.

Layouts: ACPI 6.5, 6.4 ("Resource Data Types for ACPI"): small items in 6.4.2, large items in
6.4.3. A ResourceTemplate is an AML Buffer holding the descriptors and an End Tag.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ember.arch.x86_64.acpi import _aml

# 6.4.2.1 IRQ Descriptor: small item type 0x04, 2 bytes of data (a 16-bit IRQ mask).
# The 2-byte form has no flags byte and means edge-triggered, active-high, exclusive.
IRQ_NO_FLAGS_TAG = 0x22
ISA_IRQ_COUNT = 16
# 6.4.2.5 I/O Port Descriptor: small item type 0x08, 7 bytes of data.
IO_PORT_TAG = 0x47
IO_DECODE_16 = 0x01  # Information bit 0: the device decodes all 16 address bits
IO_PORT_SPACE = 0x1_0000  # 16-bit port numbers
IO_LENGTH_MAX = 0xFF  # the Range Length field is one byte
IO_ALIGNMENT = 1  # Base Alignment; irrelevant for a fixed range (minimum == maximum)
# 6.4.2.9 End Tag: small item type 0x0F, 1 byte of data (the checksum).
END_TAG = 0x79
# 6.4.3.4 32-Bit Fixed Memory Range Descriptor: large item 0x86, 9 bytes of data.
MEMORY32_FIXED_TAG = 0x86
MEMORY32_FIXED_DATA_LENGTH = 9
MEMORY_READ_WRITE = 0x01  # Information bit 0: 1 = read/write, 0 = read-only
# 6.4.3.6 Extended Interrupt Descriptor: large item 0x89; data is a flags byte, a count byte
# and the 32-bit interrupt numbers.
EXTENDED_INTERRUPT_TAG = 0x89
INT_CONSUMER = 1 << 0  # bit 0: the device consumes this interrupt
INT_EDGE = 1 << 1  # bit 1: 1 = edge-triggered, 0 = level-triggered
INT_ACTIVE_LOW = 1 << 2  # bit 2: 1 = active-low, 0 = active-high
INT_SHARED = 1 << 3  # bit 3: 1 = shared, 0 = exclusive
EXTENDED_INTERRUPT_FLAGS = INT_CONSUMER | INT_EDGE  # consumer, edge, active-high, exclusive
UINT32_MAX = 0xFFFF_FFFF


class ResourceError(ValueError):
    """A resource that its descriptor cannot express."""


def irq_no_flags(irq: int) -> bytes:
    """ASL ``IRQNoFlags () {irq}``: one ISA IRQ, edge-triggered, active-high, exclusive."""
    if not 0 <= irq < ISA_IRQ_COUNT:
        raise ResourceError(f"an IRQ descriptor names ISA IRQs 0..15, not {irq}")
    return struct.pack("<BH", IRQ_NO_FLAGS_TAG, 1 << irq)


def io_port(base: int, length: int) -> bytes:
    """ASL ``IO (Decode16, base, base, 1, length)``: a fixed range of I/O ports."""
    if not (0 <= base and 0 < length <= IO_LENGTH_MAX and base + length <= IO_PORT_SPACE):
        raise ResourceError(f"I/O ports {base:#x}+{length} do not fit an I/O port descriptor")
    return struct.pack("<BBHHBB", IO_PORT_TAG, IO_DECODE_16, base, base, IO_ALIGNMENT, length)


def memory32_fixed(base: int, length: int) -> bytes:
    """ASL ``Memory32Fixed (ReadWrite, base, length)``."""
    if not (0 <= base and 0 < length and base + length <= UINT32_MAX + 1):
        raise ResourceError(f"memory {base:#x}+{length:#x} is not a range below 4 GiB")
    return struct.pack("<BHBII", MEMORY32_FIXED_TAG, MEMORY32_FIXED_DATA_LENGTH,
                       MEMORY_READ_WRITE, base, length)


def extended_interrupt(gsi: int, shared: bool = False) -> bytes:
    """ASL ``Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi}``, or ``Shared``."""
    if not 0 <= gsi <= UINT32_MAX:
        raise ResourceError(f"an interrupt number is 32 bits, not {gsi}")
    flags = EXTENDED_INTERRUPT_FLAGS | (INT_SHARED if shared else 0)
    data = struct.pack("<BBI", flags, 1, gsi)
    return struct.pack("<BH", EXTENDED_INTERRUPT_TAG, len(data)) + data


def end_tag(descriptors: bytes) -> bytes:
    """The End Tag, with a checksum that makes the whole template sum to zero (6.4.2.9)."""
    return bytes([END_TAG, (-(sum(descriptors) + END_TAG)) & 0xFF])


def resource_template(descriptors: Iterable[bytes]) -> bytes:
    """ASL ``ResourceTemplate () {...}``: an AML Buffer of descriptors ending in an End Tag."""
    body = b"".join(descriptors)
    return _aml.buffer(body + end_tag(body))
