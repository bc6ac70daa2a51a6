"""Creation rate: N microVMs launched together, each booting to init and rebooting."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bench import vmms
from bench.process import INIT_MARK, BenchError, Running


def rate(launches: Sequence[vmms.Launch], timeout: float) -> float:
    """microVMs per second: N over the time from the first launch to the last exit."""
    start = time.monotonic()
    deadline = start + timeout  # one limit for the whole batch, not one per VM

    def left() -> float:
        return max(deadline - time.monotonic(), 0.001)

    vms = [Running(launch) for launch in launches]
    try:
        for vm in vms:
            vm.wait_for(INIT_MARK, left())
        for vm in vms:
            if vm.wait(left()) != 0:
                raise BenchError(vm._failure("non-zero exit status"))
    finally:
        for vm in vms:
            vm.kill()
    return len(vms) / (time.monotonic() - start)
