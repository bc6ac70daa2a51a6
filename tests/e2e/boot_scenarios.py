"""Boot scenarios run back to back inside one rig session (one L1 boot serves them all).

Run as ``python tests/e2e/boot_scenarios.py NAME…`` where KVM boots Linux (through
``ember-rig run --`` on hosts that need it). For each scenario it writes a Firecracker
config file, runs ``ember --no-api --config-file`` on it, and prints one line
``EMBER-SCENARIO <json>`` with the exit status, output, and the time from process start to
the guest's init marker. The pytest side (test_boot.py) asserts on those lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / "build" / "guest"
EMBER = Path(sys.prefix) / "bin" / "ember"
BASE_ARGS = "console=ttyS0 reboot=k panic=1 pci=off"
MARKER = b"EMBER-GUEST-INIT"
TIMEOUT_S = 240


def _config(kernel: str, vcpus: int, extra_args: str = "") -> dict[str, object]:
    return {
        "boot-source": {
            "kernel_image_path": kernel,
            "initrd_path": str(GUEST / "initramfs.cpio"),
            "boot_args": f"{BASE_ARGS} {extra_args}".strip(),
        },
        "machine-config": {"vcpu_count": vcpus, "mem_size_mib": 256},
    }


def _corrupt_kernel(workdir: str) -> str:
    path = os.path.join(workdir, "corrupt-vmlinux")
    with open(GUEST / "vmlinux", "rb") as src, open(path, "wb") as dst:
        head = bytearray(src.read(4096))
        head[0x38:0x3A] = b"\xff\xff"  # e_phnum: an absurd program-header count
        dst.write(head)
    return path


SCENARIOS = {
    "elf-1cpu": lambda w: _config(str(GUEST / "vmlinux"), 1),
    "elf-2cpu": lambda w: _config(str(GUEST / "vmlinux"), 2),
    "bzimage-2cpu": lambda w: _config(str(GUEST / "bzImage"), 2),
    "cmdline": lambda w: _config(str(GUEST / "vmlinux"), 1, "ember.probe=cmdline-7f3a"),
    "panic": lambda w: _config(str(GUEST / "vmlinux"), 1, "ember.action=panic"),
    "missing-kernel": lambda w: _config(os.path.join(w, "no-such-vmlinux"), 1),
    "corrupt-kernel": lambda w: _config(_corrupt_kernel(w), 1),
}


def run_scenario(name: str, workdir: str) -> dict[str, object]:
    config_path = os.path.join(workdir, f"{name}.json")
    with open(config_path, "w") as f:
        json.dump(SCENARIOS[name](workdir), f)
    log_path = os.path.join(workdir, f"{name}.log")
    argv = [str(EMBER), "--no-api", "--config-file", config_path, "--id", name,
            "--level", "Info", "--log-path", log_path, "--boot-timer"]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    out, marker_s = _read_until_exit(proc, start)
    stderr = proc.stderr.read() if proc.stderr else b""
    log = Path(log_path).read_text(errors="replace") if os.path.exists(log_path) else ""
    return {"name": name, "returncode": proc.returncode, "marker_s": marker_s,
            "wall_s": time.monotonic() - start, "stdout": out.decode(errors="replace"),
            "stderr": stderr.decode(errors="replace"), "log": log}


def _read_until_exit(proc: subprocess.Popen[bytes], start: float) -> tuple[bytes, float | None]:
    assert proc.stdout is not None
    out = bytearray()
    marker_s = None
    killer = threading.Timer(TIMEOUT_S, proc.kill)
    killer.start()
    try:
        while chunk := proc.stdout.read1(65536):
            out += chunk
            if marker_s is None and MARKER in out:
                marker_s = time.monotonic() - start
        proc.wait()
    finally:
        killer.cancel()
    return bytes(out), marker_s


def main(names: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="ember-e2e-") as workdir:
        for name in names or list(SCENARIOS):
            result = run_scenario(name, workdir)
            print("EMBER-SCENARIO " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
