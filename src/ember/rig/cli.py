"""`ember-rig run [--memory MiB] [--cpus N] [--timeout S] [--silence-limit S]
[--tcg-thread multi|single] -- CMD ARGS...`

Runs CMD, in the current directory and environment, where KVM boots stock Linux guests:
directly if the host's /dev/kvm can, else inside an L1 VM (QEMU TCG, emulated AMD SVM).
Its output streams live; its exit status becomes the rig's (124 on timeout, 125 when
the rig itself fails, including when the command printed nothing for --silence-limit
seconds, which is how a frozen L1 shows). Set EMBER_RIG=direct or EMBER_RIG=nested to force a mode.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from ember.rig import _session, _tty
from ember.rig._api import nested_request
from ember.rig._mode import Mode, choose
from ember.rig._qemu import TCG_THREADS
from ember.rig.errors import L1Error, RigError

RIG_FAILURE = 125
NOT_FOUND = 127


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ember-rig",
        description="Run a command where KVM boots Linux guests.",
        epilog="EMBER_RIG=direct|nested forces a mode; by default a probe of /dev/kvm decides.",
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    run = sub.add_parser("run", help="run CMD (after --) with a KVM that boots Linux")
    run.add_argument("--memory", type=int, default=4096, metavar="MiB", help="L1 memory")
    run.add_argument("--cpus", type=int, default=2, metavar="N", help="L1 vCPUs")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="kill L1 after this long and exit 124")
    run.add_argument("--silence-limit", type=float, default=None, metavar="SECONDS",
                     help="stop L1 (exit 125) when the command prints nothing for this long")
    run.add_argument("--tcg-thread", choices=TCG_THREADS, default=None,
                     help="QEMU's TCG threading for L1 (default: $EMBER_RIG_TCG_THREAD, "
                          "else multi; single is several times slower)")
    run.add_argument("-q", "--quiet", action="store_true", help="no `L1 ready` line")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    return parser


def _say(message: str, raw: bool = False) -> None:
    end = "\r\n" if raw else "\n"
    os.write(2, f"ember-rig: {message}{end}".encode())


def _writer(fd: int) -> _session.Output:
    broken = False

    def write(data: bytes) -> None:
        nonlocal broken
        view = memoryview(data)
        while view and not broken:
            try:
                view = view[os.write(fd, view):]
            except BrokenPipeError:
                broken = True  # the reader went away; the command still runs to its end

    return write


def _exec_direct(command: list[str]) -> int:
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        _say(f"{command[0]}: {exc.strerror}")
    return NOT_FOUND


def _run_nested(args: argparse.Namespace, command: list[str]) -> int:
    terminal = _tty.is_terminal(0, 1)
    winsize = _tty.window_size(1) if terminal else None
    request = nested_request(command, None, None, timeout=args.timeout,
                             memory_mib=args.memory, cpus=args.cpus, winsize=winsize,
                             silence_limit=args.silence_limit, tcg_thread=args.tcg_thread)
    out, err = _writer(1), _writer(2)

    def ready(seconds: float) -> None:
        if not args.quiet:
            _say(f"L1 ready in {seconds:.1f} s", raw=terminal)

    streams = _session.Streams(out, err, 0, b"", ready)
    with _tty.raw_mode(0) if terminal else nullcontext():
        outcome = _session.run(request, streams)
    if outcome.timed_out:
        _say(f"timed out after {args.timeout:g} s; L1 stopped")
    return outcome.returncode


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        _parser().error("run: missing command (ember-rig run -- CMD ARGS...)")
    try:
        if choose() is Mode.DIRECT:
            return _exec_direct(command)
        return _run_nested(args, command)
    except L1Error as exc:
        _say(str(exc))
        sys.stderr.write(exc.log + "\n")
        return RIG_FAILURE
    except RigError as exc:
        _say(str(exc))
        return RIG_FAILURE
