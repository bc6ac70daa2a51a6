"""One L1 run: start QEMU, carry bytes between the caller and L1's serial lines, and
collect the command's exit status.

Serial 0 is the command's stdin and stdout, serial 1 its stderr; QEMU reaches both
through `pipe` chardevs (fifo pairs). The rig opens each fifo read-write, so neither
side blocks in open(2) waiting for the other. Console output up to the init's ready
marker is the boot log: it is withheld, and shown only if L1 fails.
"""

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ember.rig import _exchange, _proc, _qemu
from ember.rig._initramfs import ACK, END_MARKER, READY_MARKER, ensure_initramfs
from ember.rig._kernel import ensure_kernel
from ember.rig.errors import L1Error

Output = Callable[[bytes], None]

TIMEOUT_STATUS = 124
_CHUNK = 65536
_MAX_PENDING = 1 << 20  # stop reading the caller's stdin while this much awaits L1
_LOG_LIMIT = 16384
_LAST_WORDS = 4096
_EOF = b"\x04"  # VEOF: in canonical mode, ^D at the start of a line ends the input
_EOF_COUNT = 32
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Request:
    """What to run in L1 and how; `winsize` (rows, cols) selects terminal mode."""

    argv: list[bytes]
    cwd: bytes
    env: dict[bytes, bytes]
    winsize: tuple[int, int] | None = None
    memory_mib: int = 4096
    cpus: int = 2
    timeout: float | None = None
    # Once L1 is up, this many seconds without a byte from the command count as L1 having
    # stalled (for commands that print regularly); None: no such limit.
    silence_limit: float | None = None
    # QEMU's TCG threading for L1: "multi" (one host thread per L1 vCPU, the default) or
    # "single"; None: $EMBER_RIG_TCG_THREAD, else multi.
    tcg_thread: str | None = None


@dataclass(frozen=True)
class Outcome:
    returncode: int
    l1_start_s: float | None
    timed_out: bool = False
    signal: int | None = None
    silent_s: float | None = None


@dataclass
class Streams:
    """The caller's side: output sinks and the input (an fd to read, or bytes)."""

    stdout: Output
    stderr: Output
    stdin_fd: int | None = None
    stdin_data: bytes = b""
    on_ready: Callable[[float], None] | None = None


@dataclass
class _Fifos:
    s0_in: int
    s0_out: int
    s1_out: int

    def close(self) -> None:
        for fd in (self.s0_in, self.s0_out, self.s1_out):
            os.close(fd)


def _open_fifos(tmp: Path) -> _Fifos:
    for name in ("s0.in", "s0.out", "s1.in", "s1.out"):
        os.mkfifo(tmp / name, 0o600)
    flags = os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC
    return _Fifos(*(os.open(tmp / n, flags) for n in ("s0.in", "s0.out", "s1.out")))


