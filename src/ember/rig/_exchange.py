"""The host directory shared writable with L1: the job going in, the exit status coming back.

Files: `job.sh` (cd + exec the command), `env.sh` (the environment), `mode.sh` (terminal
settings for the init), `status` (written by the init: the command's exit status).
The serial-line fifos live beside it, outside the export.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ember.rig import _quote
from ember.rig._initramfs import EXCHANGE_MOUNT

# In a terminal the host side is raw and L1's tty does the line discipline, like `ssh -t`.
STTY_TTY = "sane"
# Without a terminal: bytes pass unchanged (no echo, no output processing); input stays
# canonical so that the end of input can be delivered as ^D, with editing keys disabled.
STTY_PIPE = "raw -echo icanon erase undef kill undef"
STTY_OUT = "raw -echo"


def write_job(
    exchange: Path,
    argv: Sequence[bytes],
    cwd: bytes,
    env: Mapping[bytes, bytes],
    winsize: tuple[int, int] | None,
) -> None:
    """Fill `exchange` for one run; `winsize` (rows, cols) means terminal mode."""
    (exchange / "env.sh").write_bytes(_quote.env_script(env))
    env_in_l1 = os.fsencode(f"{EXCHANGE_MOUNT}/env.sh")
    (exchange / "job.sh").write_bytes(_quote.job_script(argv, cwd, env_in_l1))
    (exchange / "mode.sh").write_text(_mode_script(winsize))


def _mode_script(winsize: tuple[int, int] | None) -> str:
    if winsize is None:
        return f"STTY0='{STTY_PIPE}'\nSTTY1='{STTY_OUT}'\n"
    rows, cols = winsize
    size = f"rows {rows} cols {cols}"
    return f"STTY0='{STTY_TTY} {size}'\nSTTY1='{STTY_TTY} {size}'\n"


def read_status(exchange: Path) -> int | None:
    """The command's exit status as the init wrote it, or None if it did not."""
    try:
        return int((exchange / "status").read_text().strip())
    except (OSError, ValueError):
        return None
