"""The two VMMs under test: how each is launched for the same guest.

Both get the same kernel, initramfs, command line, vCPUs, memory and drive. ember reads
a Firecracker config file; QEMU gets the microvm machine with everything optional off.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import EMBER, QEMU

ROOT = Path(__file__).resolve().parents[1]
GUEST = ROOT / "build" / "guest"
EMBER_BIN = str(Path(sys.executable).parent / "ember")
QEMU_BIN = "qemu-system-x86_64"
# How the guest's `reboot -f` ends each VMM. ember: Firecracker's reboot=k, a reset through
# the i8042. QEMU's microvm has no i8042; reboot=a resets through ACPI, and -no-reboot
# turns the reset into an exit. (reboot=t, a triple fault, would do for both, but under
# the nested rig a triple fault in the guest now and then takes the L1 VM down with it.)
REBOOT = {EMBER: "reboot=k", QEMU: "reboot=a"}
BASE_CMDLINE = "console=ttyS0 {reboot} panic=1 pci=off"
# The machine's optional legacy devices are off: the guest needs only the serial port.
QEMU_MACHINE = "microvm,x-option-roms=off,isa-serial=on,rtc=off,pit=off,pic=off"


@dataclass
class Guest:
    """What both VMMs boot: the same images, size and command line."""

    kernel: Path = GUEST / "vmlinux"
    qemu_kernel: Path = GUEST / "vmlinux"
    initrd: Path = GUEST / "initramfs.cpio"
    vcpus: int = 2
    mem_mib: int = 256
    extra_args: str = ""
    drive: Path | None = None
    qemu_cpu: str = "host"
    qemu_cache: str = "none"

    def cmdline(self, vmm: str) -> str:
        base = BASE_CMDLINE.format(reboot=REBOOT[vmm])
        return f"{base} {self.extra_args}".strip()

    @property
    def mem_bytes(self) -> int:
        return self.mem_mib << 20


@dataclass
class Launch:
    """A VMM command line, plus the files it needs written first."""

    vmm: str
    argv: list[str]
    files: dict[Path, str] = field(default_factory=dict)
    log: Path | None = None

    def prepare(self) -> None:
        for path, text in self.files.items():
            path.write_text(text)
        if self.log is not None:
            self.log.write_text("")

    def shell(self) -> str:
        return shlex.join(self.argv)


def ember_config(guest: Guest) -> dict[str, object]:
    config: dict[str, object] = {
        "boot-source": {"kernel_image_path": str(guest.kernel),
                        "initrd_path": str(guest.initrd), "boot_args": guest.cmdline(EMBER)},
        "machine-config": {"vcpu_count": guest.vcpus, "mem_size_mib": guest.mem_mib},
    }
    if guest.drive is not None:
        config["drives"] = [{"drive_id": "data", "path_on_host": str(guest.drive),
                             "is_root_device": False, "is_read_only": False}]
    return config


def ember(guest: Guest, workdir: Path, tag: str = "ember", *, boot_timer: bool = True,
          api_sock: Path | None = None) -> Launch:
    """ember booting `guest` from a config file (or serving its API when api_sock is given)."""
    config, log = workdir / f"{tag}.json", workdir / f"{tag}.log"
    if api_sock is not None:
        argv = [EMBER_BIN, "--api-sock", str(api_sock), "--level", "Info",
                "--log-path", str(log)]
        return Launch(EMBER, argv, log=log)
    argv = [EMBER_BIN, "--no-api", "--config-file", str(config), "--level", "Info",
            "--log-path", str(log)]
    if boot_timer:
        argv.append("--boot-timer")
    return Launch(EMBER, argv, {config: json.dumps(ember_config(guest), indent=1)}, log)


def qemu(guest: Guest, *, qmp_sock: Path | None = None) -> Launch:
    """QEMU's microvm booting `guest`; with qmp_sock, paused (-S) with a QMP socket."""
    argv = [QEMU_BIN, "-M", QEMU_MACHINE, "-accel", "kvm", "-cpu", guest.qemu_cpu,
            "-smp", str(guest.vcpus), "-m", str(guest.mem_mib),
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-serial", "stdio", "-kernel", str(guest.qemu_kernel),
            "-initrd", str(guest.initrd), "-append", guest.cmdline(QEMU)]
    if guest.drive is not None:
        argv += ["-drive", f"file={guest.drive},format=raw,if=none,id=data,"
                 f"cache={guest.qemu_cache},aio=threads",
                 "-device", "virtio-blk-device,drive=data"]
    if qmp_sock is not None:
        argv += ["-S", "-qmp", f"unix:{qmp_sock},server=on,wait=off"]
    return Launch(QEMU, argv)


def supports_o_direct(directory: Path) -> bool:
    """Whether files in `directory` can be opened with O_DIRECT (tmpfs and overlays on it
    cannot on Linux 6.1: QEMU's cache=none then refuses to open the drive)."""
    probe = directory / ".o_direct_probe"
    probe.write_bytes(b"\0" * 4096)
    try:
        fd = os.open(probe, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    os.close(fd)
    return True
