"""Runs the real ``ember`` command with an API socket, for tests that talk to it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

OPENAPI = Path(__file__).resolve().parents[3] / "src" / "ember" / "api" / "openapi.yaml"


class LiveEmber:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.path = str(tmp / "ember.sock")
        # Run inside tmp: generated requests may name relative log or metrics files.
        # stdout is a pipe nobody reads: the logger must drop lines rather than block.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ember.cli", "--api-sock", self.path, *extra],
            cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._wait_for_socket()

    def _wait_for_socket(self) -> None:
        deadline = time.monotonic() + 10
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ember did not start: {self.proc.communicate()}")
            time.sleep(0.01)

    def _accepts(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        self.proc.terminate()
        self.proc.communicate(timeout=10)
        return self.proc.returncode
