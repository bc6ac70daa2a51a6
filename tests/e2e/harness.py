"""Helpers for scenario scripts that run where KVM boots Linux (inside the rig).

A scenario starts real ember processes, talks to them the way a person or a Firecracker
client would (a terminal on the serial console, curl on the API socket), and reports one
``EMBER-SCENARIO <json>`` line that the pytest side asserts on.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import guest_probe

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / "build" / "guest"
EMBER = str(Path(sys.prefix) / "bin" / "ember")
BASE_ARGS = "console=ttyS0 reboot=k panic=1 pci=off"
SCRIPT_PAD = 64 * 1024


# Under QEMU's software emulation (the rig's L1) a guest now and then triple-faults (mostly
# early in boot, sometimes later) or stalls early in boot, before its init runs; stalls were
# seen with QEMU's own microvm as the inner VMM too. Such a run says nothing about ember, so
# its scenario is run again; the number of attempts is part of the report.
TRIPLE_FAULT = b"guest shut down (triple fault"
# After its i8042 reset a rebooting kernel falls back to other methods, a triple fault
# among them, if the VM has not ended yet: a fault after this line is part of a reboot.
I8042_RESET = b"guest requested a reset through the i8042"
INIT_REACHED = (b"Run /init as init process", b"Run /sbin/init as init process")
MAX_ATTEMPTS = 4
# A booting kernel prints a line every second or two here; this long without a byte before
# its init runs is a stall, and the VMM is stopped at once rather than at the scenario's
# (longer) deadline.
SILENT_BOOT_S = 60.0
# The pytest side stops the rig session when the script prints nothing for a while (the
# emulated L1 has been seen to freeze); the heartbeat says the session is alive.
HEARTBEAT = "EMBER-ALIVE"
HEARTBEAT_S = 15.0
NAMES = "EMBER-SCENARIO-NAMES "
# One attempt of any scenario finishes well within this; past it the attempt's ember
# processes are shown (state, kernel wait channel) and killed, so that the session goes on.
ATTEMPT_LIMIT_S = 420.0
_started: list[Vmm] = []
_pending: list[dict[str, object]] = []
# What the silent guests of the current scenario's attempts were doing (guest_probe).
_stalls: list[str] = []
_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        print(line, flush=True)


class Vmm:
    """One ember process whose serial console (stdin/stdout) is a pseudo-terminal."""

    def __init__(self, args: list[str], name: str) -> None:
        self.name = name
        self.log_path = args[args.index("--log-path") + 1] if "--log-path" in args else None
        self.timed_out = False
        _started.append(self)
        master, slave = pty.openpty()
        self._master = master
        self.proc = subprocess.Popen([EMBER, *args], stdin=slave, stdout=slave,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.slave = slave  # kept open to read the terminal's settings
        self.started = time.monotonic()
        self.output = bytearray()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._watch_boot, daemon=True).start()

    def _watch_boot(self) -> None:
        """Stop a guest that goes silent before its init (see SILENT_BOOT_S), saying first
        what its kernel was doing."""
        seen, quiet_since = -1, time.monotonic()
        while self.proc.poll() is None:
            with self._cond:
                if any(m in self.output for m in INIT_REACHED):
                    return
                if len(self.output) != seen:
                    seen, quiet_since = len(self.output), time.monotonic()
                elif time.monotonic() - quiet_since > SILENT_BOOT_S:
                    break
                self._cond.wait(1.0)
        else:
            return
        self.timed_out = True
        self._report_stall()
        self.kill()

    def _report_stall(self) -> None:
        lines = self.output[-200:].decode(errors="replace").strip().splitlines()
        state = guest_probe.describe(self.proc.pid, GUEST / "vmlinux")
        stall = (f"{self.name}: silent {SILENT_BOOT_S:g} s before init, after "
                 f"{lines[-1] if lines else 'no output'!r}; {state}")
        _stalls.append(stall)
        print(stall, file=sys.stderr, flush=True)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                self.output += chunk
                self._cond.notify_all()

    def wait_for(self, needle: bytes, timeout: float, start: int = 0) -> int:
        """Wait until ``needle`` appears in the output after ``start``; its end, or -1."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                at = self.output.find(needle, start)
                if at >= 0:
                    return at + len(needle)
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive() or self._exited_and_drained():
                    return -1
                self._cond.wait(min(left, 0.5))

    def _exited_and_drained(self) -> bool:
        """The process is gone and its last output has been read (the slave end stays open
        here, so the terminal never reports end of file)."""
        if self.proc.poll() is None:
            return False
        ready, _, _ = select.select([self._master], [], [], 0.2)
        return not ready

    def type(self, text: str) -> None:
        """Type like a person: one key at a time."""
        for ch in text.encode():
            os.write(self._master, bytes((ch,)))
            time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.kill()
            self.proc.wait()
            return None
        self._reader.join(5)
        return code

    def stderr(self) -> str:
        return (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def died_under_emulation(self) -> bool:
        """The guest triple-faulted (at any point: these guests reboot through the i8042,
        never by a triple fault) or stalled before its init ran (see TRIPLE_FAULT)."""
        said = bytes(self.output)
        if self.log_path and os.path.exists(self.log_path):
            said += Path(self.log_path).read_bytes()
        fault = said.find(TRIPLE_FAULT)
        reset = said.find(I8042_RESET)
        if fault >= 0 and (reset < 0 or fault < reset):  # not the guest's own reboot fallback
            return True
        return self.timed_out and not any(m in said for m in INIT_REACHED)


def write_config(path: Path, config: dict[str, object]) -> str:
    path.write_text(json.dumps(config))
    return str(path)


def script_drive(path: Path, script: str, blobs: Sequence[bytes] = ()) -> list[int]:
    """A raw drive holding a shell script (run with ``sh /dev/vdX``), then data blobs at
    512-byte-aligned offsets after the first 64 KiB; returns the blobs' sector numbers."""
    text = script.encode()
    if len(text) >= SCRIPT_PAD:
        raise ValueError("script too long")
    image = bytearray(text.ljust(SCRIPT_PAD, b"\0"))
    sectors = []
    for blob in blobs:
        sectors.append(len(image) // 512)
        image += blob.ljust((len(blob) + 511) // 512 * 512, b"\0")
    path.write_bytes(bytes(image))
    return sectors


def drive(drive_id: str, path: Path | str, root: bool = False, read_only: bool = False,
          **extra: object) -> dict[str, object]:
    return {"drive_id": drive_id, "path_on_host": str(path), "is_root_device": root,
            "is_read_only": read_only, **extra}


def vm_config(drives: list[dict[str, object]], boot_args: str, initrd: bool = True,
              vcpus: int = 1, mem: int = 256) -> dict[str, object]:
    boot: dict[str, object] = {"kernel_image_path": str(GUEST / "vmlinux"),
                               "boot_args": boot_args}
    if initrd:
        boot["initrd_path"] = str(GUEST / "initramfs.cpio")
    return {"boot-source": boot, "drives": drives,
            "machine-config": {"vcpu_count": vcpus, "mem_size_mib": mem}}


def run_script_args(device: str) -> str:
    """Boot arguments that make the initramfs run ``sh <device>``."""
    return f"{BASE_ARGS} ember.action=run ember.run=sh,{device}"


def curl(sock: str, method: str, path: str, body: str | None = None) -> tuple[int, str]:
    """Firecracker's client of choice, as in its getting-started guide."""
    argv = ["curl", "--silent", "--unix-socket", sock, "-i", "-X", method,
            f"http://localhost{path}", "-H", "Accept: application/json",
            "-H", "Content-Type: application/json"]
    if body is not None:
        argv += ["-d", body]
    done = subprocess.run(argv, capture_output=True, timeout=60)
    text = done.stdout.decode(errors="replace")
    status = int(text.split()[1]) if text.startswith("HTTP/") else 0
    return status, text


def wait_for_socket(path: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def report(name: str, **fields: object) -> None:
    _pending.append({"name": name, **fields})


def _describe(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as err:
        return f"pid {pid}: {err}"
    return f"pid {pid}: state {stat}, waiting in {wchan or '-'}"


def _overrun(name: str, stop: threading.Event) -> None:
    """Kill the attempt's ember processes when it runs past ATTEMPT_LIMIT_S."""
    if stop.wait(ATTEMPT_LIMIT_S):
        return
    live = [vmm for vmm in list(_started) if vmm.proc.poll() is None]
    print(f"scenario {name}: still running after {ATTEMPT_LIMIT_S:g} s; killing "
          + "; ".join(_describe(vmm.proc.pid) for vmm in live), file=sys.stderr, flush=True)
    for vmm in live:
        vmm.timed_out = True
        vmm.kill()


def _attempt(scenario: Callable[[Path], None], name: str, workdir: Path) -> bool:
    """Run once; True if the result stands (no guest died of the rig's triple fault)."""
    _started.clear()
    _pending.clear()
    workdir.mkdir()
    stop = threading.Event()
    threading.Thread(target=_overrun, args=(name, stop), daemon=True).start()
    try:
        scenario(workdir)
    except Exception as err:  # the pytest side shows it next to the scenario's name
        report(name, error=f"{type(err).__name__}: {err}")
    finally:
        stop.set()
    return not any(vmm.died_under_emulation() for vmm in _started)


def _heartbeat() -> None:
    while True:
        time.sleep(HEARTBEAT_S)
        say(HEARTBEAT)


def run_all(scenarios: dict[str, Callable[[Path], None]], names: list[str], workdir: Path) -> None:
    """Run the named scenarios (all when none are named, except those named as ``-NAME``),
    printing one result line each."""
    say(NAMES + json.dumps(list(scenarios)))
    threading.Thread(target=_heartbeat, daemon=True).start()
    skip = {n[1:] for n in names if n.startswith("-")}
    chosen = [n for n in names if not n.startswith("-")] or [n for n in scenarios
                                                              if n not in skip]
    for name in chosen:
        stands = False
        _stalls.clear()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            stands = _attempt(scenarios[name], name, workdir / f"{name}-{attempt}")
            if stands:
                break
        for result in _pending:
            result["attempts"] = attempt
            if _stalls:
                result["stalls"] = list(_stalls)
            if not stands:  # every attempt died under emulation: a new L1 may do better
                result["rig_failed"] = True
            say("EMBER-SCENARIO " + json.dumps(result))
