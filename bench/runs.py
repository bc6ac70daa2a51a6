"""One measurement round for one VMM: the runs that boot guests, recorded into a Table."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bench import apisock, block, creation, parse, smaps, vmms
from bench.process import INIT_MARK, BenchError, Running
from bench.stats import EMBER, QEMU, Table

MS = 1000.0
MIB = float(1 << 20)
BOOT_E2E = "boot e2e: exec -> guest init line"
BOOT_FC = "boot: InstanceStart -> boot timer (QEMU: e2e - exec->QMP ready)"
RIG_READY = "exec -> control socket answers (where guests boot)"


@dataclass
class Setup:
    """Everything a round needs: the guest, the work folder, sizes and limits."""

    guest: vmms.Guest
    work: Path
    plan: block.BlockPlan
    parallel: int
    timeout: float


def launch(vmm: str, guest: vmms.Guest, work: Path, tag: str) -> vmms.Launch:
    return vmms.ember(guest, work, tag) if vmm == EMBER else vmms.qemu(guest)


def combined(vmm: str, setup: Setup, table: Table, prefix: list[str] | None = None) -> None:
    """One boot that yields the boot times, memory overhead and block figures: the guest
    boots with the bench drive, the VMM's smaps is read while the guest idles at
    BENCH-READY, then the guest's script runs its dd tests and reboots."""
    drive = setup.work / f"{vmm}-drive.img"
    setup.plan.make_drive(drive)
    guest = replace(setup.guest, drive=drive, extra_args=block.RUN_SCRIPT)
    with Running(launch(vmm, guest, setup.work, f"{vmm}-combined"), prefix=prefix) as vm:
        e2e = vm.wait_for(INIT_MARK, setup.timeout)
        vm.wait_for("BENCH-READY", setup.timeout)
        mem = smaps.read_overhead(vm.pid, guest.mem_bytes)
        code = vm.wait(setup.timeout)
        console, log = vm.console(), vm.log_text()
    result = block.sample(console)
    if code != 0 or result.rand_iops is None:
        raise BenchError(f"{vmm}: block script failed (exit {code}):\n{console[-2000:]}")
    drive.unlink()
    _record_boot(vmm, e2e, log, table)
    _record_memory(vmm, mem, table)
    _record_block(vmm, result, setup.plan, table)


def _report_problems(log: str) -> None:
    """Show what an ember log reports as wrong: a run can succeed and still report it."""
    for line in parse.problems(log):
        print(f"bench: ember log: {line}", file=sys.stderr, flush=True)


def _record_boot(vmm: str, e2e: float, log: str, table: Table) -> None:
    table.add(BOOT_E2E, "ms", vmm, e2e * MS)
    _report_problems(log)
    timer = parse.boot_time_us(log)
    if vmm == EMBER:
        if timer is None:
            raise BenchError("ember: no Guest-boot-time line in its log")
        table.add(BOOT_FC, "ms", EMBER, timer[0] / MS)
        table.add("boot timer: VMM CPU time (ember)", "ms", EMBER, timer[1] / MS)


def _record_memory(vmm: str, mem: smaps.Overhead, table: Table) -> None:
    table.add("VMM RSS outside guest memory", "MiB", vmm, mem.rss / MIB)
    table.add("VMM USS outside guest memory", "MiB", vmm, mem.uss / MIB)
    table.add("guest memory mapping RSS (for reference)", "MiB", vmm, mem.guest_rss / MIB)


def _record_block(vmm: str, result: block.BlockSample, plan: block.BlockPlan,
                  table: Table) -> None:
    size = f"{plan.data_mib} MiB"
    table.add(f"block seq write 1 MiB O_DIRECT ({size})", "MB/s", vmm, result.write_mb_s)
    table.add(f"block seq read 1 MiB O_DIRECT ({size})", "MB/s", vmm, result.read_mb_s)
    table.add(f"block 4 KiB read QD1, one dd ({plan.qd1_reads} reads)", "IOPS", vmm,
              result.qd1_iops)
    table.add(f"block 4 KiB random read, one dd per read ({plan.random_reads})", "IOPS", vmm,
              result.rand_iops)


def creation_round(vmm: str, setup: Setup, table: Table) -> None:
    """N microVMs at once; ember's logs also give the vCPU exits of each plain boot."""
    launches = [launch(vmm, setup.guest, setup.work, f"{vmm}-par{i}")
                for i in range(setup.parallel)]
    rate = creation.rate(launches, setup.timeout)
    table.add(f"creation rate, {setup.parallel} in parallel (boot to init + reboot)",
              "VMs/s", vmm, rate)
    if vmm != EMBER:
        return
    for one in launches:
        log = one.log.read_text() if one.log is not None else ""
        _report_problems(log)
        counts = parse.exit_counts(log)
        table.add("vCPU exits per boot: total", "exits", EMBER, sum(counts.values()) or None)
        for kind, count in sorted(counts.items()):
            table.add(f"vCPU exits per boot: {kind}", "exits", EMBER, count)


def ready_round(vmm: str, setup: Setup, table: Table, where: str = RIG_READY) -> float:
    if vmm == EMBER:
        seconds = apisock.ember_ready(setup.work, setup.timeout)
    else:
        seconds = apisock.qemu_ready(setup.guest, setup.work, setup.timeout)
    table.add(where, "ms", vmm, seconds * MS)
    return seconds


def order(round_index: int) -> tuple[str, str]:
    """Alternate which VMM goes first, so that drifts in load hit both alike."""
    return (EMBER, QEMU) if round_index % 2 == 0 else (QEMU, EMBER)
