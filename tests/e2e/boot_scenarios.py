"""Boot scenarios run back to back inside one rig session (one L1 boot serves them all).

``python tests/e2e/boot_scenarios.py [NAME…]`` prints one ``EMBER-SCENARIO <json>`` line per
scenario with the exit status, the console, ember's log and the time from process start to
the guest's init marker; test_boot.py asserts on those lines.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import termios
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import guest_probe  # noqa: E402
from harness import (  # noqa: E402
    BASE_ARGS,
    GUEST,
    Vmm,
    report,
    run_all,
    vm_config,
    write_config,
)

MARKER = b"EMBER-GUEST-INIT"
TIMEOUT_S = 120  # a boot here takes 10-40 s; longer means the emulated L1 stalled


def _config(kernel: str, vcpus: int, extra_args: str = "") -> dict[str, object]:
    config = vm_config([], f"{BASE_ARGS} {extra_args}".strip(), vcpus=vcpus)
    config["boot-source"]["kernel_image_path"] = kernel  # type: ignore[index]
    return config


def _boot(work: Path, name: str, config: dict[str, object]) -> None:
    log = work / "ember.log"
    started = time.monotonic()
    vmm = Vmm(["--no-api", "--config-file", write_config(work / "vm.json", config),
               "--id", name, "--level", "Info", "--log-path", str(log), "--boot-timer"], name)
    marker_s = None
    if vmm.wait_for(MARKER, TIMEOUT_S) >= 0:
        marker_s = time.monotonic() - started
    code = vmm.wait(TIMEOUT_S if marker_s is not None else 5)
    report(name, returncode=code, marker_s=marker_s, wall_s=time.monotonic() - started,
           stdout=vmm.text(), stderr=vmm.stderr(),
           log=log.read_text(errors="replace") if log.exists() else "")


def _corrupt_kernel(work: Path) -> str:
    path = work / "corrupt-vmlinux"
    head = bytearray((GUEST / "vmlinux").read_bytes()[:4096])
    head[0x38:0x3A] = b"\xff\xff"  # e_phnum: an absurd program-header count
    path.write_bytes(bytes(head))
    return str(path)


def sigterm_restores_terminal(work: Path) -> None:
    """SIGTERM while the guest runs a shell: every vCPU stops and the terminal is restored."""
    config = _config(str(GUEST / "vmlinux"), 1, "ember.action=shell")
    vmm = Vmm(["--no-api", "--config-file", write_config(work / "vm.json", config)], "sigterm")
    before = termios.tcgetattr(vmm.slave)
    prompt = vmm.wait_for(b"EMBER-GUEST-ACTION shell", TIMEOUT_S) >= 0
    # The stall diagnostics read this running guest's kernel the way they read a silent one.
    probe: dict[str, object] = {}
    if prompt:
        try:
            probe = asdict(guest_probe.read_state(vmm.proc.pid, GUEST / "vmlinux"))
        except Exception as err:  # reported as such: the pytest side says what failed
            probe = {"error": f"{type(err).__name__}: {err}"}
    time.sleep(1.0)
    during = termios.tcgetattr(vmm.slave)
    vmm.kill(signal.SIGTERM)
    code = vmm.wait(60)
    after = termios.tcgetattr(vmm.slave)
    report("sigterm", prompt=prompt, probe=probe, returncode=code,
           raw_during=not during[3] & termios.ICANON, restored=after == before,
           stdout=vmm.text()[-2000:], stderr=vmm.stderr())


def _scenario(name: str, kernel: str, vcpus: int, extra: str = "") -> object:
    return lambda work: _boot(work, name, _config(kernel, vcpus, extra))


VMLINUX, BZIMAGE = str(GUEST / "vmlinux"), str(GUEST / "bzImage")
SCENARIOS = {
    "elf-1cpu": _scenario("elf-1cpu", VMLINUX, 1),
    "elf-2cpu": _scenario("elf-2cpu", VMLINUX, 2),
    "bzimage-2cpu": _scenario("bzimage-2cpu", BZIMAGE, 2),
    "cmdline": _scenario("cmdline", VMLINUX, 1, "ember.probe=cmdline-7f3a"),
    "panic": _scenario("panic", VMLINUX, 1, "ember.action=panic"),
    "missing-kernel": lambda work: _boot(work, "missing-kernel",
                                         _config(str(work / "no-such-vmlinux"), 1)),
    "corrupt-kernel": lambda work: _boot(work, "corrupt-kernel",
                                         _config(_corrupt_kernel(work), 1)),
    "sigterm": sigterm_restores_terminal,
}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="ember-boot-") as tmp:
        run_all(SCENARIOS, sys.argv[1:], Path(tmp))  # type: ignore[arg-type]
    os._exit(0)
