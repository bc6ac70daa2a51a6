"""Guest physical memory: anonymous host mappings with bounds-checked access.

Every address and length that comes from the guest goes through :meth:`GuestMemory.view`,
which refuses anything not wholly inside one region. Views are zero-copy memoryviews of
the mapping, so devices can hand them straight to ``preadv``/``pwritev``.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
from dataclasses import dataclass

PAGE_SIZE = 4096


class GuestMemoryError(Exception):
    """An access outside guest memory."""


@dataclass
class Region:
    base: int
    size: int
    mapping: mmap.mmap
    host_addr: int

    @property
    def end(self) -> int:
        return self.base + self.size


def _anonymous_mapping(size: int) -> mmap.mmap:
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0x4000)
    return mmap.mmap(-1, size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)


class GuestMemory:
    """A set of non-overlapping guest-physical regions backed by anonymous memory."""

    def __init__(self, layout: list[tuple[int, int]]) -> None:
        self.regions: list[Region] = []
        for base, size in sorted(layout):
            if size <= 0 or base % PAGE_SIZE or size % PAGE_SIZE:
                raise ValueError(f"region {base:#x}+{size:#x} is not page aligned")
            if self.regions and base < self.regions[-1].end:
                raise ValueError(f"region {base:#x} overlaps the one before it")
            mapping = _anonymous_mapping(size)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
            self.regions.append(Region(base, size, mapping, addr))
        self._bases = [r.base for r in self.regions]
        self._sizes = [r.size for r in self.regions]
        self._views = [memoryview(r.mapping) for r in self.regions]

    def _find(self, addr: int, length: int) -> tuple[int, int]:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i < 0 or length < 0:
            raise GuestMemoryError(f"guest address {addr:#x} is not in guest memory")
        region = self.regions[i]
        offset = addr - region.base
        if offset + length > region.size:
            raise GuestMemoryError(
                f"guest range {addr:#x}+{length:#x} is not wholly in guest memory")
        return i, offset

    def view(self, addr: int, length: int) -> memoryview:
        """A zero-copy, writable view of ``length`` bytes at guest address ``addr``."""
        # Inlined bounds check: this runs for every buffer of every virtio request.
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0 and length >= 0:
            offset = addr - self._bases[i]
            if offset + length <= self._sizes[i]:
                return self._views[i][offset:offset + length]
        self._find(addr, length)  # raises, with the reason
        raise AssertionError("unreachable")

    @property
    def index(self) -> tuple[list[int], list[int], list[memoryview]]:
        """Each region's base, size and whole view, sorted by base: for a hot loop that
        inlines :meth:`view` (read only)."""
        return self._bases, self._sizes, self._views

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.view(addr, length))

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self.view(addr, len(data))[:] = data

    def contains(self, addr: int, length: int = 1) -> bool:
        i = bisect.bisect_right(self._bases, addr) - 1
        return i >= 0 and length >= 0 and addr - self._bases[i] + length <= self._sizes[i]

    def close(self) -> None:
        for v in self._views:
            v.release()
        self._views = []
        # The ctypes export taken for host_addr pins each mapping; it is unmapped when the
        # process exits or the last reference goes away.
        self.regions = []
