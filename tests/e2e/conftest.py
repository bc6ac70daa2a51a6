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
GUEST_IMAGES = ("vmlinux", "bzImage", "initramfs.cpio", "rootfs.ext4")


def require_guest_images() -> None:
    missing = [name for name in GUEST_IMAGES if not (GUEST / name).is_file()]
    if missing:
        pytest.fail(f"guest images missing in {GUEST}: {', '.join(missing)}; run `make guest`")


def run_in_rig(argv: list[str], timeout: float, fail: bool = True) -> tuple[int, str, str]:
    """Run argv through the rig from the repository root; fail the test if the rig breaks
    (or, with ``fail=False``, let the rig's error through to the caller)."""
    from ember.rig import RigError, run

    try:
        done = run(argv, cwd=str(ROOT), timeout=timeout)
    except RigError as err:
        if not fail:
            raise
        log = getattr(err, "log", "")
        pytest.fail(f"the rig could not run: {err}\n{str(log)[-4000:]}")
    if done.l1_start_s is not None:
        print(f"rig: L1 started in {done.l1_start_s:.1f} s", file=sys.stderr)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(
        errors="replace")


def parse_scenarios(stdout: str) -> dict[str, dict[str, object]]:
    results = {}
    for line in stdout.splitlines():
        if line.startswith(SCENARIO_PREFIX):
            result = json.loads(line[len(SCENARIO_PREFIX):])
            results[result["name"]] = result
            if result.get("attempts", 1) != 1:
                print(f"scenario {result['name']}: the guest triple-faulted before its init "
                      f"under emulation; result from attempt {result['attempts']}",
                      file=sys.stderr)
    return results


def run_scenarios(script_name: str) -> dict[str, dict[str, object]]:
    """Run every scenario of one script in a single rig session (one L1 boot).

    The L1 VM itself (QEMU's software emulation) has been seen to stop in the middle of a
    session; then the session is run once more, and the test output says so."""
    require_guest_images()
    script = str(ROOT / "tests" / "e2e" / script_name)
    from ember.rig import L1Error

    try:
        code, out, err = run_in_rig([sys.executable, script], timeout=1800, fail=False)
    except L1Error as first:
        print(f"{script_name}: the L1 VM stopped ({first}); running the session again:\n"
              f"{first.log[-2000:]}", file=sys.stderr)
        code, out, err = run_in_rig([sys.executable, script], timeout=1800)
    results = parse_scenarios(out)
    if code != 0 or not results:
        pytest.fail(f"{script_name} did not run (exit {code}):\n{out[-3000:]}\n{err[-3000:]}")
    return results


@pytest.fixture(scope="session")
def boot_results() -> dict[str, dict[str, object]]:
    """Every boot scenario, run in one rig session."""
    return run_scenarios("boot_scenarios.py")


@pytest.fixture(scope="session")
def block_results() -> dict[str, dict[str, object]]:
    """Every block-device scenario, run in one rig session."""
    return run_scenarios("block_scenarios.py")
