"""virtio-blk end to end: the seed's login, data integrity both ways, read-only drives,
a shared rootfs, resizing and rate limiting, each checked on the host's files."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e

Results = dict[str, dict[str, object]]


def _get(results: Results, name: str) -> dict[str, object]:
    assert name in results, f"scenario {name} produced no result"
    result = results[name]
    assert "error" not in result, result["error"]
    return result


def test_seed_scenario_login_ls_reboot(block_results: Results) -> None:
    r = _get(block_results, "seed-login")
    assert r["calls"] == [204, 204, 204], r
    steps = dict(r["steps"])  # type: ignore[arg-type]
    assert all(steps.values()) and len(steps) == 4, (steps, r["console"])
    console = str(r["console"])
    listing = console[console.index("ls /"):]
    for entry in ("bin", "etc", "proc", "sbin", "root"):
        assert entry in listing
    assert r["returncode"] == 0, r["stderr"]


def test_data_is_byte_exact_both_ways_after_sync_and_sigkill(block_results: Results) -> None:
    r = _get(block_results, "integrity")
    assert r["synced"], r["console"]
    assert r["returncode"] == -9  # SIGKILL: the data below was not flushed by a clean exit
    assert r["reads_ok"] == [True] * 6, r["console"]
    assert r["writes_ok"] == [True] * 6


def test_read_only_drive_stays_unchanged(block_results: Results) -> None:
    r = _get(block_results, "read-only")
    console = str(r["console"])
    assert "EMBER-RO-FLAG 1" in console
    plain = re.search(r"EMBER-DD-PLAIN (\d+)", console)
    direct = re.search(r"EMBER-DD-DIRECT (\d+)", console)
    assert plain and plain.group(1) != "0", console
    assert direct and direct.group(1) != "0", console
    assert r["unchanged"]
    assert r["returncode"] == 0


def test_two_microvms_share_a_read_only_rootfs(two_guest_results: Results) -> None:
    r = _get(two_guest_results, "shared-rootfs")
    assert r["returncodes"] == [0, 0], r["consoles"]
    assert r["rootfs_unchanged"]
    marks = list(r["marks"])  # type: ignore[call-overload]
    assert marks[0].startswith("vm-1-was-here"), r["consoles"]
    assert marks[1].startswith("vm-2-was-here"), r["consoles"]
    for console in list(r["consoles"]):  # type: ignore[call-overload]
        assert "EMBER-HOSTNAME ember" in console


def test_patch_drive_resizes_in_the_guest(block_results: Results) -> None:
    r = _get(block_results, "resize")
    assert r["patched"] == 204, r["console"]
    console = str(r["console"])
    assert "EMBER-SIZE-BEFORE 2048" in console
    assert "EMBER-SIZE-AFTER 6144" in console, console
    assert r["returncode"] == 0


def test_bandwidth_rate_limiter_holds_reads_back(block_results: Results) -> None:
    r = _get(block_results, "rate-limited")
    elapsed = r["elapsed"]
    assert isinstance(elapsed, float), r["console"]
    # 4 MiB through a 1 MiB bucket refilled at 1 MiB/s. Firecracker's buckets refill lazily
    # from their last refill, so a bucket idle since boot hands out its 1 MiB and then,
    # at the first miss, a full refill: 2 MiB come at once and the other 2 MiB take at
    # least 2 s. A lower bound only (the console lines reach the host within milliseconds).
    assert elapsed >= 1.9, elapsed
    lines = [json.loads(line) for line in str(r["metrics"]).splitlines() if line.strip()]
    throttled = sum(line.get("block_data", {}).get("rate_limiter_throttled_events", 0)
                    for line in lines)
    assert throttled > 0, r["metrics"]
    assert r["returncode"] == 0


def test_writeback_flush_and_ctrl_alt_del(block_results: Results) -> None:
    r = _get(block_results, "writeback-cad")
    assert all(ok for _step, ok in r["steps"]), (r["steps"], r["console"])  # type: ignore[attr-defined]
    assert r["on_disk"] == "written-back\n"
    assert r["cad_status"] == 204
    assert r["returncode"] == 0, r["console"]
    lines = [json.loads(line) for line in str(r["metrics"]).splitlines() if line.strip()]
    flushes = sum(line.get("block_data", {}).get("flush_count", 0) for line in lines)
    assert flushes > 0, r["metrics"]
    resets = sum(line.get("i8042", {}).get("reset_count", 0) for line in lines)
    assert resets == 1
