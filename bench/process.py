"""A launched VMM: its console lines, each stamped with the time it arrived."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from bench.vmms import Launch

INIT_MARK = "EMBER-GUEST-INIT"
KILL_WAIT_S = 30.0


class BenchError(Exception):
    """A measurement could not be taken (the VMM failed or timed out); the message says how."""


class WedgedError(BenchError):
    """A VMM survived SIGKILL: the kernel it runs on (the rig's L1) is stuck, and only a new
    rig session helps."""


class Running:
    """A VMM process whose stdout (the guest's serial console) is read line by line."""

    def __init__(self, launch: Launch, *, prefix: list[str] | None = None) -> None:
        launch.prepare()
        self.launch = launch
        self.wrapped = bool(prefix)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*(prefix or []), *launch.argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self._changed:
                self.lines.append((time.monotonic(), line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        """The VMM's pid (under a wrapper such as py-spy: the wrapper's first child)."""
        if not self.wrapped:
            return self.proc.pid
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        with open(path) as f:
            children = f.read().split()
        if not children:
            raise BenchError(f"{self.launch.vmm}: its wrapper has no child process")
        return int(children[0])

    def console(self) -> str:
        with self._changed:
            return "\n".join(line for _, line in self.lines)

    def _find(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)

    def wait_for(self, needle: str, timeout: float) -> float:
        """Seconds from launch until a console line containing `needle` arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (found := self._find(needle)) is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise BenchError(self._failure(f"no {needle!r} on the console"))
                self._changed.wait(min(left, 1.0))
        return found - self.started

    def wait(self, timeout: float) -> int:
        """The exit status; kills the VMM and raises BenchError after `timeout` seconds."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(self._failure(f"still running after {timeout:g} s")) from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                # Seen under the nested rig: a VMM whose vCPU is wedged in L1's KVM.
                raise WedgedError(f"{self.launch.vmm} pid {self.proc.pid} survived SIGKILL "
                                  f"for {KILL_WAIT_S:g} s") from None
        self._reader.join(5)

    def log_text(self) -> str:
        log = self.launch.log
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    def _failure(self, what: str) -> str:
        tail = "\n".join(line for _, line in self.lines[-15:])
        log = "\n".join(self.log_text().splitlines()[-10:])
        status = self.proc.poll()
        state = "running" if status is None else f"exit status {status}"
        return (f"{self.launch.vmm} ({state}): {what}\n--- console tail:\n{tail}\n"
                f"--- log tail:\n{log}")

    def __enter__(self) -> Running:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
