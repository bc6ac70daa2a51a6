"""VMM memory overhead from /proc/PID/smaps, by Firecracker's method.

The overhead is what the VMM process maps besides guest memory: the sum of the RSS of
every other mapping. Guest memory is recognised by its size: the largest mapping at
least as large as the guest's RAM and at most GUEST_SLACK bytes larger (QEMU may round
its RAM block up or add a guard page). USS (Private_Clean + Private_Dirty) is reported
beside it, with the same mapping left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KIB = 1024
GUEST_SLACK = 4 * 1024 * KIB
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")
_FIELD = re.compile(r"^(\w+):\s+(\d+) kB$")


@dataclass
class Mapping:
    start: int
    end: int
    name: str
    kib: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.end - self.start

    def field(self, key: str) -> int:
        """A field of the mapping in bytes (0 when absent)."""
        return self.kib.get(key, 0) * KIB


@dataclass(frozen=True)
class Overhead:
    rss: int  # bytes of RSS outside guest memory
    uss: int  # bytes of private (clean + dirty) memory outside guest memory
    guest_rss: int  # the guest memory mapping's own RSS


def parse(text: str) -> list[Mapping]:
    """The mappings of an smaps file, with their `NAME: N kB` fields."""
    maps: list[Mapping] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            parts = line.split(None, 5)
            name = parts[5] if len(parts) > 5 else ""
            maps.append(Mapping(int(header[1], 16), int(header[2], 16), name))
            continue
        fieldline = _FIELD.match(line)
        if fieldline and maps:
            maps[-1].kib[fieldline[1]] = int(fieldline[2])
    return maps


def guest_mapping(maps: list[Mapping], guest_bytes: int) -> Mapping | None:
    """The mapping that holds guest memory, by size; None if none fits."""
    fits = [m for m in maps if guest_bytes <= m.size <= guest_bytes + GUEST_SLACK]
    return max(fits, key=lambda m: (m.field("Rss"), m.size), default=None)


def overhead(maps: list[Mapping], guest_bytes: int) -> Overhead:
    """RSS and USS of everything but guest memory."""
    guest = guest_mapping(maps, guest_bytes)
    others = [m for m in maps if m is not guest]
    rss = sum(m.field("Rss") for m in others)
    uss = sum(m.field("Private_Clean") + m.field("Private_Dirty") for m in others)
    return Overhead(rss, uss, guest.field("Rss") if guest else 0)


def read_overhead(pid: int, guest_bytes: int) -> Overhead:
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as f:
        return overhead(parse(f.read()), guest_bytes)
