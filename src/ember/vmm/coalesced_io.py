"""Port writes taken from KVM's coalesced ring instead of a vCPU exit each.

The guest's serial console costs two exits per byte: a read of the line status register
(is the transmitter empty?) and the write of the byte to THR. A THR write needs no
immediate answer while the UART's THR-empty interrupt is off (the kernel console's path):
nothing the guest can see depends on when the byte is applied, provided it is applied
before the guest's next look at the UART, and that look is a read, which exits. So while
that interrupt is off, THR writes go to the ring, and every exit applies what the ring
holds, in order, before anything else. While the interrupt is on, each THR write must
raise it at once, so the port leaves the ring. A timer drains the ring as well, so that
bytes written just before the guest goes idle are not held back.
"""

from __future__ import annotations

import logging
import threading

from ember.kvm.coalesced import CoalescedRing
from ember.kvm.errors import KvmError
from ember.kvm.system import VmFd
from ember.vmm.bus import PioDevice
from ember.vmm.event_loop import EventLoop

log = logging.getLogger("ember.vmm")

# How often the I/O thread applies writes that no exit has picked up.
DRAIN_INTERVAL_NS = 50_000_000
FINAL_DRAIN_WAIT_S = 1.0


class CoalescedPorts:
    """Which ports are coalesced, and the drain of the ring (thread-safe)."""

    def __init__(self, vm_fd: VmFd, ring: CoalescedRing,
                 ports: dict[int, tuple[PioDevice, int, threading.Lock]]) -> None:
        self._vm_fd = vm_fd
        self.ring = ring
        self._ports = ports
        self._drain_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._on: set[int] = set()
        self.applied = 0
        self.unclaimed = 0
        self._loop: EventLoop | None = None

    def set_port(self, port: int, on: bool) -> None:
        """Coalesce writes to one port, or stop doing so (idempotent)."""
        with self._state_lock:
            if (port in self._on) == on:
                return
            try:
                if on:
                    self._vm_fd.register_coalesced_io(port, 1, pio=True)
                    self._on.add(port)
                else:
                    self._vm_fd.unregister_coalesced_io(port, 1, pio=True)
                    self._on.discard(port)
            except KvmError as err:  # KVM out of zones: plain exits still work
                log.warning("coalesced writes to port %#x not %s: %s", port,
                            "enabled" if on else "disabled", err)

    def drain(self, timeout: float = -1) -> bool:
        """Apply every queued write, oldest first (any thread). With a ``timeout`` (the last
        drain as the VM ends) a drain in progress elsewhere is waited for that long only, so
        that ending the VM can never hang here; False if it was not."""
        if not self._drain_lock.acquire(timeout=timeout):
            return False
        try:
            self.applied += self.ring.drain(self._apply)
        finally:
            self._drain_lock.release()
        return True

    def _apply(self, addr: int, length: int, data: bytes, pio: bool) -> None:
        entry = self._ports.get(addr) if pio else None
        if entry is None:
            self.unclaimed += 1
            return
        device, offset, lock = entry
        with lock:
            device.write(offset, int.from_bytes(data[:length], "little"))

    def start_timer(self, loop: EventLoop) -> None:
        self._loop = loop
        loop.call_later(DRAIN_INTERVAL_NS, self._tick)

    def stop_timer(self) -> None:
        self._loop = None

    def _tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if self.ring.pending():
            self.drain()
        loop.call_later(DRAIN_INTERVAL_NS, self._tick)
