"""A test double for ``ember.vmm.builder.Vm``: records calls, never touches KVM."""

from __future__ import annotations

import threading

from ember.vmm.config import SerialConfig, VmConfig


class FakeVm:
    def __init__(self, config: VmConfig) -> None:
        self.config = config
        self.state = "Paused"
        self.calls: list[str] = []
        self.ended = threading.Event()
        self.exit_code = 0
        self.uart_writes = 0

    def start(self) -> None:
        self.calls.append("start")
        self.state = "Running"

    def pause(self) -> None:
        self.calls.append("pause")
        self.state = "Paused"

    def resume(self) -> None:
        self.calls.append("resume")
        self.state = "Running"

    def send_ctrl_alt_del(self) -> None:
        self.calls.append("send_ctrl_alt_del")
        self.end(0)

    def end(self, code: int) -> None:
        self.exit_code = code
        self.ended.set()

    def wait(self, timeout: float | None = None) -> int | None:
        return self.exit_code if self.ended.wait(timeout) else None

    def stop(self) -> None:
        self.calls.append("stop")
        self.ended.set()

    def counters(self) -> dict[str, dict[str, int]]:
        self.uart_writes += 5
        return {"uart": {"write_count": self.uart_writes}}


class FakeFactory:
    """Builds FakeVms and keeps them for the test to inspect."""

    def __init__(self) -> None:
        self.vms: list[FakeVm] = []

    def __call__(self, config: VmConfig, serial: SerialConfig) -> FakeVm:
        vm = FakeVm(config)
        self.vms.append(vm)
        return vm
