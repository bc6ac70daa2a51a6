"""vCPU threads: enter the guest, decode each exit, dispatch it to the buses.

This is the hot path: each port or MMIO access by the guest lands here, so the loop binds
everything it needs to locals and does no allocation beyond the access itself.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import signal
import struct
import threading
from collections.abc import Callable

from ember._sys.thread import name_this_thread
from ember.kvm._structs import KvmRunMmio
from ember.kvm.exits import (
    KVM_EXIT_IO_OUT,
    KVM_SYSTEM_EVENT_CRASH,
    ExitReason,
    exit_name,
)
from ember.kvm.system import EXIT_REASON_WORD, VcpuFd
from ember.vmm.bus import MmioBus, PioBus, PioDevice
from ember.vmm.coalesced_io import CoalescedPorts

log = logging.getLogger("ember.vcpu")

# The signal that kicks a vCPU thread out of KVM_RUN (Firecracker uses SIGRTMIN too).
KICK_SIGNAL = signal.SIGRTMIN
MAX_EXIT_REASON = 64
EXIT_IO = int(ExitReason.IO)
EXIT_MMIO = int(ExitReason.MMIO)
EXIT_INTR = int(ExitReason.INTR)
EXIT_HLT = int(ExitReason.HLT)
EXIT_SHUTDOWN = int(ExitReason.SHUTDOWN)
EXIT_SYSTEM_EVENT = int(ExitReason.SYSTEM_EVENT)
# Exit code the VM ends with: 0 for a guest-initiated reset/shutdown, 1 for a failure.
EXIT_OK = 0
EXIT_FAILURE = 1


# struct kvm_run: the exit union starts at byte 32; its io member is
# { __u8 direction; __u8 size; __u16 port; __u32 count; __u64 data_offset; }.
KVM_RUN_EXIT_OFFSET = 32
IO_EXIT = struct.Struct("<BBHIQ")


def _string_io(page: mmap.mmap, device: PioDevice, offset: int, direction: int, size: int,
               count: int, off: int) -> None:
    """Wider or repeated port I/O (``rep outsb``, 16/32-bit accesses), one element at a time."""
    end = off + size * count
    if direction == KVM_EXIT_IO_OUT:
        for i in range(off, end, size):
            device.write(offset, int.from_bytes(page[i:i + size], "little"))
    else:
        mask = (1 << 8 * size) - 1
        for i in range(off, end, size):
            page[i:i + size] = (device.read(offset) & mask).to_bytes(size, "little")


def install_kick_handler() -> None:
    """Give the kick signal a no-op handler so it interrupts KVM_RUN instead of killing us.

    Only the main thread may install handlers; an embedding application that calls this from
    another thread must install one itself.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(KICK_SIGNAL, lambda _sig, _frame: None)


