"""ioctl request encoding and a GIL-releasing ioctl call.

The request numbers follow ``include/uapi/asm-generic/ioctl.h``::

    #define _IOC(dir,type,nr,size) \
        (((dir) << _IOC_DIRSHIFT) | ((type) << _IOC_TYPESHIFT) | \
         ((nr) << _IOC_NRSHIFT) | ((size) << _IOC_SIZESHIFT))
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import Any

# include/uapi/asm-generic/ioctl.h: field widths and shifts.
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30
_IOC_SIZEMASK = (1 << 14) - 1
IOC_NONE = 0
IOC_WRITE = 1
IOC_READ = 2


def _ioc(direction: int, kind: int, nr: int, size: int) -> int:
    if not 0 <= size <= _IOC_SIZEMASK:
        raise ValueError(f"ioctl argument size {size} does not fit in 14 bits")
    return (
        (direction << _IOC_DIRSHIFT)
        | (kind << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def io(kind: int, nr: int) -> int:
    """``_IO(type, nr)``: no argument struct."""
    return _ioc(IOC_NONE, kind, nr, 0)


def ior(kind: int, nr: int, ctype: Any) -> int:
    """``_IOR(type, nr, T)``: the kernel writes a ``T``."""
    return _ioc(IOC_READ, kind, nr, ctypes.sizeof(ctype))


def iow(kind: int, nr: int, ctype: Any) -> int:
    """``_IOW(type, nr, T)``: the kernel reads a ``T``."""
    return _ioc(IOC_WRITE, kind, nr, ctypes.sizeof(ctype))


def iowr(kind: int, nr: int, ctype: Any) -> int:
    """``_IOWR(type, nr, T)``: both directions."""
    return _ioc(IOC_READ | IOC_WRITE, kind, nr, ctypes.sizeof(ctype))


# The C library the interpreter itself is linked with (ctypes.util.find_library would run
# ldconfig in a subprocess: milliseconds of start-up for a name that is always this one).
_libc = ctypes.CDLL(None, use_errno=True)
_libc_ioctl = _libc.ioctl
_libc_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc_ioctl.restype = ctypes.c_int


def ioctl(fd: int, request: int, arg: Any = None) -> int:
    """Call ioctl(2) through ctypes, which releases the GIL and does not retry EINTR.

    ``arg`` is a ctypes object (passed by reference), an int (passed as an unsigned
    long, so values above 2**31 work), or None. Raises OSError on failure.
    """
    if arg is None:
        ptr: Any = None
    elif isinstance(arg, int):
        ptr = ctypes.c_void_p(arg)
    else:
        ptr = ctypes.byref(arg)
    ret = _libc_ioctl(fd, request, ptr)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def bound_ioctl(fd: int, request: int) -> Callable[[], int]:
    """``ioctl(fd, request, NULL)`` bound once, for the vCPU hot path: each call is one C
    call with no argument conversion; it returns the raw result (-1 on failure, with the
    error in :func:`last_errno`)."""
    if not 0 <= request < 1 << 31:
        raise ValueError(f"ioctl request {request:#x} does not fit a C int")
    call = _libc["ioctl"]  # a separate function object: no argtypes, plain int arguments
    call.restype = ctypes.c_int
    return functools.partial(call, fd, request, None)


def last_errno() -> int:
    """errno of this thread's last call through this module's C library."""
    return ctypes.get_errno()
