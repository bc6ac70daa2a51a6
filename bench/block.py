"""Block I/O from inside the guest with busybox dd and O_DIRECT.

One raw drive holds both the guest's script (in its first MiB, NUL-padded) and the data
area after it, so the test does not depend on the order in which a VMM names its drives:
the guest runs `sh /dev/vda`. The script first prints BENCH-READY and idles SETTLE_S
(the VMM's memory is sampled then), then reports, each with /proc/uptime before and after
and dd's `N+M records out` line, as `BENCH-` lines on the console:
  WRITE  sequential 1 MiB writes over the data area (dd oflag=direct)
  READ   sequential 1 MiB reads of it back (dd iflag=direct)
  QD1    4 KiB reads by one dd process (iflag=direct, sequential): the device's 4 KiB
         IOPS at queue depth 1 without process start-up in the loop
  RAND   random 4 KiB reads, one `dd bs=4k count=1 skip=$RANDOM… iflag=direct` each (busybox
         has no single tool for random offsets), timed as a whole
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import parse, vmms
from bench.process import BenchError, Running

MIB = 1 << 20
MB = 1_000_000
SCRIPT_AREA = MIB
BLOCK_4K = 4096
RANDOM_MAX = 32767  # ash's $RANDOM
RUN_SCRIPT = "ember.action=run ember.run=sh,/dev/vda"
# Seconds the script waits after BENCH-READY: the VMM's memory is sampled then.
SETTLE_S = 2

SCRIPT = """\
D=/dev/vda
echo BENCH-READY
sleep {settle}
timed() {{  # timed NAME DD-ARGS...: uptime before and after, and dd's last line
  name=$1; shift
  read -r t0 _ < /proc/uptime
  out=$(busybox dd "$@" 2>&1 | busybox tail -n 1)
  read -r t1 _ < /proc/uptime
  echo "BENCH-$name $t0 $t1 $out"
}}
timed WRITE if=/dev/zero of=$D bs=1M seek=1 count={mib} oflag=direct
timed READ if=$D of=/dev/null bs=1M skip=1 count={mib} iflag=direct
timed QD1 if=$D of=/dev/null bs=4k skip=256 count={qd1} iflag=direct
read -r t0 _ < /proc/uptime
i=0
while [ $i -lt {rand} ]; do
  busybox dd if=$D of=/dev/null bs=4k count=1 skip=$((256 + RANDOM % {blocks})) \\
    iflag=direct 2>/dev/null
  i=$((i + 1))
done
read -r t1 _ < /proc/uptime
echo "BENCH-RAND $t0 $t1 {rand}+0 records out"
reboot -f
while :; do sleep 1; done
"""


@dataclass(frozen=True)
class BlockPlan:
    data_mib: int  # size of the data area, read and written sequentially
    random_reads: int  # dd processes in the random-read loop
    qd1_reads: int  # 4 KiB reads by the single dd

    def script(self) -> bytes:
        text = SCRIPT.format(settle=SETTLE_S, mib=self.data_mib, qd1=self.qd1_reads,
                             rand=self.random_reads, blocks=self.random_span())
        raw = text.encode()
        if len(raw) >= SCRIPT_AREA:
            raise ValueError("guest script does not fit its area")
        return raw + b"\0" * (SCRIPT_AREA - len(raw))

    def random_span(self) -> int:
        """4 KiB blocks the random reads spread over ($RANDOM stops at 32767)."""
        return min(self.data_mib * MIB // BLOCK_4K, RANDOM_MAX + 1)

    def make_drive(self, path: Path) -> None:
        with open(path, "wb") as f:
            f.write(self.script())
            f.truncate(SCRIPT_AREA + self.data_mib * MIB)


@dataclass(frozen=True)
class BlockSample:
    write_mb_s: float | None
    read_mb_s: float | None
    qd1_iops: float | None
    rand_iops: float | None


def _rate(marks: dict[str, list[str]], name: str, unit: int) -> float | None:
    """Units per second of the named timed dd (None when missing or too quick to time)."""
    if name not in marks:
        return None
    timed = parse.timed_dd(marks[name][-1])
    return timed.rate(unit) if timed else None


def sample(console: str) -> BlockSample:
    marks = parse.marks(console)
    write, read = _rate(marks, "WRITE", MIB), _rate(marks, "READ", MIB)
    return BlockSample(write / MB if write else None, read / MB if read else None,
                       _rate(marks, "QD1", 1), _rate(marks, "RAND", 1))


def run(launch: vmms.Launch, timeout: float) -> BlockSample:
    with Running(launch) as vm:
        code = vm.wait(timeout)
        console = vm.console()
    result = sample(console)
    if code != 0 or result.read_mb_s is None:
        raise BenchError(f"{launch.vmm}: block run failed (exit {code}):\n{console[-2000:]}")
    return result
