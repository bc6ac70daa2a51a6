"""Boot the project's guest kernel for real and check what the guest itself reports."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

Results = dict[str, dict[str, object]]
# include/linux/jiffies.h: INITIAL_JIFFIES is (unsigned long)(unsigned int)(-300 * HZ), and
# the project's kernel keeps Kconfig's default HZ, 250 (guest/microvm.config sets none).
INITIAL_JIFFIES = 2**32 - 300 * 250


def _scenario(results: Results, name: str) -> dict[str, object]:
    assert name in results, f"scenario {name} produced no result"
    return results[name]


def _nproc(result: dict[str, object]) -> int:
    match = re.search(r"EMBER-GUEST-INIT nproc=(\d+)", str(result["stdout"]))
    assert match, f"no init marker in the guest output:\n{str(result['stdout'])[-2000:]}\n" \
                  f"{str(result['stderr'])[-2000:]}"
    return int(match.group(1))


@pytest.mark.parametrize("name, cpus", [("elf-1cpu", 1), ("elf-2cpu", 2), ("bzimage-2cpu", 2)])
def test_boots_to_init_with_all_vcpus_online(boot_results: Results, name: str,
                                             cpus: int) -> None:
    result = _scenario(boot_results, name)
    assert _nproc(result) == cpus
    assert "EMBER-GUEST-ACTION reboot" in str(result["stdout"])
    assert result["returncode"] == 0, result["stderr"]


def test_boot_timer_reports_guest_boot_time(boot_results: Results) -> None:
    log = str(_scenario(boot_results, "elf-2cpu")["log"])
    assert re.search(r"Guest-boot-time = +\d+ us \d+ ms, +\d+ CPU us \d+ CPU ms", log), log


def test_command_line_reaches_the_guest(boot_results: Results) -> None:
    stdout = str(_scenario(boot_results, "cmdline")["stdout"])
    line = next(ln for ln in stdout.splitlines() if ln.startswith("EMBER-GUEST-CMDLINE"))
    assert "ember.probe=cmdline-7f3a" in line and "console=ttyS0" in line


def test_guest_panic_ends_the_process(boot_results: Results) -> None:
    result = _scenario(boot_results, "panic")
    assert "Kernel panic" in str(result["stdout"])
    assert "EMBER-GUEST-ACTION panic" in str(result["stdout"])
    # panic=1 reboots after a second; with reboot=k that is an i8042 reset: a clean exit.
    assert result["returncode"] == 0


@pytest.mark.parametrize("name, words", [("missing-kernel", "no-such-vmlinux"),
                                         ("corrupt-kernel", "corrupt")])
def test_bad_kernel_is_a_clear_error(boot_results: Results, name: str, words: str) -> None:
    result = _scenario(boot_results, name)
    assert result["returncode"] != 0
    said = str(result["stderr"]) + str(result["log"])
    assert words in said, said
    assert "Traceback" not in said


def test_sigterm_stops_the_vm_and_restores_the_terminal(boot_results: Results) -> None:
    result = _scenario(boot_results, "sigterm")
    assert result["prompt"], result["stdout"]
    assert result["raw_during"]  # ember put the console terminal in raw mode
    assert result["restored"]  # and gave it back as it found it
    assert result["returncode"] is not None  # it exited (no hang) after SIGTERM


def test_stall_probe_reads_the_guest_kernel(boot_results: Results) -> None:
    """The stall diagnostics (guest_probe) read the right memory: in the running 1-vCPU
    guest of the sigterm scenario, the clock ticks and only CPU 0 is online."""
    probe = _scenario(boot_results, "sigterm")["probe"]
    assert probe, "no probe: the sigterm scenario's guest never reached its shell prompt"
    assert isinstance(probe, dict) and "error" not in probe, probe
    before, after = probe["jiffies"]
    assert INITIAL_JIFFIES <= before < after, probe  # the periodic tick runs
    assert probe["masks"]["online"] == 0b1, probe
    assert list(probe["vcpus"]) == ["fc_vcpu 0"], probe
