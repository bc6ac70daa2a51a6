"""Stands in for QEMU in the session tests: speaks the rig's side of the serial fifos.

argv: S0 S1 EXCHANGE BEHAVIOUR. It writes a boot log and the ready marker on serial 0,
then acts out BEHAVIOUR:
  echo   copy stdin to stdout upper-cased (^D shown as `^D`) up to ^D, "err" to serial 1, status 7
  hang   sleep forever
  crash  print a kernel panic line after the command's output, exit without a status
"""

import os
import sys
import time
from pathlib import Path

from ember.rig._initramfs import READY_MARKER


def main() -> None:
    s0, s1, exchange, behaviour = sys.argv[1:5]
    out = os.open(s0 + ".out", os.O_WRONLY)
    os.write(out, b"[    0.1] boot noise\n" + READY_MARKER[:5])
    time.sleep(0.05)
    os.write(out, READY_MARKER[5:] + b"first")
    if behaviour == "hang":
        time.sleep(3600)
    if behaviour == "crash":
        os.write(out, b"\nKernel panic - not syncing: fake\n")
        sys.exit(1)
    inp = os.open(s0 + ".in", os.O_RDONLY)
    data = b""
    while not data.endswith(b"\x04"):
        data += os.read(inp, 4096)
    os.write(out, data.replace(b"\x04", b"^D").upper())
    err = os.open(s1 + ".out", os.O_WRONLY)
    os.write(err, b"err")
    (Path(exchange) / "status").write_text("7\n")


if __name__ == "__main__":
    main()
