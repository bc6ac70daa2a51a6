"""A 16550A UART as a sans-I/O state machine.

Register map and bit meanings: the TI/National PC16550D datasheet ("Register Summary").
The device sees ``(offset, value)`` accesses; it signals its interrupt through an injected
callable and hands transmitted bytes to an injected sink. Transmission is instantaneous, so
the transmitter is always empty and a THR-empty interrupt follows every write when enabled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

# Register offsets (DLAB = 0 unless noted)
RBR_THR = 0  # receive buffer (read) / transmit holding (write); DLL when DLAB = 1
IER = 1      # interrupt enable; DLM when DLAB = 1
IIR_FCR = 2  # interrupt identification (read) / FIFO control (write)
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7
REGISTER_COUNT = 8
# IER bits
IER_RDA = 0x01
IER_THRE = 0x02
IER_MASK = 0x0F
# IIR values; bits 7:6 set when FIFOs are enabled
IIR_NONE = 0x01
IIR_THRE = 0x02
IIR_RDA = 0x04
IIR_FIFO_ENABLED = 0xC0
# FCR bits
FCR_FIFO_ENABLE = 0x01
FCR_CLEAR_RX = 0x02
# LCR bits
LCR_DLAB = 0x80
# MCR bits
MCR_LOOP = 0x10
MCR_MASK = 0x1F
# LSR bits
LSR_DR = 0x01
LSR_OE = 0x02
LSR_THRE = 0x20
LSR_TEMT = 0x40
# MSR bits (and the MCR bits they mirror in loopback mode)
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
# The receive FIFO; the 16550A's is 16 bytes, a larger one only saves exits.
RX_FIFO_SIZE = 64
DEFAULT_DIVISOR = 12  # 9600 baud at 1.8432 MHz


class Serial16550:
    """COM port state. Not thread-safe: the caller serializes accesses."""

    def __init__(self, interrupt: Callable[[], None], sink: Callable[[bytes], None],
                 thre_irq_changed: Callable[[bool], None] | None = None) -> None:
        self._interrupt = interrupt
        self._sink = sink
        # Told when the guest turns the THR-empty interrupt on or off (see
        # ember.vmm.coalesced_io: THR writes need no exit while it is off).
        self._thre_irq_changed = thre_irq_changed
        self._rx: deque[int] = deque()
        self.ier = 0
        self.lcr = 0x03  # 8N1
        self.mcr = 0x08  # OUT2
        self.fcr = 0
        self.scr = 0
        self.dll = DEFAULT_DIVISOR
        self.dlm = 0
        self._thre_pending = False
        self._overrun = False
        self.counters = {"read_count": 0, "write_count": 0, "missed_read_count": 0,
                         "missed_write_count": 0, "error_count": 0, "flush_count": 0}

    # -- host side ---------------------------------------------------------------------
    def rx_room(self) -> int:
        return RX_FIFO_SIZE - len(self._rx)

    def receive(self, data: bytes) -> int:
        """Queue input for the guest; returns how many bytes fit (the rest must wait)."""
        n = min(len(data), self.rx_room())
        if n:
            self._rx.extend(data[:n])
            if self.ier & IER_RDA:
                self._interrupt()
        return n

    # -- guest side --------------------------------------------------------------------
    def read(self, offset: int) -> int:
        self.counters["read_count"] += 1
        if offset == RBR_THR:
            return self.dll if self.lcr & LCR_DLAB else self._read_rbr()
        if offset == IER:
            return self.dlm if self.lcr & LCR_DLAB else self.ier
        if offset == IIR_FCR:
            return self._read_iir()
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return self._read_lsr()
        if offset == MSR:
            return self._read_msr()
        if offset == SCR:
            return self.scr
        self.counters["missed_read_count"] += 1
        return 0xFF

    def write(self, offset: int, value: int) -> None:
        self.counters["write_count"] += 1
        value &= 0xFF
        if offset == RBR_THR:
            if self.lcr & LCR_DLAB:
                self.dll = value
            else:
                self._write_thr(value)
        elif offset == IER:
            if self.lcr & LCR_DLAB:
                self.dlm = value
            else:
                self._write_ier(value)
        elif offset == IIR_FCR:
            self._write_fcr(value)
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value & MCR_MASK
        elif offset == SCR:
            self.scr = value
        else:
            self.counters["missed_write_count"] += 1

    def _read_rbr(self) -> int:
        if not self._rx:
            self.counters["missed_read_count"] += 1
            return 0
        return self._rx.popleft()

    def _read_iir(self) -> int:
        fifo = IIR_FIFO_ENABLED if self.fcr & FCR_FIFO_ENABLE else 0
        if self.ier & IER_RDA and self._rx:
            return IIR_RDA | fifo
        if self.ier & IER_THRE and self._thre_pending:
            self._thre_pending = False  # reading IIR with THRE as the source clears it
            return IIR_THRE | fifo
        return IIR_NONE | fifo

    def _read_lsr(self) -> int:
        lsr = LSR_THRE | LSR_TEMT
        if self._rx:
            lsr |= LSR_DR
        if self._overrun:
            lsr |= LSR_OE
            self._overrun = False
        return lsr

    def _read_msr(self) -> int:
        if not self.mcr & MCR_LOOP:
            return MSR_DCD | MSR_DSR | MSR_CTS
        # Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
        m = self.mcr
        return ((m & 0x01) << 5) | ((m & 0x02) << 3) | ((m & 0x04) << 4) | ((m & 0x08) << 4)

    def _write_thr(self, value: int) -> None:
        if self.mcr & MCR_LOOP:
            if self.rx_room():
                self._rx.append(value)
            else:
                self._overrun = True
        else:
            self._sink(bytes((value,)))
        self._thre_pending = True
        if self.ier & IER_THRE:
            self._interrupt()

    def _write_ier(self, value: int) -> None:
        before = self.ier
        self.ier = value & IER_MASK
        if (before ^ self.ier) & IER_THRE and self._thre_irq_changed is not None:
            self._thre_irq_changed(bool(self.ier & IER_THRE))
        if self.ier & IER_THRE and not before & IER_THRE:
            self._thre_pending = True
        if (self.ier & IER_THRE and self._thre_pending) or (self.ier & IER_RDA and self._rx):
            self._interrupt()

    def _write_fcr(self, value: int) -> None:
        if value & FCR_CLEAR_RX:
            self._rx.clear()
            self.counters["flush_count"] += 1
        self.fcr = value & FCR_FIFO_ENABLE
