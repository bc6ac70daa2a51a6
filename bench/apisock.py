"""Exec → the control socket answers: ember's API socket, QEMU's QMP socket.

ember is started with `--api-sock` (no microVM configured yet) and counts as ready when
a `GET /` over the socket gets its first response bytes; QEMU is started paused (`-S`)
with the same machine and a QMP socket, and counts as ready when its QMP greeting
arrives. Both are polled every POLL_S.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from bench import vmms
from bench.process import BenchError, Running

POLL_S = 0.001
EMBER_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"


def _answer(path: Path, request: bytes) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        sock.settimeout(30)
        if request:
            sock.sendall(request)
        return bool(sock.recv(64))


def ready_s(launch: vmms.Launch, path: Path, request: bytes, timeout: float) -> float:
    """Seconds from exec until the socket at `path` answers."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with Running(launch) as vm:
        deadline = vm.started + timeout
        while time.monotonic() < deadline:
            if vm.proc.poll() is not None:
                raise BenchError(vm._failure("exited before its socket was ready"))
            if path.exists() and _answer(path, request):
                return time.monotonic() - vm.started
            time.sleep(POLL_S)
        raise BenchError(vm._failure(f"socket not ready after {timeout:g} s"))


def ember_ready(work: Path, timeout: float) -> float:
    sock = work / "ember-api.sock"
    return ready_s(vmms.ember(vmms.Guest(), work, "ember-api", api_sock=sock), sock,
                   EMBER_REQUEST, timeout)


def qemu_ready(guest: vmms.Guest, work: Path, timeout: float) -> float:
    sock = work / "qemu-qmp.sock"
    return ready_s(vmms.qemu(guest, qmp_sock=sock), sock, b"", timeout)
