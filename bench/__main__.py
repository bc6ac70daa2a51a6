"""`python -m bench [--quick] [--runs N]`: the whole bench; see bench/__init__.py."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import apisock, report, runs, vmms
from bench.inner import HEARTBEAT, JSON_PREFIX
from bench.process import BenchError
from bench.stats import Table
from ember.rig import one_cpu_prefix

OUT = vmms.ROOT / "build" / "bench"
RIG = Path(sys.executable).parent / "ember-rig"
HOST_READY = "exec -> control socket answers (this host)"
# Rig sessions per part: each that completes a round earns another, up to the rounds
# wanted plus SPARE_SESSIONS; SPARE_SESSIONS sessions in a row without a round end it.
SPARE_SESSIONS = 2
# A guest boots in under a minute even in the rig; one that hangs (it happens there now
# and then) should cost little before its retry.
QUICK_VM_TIMEOUT_S = 240
# Guests booted at once for the creation rate. Where guests boot nested, the creation part
# runs pinned to one L1 CPU (ember.rig.one_cpu_prefix; both VMMs alike), and 4 two-vCPU
# guests at once there left L1 silent for minutes in every session tried; 2 run through.
PARALLEL_DIRECT = 4
PARALLEL_NESTED = 2
# bench.inner prints a heartbeat every 15 s: this long without a line means L1 froze.
SILENCE_LIMIT_S = 120


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="1 run each, smallest sizes")
    p.add_argument("--runs", type=int, default=None, help="runs per VMM (default 5, quick 1)")
    p.add_argument("--parallel", type=int, default=None,
                   help=f"microVMs in the creation test (default {PARALLEL_DIRECT}, or "
                        f"{PARALLEL_NESTED} where guests boot in the nested rig)")
    p.add_argument("--rig-timeout", type=float, default=None, help="seconds for the rig")
    return p


def host_ready(count: int, table: Table) -> str:
    """exec → control socket ready on this host, where no guest needs to boot."""
    work = Path(tempfile.mkdtemp(prefix="ember-bench-host-"))
    guest = vmms.Guest(qemu_cpu=host_cpu(work))
    setup = runs.Setup(guest, work, None, 0, 60.0)  # type: ignore[arg-type]
    for i in range(count):
        for vmm in runs.order(i):
            runs.ready_round(vmm, setup, table, HOST_READY)
    return guest.qemu_cpu


def host_cpu(work: Path) -> str:
    """`host` where QEMU accepts it with this KVM (a nested KVM may refuse it), else `max`,
    else QEMU's default model."""
    for cpu in ("host", "max"):
        try:
            apisock.qemu_ready(vmms.Guest(qemu_cpu=cpu), work, 60.0)
        except BenchError:
            continue
        return cpu
    return "qemu64"


def rig_session(args: argparse.Namespace, runs_each: int, first: int,
                part: str) -> dict[str, object]:
    """Run bench.inner through ember-rig; the last BENCH-JSON payload it printed."""
    argv = [str(RIG), "run", "--quiet", "--timeout", str(args.rig_timeout),
            "--silence-limit", str(SILENCE_LIMIT_S), "--",
            *(args.pin if part == "creation" else []),
            sys.executable, "-m", "bench.inner", "--runs", str(runs_each),
            "--first-round", str(first), "--parallel", str(args.parallel), "--part", part]
    if args.quick:
        argv += ["--quick", "--timeout", str(QUICK_VM_TIMEOUT_S)]
    last: dict[str, object] = {}
    with subprocess.Popen(argv, cwd=vmms.ROOT, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(JSON_PREFIX):
                last = json.loads(line[len(JSON_PREFIX):])
                report.write(OUT, last, partial=True)
            elif line.rstrip("\n") == HEARTBEAT:
                continue
            else:
                sys.stderr.write(line)
    last["rig_status"] = proc.returncode
    return last


def rig_rounds(args: argparse.Namespace, runs_each: int, table: Table,
               part: str) -> dict[str, object]:
    """All rounds of one part, in as few rig sessions as possible: when the L1 VM dies
    mid-way (it now and then does under emulation), a new session runs the rounds still
    missing."""
    done, last, sessions, barren = 0, {}, 0, 0
    retried: list[object] = []
    while sessions < runs_each + SPARE_SESSIONS and barren < SPARE_SESSIONS:
        sessions += 1
        last = rig_session(args, runs_each - done, done, part)
        table.merge_json(last.get("samples"))
        rounds = last.get("rounds")
        new_rounds = rounds if isinstance(rounds, int) else 0
        done += new_rounds
        barren = 0 if new_rounds else barren + 1
        failures = last.get("retries")
        retried += failures if isinstance(failures, list) else []
        if last.get("done"):
            break
        # A run that failed every attempt, a wedged VMM, a frozen or stopped L1: under
        # emulation these cluster in some L1 boots, so a fresh one gets the rest.
        retried.append(f"{part} rig session {sessions} ended early (status {last.get('rig_status')}"
                       f"{': ' + str(last['error']).splitlines()[0] if 'error' in last else ''}"
                       ")")
        print(f"bench: {part} rig session {sessions} ended early after {done} rounds; "
              "starting another", file=sys.stderr, flush=True)
    return {**last, "rounds": done, "rig_sessions": sessions, "retries": retried}


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    runs_each = args.runs or (1 if args.quick else 5)
    args.pin = one_cpu_prefix()  # empty where guests boot on hardware KVM
    if args.parallel is None:
        args.parallel = PARALLEL_NESTED if args.pin else PARALLEL_DIRECT
    if args.quick:
        args.parallel = min(args.parallel, PARALLEL_NESTED)
    if args.rig_timeout is None:
        args.rig_timeout = 600.0 if args.quick else 10800.0
    OUT.mkdir(parents=True, exist_ok=True)
    host = Table()
    print("bench: exec -> socket ready on this host", file=sys.stderr, flush=True)
    host_cpu_model = host_ready(runs_each, host)
    guests = Table()
    inner = rig_rounds(args, runs_each, guests, "single-guest")
    many = rig_rounds(args, runs_each, guests, "creation")
    inner = {**inner, "retries": _as_list(inner["retries"]) + _as_list(many["retries"]),
             "rig_sessions": f"{inner['rig_sessions']} + {many['rig_sessions']} (creation)",
             "done": inner.get("done") and many.get("done"),
             **({"error": many["error"]} if "error" in many and "error" not in inner else {})}
    results = report.merge(host, guests, host_cpu_model, inner)
    report.write(OUT, results, partial=False)
    print(report.text(results))
    if "error" in inner or not inner.get("done"):
        print(f"bench: the guest runs did not finish: {inner.get('error', 'rig failed')}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
