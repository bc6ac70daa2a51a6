"""The QEMU command line for the L1 VM: TCG with emulated AMD SVM and nested paging."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ember.rig._initramfs import EXCHANGE_TAG, HOSTROOT_TAG
from ember.rig.errors import QemuMissingError, RigError

QEMU = "qemu-system-x86_64"
# quiet + loglevel=1: only emergencies (a panic) reach the console, during boot and while
# the command runs. panic=-1 with -no-reboot: a panic ends QEMU.
KERNEL_CMDLINE = "console=ttyS0,115200 quiet loglevel=1 panic=-1 rdinit=/init"
# Extra L1 kernel arguments, for debugging (e.g. `loglevel=7` shows the boot log on failure).
APPEND_ENV = "EMBER_RIG_APPEND"


@dataclass(frozen=True)
class L1Config:
    kernel: Path
    initrd: Path
    exchange: Path  # writable 9p export
    serial0: Path  # QEMU `pipe` chardev base paths: `<path>.in` and `<path>.out` fifos
    serial1: Path
    memory_mib: int = 4096
    cpus: int = 2
    tcg_thread: str | None = None  # None: $EMBER_RIG_TCG_THREAD, else "multi"


# EMBER_RIG_TCG_THREAD=single|multi: QEMU's TCG threading for the L1 VM. Multi-threaded
# TCG runs each L1 vCPU on its own host thread (faster); under it the emulated L1 has been
# seen to reset itself (QEMU exits 0) whenever two L2 guests ran at once, where one thread
# for all L1 vCPUs ran the same work through.
TCG_THREAD_ENV = "EMBER_RIG_TCG_THREAD"
TCG_THREADS = ("multi", "single")


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise QemuMissingError()
    return path


def tcg_thread(cfg: L1Config) -> str:
    chosen = cfg.tcg_thread or os.environ.get(TCG_THREAD_ENV) or "multi"
    if chosen not in TCG_THREADS:
        raise RigError(f"TCG threading {chosen!r} is not one of {', '.join(TCG_THREADS)} "
                       f"(from {TCG_THREAD_ENV} or the caller)")
    return chosen


def command(cfg: L1Config) -> list[str]:
    """argv for QEMU; serial 0 carries the command's stdin/stdout, serial 1 its stderr."""
    return [
        qemu_binary(),
        "-M", "q35",
        "-accel", f"tcg,thread={tcg_thread(cfg)}",
        "-cpu", "EPYC,+svm,+npt",
        "-m", str(cfg.memory_mib),
        "-smp", str(cfg.cpus),
        "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-kernel", str(cfg.kernel),
        "-initrd", str(cfg.initrd),
        "-append", f"{KERNEL_CMDLINE} {os.environ.get(APPEND_ENV, '')}".strip(),
        "-chardev", f"pipe,id=s0,path={cfg.serial0}",
        "-serial", "chardev:s0",
        "-chardev", f"pipe,id=s1,path={cfg.serial1}",
        "-serial", "chardev:s1",
        "-virtfs",
        f"local,path=/,mount_tag={HOSTROOT_TAG},security_model=none,readonly=on,"
        "multidevs=remap",
        "-virtfs", f"local,path={cfg.exchange},mount_tag={EXCHANGE_TAG},security_model=none",
    ]
