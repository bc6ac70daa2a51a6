"""Where a silent guest's kernel stands, read out of the ember process's guest memory.

A guest that stalls in the rig (QEMU's emulation under L1's KVM) prints nothing more, so
its console cannot say why. Its kernel's variables can: this module reads a few of them
through /proc/PID/mem, twice, and says whether the guest's clock still runs (the project's
kernel ticks periodically, at Kconfig's default HZ=250, so jiffies that stand still mean
its timer interrupts stopped), how far each CPU's bring-up got (the masks of
arch/x86/kernel/smpboot.c in Linux 6.1), and which vCPU threads use the host CPU. A silent
guest is stopped either way; what is read here only goes into the test output.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# x86_64: the kernel image is mapped at __START_KERNEL_map + its physical address
# (Linux 6.1: Documentation/x86/x86_64/mm.rst); the project's kernel has no KASLR.
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
# The BSP sets a CPU's callout bit once it has seen the AP's initialized bit; the AP sets
# callin when its early set-up is done, then online (smpboot.c: do_boot_cpu, smp_callin).
MASKS = ("cpu_initialized_mask", "cpu_callout_mask", "cpu_callin_mask", "__cpu_online_mask")
SYMBOLS = ("jiffies", *MASKS)
WORD = 8
PAUSE_S = 2.0
# /proc/PID/task/TID/stat fields after the command name: state is the first, then
# utime and stime (clock ticks) are the 12th and 13th.
STAT_STATE, STAT_UTIME, STAT_STIME = 0, 11, 12


def kernel_symbols(vmlinux: Path) -> dict[str, int]:
    """The guest-physical address of each of SYMBOLS, from the kernel's symbol table."""
    listing = subprocess.run(["nm", str(vmlinux)], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    found = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in SYMBOLS:
            found[parts[2]] = int(parts[0], 16) - START_KERNEL_MAP
    return found


def guest_ram_base(pid: int) -> int:
    """The host address of guest-physical 0: the largest anonymous mapping of the process
    (guest RAM below the 32-bit gap is one mapping, far larger than any heap arena)."""
    best = (0, 0)
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) != 5:  # a named mapping: a file, [heap], [stack]
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            best = max(best, (hi - lo, lo))
    if not best[0]:
        raise OSError(f"pid {pid} has no anonymous mapping")
    return best[1]


def _words(pid: int, base: int, symbols: dict[str, int]) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for name, phys in symbols.items():
            mem.seek(base + phys)
            values[name] = int.from_bytes(mem.read(WORD), "little")
    return values


def _vcpu_threads(pid: int) -> dict[str, tuple[str, int]]:
    """vCPU thread name -> (scheduler state, CPU ticks used so far)."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        if name.startswith("fc_vcpu"):
            threads[name] = (stat[STAT_STATE], int(stat[STAT_UTIME]) + int(stat[STAT_STIME]))
    return threads


@dataclass
class GuestState:
    """Two looks at the guest kernel, PAUSE_S apart."""

    jiffies: tuple[int, int]
    masks: dict[str, int]  # the bring-up masks at the second look, by short name
    vcpus: dict[str, tuple[str, float]]  # thread name -> (state, CPU seconds between looks)


def read_state(pid: int, vmlinux: Path) -> GuestState:
    """Read the guest kernel's clock and CPU masks, and the vCPU threads' use of the host
    CPU, twice. Raises OSError (or subprocess's errors) when the process cannot be read."""
    symbols = kernel_symbols(vmlinux)
    base = guest_ram_base(pid)
    before, threads_before = _words(pid, base, symbols), _vcpu_threads(pid)
    time.sleep(PAUSE_S)
    after, threads_after = _words(pid, base, symbols), _vcpu_threads(pid)
    tick = os.sysconf("SC_CLK_TCK")
    vcpus = {name: (state, (ticks - threads_before.get(name, (state, ticks))[1]) / tick)
             for name, (state, ticks) in sorted(threads_after.items())}
    masks = {name.strip("_").removeprefix("cpu_").removesuffix("_mask"): after[name]
             for name in MASKS if name in after}
    return GuestState((before["jiffies"], after["jiffies"]), masks, vcpus)


def describe(pid: int, vmlinux: Path) -> str:
    """One line on the guest kernel's state and its vCPU threads, or why it could not be
    read."""
    try:
        state = read_state(pid, vmlinux)
    except (OSError, subprocess.SubprocessError, KeyError, ValueError) as err:
        return f"guest state unreadable: {type(err).__name__}: {err}"
    masks = ", ".join(f"{name} {value:#x}" for name, value in state.masks.items())
    cpus = ", ".join(f"{name} ({run_state}) {seconds:.2f} s CPU"
                     for name, (run_state, seconds) in state.vcpus.items())
    return (f"jiffies {state.jiffies[0]} -> {state.jiffies[1]} in {PAUSE_S:g} s; CPU masks: "
            f"{masks}; vCPU threads over those {PAUSE_S:g} s: {cpus or 'none'}")
