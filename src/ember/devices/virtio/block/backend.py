"""The backing file of a block device: vectored I/O straight into guest memory views."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ember.devices.virtio.block.request import SECTOR_SIZE

# Linux's UIO_MAXIOV: the most iovecs one preadv/pwritev accepts.
IOV_MAX = 1024


class BackingFileError(Exception):
    """The backing file cannot be opened or used."""


class FileBackend:
    """An open disk image. ``capacity`` is in 512-byte sectors (a partial last sector is
    not visible to the guest)."""

    def __init__(self, path: str, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC
        try:
            self.fd = os.open(path, flags)
        except OSError as err:
            raise BackingFileError(
                f"cannot open the drive's backing file {path!r}: {err.strerror}") from None
        self.capacity = os.fstat(self.fd).st_size // SECTOR_SIZE

    def read_into(self, views: Sequence[memoryview], offset: int) -> int:
        return _vectored(os.preadv, self.fd, views, offset)

    def write_from(self, views: Sequence[memoryview], offset: int) -> int:
        return _vectored(os.pwritev, self.fd, views, offset)

    def flush(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _vectored(call: object, fd: int, views: Sequence[memoryview], offset: int) -> int:
    """Transfer every byte of ``views`` (short transfers are continued); returns the total."""
    assert callable(call)
    total = sum(len(v) for v in views)
    n = call(fd, views[:IOV_MAX], offset) if views else 0
    if n == total:  # the usual case: one call moved everything
        return n
    done = 0
    pending = list(views)
    while pending:
        if n <= 0:
            raise OSError(5, "short transfer: the backing file ended early")
        done += n
        pending = _advance(pending, n)
        if pending:
            n = call(fd, pending[:IOV_MAX], offset + done)
    assert done == total
    return done


def _advance(views: list[memoryview], n: int) -> list[memoryview]:
    """The views left after ``n`` bytes of them were transferred."""
    skip = 0
    while skip < len(views) and n >= len(views[skip]):
        n -= len(views[skip])
        skip += 1
    rest = views[skip:]
    if n and rest:
        rest[0] = rest[0][n:]
    return rest
