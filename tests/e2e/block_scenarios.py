"""virtio-blk scenarios, run back to back inside one rig session.

``python tests/e2e/block_scenarios.py [NAME…]`` prints one ``EMBER-SCENARIO <json>`` line per
scenario; test_block.py asserts on them. Each guest runs a shell script from a raw drive
(``ember.action=run ember.run=sh,/dev/vda``) and the host checks the backing files itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    BASE_ARGS,
    GUEST,
    Vmm,
    curl,
    drive,
    report,
    run_all,
    run_script_args,
    script_drive,
    vm_config,
    wait_for_socket,
    write_config,
)

MIB = 1 << 20
BOOT_TIMEOUT = 180


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seed_login(work: Path) -> None:
    """Firecracker's getting-started flow: API calls with curl, then a person at the console."""
    rootfs = work / "rootfs.ext4"
    shutil.copy(GUEST / "rootfs.ext4", rootfs)
    sock = str(work / "api.sock")
    vmm = Vmm(["--api-sock", sock], "seed")
    calls = []
    if wait_for_socket(sock):
        calls.append(curl(sock, "PUT", "/boot-source", json.dumps(
            {"kernel_image_path": str(GUEST / "vmlinux"), "boot_args": BASE_ARGS})))
        calls.append(curl(sock, "PUT", "/drives/rootfs", json.dumps(
            {"drive_id": "rootfs", "path_on_host": str(rootfs), "is_root_device": True,
             "is_read_only": False})))
        calls.append(curl(sock, "PUT", "/actions", '{"action_type": "InstanceStart"}'))
    steps = []
    pos = vmm.wait_for(b"login: ", BOOT_TIMEOUT)
    steps.append(("login prompt", pos >= 0))
    if pos >= 0:
        vmm.type("root\r")
        pos = vmm.wait_for(b"Password: ", 60, pos)
        steps.append(("password prompt", pos >= 0))
        vmm.type("root\r")
        pos = vmm.wait_for(b"# ", 60, pos)
        steps.append(("shell prompt", pos >= 0))
        vmm.type("ls /\r")
        pos = vmm.wait_for(b"# ", 60, pos)
        steps.append(("ls done", pos >= 0))
        vmm.type("reboot\r")
    code = vmm.wait(120)
    report("seed-login", calls=[c[0] for c in calls], steps=steps, returncode=code,
           console=vmm.text()[-6000:], stderr=vmm.stderr()[-2000:])


def _integrity_script(reads: list[tuple[int, int]], writes: list[tuple[int, int, int]]) -> str:
    lines = ["set -e"]
    for i, (offset, length) in enumerate(reads):
        lines.append(f"echo EMBER-READ {i} $(dd if=/dev/vdb bs=512 skip={offset // 512} "
                     f"count={length // 512} 2>/dev/null | md5sum)")
    for src_sector, offset, length in writes:
        lines.append(f"dd if=/dev/vda of=/dev/vdb bs=512 skip={src_sector} seek={offset // 512} "
                     f"count={length // 512} conv=notrunc 2>/dev/null")
    lines += ["sync", "echo EMBER-SYNCED", "sleep 600", "reboot -f"]
    return "\n".join(lines) + "\n"


