"""The serial console's host side: guest output to a file descriptor, host input to the UART.

Input is paced by the UART's receive FIFO, so nothing typed is dropped: bytes that do not fit
wait until the guest has read some. Output writes never raise into the vCPU thread; if the
sink is gone or would block, the byte is dropped and counted.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import threading
import tty
from collections.abc import Callable
from typing import Any

# How long the input pump waits for the guest to drain a full FIFO before trying again.
FIFO_FULL_RETRY_S = 0.005
INPUT_CHUNK = 64


class SerialSink:
    """Writes guest serial output to ``fd``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0

    def __call__(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except BlockingIOError:
            self.dropped += len(data)
        except OSError as err:
            if err.errno not in (errno.EPIPE, errno.EBADF, errno.EIO):
                raise
            self.dropped += len(data)


class RawTerminal:
    """Puts a TTY in raw mode (no echo, no line editing, no signals) and restores it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None

    def enter(self) -> None:
        if not os.isatty(self.fd):
            return
        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)

    def restore(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            self._saved = None


class InputPump:
    """A thread that feeds ``fd`` into ``receive`` (which returns how much it accepted)."""

    def __init__(self, fd: int, receive: Callable[[bytes], int]) -> None:
        self.fd = fd
        self._receive = receive
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial-input", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread.ident is not None:
            self._thread.join(1.0)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self.fd, INPUT_CHUNK)
            except OSError:
                return
            if not data:
                return  # end of input: the guest simply gets no more
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        while data and not self._stop.is_set():
            taken = self._receive(data)
            data = data[taken:]
            if data:
                self._stop.wait(FIFO_FULL_RETRY_S)
