"""Parsers for what the guests and the VMMs print: pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RECORDS = re.compile(r"(\d+)\+(\d+) records out")
_BOOT_TIME = re.compile(r"Guest-boot-time =\s*(\d+) us \d+ ms,\s*(\d+) CPU us")
_EXITS = re.compile(r"vCPU exits: (.*)$")
_MARK = re.compile(r"BENCH-(\w+) (.*)$")


@dataclass(frozen=True)
class TimedDd:
    """One timed dd in the guest: /proc/uptime before and after, and dd's own count of
    the blocks it wrote out (full and partial), from its `N+M records out` line.
    busybox's dd (Debian's build) prints no byte count or rate, so the time comes from
    /proc/uptime, at 10 ms resolution."""

    start: float
    end: float
    full: int
    partial: int

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def rate(self, block_size: int) -> float | None:
        """Bytes per second over the full blocks (None if too quick to time)."""
        return self.full * block_size / self.seconds if self.seconds > 0 else None


def timed_dd(mark: str) -> TimedDd | None:
    """A `START END <dd's last line>` mark, as the guest script prints it."""
    fields = mark.split(None, 2)
    records = _RECORDS.search(fields[2]) if len(fields) == 3 else None
    if records is None:
        return None
    return TimedDd(uptime(fields[0]), uptime(fields[1]), int(records[1]), int(records[2]))


def boot_time_us(log: str) -> tuple[int, int] | None:
    """(wall µs, CPU µs) from ember's `Guest-boot-time` log line."""
    match = _BOOT_TIME.search(log)
    return (int(match[1]), int(match[2])) if match else None


def exit_counts(log: str) -> dict[str, int]:
    """ember's `vCPU exits: io=…, mmio=…` summary as a dict (empty when absent)."""
    counts: dict[str, int] = {}
    for line in log.splitlines():
        match = _EXITS.search(line)
        if match and match[1].strip() != "none":
            for item in match[1].split(","):
                key, _, value = item.strip().partition("=")
                if value.strip().isdigit():
                    counts[key] = int(value)
    return counts


# Log lines that a clean run never writes: a failed step while the VM ended, a lost fd.
PROBLEM_WORDS = ("failed", "open fds", "Traceback")


def problems(log: str) -> list[str]:
    """The lines of an ember log that report something wrong (see PROBLEM_WORDS)."""
    return [line for line in log.splitlines() if any(w in line for w in PROBLEM_WORDS)]


def uptime(text: str) -> float:
    """Seconds from a /proc/uptime line ("12.34 5.67")."""
    return float(text.split()[0])


def marks(console: str) -> dict[str, list[str]]:
    """`BENCH-NAME value` lines a guest script printed, grouped by NAME."""
    found: dict[str, list[str]] = {}
    for line in console.splitlines():
        match = _MARK.search(line.strip())
        if match:
            found.setdefault(match[1], []).append(match[2].strip())
    return found
