"""Ending a VM always lets ``wait`` return, whatever fails on the way (ember.vmm.builder).

The Vm here has no vCPUs and no KVM objects: ending it touches only the helpers that these
tests give it (a real event loop thread, a terminal whose restore fails).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from ember.vmm.builder import Vm
from ember.vmm.event_loop import EventLoop


def _bare_vm() -> Vm:
    return Vm(None, None, None, [], None, None, {}, None, None)  # type: ignore[arg-type]


def test_a_lost_event_loop_fd_is_reported_and_the_vm_still_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    """Once in the nested rig, the device thread's wake-up eventfd was found closed as the
    guest rebooted: the VMM then hung for good. Now it says so, with the open fds, and ends."""
    vm = _bare_vm()
    loop = EventLoop()
    vm.attach_devices(loop, {})
    vm.start()
    os.close(loop._wake)  # what a stray close elsewhere in the process would do
    with caplog.at_level(logging.ERROR, logger="ember.vmm"):
        vm.stop()
        assert vm.wait(10) == 0
    assert vm.state == "Stopped"
    assert any(f"wake-up fd {loop._wake}" in r.getMessage() and "open fds: " in r.getMessage()
               for r in caplog.records), caplog.text


def test_a_failing_step_is_logged_and_the_rest_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    vm = _bare_vm()
    loop = EventLoop()
    vm.attach_devices(loop, {})
    vm.start()

    class BrokenTerminal:
        def restore(self) -> None:
            raise OSError(5, "Input/output error")

    vm._terminal = BrokenTerminal()  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="ember.vmm"):
        vm._finish(0)
    assert vm.wait(0) == 0
    assert "restoring the terminal failed" in caplog.text
    assert not loop._thread.is_alive()  # the step before it ran: the loop stopped


def test_a_failing_event_loop_thread_is_logged_and_the_vm_still_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    vm = _bare_vm()
    loop = EventLoop()
    vm.attach_devices(loop, {})
    with caplog.at_level(logging.ERROR, logger="ember.vmm"):
        vm.start()
        os.close(loop._selector.fileno())  # its epoll fd, closed behind its back
        loop.call_later(0, lambda: None)  # wake it: its next wait fails
        loop._thread.join(5)
        assert not loop._thread.is_alive()
        vm.stop()
        assert vm.wait(10) == 0
    assert "event loop thread failed" in caplog.text and "open fds: " in caplog.text


def test_stop_wakes_a_loop_that_is_awake_anyway_without_losing_its_fd(
        caplog: pytest.LogCaptureFixture) -> None:
    """stop() sets the stop flag, then writes the wake-up fd. A loop thread that is awake
    anyway (here: a timer every millisecond, as the coalesced-ring drain ticks) sees the flag
    in between: it used to close the fd before that write, and stop() raised EBADF. The
    window is widened here so that the thread surely runs in it."""
    loop = EventLoop()

    def tick() -> None:
        loop.call_later(1_000_000, tick)

    class SlowFlag(threading.Event):
        def set(self) -> None:
            super().set()
            time.sleep(0.2)  # the loop thread runs now, and ends

    loop._stop = SlowFlag()
    loop.start()
    loop.call_later(1_000_000, tick)
    time.sleep(0.05)
    with caplog.at_level(logging.ERROR, logger="ember.vmm"):
        loop.stop()
    loop._thread.join(5)
    assert not loop._thread.is_alive()
    assert "wake-up fd" not in caplog.text, caplog.text
