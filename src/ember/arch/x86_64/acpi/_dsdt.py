"""The Differentiated System Description Table: AML naming ember's devices under ``\\_SB_``.

Device identification objects: ACPI 6.5, 6.1 (_HID 6.1.5, _UID 6.1.12); _CCA 6.2.17; _CRS
6.2.2. Linux's virtio-mmio driver binds to _HID "LNRO0005" (drivers/virtio/virtio_mmio.c);
"PNP0501" is a 16550A-compatible UART and "PNP0303" an IBM enhanced (101/102-key, PS/2)
keyboard controller, both from the legacy PNP id list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ember.arch.x86_64 import layout
from ember.arch.x86_64.acpi import _aml, _resources, _sdt
from ember.arch.x86_64.acpi._device import AcpiConfigError, MmioDevice

DSDT_SIGNATURE = b"DSDT"
DSDT_REVISION = 2  # 5.2.11.1: revision 2 and above means 64-bit AML integers
DSDT_OEM_TABLE_ID = b"EMBRDSDT"
SYSTEM_BUS_SCOPE = "\\_SB_"  # 5.3.1: the root of the system bus tree

VIRTIO_MMIO_HID = "LNRO0005"
VIRTIO_NAME_PREFIX = "V"  # devices are V000, V001, ... (three hex digits)
MAX_VIRTIO_DEVICES = 0x1000
CCA_COHERENT = 1  # 6.2.17 _CCA: the device's DMA is cache-coherent

COM1_NAME = "COM1"
COM1_HID = "PNP0501"
COM1_UID = 0
COM1_PORT_COUNT = 8  # the 16550's eight registers

I8042_NAME = "PS2_"
I8042_HID = "PNP0303"
I8042_PORT_COUNT = 1  # one port each for data (0x60) and command/status (0x64)


def _crs(descriptors: Sequence[bytes]) -> bytes:
    return _aml.name("_CRS", _resources.resource_template(descriptors))


def virtio_device(index: int, device: MmioDevice, shared: bool = False) -> bytes:
    """``Device (Vnnn)``: a virtio-mmio window and its edge-triggered interrupt, exclusive
    unless another device raises the same GSI."""
    resources = [_resources.memory32_fixed(device.base, device.size),
                 _resources.extended_interrupt(device.irq, shared)]
    return _aml.device(f"{VIRTIO_NAME_PREFIX}{index:03X}", [
        _aml.name("_HID", _aml.string(VIRTIO_MMIO_HID)),
        _aml.name("_UID", _aml.integer(index)),
        _aml.name("_CCA", _aml.integer(CCA_COHERENT)),
        _crs(resources),
    ])


def com1_device() -> bytes:
    """``Device (COM1)``: the 16550 UART at 0x3F8, ISA IRQ 4."""
    resources = [_resources.io_port(layout.SERIAL_COM1_PORT, COM1_PORT_COUNT),
                 _resources.irq_no_flags(layout.SERIAL_COM1_IRQ)]
    return _aml.device(COM1_NAME, [
        _aml.name("_HID", _aml.integer(_aml.eisa_id(COM1_HID))),
        _aml.name("_UID", _aml.integer(COM1_UID)),
        _crs(resources),
    ])


def i8042_device() -> bytes:
    """``Device (PS2_)``: the i8042 keyboard controller at ports 0x60/0x64, ISA IRQ 1."""
    resources = [_resources.io_port(layout.I8042_DATA_PORT, I8042_PORT_COUNT),
                 _resources.io_port(layout.I8042_COMMAND_PORT, I8042_PORT_COUNT),
                 _resources.irq_no_flags(layout.I8042_IRQ)]
    return _aml.device(I8042_NAME, [
        _aml.name("_HID", _aml.integer(_aml.eisa_id(I8042_HID))),
        _crs(resources),
    ])


def dsdt(devices: Sequence[MmioDevice]) -> bytes:
    """The DSDT: every virtio-mmio device, then COM1 and the i8042, in ``\\_SB_``."""
    if len(devices) > MAX_VIRTIO_DEVICES:
        raise AcpiConfigError(
            f"the DSDT names at most {MAX_VIRTIO_DEVICES} virtio devices, not {len(devices)}")
    irqs = Counter(device.irq for device in devices)
    objects = [virtio_device(index, device, irqs[device.irq] > 1)
               for index, device in enumerate(devices)]
    objects += [com1_device(), i8042_device()]
    aml = _aml.scope(SYSTEM_BUS_SCOPE, objects)
    return _sdt.sdt(DSDT_SIGNATURE, DSDT_REVISION, DSDT_OEM_TABLE_ID, aml)
