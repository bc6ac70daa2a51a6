"""Starting and stopping the QEMU process so that it never outlives the rig."""

import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1  # prctl(2): signal delivered to the child when its parent dies


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group (so a terminal's ^C reaches the rig only,
    which forwards it), killed by the kernel if the rig itself is killed."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def _killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
    """Send `sig` to the process group, then SIGKILL after `grace` seconds; reap it."""
    if proc.poll() is None:
        _killpg(proc, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _killpg(proc, signal.SIGKILL)  # stragglers in the group, if any
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
