"""A writer for the `newc` cpio format, the one the Linux kernel unpacks as an initramfs.

Format (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst):
each entry is the magic `070701`, thirteen 8-digit hex fields, the NUL-terminated name
padded to a multiple of 4 bytes (counting the 110-byte header), then the data padded to 4.
The archive ends with an entry named `TRAILER!!!`.
"""

import stat
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_ALIGN = 4


@dataclass(frozen=True)
class Entry:
    """One archive member: a directory, regular file, symlink or device node."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def file(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % _ALIGN)


def _header(entry: Entry, ino: int) -> bytes:
    name = entry.name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
    head = MAGIC + b"".join(b"%08x" % f for f in fields) + name
    return head + _pad(len(head))


def write(out: BinaryIO, entries: list[Entry]) -> None:
    """Write `entries` and the trailer to `out`; names are relative (no leading `/`)."""
    for ino, entry in enumerate(entries, start=1):
        if entry.name.startswith("/") or not entry.name:
            raise ValueError(f"cpio member name must be relative: {entry.name!r}")
        out.write(_header(entry, ino))
        out.write(entry.data + _pad(len(entry.data)))
    out.write(_header(Entry(TRAILER, 0), 0))
