"""The L1 initramfs: a static busybox, the init script and the kernel modules.

The init script is fixed; what changes per run (command, environment, directory, terminal
mode) reaches it through the writable 9p export, so the archive is built once per kernel
and cached beside it.
"""

import hashlib
import os
from pathlib import Path

from ember.rig import _cpio
from ember.rig._kernel import Kernel
from ember.rig.errors import BusyboxMissingError

BUSYBOX = Path("/bin/busybox")
# 9p mount tags, shared with the QEMU command line.
HOSTROOT_TAG = "hostroot"
EXCHANGE_TAG = "rigio"
# Where the exchange directory appears inside the chroot.
EXCHANGE_MOUNT = "/run/ember-rig"
# Printed on the console right before the command starts; the rig strips it and what precedes.
READY_MARKER = b"\x1e@@ember-rig:ready@@\x1e"
# Printed after the command; the rig strips it and what follows, and answers with ACK + "\n".
END_MARKER = b"\x1e@@ember-rig:end@@\x1e"
ACK = b"ember-rig-ack"

_P9 = "trans=virtio,version=9p2000.L,msize=512000"

INIT_SCRIPT = f"""#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
fail() {{ echo "ember-rig: L1 init: $*" >/dev/console; poweroff -f; sleep 60; }}
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs dev /dev ||
  fail "cannot mount proc, sys, dev"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || fail "insmod $m"; done
mount -t 9p -o {_P9} {EXCHANGE_TAG} /x || fail "cannot mount the exchange directory"
mount -t 9p -o {_P9},ro,cache=loose {HOSTROOT_TAG} /lower || fail "cannot mount the host root"
mount -t tmpfs -o mode=0755 rw /rw && mkdir /rw/upper /rw/work || fail "tmpfs"
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot ||
  fail "cannot mount the overlay"
n=/newroot
mount -t proc proc $n/proc && mount -t sysfs sysfs $n/sys && mount -t devtmpfs dev $n/dev &&
  mkdir -p $n/dev/pts $n/dev/shm &&
  mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $n/dev/pts &&
  mount -t tmpfs -o mode=1777 shm $n/dev/shm &&
  mount -t tmpfs -o mode=0755 run $n/run &&
  mkdir -p $n{EXCHANGE_MOUNT} && mount --move /x $n{EXCHANGE_MOUNT} || fail "chroot mounts"
x=$n{EXCHANGE_MOUNT}
. $x/mode.sh
# Hold both ports open for the whole run: a last close shuts a port down and the next open
# clears the UART FIFOs, losing input that arrived meanwhile and output not yet sent.
exec 3<>/dev/ttyS0 4<>/dev/ttyS1
stty $STTY0 <&3 && stty $STTY1 <&4 || fail "stty"
# From here ttyS0 carries the command's output: only emergencies (a panic, a soft lockup)
# may still reach it, the last words of an L1 going down, which its failure log shows.
echo 1 >/proc/sys/kernel/printk
printf '{READY_MARKER.decode()}' >&3
# The session leader owns ttyS0 as controlling tty (^C reaches the command as SIGINT). When a
# session leader exits, the kernel hangs its tty up and discards unsent output: so the leader
# is a shell that survives ^C (a handler, not an ignore, which exec would pass on), waits for
# the command, and drains the output (stty's TCSADRAIN) before it exits.
setsid -c sh -c 'trap : INT QUIT; env -i chroot "$0" /bin/sh "$1"; rc=$?; stty -echo; exit $rc' \
  $n {EXCHANGE_MOUNT}/job.sh <&3 >&3 2>&4 3<&- 4<&-
echo $? >$x/status
exec 3<>/dev/ttyS0
# Drain stderr too and reset the modes; then the end marker, which the rig answers once
# everything before it has arrived: only then does the power go.
stty $STTY0 <&3; stty $STTY1 <&4
printf '{END_MARKER.decode()}' >&3
i=0
while [ $i -lt 40 ]; do
  line=; read -t 5 line <&3; [ "$line" = {ACK.decode()} ] && break; i=$((i + 1))
done
poweroff -f
"""


def _entries(kernel: Kernel) -> list[_cpio.Entry]:
    dirs = "bin sbin usr usr/bin usr/sbin proc sys dev x lower rw newroot lib lib/modules"
    entries = [_cpio.directory(d) for d in dirs.split()]
    entries += [
        _cpio.char_device("dev/console", 5, 1),
        _cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755),
        _cpio.file("init", INIT_SCRIPT.encode(), 0o755),
        _cpio.file("lib/modules/order", (kernel.modules_dir / "order").read_bytes()),
    ]
    for name in kernel.load_order():
        data = (kernel.modules_dir / f"{name}.ko").read_bytes()
        entries.append(_cpio.file(f"lib/modules/{name}.ko", data))
    return entries


def _key(kernel: Kernel) -> str:
    st = BUSYBOX.stat()
    ident = f"{INIT_SCRIPT}\0{kernel.version}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def ensure_initramfs(kernel: Kernel) -> Path:
    """The cached initramfs for `kernel`, built first if needed."""
    if not BUSYBOX.exists():
        raise BusyboxMissingError(str(BUSYBOX))
    path = kernel.root / f"initramfs-{_key(kernel)}.cpio"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as out:
            _cpio.write(out, _entries(kernel))
        os.replace(tmp, path)
    return path