class Vcpu:
    """One vCPU and its thread."""

    def __init__(self, fd: VcpuFd, pio: PioBus, mmio: MmioBus,
                 on_exit: Callable[[int], None]) -> None:
        self.fd = fd
        self.coalesced: CoalescedPorts | None = None
        self.index = fd.index
        self._pio = pio
        self._mmio = mmio
        self._on_exit = on_exit
        self.exit_counts = [0] * MAX_EXIT_REASON
        self.unhandled_pio = 0
        self.unhandled_mmio = 0
        self.stopping = False
        self.paused = threading.Event()
        self.resumed = threading.Event()
        self.resumed.set()
        self._thread = threading.Thread(target=self._main, name=f"fc_vcpu {self.index}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Make the vCPU leave KVM_RUN soon (immediate_exit covers the race window)."""
        self.fd.kvm_run.immediate_exit = 1
        ident = self._thread.ident
        if ident is not None and self._thread.is_alive():
            try:
                signal.pthread_kill(ident, KICK_SIGNAL)
            except ProcessLookupError:
                pass

    def is_current_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def counters(self) -> dict[str, int]:
        return {exit_name(r): n for r, n in enumerate(self.exit_counts) if n}

    def _main(self) -> None:
        name_this_thread()  # "fc_vcpu N", as Firecracker's vCPU threads are named
        try:
            code = self._loop()
        except Exception:
            log.exception("vCPU %d failed", self.index)
            code = EXIT_FAILURE
        if code is not None:
            self._on_exit(code)

    def _loop(self) -> int | None:
        fd = self.fd
        run = fd.kvm_run
        mmio = run.u.mmio
        page = fd.run_map
        counts = self.exit_counts
        ports = self._pio.ports
        enter, failed, words = fd.enter, fd.run_failed, fd.words
        decode_io = IO_EXIT.unpack_from
        coalesced = self.coalesced
        # The coalesced ring's first/last words; writes queued there happened before this
        # exit, so they are applied before it is handled.
        ring = coalesced.ring.indices if coalesced else memoryview(bytearray(8)).cast("I")
        drain = coalesced.drain if coalesced else None
        while True:
            reason = words[EXIT_REASON_WORD] if enter() >= 0 else failed()
            counts[reason if reason < MAX_EXIT_REASON else 0] += 1
            if ring[0] != ring[1] and drain is not None:
                drain()
            if reason == EXIT_IO:
                direction, size, port, count, off = decode_io(page, KVM_RUN_EXIT_OFFSET)
                entry = ports.get(port)
                if entry is None:
                    self._unhandled_io(page, direction, size, count, off)
                    continue
                device, offset, lock = entry
                with lock:
                    if size == 1 and count == 1:  # the common case: one byte (UART, i8042)
                        if direction == KVM_EXIT_IO_OUT:
                            device.write(offset, page[off])
                        else:
                            page[off] = device.read(offset) & 0xFF
                    else:
                        _string_io(page, device, offset, direction, size, count, off)
            elif reason == EXIT_MMIO:
                self._mmio_exit(mmio)
            elif reason == EXIT_INTR:
                run.immediate_exit = 0
                if self.stopping:
                    return None
                if self.paused.is_set():
                    self.resumed.wait()
            else:
                return self._other_exit(reason)

    def _unhandled_io(self, page: mmap.mmap, direction: int, size: int, count: int,
                      off: int) -> None:
        """Port I/O nobody owns: reads see all-ones, writes vanish; both are counted."""
        self.unhandled_pio += 1
        if direction != KVM_EXIT_IO_OUT:
            page[off:off + size * count] = b"\xff" * (size * count)

    def _mmio_exit(self, mmio: KvmRunMmio) -> None:
        addr = int(mmio.phys_addr)
        length = min(int(mmio.len), len(mmio.data))
        found = self._mmio.find(addr, length)
        if found is None:
            self.unhandled_mmio += 1
            if not mmio.is_write:
                ctypes.memset(mmio.data, 0xFF, length)
            return
        device, offset, lock = found
        with lock:
            if mmio.is_write:
                device.write(offset, bytes(mmio.data)[:length])
            else:
                data = device.read(offset, length)[:length]
                ctypes.memmove(mmio.data, data, len(data))

    def _other_exit(self, reason: int) -> int:
        run = self.fd.kvm_run
        if reason == EXIT_SHUTDOWN:
            log.info("vCPU %d: guest shut down (triple fault or reset)", self.index)
            return EXIT_OK
        if reason == EXIT_SYSTEM_EVENT:
            kind = run.u.system_event.type
            if kind == KVM_SYSTEM_EVENT_CRASH:
                log.error("vCPU %d: guest crashed", self.index)
                return EXIT_FAILURE
            return EXIT_OK
        if reason == EXIT_HLT:
            log.info("vCPU %d: halted", self.index)
            return EXIT_OK
        if reason == int(ExitReason.INTERNAL_ERROR):
            internal = run.u.internal
            log.error("vCPU %d: KVM internal error, suberror %d", self.index, internal.suberror)
            return EXIT_FAILURE
        if reason == int(ExitReason.FAIL_ENTRY):
            log.error("vCPU %d: VM entry failed, hardware reason %#x", self.index,
                      run.u.fail_entry.hardware_entry_failure_reason)
            return EXIT_FAILURE
        log.error("vCPU %d: unexpected exit %s", self.index, exit_name(reason))
        return EXIT_FAILURE
