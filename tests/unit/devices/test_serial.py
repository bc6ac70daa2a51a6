"""The 16550A state machine as Linux's 8250 driver exercises it."""

from ember.devices.legacy import serial as s
from ember.devices.legacy.serial import Serial16550


class Harness:
    def __init__(self) -> None:
        self.irqs = 0
        self.out = bytearray()
        self.uart = Serial16550(self._irq, self.out.extend)

    def _irq(self) -> None:
        self.irqs += 1


def test_transmit_goes_to_sink_and_counts() -> None:
    h = Harness()
    for b in b"hi\n":
        h.uart.write(s.RBR_THR, b)
    assert bytes(h.out) == b"hi\n"
    assert h.uart.counters["write_count"] == 3
    assert h.uart.read(s.LSR) & (s.LSR_THRE | s.LSR_TEMT) == 0x60


def test_thr_empty_interrupt_and_iir() -> None:
    h = Harness()
    assert h.uart.read(s.IIR_FCR) & 0x0F == s.IIR_NONE
    h.uart.write(s.IER, s.IER_THRE)
    assert h.irqs == 1
    assert h.uart.read(s.IIR_FCR) & 0x0F == s.IIR_THRE
    assert h.uart.read(s.IIR_FCR) & 0x0F == s.IIR_NONE  # reading IIR cleared it
    h.uart.write(s.RBR_THR, ord("x"))
    assert h.irqs == 2 and h.uart.read(s.IIR_FCR) & 0x0F == s.IIR_THRE


def test_fifo_bits_in_iir() -> None:
    h = Harness()
    h.uart.write(s.IIR_FCR, s.FCR_FIFO_ENABLE)
    assert h.uart.read(s.IIR_FCR) & 0xC0 == 0xC0


def test_receive_data_ready_and_interrupt() -> None:
    h = Harness()
    h.uart.write(s.IER, s.IER_RDA)
    assert h.uart.receive(b"ab") == 2 and h.irqs == 1
    assert h.uart.read(s.LSR) & s.LSR_DR
    assert h.uart.read(s.IIR_FCR) & 0x0F == s.IIR_RDA
    assert h.uart.read(s.RBR_THR) == ord("a") and h.uart.read(s.RBR_THR) == ord("b")
    assert not h.uart.read(s.LSR) & s.LSR_DR
    assert h.uart.read(s.IIR_FCR) & 0x0F == s.IIR_NONE


def test_receive_is_bounded_by_fifo() -> None:
    h = Harness()
    data = bytes(range(200))
    taken = h.uart.receive(data)
    assert taken == s.RX_FIFO_SIZE and h.uart.rx_room() == 0
    assert h.uart.receive(b"x") == 0
    assert [h.uart.read(s.RBR_THR) for _ in range(taken)] == list(data[:taken])


def test_divisor_latch_and_scratch() -> None:
    h = Harness()
    h.uart.write(s.LCR, s.LCR_DLAB | 3)
    h.uart.write(s.RBR_THR, 1)
    h.uart.write(s.IER, 0)
    assert h.out == b"" and h.uart.read(s.RBR_THR) == 1
    h.uart.write(s.LCR, 3)
    h.uart.write(s.IER, 0x0F)
    assert h.uart.read(s.IER) == 0x0F
    h.uart.write(s.SCR, 0x5A)
    assert h.uart.read(s.SCR) == 0x5A


def test_loopback() -> None:
    h = Harness()
    h.uart.write(s.MCR, s.MCR_LOOP | 0x0A)
    assert h.uart.read(s.MSR) & 0xF0 == 0x90  # RTS→CTS, OUT2→DCD
    h.uart.write(s.RBR_THR, 0x42)
    assert h.out == b"" and h.uart.read(s.RBR_THR) == 0x42


def test_fcr_clears_receive_fifo() -> None:
    h = Harness()
    h.uart.receive(b"abc")
    h.uart.write(s.IIR_FCR, s.FCR_FIFO_ENABLE | s.FCR_CLEAR_RX)
    assert not h.uart.read(s.LSR) & s.LSR_DR
