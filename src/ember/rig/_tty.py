"""The caller's terminal: raw while L1 owns the line discipline, restored afterwards."""

import fcntl
import os
import struct
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager


def is_terminal(*fds: int) -> bool:
    return all(os.isatty(fd) for fd in fds)


def window_size(fd: int) -> tuple[int, int]:
    """(rows, cols) of the terminal on `fd`, (24, 80) if it does not say."""
    raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    rows, cols = struct.unpack("HHHH", raw)[:2]
    return (rows or 24, cols or 80)


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Keys go to L1 byte for byte (^C included: L1's tty turns it into SIGINT)."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
