"""The VMM's I/O thread: an epoll loop that runs device work off the vCPU threads.

Queue notifications (ioeventfds), rate-limiter timers and the like are registered with a
callback; the thread calls it whenever the fd is readable.
"""

from __future__ import annotations

import heapq
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable

from ember._sys.thread import name_this_thread

log = logging.getLogger("ember.vmm")


class EventLoop:
    def __init__(self, name: str = "fc_vmm") -> None:
        self._selector = selectors.EpollSelector()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._selector.register(self._wake, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._timer_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def call_later(self, delay_ns: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread after ``delay_ns`` (thread-safe; ignored
        once the loop is stopping, whose wake-up fd is then closed or about to be)."""
        with self._timer_lock:
            if self._stop.is_set():
                return
            self._timer_seq += 1
            heapq.heappush(self._timers, (time.monotonic() + delay_ns / 1e9, self._timer_seq,
                                          callback))
            os.eventfd_write(self._wake, 1)

    def _due_timers(self) -> tuple[list[Callable[[], None]], float | None]:
        """Pop the callbacks whose time has come; also the wait until the next one."""
        now = time.monotonic()
        due = []
        with self._timer_lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
            wait = self._timers[0][0] - now if self._timers else None
        return due, wait

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._timer_lock:
            if self._stop.is_set():
                return
            self._stop.set()
            try:
                os.eventfd_write(self._wake, 1)
            except OSError as err:
                # Only a close of this fd elsewhere in the process does this; say what is
                # open so that the culprit can be found. The thread is a daemon: it cannot
                # keep the process alive, and its join below is bounded.
                log.error("event loop wake-up fd %d: %s; open fds: %s", self._wake, err,
                          open_fds())
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self) -> None:
        name_this_thread()
        try:
            self._serve()
        except Exception:  # the loop itself, not a device handler (those are caught)
            log.exception("event loop thread failed; open fds: %s", open_fds())
            return  # its fds stay open: stop() can still wake nothing and return
        # stop() sets _stop and then writes the wake-up fd, both under _timer_lock; a thread
        # that was awake anyway sees _stop in between and gets here: it must not close the
        # fd before that write (it did, and stop() raised EBADF as the guest rebooted).
        with self._timer_lock:
            self._selector.close()
            try:
                os.close(self._wake)
            except OSError:
                pass  # already closed elsewhere: stop() has said so

    def _serve(self) -> None:
        while not self._stop.is_set():
            due, wait = self._due_timers()
            for callback in due:
                self._call(callback)
            if due:
                continue
            for key, _ in self._selector.select(wait):
                if key.data is None:
                    drain_eventfd(self._wake)
                else:
                    self._call(key.data)

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            self.errors += 1
            log.exception("device event handler failed")


def drain_eventfd(fd: int) -> bool:
    """Read an eventfd's counter; False if it was not signalled (a spurious wakeup)."""
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        return False
    return True


def open_fds() -> str:
    """The process's open file descriptors and what each is, for error reports."""
    described = []
    try:
        names = sorted(os.listdir("/proc/self/fd"), key=int)
    except OSError as err:
        return f"unknown ({err})"
    for name in names:
        try:
            described.append(f"{name}={os.readlink(f'/proc/self/fd/{name}')}")
        except OSError:
            continue  # closed meanwhile, or the listing's own fd
    return " ".join(described)