@contextmanager
def _signals_forwarded(wakeup_w: int, caught: list[int]) -> Iterator[None]:
    """Record SIGINT/SIGTERM/SIGHUP (the loop forwards them) instead of dying at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {s: signal.signal(s, handler) for s in _FORWARDED}
    old_wakeup = signal.set_wakeup_fd(wakeup_w)
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for s, h in previous.items():
            signal.signal(s, h)


class _Pump:
    """The event loop of one run."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        fifos: _Fifos,
        streams: Streams,
        tty: bool,
        caught: list[int],
    ) -> None:
        self.proc, self.fifos, self.streams, self.tty = proc, fifos, streams, tty
        self.sel = selectors.DefaultSelector()
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.last_output = self.started
        self.boot = bytearray()
        self.held = b""
        self.last_words = bytearray()  # the tail of the command's output, for failure_log
        self.ended = False
        self.diag = bytearray()
        self.pending = bytearray(streams.stdin_data)
        self.stdin_open = streams.stdin_fd is not None
        self.caught: list[int] = caught
        self.qemu_out = proc.stdout.fileno() if proc.stdout else -1
        self.wakeup_r = -1
        if streams.stdin_fd is None and not tty:
            self._queue_eof()

    # -- input ----------------------------------------------------------------------

    def _queue_eof(self) -> None:
        # A tty's end of input is one-shot, unlike a pipe's: each ^D satisfies one read.
        # Queue several, so that a few readers in turn (and one unfinished line, which the
        # first ^D merely hands over) all see the end; they wait in L1's input buffer.
        if not self.tty:
            self.pending += _EOF * _EOF_COUNT

    def _read_stdin(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except OSError:
            data = b""
        if data:
            self.pending += data
            return
        self.stdin_open = False
        self._queue_eof()

    def _write_l1(self, fd: int) -> None:
        try:
            n = os.write(fd, self.pending[:_CHUNK])
        except BlockingIOError:
            return
        del self.pending[:n]

    # -- output ---------------------------------------------------------------------

    def _read_console(self, fd: int) -> None:
        data = _read_some(fd)
        self.last_output = time.monotonic()
        if self.ended:
            return
        if self.ready_at is not None:
            self._pass_output(data)
            return
        self.boot += data
        at = self.boot.find(READY_MARKER)
        if at >= 0:
            self.ready_at = time.monotonic() - self.started
            if self.streams.on_ready is not None:
                self.streams.on_ready(self.ready_at)
            rest = bytes(self.boot[at + len(READY_MARKER) :])
            del self.boot[at:]
            self._pass_output(rest)

    def _pass_output(self, data: bytes) -> None:
        """Forward the command's output up to the end marker; hold back only a possible
        start of the marker until the next bytes tell."""
        held = self.held + data
        at = held.find(END_MARKER)
        if at >= 0:
            self.ended = True
            self.pending += b"\n" + ACK + b"\n"
            held, self.held = held[:at], b""
        else:
            keep = _marker_prefix_len(held, END_MARKER)
            held, self.held = held[: len(held) - keep], held[len(held) - keep :]
        if held:
            self.streams.stdout(held)
            self.last_words += held
            del self.last_words[:-_LAST_WORDS]

    def _read_stderr(self, fd: int) -> None:
        self.last_output = time.monotonic()
        self.streams.stderr(_read_some(fd))

    def _read_qemu(self, fd: int) -> None:
        data = _read_some(fd)
        if not data:
            self.sel.unregister(fd)
            self.qemu_out = -1
        self.diag += data
        del self.diag[:-_LOG_LIMIT]

    # -- loop -----------------------------------------------------------------------

    def _interest(self) -> dict[int, tuple[int, Callable[[int], None]]]:
        want: dict[int, tuple[int, Callable[[int], None]]] = {
            self.wakeup_r: (selectors.EVENT_READ, _drain),
            self.fifos.s0_out: (selectors.EVENT_READ, self._read_console),
            self.fifos.s1_out: (selectors.EVENT_READ, self._read_stderr),
        }
        if self.qemu_out >= 0:
            want[self.qemu_out] = (selectors.EVENT_READ, self._read_qemu)
        ready = self.ready_at is not None
        if ready and self.pending and self.qemu_out >= 0:
            want[self.fifos.s0_in] = (selectors.EVENT_WRITE, self._write_l1)
        fd = self.streams.stdin_fd
        if ready and fd is not None and self.stdin_open and len(self.pending) < _MAX_PENDING:
            want[fd] = (selectors.EVENT_READ, self._read_stdin)
        return want

    def _sync(self) -> bool:
        """Match the selector to the current interest; True if a callback ran meanwhile."""
        want = self._interest()
        for key in list(self.sel.get_map().values()):
            if key.fd not in want:
                self.sel.unregister(key.fd)
        ran = False
        for fd, (events, cb) in want.items():
            try:
                self.sel.modify(fd, events, cb)
            except KeyError:
                ran = self._register(fd, events, cb) or ran
        return ran

    def _register(self, fd: int, events: int, cb: Callable[[int], None]) -> bool:
        try:
            self.sel.register(fd, events, cb)
        except PermissionError:
            # epoll refuses regular files and /dev/null: they never block, so read now.
            cb(fd)
            return True
        return False

    def run(self, timeout: float | None, wakeup_r: int, silence: float | None = None) -> Outcome:
        """Move bytes until QEMU exits, a signal arrives, the timeout passes or (once L1
        is up) the command stays silent for `silence` seconds."""
        deadline = None if timeout is None else self.started + timeout
        self.wakeup_r = wakeup_r
        while self.qemu_out >= 0 and self.proc.poll() is None:
            if self.caught:
                return self._stop(sig=self.caught[0])
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self._stop(timed_out=True)
            if silence is not None and self.ready_at is not None:
                quiet_left = self.last_output + silence - time.monotonic()
                if quiet_left <= 0:
                    return self._stop(timed_out=True, silent_s=silence)
                left = quiet_left if left is None else min(left, quiet_left)
            if self._sync():
                continue
            for key, _ in self.sel.select(left):
                key.data(key.fd)
        self.proc.wait()
        self._drain_outputs()
        return Outcome(-1, self.ready_at)

    def _stop(self, *, sig: int | None = None, timed_out: bool = False,
              silent_s: float | None = None) -> Outcome:
        _proc.stop(self.proc, sig or signal.SIGTERM)
        self._drain_outputs()
        code = TIMEOUT_STATUS if timed_out else 128 + (sig or 0)
        return Outcome(code, self.ready_at, timed_out, sig, silent_s)

    def _drain_outputs(self) -> None:
        for fd, read in ((self.fifos.s0_out, self._read_console), (self.fifos.s1_out,
                                                                    self._read_stderr)):
            while _readable(fd):
                read(fd)
        if self.held and not self.ended:
            self.streams.stdout(self.held)

    def failure_log(self) -> str:
        text = (bytes(self.boot) + b"\n" + bytes(self.diag)).decode(errors="replace")
        text = text.strip()[-_LOG_LIMIT:]
        if self.last_words:  # an L1 panic shows up here, after the command's last lines
            words = bytes(self.last_words).decode(errors="replace")
            text += f"\n--- the last of ttyS0 (command output, L1 emergencies):\n{words}"
        return text


def _marker_prefix_len(data: bytes, marker: bytes) -> int:
    """Length of the longest end of `data` that begins `marker`."""
    for n in range(min(len(data), len(marker) - 1), 0, -1):
        if marker.startswith(data[-n:]):
            return n
    return 0


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return b""


def _readable(fd: int) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(0))


