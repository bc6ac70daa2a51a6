"""Firecracker's getting-started curl sequence against ``ember --api-sock``, booting the
test guest to its /init, all inside one rig invocation (a KVM that boots Linux).

The sequence is Firecracker's, adapted only where ember lacks a device: the guest's root
is the initramfs (``initrd_path``) instead of a rootfs drive, and there is no network.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ember import rig

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "build" / "guest" / "vmlinux"
INITRD = ROOT / "build" / "guest" / "initramfs.cpio"
BOOT_LIMIT_S = 180
ATTEMPTS = 3
# Every step prints a line and a heartbeat runs beside them, so a silent minute or two
# means the emulated L1 froze; that attempt is abandoned and the next runs in a fresh L1.
SILENCE_LIMIT_S = 120
ATTEMPT_TIMEOUT_S = 480

SCRIPT = r"""
set -u
API_SOCKET="$WORK/ember.socket"
LOGFILE="$WORK/ember.log"
rm -f "$API_SOCKET" "$LOGFILE"
(while :; do sleep 15; echo "STEP-ALIVE $(date +%s)"; done) &
HEARTBEAT_PID=$!
step() { echo "STEP $1 $(date +%s.%N)"; }
show_ember() {
    echo "--- ember stdout"; cat "$WORK/ember.out"
    echo "--- ember stderr"; cat "$WORK/ember.err"
    echo "--- ember log"; cat "$LOGFILE"
}
# A request that failed: shown with everything the VMM wrote. One that got no answer in
# its time (curl's status 28) first has the VMM print its threads' stacks (SIGUSR1).
failed() {
    echo "CURL-FAILED $1 status=$2"
    [ "$2" = 28 ] && kill -USR1 "$EMBER_PID" && sleep 2
    kill -KILL "$EMBER_PID"; show_ember; kill "$HEARTBEAT_PID"; exit 3
}
curl() { command curl --max-time 60 "$@"; }
step exec
"$PYTHON" -m ember.cli --api-sock "$API_SOCKET" >"$WORK/ember.out" 2>"$WORK/ember.err" &
EMBER_PID=$!
for _ in $(seq 1 1500); do [ -S "$API_SOCKET" ] && break; sleep 0.02; done
step socket

# Set log file
touch "$LOGFILE"
curl -s -f -X PUT --unix-socket "${API_SOCKET}" \
    --data "{
        \"log_path\": \"${LOGFILE}\",
        \"level\": \"Debug\",
        \"show_level\": true,
        \"show_log_origin\": true
    }" \
    "http://localhost/logger" || failed logger $?
step logger

# Set boot source
KERNEL_BOOT_ARGS="console=ttyS0 reboot=k panic=1 pci=off"
curl -s -f -X PUT --unix-socket "${API_SOCKET}" \
    --data "{
        \"kernel_image_path\": \"${KERNEL}\",
        \"initrd_path\": \"${INITRD}\",
        \"boot_args\": \"${KERNEL_BOOT_ARGS}\"
    }" \
    "http://localhost/boot-source" || failed boot-source $?
step boot-source

# Set machine configuration
curl -s -f -X PUT --unix-socket "${API_SOCKET}" \
    --data "{
        \"vcpu_count\": 2,
        \"mem_size_mib\": 256
    }" \
    "http://localhost/machine-config" || failed machine-config $?
step machine-config

# API requests are handled asynchronously, it is important the configuration is
# set, before `InstanceStart`.
sleep 0.015s

# Start microVM
curl -s -S -X PUT --unix-socket "${API_SOCKET}" \
    --data "{
        \"action_type\": \"InstanceStart\"
    }" \
    "http://localhost/actions" || failed actions $?
echo "INSTANCE-START-DONE"

# A boot takes 10-40 s here; one that stalls under emulation is stopped (and retried).
for _ in $(seq 1 $((BOOT_LIMIT_S * 5))); do
    kill -0 "$EMBER_PID" 2>/dev/null || break
    sleep 0.2
done
kill -0 "$EMBER_PID" 2>/dev/null && kill -KILL "$EMBER_PID" && echo "BOOT-STALLED"
wait "$EMBER_PID"
echo "EMBER-EXIT=$?"
kill "$HEARTBEAT_PID"
show_ember
"""


def _died_under_emulation(out: str) -> bool:
    """The guest stalled before its init, or triple-faulted before any i8042 reset (the
    rig's emulation does both now and then; a reboot=k guest never triple-faults)."""
    fault = out.find("guest shut down (triple fault")
    reset = out.find("guest requested a reset through the i8042")
    return "Run /init" not in out or (fault >= 0 and (reset < 0 or fault < reset))


def _run_until_not_emulation_failure(script: Path, env: dict[str, str]
                                     ) -> tuple[rig.CompletedRun, str]:
    """Run the sequence; an attempt whose L1 froze or died, that ran out of time, or whose
    guest died under emulation is shown on stderr and made again in a fresh L1."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            done = rig.run(["bash", str(script)], cwd=str(ROOT), env=env,
                           timeout=ATTEMPT_TIMEOUT_S, silence_limit=SILENCE_LIMIT_S)
        except rig.L1Error as err:
            print(f"attempt {attempt}: the rig's L1 stopped: {err}\n"
                  f"{err.stdout.decode(errors='replace')[-3000:]}\n{str(err.log)[-1500:]}",
                  file=sys.stderr)
            if attempt == ATTEMPTS:
                pytest.fail(f"the rig's L1 stopped in all {ATTEMPTS} attempts; last: {err}")
            continue
        out = done.stdout.decode(errors="replace")
        timed_out = done.returncode == rig.TIMEOUT_STATUS
        if not timed_out and ("INSTANCE-START-DONE" not in out
                              or not _died_under_emulation(out)):
            break
        what = "timed out" if timed_out else ("the guest stalled before its init, or "
                                              "triple-faulted, under emulation")
        print(f"attempt {attempt}: {what}:\n{out[-3000:]}", file=sys.stderr)
    return done, out


@pytest.mark.e2e
def test_getting_started_sequence_boots_the_guest(tmp_path: Path) -> None:
    missing = [str(p) for p in (KERNEL, INITRD, ROOT / "src/ember/vmm/builder.py")
               if not p.exists()]
    if missing:
        pytest.fail(f"cannot run: missing {', '.join(missing)} (run `make guest`)")
    script = tmp_path / "sequence.sh"
    script.write_text(SCRIPT)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "WORK": str(tmp_path),
           "BOOT_LIMIT_S": str(BOOT_LIMIT_S),
           "PYTHON": sys.executable, "KERNEL": str(KERNEL), "INITRD": str(INITRD),
           "PYTHONPATH": str(ROOT / "src")}
    done, out = _run_until_not_emulation_failure(script, env)
    assert done.returncode == 0, out + done.stderr.decode(errors="replace")
    assert "CURL-FAILED" not in out, out
    assert "INSTANCE-START-DONE" in out and "fault_message" not in out, out
    serial = out.split("--- ember stdout", 1)[1]
    assert re.search(r"EMBER-GUEST-INIT nproc=2", serial), out
    assert "EMBER-EXIT=0" in out, out
