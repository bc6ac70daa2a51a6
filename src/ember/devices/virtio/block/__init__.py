"""virtio-blk: request parsing, the file backend and the device."""

from ember.devices.virtio.block.backend import BackingFileError, FileBackend
from ember.devices.virtio.block.device import Block

__all__ = ["BackingFileError", "Block", "FileBackend"]