def _drain(fd: int) -> None:
    try:
        os.read(fd, _CHUNK)
    except BlockingIOError:
        pass


_TMP_PREFIX = "ember-rig-"


def _sweep_stale() -> None:
    """Remove temporary directories of rigs that were killed before they could."""
    for old in Path(tempfile.gettempdir()).glob(_TMP_PREFIX + "*"):
        try:
            os.kill(int((old / "owner").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (OSError, ValueError):
            pass  # not ours to judge: no readable owner, or its owner is alive elsewhere


def run(request: Request, streams: Streams) -> Outcome:
    """Boot L1, run the request's command in it, and return its exit status."""
    kernel = ensure_kernel()
    initrd = ensure_initramfs(kernel)
    _sweep_stale()
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX))
    (tmp / "owner").write_text(str(os.getpid()))
    try:
        return _run_in(tmp, kernel.image, initrd, request, streams)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_in(tmp: Path, kernel: Path, initrd: Path, request: Request, streams: Streams) -> Outcome:
    exchange = tmp / "x"
    exchange.mkdir()
    _exchange.write_job(exchange, request.argv, request.cwd, request.env, request.winsize)
    cfg = _qemu.L1Config(kernel, initrd, exchange, tmp / "s0", tmp / "s1",
                         request.memory_mib, request.cpus, request.tcg_thread)
    argv = _qemu.command(cfg)
    fifos = _open_fifos(tmp)
    wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    caught: list[int] = []
    try:
        with _signals_forwarded(wakeup_w, caught):
            proc = _proc.spawn(argv)
            try:
                pump = _Pump(proc, fifos, streams, request.winsize is not None, caught)
                outcome = pump.run(request.timeout, wakeup_r, request.silence_limit)
            finally:
                _proc.stop(proc)
    finally:
        fifos.close()
        os.close(wakeup_r)
        os.close(wakeup_w)
    return _conclude(outcome, exchange, pump)


def _how_qemu_ended(proc: subprocess.Popen[bytes]) -> str:
    """QEMU's own end: a clean exit is a reset or shutdown of L1 (-no-reboot turns a
    triple fault or an L1 panic into one); a signal is QEMU itself failing."""
    code = proc.returncode
    if code is None:
        return "QEMU still running"
    if code < 0:
        return f"QEMU killed by {signal.Signals(-code).name}"
    return f"QEMU exited with status {code}"


def _conclude(outcome: Outcome, exchange: Path, pump: _Pump) -> Outcome:
    if outcome.silent_s is not None:
        raise L1Error(f"the command printed nothing for {outcome.silent_s:g} s: L1 taken as "
                      "stalled and stopped (log follows)", pump.failure_log())
    if outcome.timed_out or outcome.signal is not None:
        return outcome
    status = _exchange.read_status(exchange)
    if status is None:
        raise L1Error(f"L1 stopped before the command finished ({_how_qemu_ended(pump.proc)}; "
                      "log follows)", pump.failure_log())
    return Outcome(status, outcome.l1_start_s)
