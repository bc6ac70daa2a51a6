"""Shared plumbing for the end-to-end tests: they boot real guests.

A KVM that boots Linux is needed; ``ember.rig`` provides one (directly on hosts with
hardware virtualization, through a nested L1 VM elsewhere). The guest images come from
``make guest``. Nothing here skips: a missing image or a broken rig fails the tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / "build" / "guest"
SCENARIO_PREFIX = "EMBER-SCENARIO "
NAMES_PREFIX = "EMBER-SCENARIO-NAMES "
# A session of boot or block scenarios takes 3-10 minutes; the harness prints a heartbeat
# every 15 s, so minutes of silence mean the emulated L1 froze.
SESSION_TIMEOUT_S = 1500
SILENCE_LIMIT_S = 120
SESSIONS = 4
# Every session uses the rig's default, multi-threaded TCG: single-threaded TCG was tried
# for the last rerun and was several times slower without its guests dying less often
# (ember.rig._qemu); a fresh multi-threaded L1 is the better next chance.
GUEST_IMAGES = ("vmlinux", "bzImage", "initramfs.cpio", "rootfs.ext4")


def require_guest_images() -> None:
    missing = [name for name in GUEST_IMAGES if not (GUEST / name).is_file()]
    if missing:
        pytest.fail(f"guest images missing in {GUEST}: {', '.join(missing)}; run `make guest`")


def run_in_rig(argv: list[str], timeout: float, fail: bool = True,
               silence_limit: float | None = None) -> tuple[int, str, str]:
    """Run argv through the rig from the repository root; fail the test if the rig breaks
    (or, with ``fail=False``, let the rig's error through to the caller)."""
    from ember.rig import RigError, run

    try:
        done = run(argv, cwd=str(ROOT), timeout=timeout, silence_limit=silence_limit)
    except RigError as err:
        if not fail:
            raise
        log = getattr(err, "log", "")
        pytest.fail(f"the rig could not run: {err}\n{str(log)[-4000:]}")
    if done.l1_start_s is not None:
        print(f"rig: L1 started in {done.l1_start_s:.1f} s", file=sys.stderr)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(
        errors="replace")


def parse_scenarios(stdout: str) -> tuple[list[str], dict[str, dict[str, object]]]:
    """The script's scenario names and the results it printed."""
    names: list[str] = []
    results = {}
    for line in stdout.splitlines():
        if line.startswith(NAMES_PREFIX):
            names = json.loads(line[len(NAMES_PREFIX):])
        elif line.startswith(SCENARIO_PREFIX):
            result = json.loads(line[len(SCENARIO_PREFIX):])
            results[result["name"]] = result
            if result.get("attempts", 1) != 1:
                print(f"scenario {result['name']}: the guest triple-faulted, or stalled before "
                      f"its init, under emulation; result from attempt {result['attempts']}",
                      file=sys.stderr)
            for stall in result.get("stalls", []):
                print(f"  {stall}", file=sys.stderr)
    return names, results


def _session(script: str, names: list[str], pin: bool) -> tuple[int, str, str, str | None]:
    """One rig session of the script: (exit status, stdout, stderr, why L1 failed or None)."""
    from ember.rig import TIMEOUT_STATUS, L1Error, one_cpu_prefix

    prefix = one_cpu_prefix() if pin else []
    try:
        code, out, err = run_in_rig([*prefix, sys.executable, script, *names],
                                    timeout=SESSION_TIMEOUT_S,
                                    fail=False, silence_limit=SILENCE_LIMIT_S)
    except L1Error as stopped:
        return (-1, stopped.stdout.decode(errors="replace"),
                stopped.stderr.decode(errors="replace"), f"{stopped}\n{stopped.log[-2000:]}")
    if code == TIMEOUT_STATUS:
        return code, out, err, f"the session ran past {SESSION_TIMEOUT_S} s"
    return code, out, err, None


def run_scenarios(script_name: str, only: tuple[str, ...] = (), skip: tuple[str, ...] = (),
                  pin: bool = False) -> dict[str, dict[str, object]]:
    """Run the scenarios of one script (those named in ``only``, else all but ``skip``) in
    as few rig sessions (L1 boots) as possible.

    The L1 VM itself (QEMU's software emulation) has been seen to stop or freeze in the
    middle of a session; then a new session runs the scenarios still without a result (up
    to SESSIONS in all, each in a fresh L1), and the test output says so."""
    require_guest_images()
    script = str(ROOT / "tests" / "e2e" / script_name)
    wanted: list[str] = list(only)
    results: dict[str, dict[str, object]] = {}
    for session in range(1, SESSIONS + 1):
        missing = [n for n in wanted if n not in results or results[n].get("rig_failed")]
        code, out, err, l1_failure = _session(script, missing or [f"-{n}" for n in skip],
                                              pin)
        names, got = parse_scenarios(out)
        wanted = wanted or [n for n in names if n not in skip]
        results.update(got)
        left = [n for n in wanted if n not in results or results[n].get("rig_failed")]
        if wanted and not left:
            code = 0 if l1_failure else code
            break
        if l1_failure is None and not wanted:
            break  # the script itself is broken: reported below
        why = l1_failure or "every attempt of some scenarios died under emulation"
        print(f"{script_name}: rig session {session} failed ({why}); scenarios to run in a "
              f"new session: {', '.join(left) if wanted else '(all)'}", file=sys.stderr)
        if l1_failure is None:
            code = 0
    if code != 0 or not results:
        pytest.fail(f"{script_name} did not run (exit {code}):\n{out[-3000:]}\n{err[-3000:]}")
    return results


@pytest.fixture(scope="session")
def boot_results() -> dict[str, dict[str, object]]:
    """Every boot scenario, run in one rig session."""
    return run_scenarios("boot_scenarios.py")


# Two guests at once: under multi-threaded TCG the emulated L1 reset itself every time its
# two vCPUs ran guests at once (see ember.rig._qemu); with the whole scenario pinned to one
# L1 CPU it ran through. So this scenario has a session of its own, pinned.
TWO_GUESTS = ("shared-rootfs",)


@pytest.fixture(scope="session")
def block_results() -> dict[str, dict[str, object]]:
    """Every one-guest block-device scenario, run in one rig session."""
    return run_scenarios("block_scenarios.py", skip=TWO_GUESTS)


@pytest.fixture(scope="session")
def two_guest_results() -> dict[str, dict[str, object]]:
    """The block scenarios with two guests at once, in a session of their own."""
    return run_scenarios("block_scenarios.py", only=TWO_GUESTS, pin=True)
