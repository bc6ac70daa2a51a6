"""The i8042 as Linux's i8042 and atkbd drivers drive it."""

from ember.devices.legacy import i8042 as k
from ember.devices.legacy.i8042 import I8042


class Harness:
    def __init__(self) -> None:
        self.irqs = 0
        self.resets = 0
        self.dev = I8042(self._irq, self._reset)

    def _irq(self) -> None:
        self.irqs += 1

    def _reset(self) -> None:
        self.resets += 1

    def command(self, cmd: int) -> list[int]:
        self.dev.write(k.COMMAND, cmd)
        return self.drain()

    def drain(self) -> list[int]:
        out = []
        for _ in range(32):
            if not self.dev.read(k.COMMAND) & k.SB_OUT_FULL:
                break
            out.append(self.dev.read(k.DATA))
        return out


def test_reset_command_ends_vm() -> None:
    h = Harness()
    h.command(k.CMD_RESET_CPU)
    assert h.resets == 1 and h.dev.counters["reset_count"] == 1


def test_controller_self_tests() -> None:
    h = Harness()
    assert h.command(k.CMD_SELF_TEST) == [0x55]
    assert h.command(k.CMD_KBD_TEST) == [0x00]
    assert h.command(k.CMD_AUX_TEST) == [0x01]
    assert h.irqs == 0  # controller replies are polled, not interrupt-driven


def test_ctr_read_write() -> None:
    h = Harness()
    assert h.command(k.CMD_READ_CTR) == [k.CB_KBD_INT | k.CB_POST_OK]
    h.dev.write(k.COMMAND, k.CMD_WRITE_CTR)
    h.dev.write(k.DATA, 0x47)
    assert h.command(k.CMD_READ_CTR) == [0x47]
    h.command(k.CMD_KBD_DISABLE)
    assert h.command(k.CMD_READ_CTR)[0] & k.CB_KBD_DISABLED


def test_aux_loopback_says_no_aux_port() -> None:
    h = Harness()
    h.dev.write(k.COMMAND, k.CMD_WRITE_AUX_OUTBUF)
    h.dev.write(k.DATA, 0x5A)
    assert h.drain() != [0x5A]


def test_keyboard_identify_and_reset() -> None:
    h = Harness()
    h.dev.write(k.DATA, k.KBD_GET_ID)
    assert h.drain() == [0xFA, 0xAB, 0x83]
    h.dev.write(k.DATA, k.KBD_RESET)
    assert h.drain() == [0xFA, 0xAA]
    assert h.irqs >= 2


def test_keyboard_commands_with_parameters() -> None:
    h = Harness()
    h.dev.write(k.DATA, k.KBD_SET_LEDS)
    assert h.drain() == [0xFA]
    h.dev.write(k.DATA, 0x07)
    assert h.drain() == [0xFA]
    h.dev.write(k.DATA, k.KBD_SCANCODE_SET)
    h.dev.write(k.DATA, 0)
    assert h.drain() == [0xFA, 0xFA, 0x02]


def test_ctrl_alt_del_scancodes_and_interrupt() -> None:
    h = Harness()
    assert h.dev.ctrl_alt_del()
    assert h.irqs == 1
    assert h.drain() == [0x14, 0x11, 0xE0, 0x71]


def test_output_buffer_is_bounded() -> None:
    h = Harness()
    results = [h.dev.ctrl_alt_del() for _ in range(10)]
    assert results.count(True) == 4 and not results[-1]
    assert h.dev.counters["error_count"] == 6


def test_empty_read_is_counted() -> None:
    h = Harness()
    h.dev.read(k.DATA)
    assert h.dev.counters["missed_read_count"] == 1