def integrity(work: Path) -> None:
    """Known patterns both ways at random offsets; SIGKILL right after the guest's sync."""
    rng = random.Random(0xE3BE4)
    data = work / "data.img"
    content = rng.randbytes(16 * MIB)
    data.write_bytes(content)
    reads = [(rng.randrange(0, 16 * MIB // 512 - 64) * 512, rng.choice([512, 4096, 65536]))
             for _ in range(6)]
    blobs = [rng.randbytes(rng.choice([512, 4096, 131072])) for _ in range(6)]
    offsets = [rng.randrange(0, 16 * MIB // 512 - 256) * 512 for _ in blobs]
    script = work / "script.img"
    sectors = script_drive(script, "", blobs)  # sizes first, then the real script
    writes = [(s, o, len(b)) for s, o, b in zip(sectors, offsets, blobs, strict=True)]
    script_drive(script, _integrity_script(reads, writes), blobs)
    config = vm_config([drive("script", script), drive("data", data)], run_script_args("/dev/vda"))
    vmm = Vmm(["--no-api", "--config-file", write_config(work / "vm.json", config)], "integrity")
    synced = vmm.wait_for(b"EMBER-SYNCED", BOOT_TIMEOUT) >= 0
    vmm.kill(signal.SIGKILL)
    code = vmm.wait(30)
    console = vmm.text()
    expected = [hashlib.md5(content[o:o + n]).hexdigest() for o, n in reads]
    seen = {}
    for line in console.splitlines():
        if line.startswith("EMBER-READ "):
            _tag, index, digest, *_ = line.split()
            seen[int(index)] = digest
    after = data.read_bytes()
    written_ok = [after[o:o + len(b)] == b for o, b in zip(offsets, blobs, strict=True)]
    report("integrity", synced=synced, returncode=code, reads_ok=[
        seen.get(i) == h for i, h in enumerate(expected)], writes_ok=written_ok,
        console=console[-4000:])


def read_only(work: Path) -> None:
    """A read-only drive: the guest is told (VIRTIO_BLK_F_RO) and cannot change it."""
    ro = work / "ro.img"
    ro.write_bytes(random.Random(7).randbytes(4 * MIB))
    before = _sha(ro)
    script = work / "script.img"
    script_drive(script, "\n".join([
        "echo EMBER-RO-FLAG $(cat /sys/block/vdb/ro)",
        "dd if=/dev/zero of=/dev/vdb bs=4096 count=4 conv=notrunc 2>/dev/null;"
        " echo EMBER-DD-PLAIN $?",
        "blockdev --setrw /dev/vdb 2>/dev/null; echo EMBER-SETRW $?",
        "dd if=/dev/zero of=/dev/vdb bs=4096 count=4 oflag=direct conv=notrunc 2>/dev/null;"
        " echo EMBER-DD-DIRECT $?",
        "sync", "reboot -f", ""]))
    config = vm_config([drive("script", script), drive("ro", ro, read_only=True)],
                       run_script_args("/dev/vda"))
    vmm = Vmm(["--no-api", "--config-file", write_config(work / "vm.json", config)], "ro")
    code = vmm.wait(BOOT_TIMEOUT)
    report("read-only", returncode=code, unchanged=_sha(ro) == before, console=vmm.text()[-4000:])


def shared_rootfs(work: Path) -> None:
    """Two microVMs at once on one read-only rootfs, each with its own writable drive."""
    rootfs = GUEST / "rootfs.ext4"
    before = _sha(rootfs)
    vmms = []
    for n in (1, 2):
        data = work / f"data{n}.img"
        data.write_bytes(bytes(MIB))
        script = work / f"script{n}.img"
        script_drive(script, "\n".join([
            "mkdir -p /mnt && mount -t ext4 -o ro /dev/vdb /mnt",
            "echo EMBER-HOSTNAME $(cat /mnt/etc/hostname)",
            f"echo vm-{n}-was-here | dd of=/dev/vdc conv=notrunc 2>/dev/null",
            "umount /mnt", "sync", "reboot -f", ""]))
        config = vm_config([drive("script", script), drive("rootfs", rootfs, read_only=True),
                            drive("data", data)], run_script_args("/dev/vda"))
        vmms.append(Vmm(["--no-api", "--config-file",
                         write_config(work / f"vm{n}.json", config)], f"vm{n}"))
    codes = [v.wait(BOOT_TIMEOUT * 2) for v in vmms]
    marks = [(work / f"data{n}.img").read_bytes()[:16] for n in (1, 2)]
    report("shared-rootfs", returncodes=codes, rootfs_unchanged=_sha(rootfs) == before,
           marks=[m.decode(errors="replace") for m in marks],
           consoles=[v.text()[-1500:] for v in vmms])


def resize(work: Path) -> None:
    """PATCH /drives after boot swaps the backing file; the guest sees the new size."""
    data = work / "small.img"
    data.write_bytes(bytes(MIB))
    bigger = work / "big.img"
    bigger.write_bytes(bytes(3 * MIB))
    script = work / "script.img"
    script_drive(script, "\n".join([
        "echo EMBER-SIZE-BEFORE $(cat /sys/block/vdb/size)",
        "echo EMBER-WAIT-RESIZE",
        "i=0; while [ $(cat /sys/block/vdb/size) = 2048 ] && [ $i -lt 600 ]; do"
        " sleep 0.2; i=$((i+1)); done",
        "echo EMBER-SIZE-AFTER $(cat /sys/block/vdb/size)",
        "reboot -f", ""]))
    sock = str(work / "api.sock")
    config = vm_config([drive("script", script), drive("data", data)], run_script_args("/dev/vda"))
    vmm = Vmm(["--api-sock", sock, "--config-file", write_config(work / "vm.json", config)],
              "resize")
    patched = None
    if vmm.wait_for(b"EMBER-WAIT-RESIZE", BOOT_TIMEOUT) >= 0:
        patched = curl(sock, "PATCH", "/drives/data",
                       json.dumps({"drive_id": "data", "path_on_host": str(bigger)}))[0]
    code = vmm.wait(180)
    report("resize", patched=patched, returncode=code, console=vmm.text()[-3000:])


def rate_limited(work: Path) -> None:
    """A 1 MiB/s bandwidth bucket holds a 4 MiB read back (test_block.py has the bound).

    Timed on the host's clock (the limiter's), from the guest's console lines: a guest's own
    clock can lag under nested emulation."""
    data = work / "data.img"
    data.write_bytes(bytes(8 * MIB))
    script = work / "script.img"
    script_drive(script, "\n".join([
        "echo EMBER-T0",
        "dd if=/dev/vdb of=/dev/null bs=65536 count=64 iflag=direct 2>/dev/null",
        "echo EMBER-T1",
        "reboot -f", ""]))
    limiter = {"bandwidth": {"size": MIB, "refill_time": 1000}}
    config = vm_config([drive("script", script), drive("data", data, rate_limiter=limiter)],
                       run_script_args("/dev/vda"))
    metrics = work / "metrics.json"
    vmm = Vmm(["--no-api", "--config-file", write_config(work / "vm.json", config),
               "--metrics-path", str(metrics)], "rate")
    t0 = t1 = None
    if (pos := vmm.wait_for(b"EMBER-T0", BOOT_TIMEOUT)) >= 0:
        t0 = time.monotonic()
        if vmm.wait_for(b"EMBER-T1", 120, pos) >= 0:
            t1 = time.monotonic()
    code = vmm.wait(BOOT_TIMEOUT)
    report("rate-limited", returncode=code, console=vmm.text()[-2000:],
           elapsed=None if t0 is None or t1 is None else t1 - t0,
           metrics=metrics.read_text()[-6000:] if metrics.exists() else "")


def writeback_ctrl_alt_del(work: Path) -> None:
    """A Writeback drive: the guest's fsync of the device reaches the disk through FLUSH
    (fdatasync); then
    SendCtrlAltDel over the API reboots the guest through the i8042 and ember exits 0."""
    rootfs = work / "rootfs.ext4"
    shutil.copy(GUEST / "rootfs.ext4", rootfs)
    data = work / "data.img"
    data.write_bytes(bytes(MIB))
    sock = str(work / "api.sock")
    metrics = work / "metrics.json"
    config = vm_config([drive("rootfs", rootfs, root=True),
                        drive("data", data, cache_type="Writeback")], BASE_ARGS, initrd=False)
    vmm = Vmm(["--api-sock", sock, "--config-file", write_config(work / "vm.json", config),
               "--metrics-path", str(metrics)], "writeback")
    steps = []
    pos = vmm.wait_for(b"login: ", BOOT_TIMEOUT)
    steps.append(("login prompt", pos >= 0))
    vmm.type("root\r")
    pos = vmm.wait_for(b"Password: ", 60, max(pos, 0))
    vmm.type("root\r")
    pos = vmm.wait_for(b"# ", 60, max(pos, 0))
    steps.append(("shell", pos >= 0))
    # The quotes keep the typed command's own echo from matching the marker.
    vmm.type("echo written-back | dd of=/dev/vdb conv=notrunc,fsync && sync"
             " && echo EMBER-FLUSH''ED\r")
    pos = vmm.wait_for(b"EMBER-FLUSHED\r\n", 60, max(pos, 0))
    steps.append(("flushed", pos >= 0))
    on_disk = data.read_bytes()[:13]
    status = curl(sock, "PUT", "/actions", json.dumps({"action_type": "SendCtrlAltDel"}))[0]
    code = vmm.wait(180)
    report("writeback-cad", steps=steps, on_disk=on_disk.decode(errors="replace"),
           cad_status=status, returncode=code, console=vmm.text()[-3000:],
           metrics=metrics.read_text()[-8000:] if metrics.exists() else "")


SCENARIOS = {
    "seed-login": seed_login,
    "integrity": integrity,
    "read-only": read_only,
    "resize": resize,
    "rate-limited": rate_limited,
    "writeback-cad": writeback_ctrl_alt_del,
    "shared-rootfs": shared_rootfs,
}


if __name__ == "__main__":
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ember-blk-") as tmp:
        run_all(SCENARIOS, sys.argv[1:], Path(tmp))
    print(f"block scenarios took {time.monotonic() - started:.1f} s", file=sys.stderr)
    os._exit(0)
