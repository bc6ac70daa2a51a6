"""VMM memory overhead with the guest up at its init (see bench.smaps)."""

from __future__ import annotations

import time

from bench import smaps, vmms
from bench.process import Running

# The guest's init runs `sleep` after its markers, so the VM stays up while we sample.
STAY_UP = "ember.action=run ember.run=sleep,3600"
SETTLE_S = 0.5


def overhead(launch: vmms.Launch, guest_bytes: int, timeout: float) -> smaps.Overhead:
    with Running(launch) as vm:
        vm.wait_for("EMBER-GUEST-ACTION", timeout)
        time.sleep(SETTLE_S)
        return smaps.read_overhead(vm.pid, guest_bytes)
