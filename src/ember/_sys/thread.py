"""Name the calling OS thread, as Firecracker names its threads (`fc_vcpu 0`, ...), so that
ps, top and /proc/PID/task/TID/comm tell the VMM's threads apart.

Python 3.11's threading names a thread for Python only; the kernel's name stays the
process's.
"""

from __future__ import annotations

import ctypes
import threading

# include/uapi/linux/prctl.h
PR_SET_NAME = 15
# include/linux/sched.h: TASK_COMM_LEN, the terminating NUL included.
TASK_COMM_LEN = 16

_libc = ctypes.CDLL(None, use_errno=True)


def name_this_thread(name: str | None = None) -> bool:
    """Give the calling thread's OS thread ``name`` (default: its Python name), cut to the
    kernel's 15 bytes. Best effort: False where the kernel refused."""
    raw = (name or threading.current_thread().name).encode("utf-8", "replace")
    return int(_libc.prctl(PR_SET_NAME, ctypes.c_char_p(raw[:TASK_COMM_LEN - 1]), 0, 0, 0)) == 0
