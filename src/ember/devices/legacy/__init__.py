"""Legacy PC devices: the 16550A UART and the i8042 keyboard controller."""
