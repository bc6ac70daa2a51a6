"""Boot to the guest's init: end to end, ember's boot timer, and vCPU exits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import parse, vmms
from bench.process import INIT_MARK, BenchError, Running


@dataclass
class BootSample:
    e2e_s: float  # launch of the VMM process → the INIT line on its stdout
    boot_timer_us: int | None = None  # ember: InstanceStart → boot-timer write
    boot_cpu_us: int | None = None
    exits: dict[str, int] = field(default_factory=dict)


def boot(launch: vmms.Launch, timeout: float, prefix: list[str] | None = None) -> BootSample:
    """Boot once: the guest's /init reboots at once, which ends the VMM."""
    with Running(launch, prefix=prefix) as vm:
        e2e = vm.wait_for(INIT_MARK, timeout)
        code = vm.wait(timeout)
        if code != 0:
            raise BenchError(vm._failure(f"exit status {code}"))
        log = vm.log_text()
    timer = parse.boot_time_us(log)
    return BootSample(e2e, timer[0] if timer else None, timer[1] if timer else None,
                      parse.exit_counts(log))


def ember_boot(guest: vmms.Guest, work: Path, timeout: float) -> BootSample:
    sample = boot(vmms.ember(guest, work), timeout)
    if sample.boot_timer_us is None:
        raise BenchError("ember: no Guest-boot-time line in its log")
    return sample


def qemu_boot(guest: vmms.Guest, timeout: float) -> BootSample:
    return boot(vmms.qemu(guest), timeout)
