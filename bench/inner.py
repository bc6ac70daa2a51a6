"""The part of the bench that boots guests; runs where KVM boots Linux (see ember-rig).

Prints progress on stderr and, after every round, a `BENCH-JSON {...}` line on stdout
with the rows so far, so that a cut-short run still leaves results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from bench import block, profile, runs, vmms
from bench.process import BenchError, WedgedError
from bench.stats import EMBER, QEMU, Table

JSON_PREFIX = "BENCH-JSON "
# Printed on stdout every HEARTBEAT_S: the caller stops a rig session that goes silent
# (the emulated L1 has been seen to freeze).
HEARTBEAT = "BENCH-ALIVE"
HEARTBEAT_S = 15.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.inner")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--first-round", type=int, default=0, help="index of the first round")
    p.add_argument("--quick", action="store_true", help="smallest sizes, profile in-line")
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--part", choices=PARTS, default=PARTS[0],
                   help="one-guest runs (boot, memory, block, socket) and a profile, or the "
                        "creation rate (several guests at once)")
    p.add_argument("--timeout", type=float, default=400.0, help="seconds per VMM run")
    return p


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def emit(table: Table, config: dict[str, object], extra: dict[str, object]) -> None:
    payload = {"rows": table.rows(), "samples": table.to_json(), "config": config, **extra}
    print(JSON_PREFIX + json.dumps(payload), flush=True)


def setup(args: argparse.Namespace, work: Path) -> runs.Setup:
    plan = (block.BlockPlan(data_mib=8, random_reads=8, qd1_reads=256) if args.quick
            else block.BlockPlan(data_mib=64, random_reads=64, qd1_reads=2048))
    # The quick pass proves the harness works; 1-vCPU guests stall far less often under
    # the nested rig's emulation than 2-vCPU ones.
    guest = vmms.Guest(vcpus=1) if args.quick else vmms.Guest()
    if not vmms.supports_o_direct(work):
        guest.qemu_cache = "writeback"
    return runs.Setup(guest, work, plan, args.parallel, args.timeout)


def config_note(s: runs.Setup) -> dict[str, object]:
    drive_guest = vmms.Guest(**{**s.guest.__dict__, "drive": s.work / "drive.img",
                                "extra_args": block.RUN_SCRIPT})
    return {
        "ember": vmms.ember(drive_guest, s.work).shell(),
        "ember_config": vmms.ember_config(drive_guest),
        "qemu": vmms.qemu(drive_guest).shell(),
        "qemu_cache": s.guest.qemu_cache,
        "cmdline": {EMBER: s.guest.cmdline(EMBER), QEMU: s.guest.cmdline(QEMU)},
        "block_plan": s.plan.__dict__,
        "parallel": s.parallel,
    }


ATTEMPTS = 3
T = TypeVar("T")
# The creation rate runs several guests at once: its own part, so the caller can give it
# an L1 of its own (under multi-threaded TCG, two guests at once reset the emulated L1).
PARTS = ("single-guest", "creation")


class Retries:
    """Runs that failed and were repeated: guests under nested KVM in the rig now and
    then die early (a triple fault while the kernel patches itself), so a run is tried
    up to ATTEMPTS times and every failure is counted in the results."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def run(self, label: str, action: Callable[[], T]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return action()
            except WedgedError:
                raise
            except BenchError as err:
                self.failures.append(f"{label}: {str(err).splitlines()[0]}")
                say(f"{label}: attempt {attempt} failed: {err}")
                if attempt == ATTEMPTS:
                    raise
        raise AssertionError("unreachable")


def one_round(i: int, s: runs.Setup, table: Table, prefix: list[str] | None,
              retries: Retries) -> None:
    for vmm in runs.order(i):
        label = f"round {i + 1}: {vmm}"
        say(f"{label} exec -> socket ready")
        ready = retries.run(f"{label} ready", partial(runs.ready_round, vmm, s, table))
        say(f"{label} boot + memory + block")
        start = time.monotonic()
        retries.run(f"{label} combined", partial(runs.combined, vmm, s, table,
                                                 prefix if vmm == EMBER else None))
        if vmm == QEMU:
            e2e = table.metrics[runs.BOOT_E2E].samples[QEMU][-1]
            table.add(runs.BOOT_FC, "ms", QEMU, e2e - ready * runs.MS)
        say(f"{label} done in {time.monotonic() - start:.1f} s")


def creation_round(i: int, s: runs.Setup, table: Table, retries: Retries) -> None:
    for vmm in runs.order(i):
        say(f"round {i + 1}: {vmm} creation x{s.parallel}")
        retries.run(f"round {i + 1}: {vmm} creation",
                    partial(runs.creation_round, vmm, s, table))


def profile_boot(s: runs.Setup, out: Path) -> str:
    spy = profile.py_spy()
    if spy is None:
        return "py-spy is not installed: no profile\n"
    scratch = Table()
    runs.combined(EMBER, s, scratch, profile.prefix(spy, out))
    with open(out) as f:
        return profile.report(profile.summarize(f), heading="ember, one boot with the bench "
                              "drive (boot, block script, reboot), py-spy --threads")


def _heartbeat() -> None:
    while True:
        time.sleep(HEARTBEAT_S)
        print(HEARTBEAT, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    threading.Thread(target=_heartbeat, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="ember-bench-"))
    s = setup(args, work)
    if args.quick:
        s.parallel = min(s.parallel, 2)
    table, config = Table(), config_note(s)
    spy = profile.py_spy()
    quick_prefix = profile.prefix(spy, work / "quick.spy") if args.quick and spy else None
    retries = Retries()
    done = 0
    try:
        for n, i in enumerate(range(args.first_round, args.first_round + args.runs), 1):
            if args.part == "creation":
                creation_round(i, s, table, retries)
            else:
                one_round(i, s, table, quick_prefix, retries)
            done = n
            emit(table, config, {"rounds": n, "retries": retries.failures})
        extra: dict[str, object] = {}
        if args.part != "creation":
            say("profiling one ember boot")
            extra["profile"] = (profile_boot_quick(work) if quick_prefix else
                                retries.run("profile", lambda: profile_boot(s, work / "p.spy")))
        emit(table, config, {"rounds": args.runs, **extra, "done": True,
                             "retries": retries.failures})
    except WedgedError as err:  # no "error" and no "done": the caller starts a new session
        say(f"{err}; ending this rig session")
        emit(table, config, {"rounds": done, "wedged": str(err),
                             "retries": [*retries.failures, str(err)]})
        return 3
    except BenchError as err:
        emit(table, config, {"rounds": done, "error": str(err), "retries": retries.failures})
        return 1
    return 0


def profile_boot_quick(work: Path) -> str:
    with open(work / "quick.spy") as f:
        return profile.report(profile.summarize(f), heading="ember, quick mode: the last "
                              "combined boot, run under py-spy (its numbers are skewed)")


if __name__ == "__main__":
    sys.exit(main())
