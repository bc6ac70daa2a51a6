"""The VMM's I/O thread: an epoll loop that runs device work off the vCPU threads.

Queue notifications (ioeventfds), rate-limiter timers and the like are registered with a
callback; the thread calls it whenever the fd is readable.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable

log = logging.getLogger("ember.vmm")


class EventLoop:
    def __init__(self, name: str = "fc_vmm") -> None:
        self._selector = selectors.EpollSelector()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._selector.register(self._wake, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove(self, fd: int) -> None:
        self._selector.unregister(fd)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.eventfd_write(self._wake, 1)
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select():
                callback = key.data
                if callback is None:
                    continue
                try:
                    callback()
                except Exception:
                    self.errors += 1
                    log.exception("device event handler failed")
        self._selector.close()
        os.close(self._wake)


def drain_eventfd(fd: int) -> bool:
    """Read an eventfd's counter; False if it was not signalled (a spurious wakeup)."""
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        return False
    return True
