"""An i8042 keyboard controller with a keyboard behind it, as a sans-I/O state machine.

Enough of the controller for Linux's i8042 and atkbd drivers to find a keyboard without
timeouts, to deliver Ctrl-Alt-Del, and to reset the machine: command 0xFE ("pulse output
line 0") ends the VM. Command and response bytes: IBM PS/2 Technical Reference, "Keyboard
Controller", and the AT keyboard command set.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

# Port offsets relative to 0x60: data at +0 (0x60), status/command at +4 (0x64).
DATA = 0
COMMAND = 4
# Status register bits
SB_OUT_FULL = 0x01
SB_SYSTEM_FLAG = 0x04
SB_LAST_WAS_COMMAND = 0x08
SB_KBD_UNLOCKED = 0x10
# Controller configuration byte ("command byte") bits
CB_KBD_INT = 0x01
CB_POST_OK = 0x04
CB_KBD_DISABLED = 0x10
CB_AUX_DISABLED = 0x20
# Controller commands
CMD_READ_CTR = 0x20
CMD_WRITE_CTR = 0x60
CMD_AUX_DISABLE = 0xA7
CMD_AUX_ENABLE = 0xA8
CMD_AUX_TEST = 0xA9
CMD_SELF_TEST = 0xAA
CMD_KBD_TEST = 0xAB
CMD_KBD_DISABLE = 0xAD
CMD_KBD_ENABLE = 0xAE
CMD_READ_OUTP = 0xD0
CMD_WRITE_OUTP = 0xD1
CMD_WRITE_KBD_OUTBUF = 0xD2
CMD_WRITE_AUX_OUTBUF = 0xD3
CMD_WRITE_AUX = 0xD4
CMD_RESET_CPU = 0xFE
SELF_TEST_OK = 0x55
INTERFACE_TEST_OK = 0x00
AUX_TEST_CLOCK_STUCK_LOW = 0x01  # "no usable aux port": Linux then skips the mouse
OUTPUT_PORT_DEFAULT = 0x01
# Keyboard commands and replies
KBD_ACK = 0xFA
KBD_BAT_OK = 0xAA
KBD_ECHO = 0xEE
KBD_SET_LEDS = 0xED
KBD_SCANCODE_SET = 0xF0
KBD_GET_ID = 0xF2
KBD_SET_TYPEMATIC = 0xF3
KBD_RESET = 0xFF
KBD_ID = (0xAB, 0x83)  # MF2 keyboard
KBD_SCANCODE_SET_2 = 0x02
# Scan code set 2 make codes for Ctrl, Alt and (extended) Delete.
KEY_CTRL = (0x14,)
KEY_ALT = (0x11,)
KEY_DEL = (0xE0, 0x71)
OUTPUT_BUFFER_SIZE = 16


class I8042:
    """Controller state. Not thread-safe: the caller serializes accesses."""

    def __init__(self, interrupt: Callable[[], None], reset: Callable[[], None]) -> None:
        self._interrupt = interrupt
        self._reset = reset
        self._out: deque[int] = deque()
        self._last = 0
        self.ctr = CB_KBD_INT | CB_POST_OK
        self.status = SB_SYSTEM_FLAG | SB_KBD_UNLOCKED
        self._pending_cmd = 0  # controller command waiting for its data byte
        self._pending_kbd = 0  # keyboard command waiting for its parameter
        self.counters = {"read_count": 0, "write_count": 0, "missed_read_count": 0,
                         "missed_write_count": 0, "reset_count": 0, "error_count": 0}

    # -- host side ---------------------------------------------------------------------
    def ctrl_alt_del(self) -> bool:
        """Queue Ctrl, Alt, Delete key presses; False if the buffer had no room."""
        return self._push_keyboard(KEY_CTRL + KEY_ALT + KEY_DEL)

    # -- guest side --------------------------------------------------------------------
    def read(self, offset: int) -> int:
        self.counters["read_count"] += 1
        if offset == COMMAND:
            return self.status | (SB_OUT_FULL if self._out else 0)
        if offset != DATA:
            self.counters["missed_read_count"] += 1
            return 0xFF
        if not self._out:
            self.counters["missed_read_count"] += 1
            return self._last
        self._last = self._out.popleft()
        if self._out and self.ctr & CB_KBD_INT:
            self._interrupt()
        return self._last

    def write(self, offset: int, value: int) -> None:
        self.counters["write_count"] += 1
        value &= 0xFF
        if offset == COMMAND:
            self.status |= SB_LAST_WAS_COMMAND
            self._command(value)
        elif offset == DATA:
            self.status &= ~SB_LAST_WAS_COMMAND
            self._data(value)
        else:
            self.counters["missed_write_count"] += 1

    def _command(self, cmd: int) -> None:
        self._pending_cmd = 0
        replies = {CMD_READ_CTR: self.ctr, CMD_SELF_TEST: SELF_TEST_OK,
                   CMD_KBD_TEST: INTERFACE_TEST_OK, CMD_AUX_TEST: AUX_TEST_CLOCK_STUCK_LOW,
                   CMD_READ_OUTP: OUTPUT_PORT_DEFAULT}
        if cmd in replies:
            self._push_controller(replies[cmd])
        elif cmd in (CMD_WRITE_CTR, CMD_WRITE_OUTP, CMD_WRITE_KBD_OUTBUF,
                     CMD_WRITE_AUX_OUTBUF, CMD_WRITE_AUX):
            self._pending_cmd = cmd
        elif cmd == CMD_KBD_DISABLE:
            self.ctr |= CB_KBD_DISABLED
        elif cmd == CMD_KBD_ENABLE:
            self.ctr &= ~CB_KBD_DISABLED
        elif cmd == CMD_AUX_DISABLE:
            self.ctr |= CB_AUX_DISABLED
        elif cmd == CMD_AUX_ENABLE:
            self.ctr &= ~CB_AUX_DISABLED
        elif cmd == CMD_RESET_CPU:
            self.counters["reset_count"] += 1
            self._reset()
        else:
            self.counters["missed_write_count"] += 1

    def _data(self, value: int) -> None:
        cmd, self._pending_cmd = self._pending_cmd, 0
        if cmd == CMD_WRITE_CTR:
            self.ctr = value
        elif cmd == CMD_WRITE_KBD_OUTBUF:
            self._push_keyboard((value,))
        elif cmd == CMD_WRITE_AUX_OUTBUF:
            # Loopback of an aux port that is not there: answer with a byte that differs
            # from the one sent, so the guest concludes at once that no aux port exists.
            self._push_controller(value ^ 0xFF)
        elif cmd in (CMD_WRITE_OUTP, CMD_WRITE_AUX):
            pass  # no A20 gate to model, no aux device to talk to
        else:
            self._keyboard(value)

    def _keyboard(self, value: int) -> None:
        param_cmd, self._pending_kbd = self._pending_kbd, 0
        if param_cmd == KBD_SCANCODE_SET and value == 0:
            self._push_keyboard((KBD_ACK, KBD_SCANCODE_SET_2))
        elif param_cmd:
            self._push_keyboard((KBD_ACK,))
        elif value == KBD_RESET:
            self._push_keyboard((KBD_ACK, KBD_BAT_OK))
        elif value == KBD_GET_ID:
            self._push_keyboard((KBD_ACK, *KBD_ID))
        elif value == KBD_ECHO:
            self._push_keyboard((KBD_ECHO,))
        else:
            if value in (KBD_SET_LEDS, KBD_SET_TYPEMATIC, KBD_SCANCODE_SET):
                self._pending_kbd = value
            self._push_keyboard((KBD_ACK,))

    def _push_controller(self, value: int) -> None:
        self._out.append(value)

    def _push_keyboard(self, data: tuple[int, ...]) -> bool:
        if len(self._out) + len(data) > OUTPUT_BUFFER_SIZE:
            self.counters["error_count"] += 1
            return False
        self._out.extend(data)
        if self.ctr & CB_KBD_INT:
            self._interrupt()
        return True
