"""The Python face of the rig: run a command with a KVM that boots Linux, capture its output."""

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ember.rig import _session
from ember.rig._mode import Mode, choose
from ember.rig.errors import L1Error

TIMEOUT_STATUS = _session.TIMEOUT_STATUS
# Under multi-threaded TCG, two guests running at once on the emulated L1's two vCPUs reset
# that L1 every time this was tried; with the command pinned to one L1 CPU they ran through.
ONE_L1_CPU = ("taskset", "-c", "0")


def one_cpu_prefix() -> list[str]:
    """The argv prefix that keeps a command that boots several guests at once on one L1 CPU
    where guests boot nested; nothing where they boot on hardware KVM."""
    return list(ONE_L1_CPU) if choose() is Mode.NESTED else []


@dataclass(frozen=True)
class CompletedRun:
    """A finished command: exit status, captured output, and how long L1 took to start
    (None when the command ran directly on the host)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    l1_start_s: float | None
    mode: Mode


def _environ_bytes(env: Mapping[str, str] | None) -> dict[bytes, bytes]:
    if env is None:
        return dict(os.environb)
    return {os.fsencode(k): os.fsencode(v) for k, v in env.items()}


def nested_request(
    argv: Sequence[str | bytes],
    cwd: str | None,
    env: Mapping[str, str] | None,
    *,
    timeout: float | None = None,
    memory_mib: int = 4096,
    cpus: int = 2,
    winsize: tuple[int, int] | None = None,
    silence_limit: float | None = None,
    tcg_thread: str | None = None,
) -> _session.Request:
    """A request for L1 from str/bytes arguments, defaults from this process."""
    return _session.Request(
        argv=[os.fsencode(a) for a in argv],
        cwd=os.fsencode(os.path.abspath(cwd or os.getcwd())),
        env=_environ_bytes(env),
        winsize=winsize,
        memory_mib=memory_mib,
        cpus=cpus,
        timeout=timeout,
        silence_limit=silence_limit,
        tcg_thread=tcg_thread,
    )


def run(
    argv: Sequence[str | bytes],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdin: bytes | None = None,
    memory_mib: int = 4096,
    cpus: int = 2,
    silence_limit: float | None = None,
    tcg_thread: str | None = None,
) -> CompletedRun:
    """Run `argv` where KVM boots Linux, directly or in an L1 VM (see `EMBER_RIG`).

    Output is captured; `stdin` bytes are the command's input (in L1 a line-oriented tty:
    keep lines under 4096 bytes); a timeout gives returncode 124. Raises RigError when
    the rig itself cannot run, and L1Error (carrying the output so far) when L1 stops or,
    given `silence_limit`, the command prints nothing in L1 for that many seconds.
    `tcg_thread` ("multi" or "single") picks QEMU's TCG threading for L1 (see _qemu).
    """
    if choose() is Mode.DIRECT:
        return _run_direct(argv, cwd, env, timeout, stdin)
    out, err = bytearray(), bytearray()
    streams = _session.Streams(out.extend, err.extend, None, stdin or b"")
    request = nested_request(argv, cwd, env, timeout=timeout, memory_mib=memory_mib, cpus=cpus,
                             silence_limit=silence_limit, tcg_thread=tcg_thread)
    try:
        outcome = _session.run(request, streams)
    except L1Error as exc:
        exc.stdout, exc.stderr = bytes(out), bytes(err)
        raise
    return CompletedRun(outcome.returncode, bytes(out), bytes(err), outcome.l1_start_s,
                        Mode.NESTED)


def _run_direct(
    argv: Sequence[str | bytes],
    cwd: str | None,
    env: Mapping[str, str] | None,
    timeout: float | None,
    stdin: bytes | None,
) -> CompletedRun:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, input=stdin or b"",
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return CompletedRun(TIMEOUT_STATUS, exc.stdout or b"", exc.stderr or b"", None,
                            Mode.DIRECT)
    return CompletedRun(proc.returncode, proc.stdout, proc.stderr, None, Mode.DIRECT)
