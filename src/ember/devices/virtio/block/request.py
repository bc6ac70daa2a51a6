"""virtio-blk requests (VIRTIO 1.2, section 5.2.6), parsed from a descriptor chain.

The chain is hostile input: the header must be a readable descriptor of at least 16 bytes,
the status a writable descriptor at the end, and the data in between must point the right
way for the request type. Anything else is a :class:`BadRequest`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

from ember.devices.virtio.queue import Chain, Descriptor

# 5.2.6: struct virtio_blk_req { le32 type; le32 reserved; le64 sector; u8 data[]; u8 status; }
HEADER = struct.Struct("<IIQ")
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2
SECTOR_SIZE = 512
# 5.2.6: GET_ID answers with up to 20 bytes of device id.
VIRTIO_BLK_ID_BYTES = 20
# Field getters for the per-buffer checks (run in C, once per buffer of every request).
_LENGTH = itemgetter(1)  # Descriptor.length
_WRITABLE = itemgetter(2)  # Descriptor.writable
VIEW = itemgetter(3)  # Descriptor.view


class BadRequest(Exception):
    """The chain is not a well-formed virtio-blk request."""


@dataclass(frozen=True)
class Request:
    kind: int
    sector: int
    data: tuple[Descriptor, ...]
    status: Descriptor

    @property
    def data_length(self) -> int:
        return sum(map(_LENGTH, self.data))


def parse_request(chain: Chain, read: Callable[[int, int], bytes]) -> Request:
    """Build a Request; ``read(addr, length)`` reads guest memory (for the header)."""
    descs = chain.descriptors
    if len(descs) < 2:
        raise BadRequest("a request needs at least a header and a status descriptor")
    head, status = descs[0], descs[-1]
    if head.writable or head.length < HEADER.size:
        raise BadRequest("the request header must be a readable buffer of 16 bytes or more")
    if not status.writable or status.length < 1:
        raise BadRequest("the status must be a writable buffer of at least one byte")
    kind, _reserved, sector = HEADER.unpack(read(head.addr, HEADER.size))
    data = descs[1:-1]
    request = Request(kind, sector, data, status)
    _check_directions(request)
    return request


def _check_directions(req: Request) -> None:
    if req.kind in (VIRTIO_BLK_T_IN, VIRTIO_BLK_T_GET_ID):
        if not all(map(_WRITABLE, req.data)):
            raise BadRequest("a read request has a read-only data buffer")
    elif req.kind == VIRTIO_BLK_T_OUT:
        if any(map(_WRITABLE, req.data)):
            raise BadRequest("a write request has a device-writable data buffer")
