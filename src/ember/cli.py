"""The ``ember`` command: Firecracker's flags, exit codes and start-up sequence.

Exit codes follow Firecracker: 0 when the guest rebooted or powered off (or a SIGTERM /
SIGINT asked ember to stop), 1 on other failures, 152 for a bad ``--level``, 153 for
any other command-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import select
import signal
import stat
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from ember import __version__
from ember.vmm.config import ConfigError, LoggerConfig, MetricsConfig, VmConfig
from ember.vmm.controller import ActionError, Controller, InstanceStart, VmHandle, builder_factory
from ember.vmm.logger import DEFAULT_INSTANCE_ID, InvalidLogLevel, Logger, LoggerError, parse_level
from ember.vmm.metrics import Metrics, MetricsError, PeriodicFlusher

if TYPE_CHECKING:
    from ember.api import ApiServer

log = logging.getLogger("ember")

EXIT_OK = 0
EXIT_GENERIC_ERROR = 1
EXIT_BAD_CONFIGURATION = 152  # Firecracker's FcExitCode::BadConfiguration
EXIT_ARG_PARSING = 153  # Firecracker's FcExitCode::ArgParsing
DEFAULT_API_SOCK = "/run/firecracker.socket"
HTTP_MAX_PAYLOAD_SIZE = 51200  # Firecracker's default for --http-api-max-payload-size
MAX_INSTANCE_ID_LEN = 64


class ArgumentError(Exception):
    """The command line is invalid (exit code 153)."""


class StartupError(Exception):
    """ember could not get to serving or booting (exit code 1); the message says why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ember", add_help=True, allow_abbrev=False,
                description="Launch a microVM (a drop-in for Firecracker).")
    value = p.add_argument
    value("--api-sock", default=DEFAULT_API_SOCK, help="Path to the API's unix socket.")
    value("--id", default=DEFAULT_INSTANCE_ID, help="MicroVM unique identifier.")
    value("--config-file", help="Path to a file that contains the microVM configuration in JSON.")
    value("--no-api", action="store_true", help="Start the microVM without an API socket.")
    value("--log-path", help="Path to a fifo or a file used for configuring the logger.")
    value("--level", help="Set the logger level.")
    value("--module", help="Set the logger module filter (accepted, not applied).")
    value("--show-level", action="store_true", help="Output the level in the logs.")
    value("--show-log-origin", action="store_true", help="Output the file and line of each log.")
    value("--metrics-path", help="Path to a fifo or a file used for configuring the metrics.")
    value("--boot-timer", action="store_true", help="Log the guest boot time.")
    value("--http-api-max-payload-size", default=str(HTTP_MAX_PAYLOAD_SIZE),
          help="Http API request payload max size, in bytes.")
    value("--mmds-size-limit", help="Mmds data store limit, in bytes.")
    value("--metadata", help="Path to a JSON file with MMDS content (not supported yet).")
    value("--start-time-us", help="Process start time (wall clock, microseconds).")
    value("--start-time-cpu-us", help="Process start CPU time (microseconds).")
    value("--parent-cpu-time-us", help="Parent process CPU time (microseconds).")
    seccomp = p.add_mutually_exclusive_group()
    seccomp.add_argument("--no-seccomp", action="store_true", help="Run without seccomp.")
    seccomp.add_argument("--seccomp-filter", help="Path to a custom seccomp filter.")
    value("--version", action="store_true", help="Print the binary version number.")
    value("--snapshot-version", action="store_true", help="Print the snapshot format version.")
    value("--describe-snapshot", help="Print the format version of a snapshot file.")
    value("--enable-pci", action="store_true", help="Enable PCIe support (not supported yet).")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.no_api and args.config_file is None:
        raise ArgumentError("the argument --no-api requires --config-file")
    _check_id(args.id)
    for name in ("http_api_max_payload_size", "mmds_size_limit", "start_time_us",
                 "start_time_cpu_us", "parent_cpu_time_us"):
        setattr(args, name, _unsigned(args, name))
    return args


def _check_id(value: str) -> None:
    if not 1 <= len(value) <= MAX_INSTANCE_ID_LEN or not all(
            c == "-" or c.isalnum() for c in value):
        raise ArgumentError(f"invalid instance id {value!r}: use 1 to {MAX_INSTANCE_ID_LEN} "
                            f"alphanumeric characters or '-'")


def _unsigned(args: argparse.Namespace, name: str) -> int | None:
    raw = getattr(args, name)
    if raw is None:
        return None
    if not raw.isdigit():
        flag = "--" + name.replace("_", "-")
        raise ArgumentError(f"'{flag}' expects an unsigned integer, got {raw!r}")
    return int(raw)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except ArgumentError as err:
        print(f"Error: Arguments parsing error: {err}\n\nFor more information try --help.",
              file=sys.stderr)
        return EXIT_ARG_PARSING
    if args.version:
        print(f"ember v{__version__}\n")
        return EXIT_OK
    try:
        args.level = parse_level(args.level) if args.level else None
    except InvalidLogLevel as err:
        print(f"Error: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIGURATION
    return Launcher(args).run()


class ExitBox:
    """The process's exit code, set once by whoever ends the run, and what the main
    thread waits on.

    Signals only record themselves and wake the main thread through a pipe (also
    installed as the interpreter's wakeup fd, so a signal that the kernel hands to another
    thread still wakes it). A Python signal handler runs on the main thread between two of
    its bytecodes, possibly while that thread holds a lock; a handler that took the same
    lock (as Event.set does) would wait forever.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._decided = False
        self.code = EXIT_OK
        self.signal: int | None = None

    @property
    def wakeup_fd(self) -> int:
        return self._wake_w

    def set(self, code: int) -> None:
        """The first caller decides the exit code. Never called from a signal handler."""
        with self._lock:
            if self._decided:
                return
            self._decided, self.code = True, code
        self._wake()

    def note_signal(self, signum: int) -> None:
        """The signal handler's whole work: no lock, no logging."""
        self.signal = signum
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe already wakes the reader
            os.write(self._wake_w, b"\0")

    def wait(self) -> int:
        while not self._decided:
            if self.signal is not None:
                log.info("Received %s, shutting down.", signal.Signals(self.signal).name)
                self.set(EXIT_OK)
                break
            select.select([self._wake_r], [], [])
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
        return self.code


class Launcher:
    """One run of ember: logger, metrics, controller, API server, the VM, then cleanup."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.exit = ExitBox()
        self.metrics = Metrics(args.id)
        self.logger = Logger(args.id, on_drop=self._count_dropped_log)
        self.controller = Controller(
            builder_factory(serial_in=_serial_in(), serial_out=1, boot_timer=args.boot_timer),
            instance_id=args.id, logger=self.logger, metrics=self.metrics,
            on_started=self._watch_vm)
        self.server: ApiServer | None = None
        self.flusher = PeriodicFlusher(self.metrics)

    def _count_dropped_log(self) -> None:
        self.metrics.inc("logger", "missed_log_count")

    def run(self) -> int:
        try:
            self._start()
        except StartupError as err:
            log.error("%s", err)
            print(f"Error: {err}", file=sys.stderr)
            self.exit.set(EXIT_GENERIC_ERROR)
        else:
            self.exit.wait()
        return self._finish()

    def _start(self) -> None:
        self._setup_logging()
        self._check_unsupported_flags()
        self._setup_metrics()
        _install_signal_handlers(self.exit)
        config = self._read_config()
        if not self.args.no_api:
            self._start_api()
        if config is not None:
            self._boot_from(config)
        self.flusher.start()

    def _setup_logging(self) -> None:
        a = self.args
        cfg = LoggerConfig(log_path=a.log_path, level=a.level, show_level=a.show_level or None,
                           show_log_origin=a.show_log_origin or None)
        try:
            self.logger.configure(cfg)
        except LoggerError as err:
            raise StartupError(f"Could not initialize logger: {err}") from err
        log.info("Running ember v%s", __version__)

    def _check_unsupported_flags(self) -> None:
        a = self.args
        refused = {"--describe-snapshot": a.describe_snapshot, "--snapshot-version":
                   a.snapshot_version, "--metadata": a.metadata, "--enable-pci": a.enable_pci,
                   "--seccomp-filter": a.seccomp_filter}
        for flag, value in refused.items():
            if value:
                raise StartupError(f"{flag} is not supported by ember yet")

    def _setup_metrics(self) -> None:
        a = self.args
        if a.metrics_path is not None:
            try:
                self.metrics.configure(MetricsConfig(a.metrics_path))
            except MetricsError as err:
                raise StartupError(f"Could not initialize metrics: {err}") from err
        if a.start_time_us is not None:
            now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.metrics.store("api_server", "process_startup_time_us", now_us - a.start_time_us)
        if a.start_time_cpu_us is not None:
            cpu_us = time.process_time_ns() // 1000 + (a.parent_cpu_time_us or 0)
            self.metrics.store("api_server", "process_startup_time_cpu_us",
                               cpu_us - a.start_time_cpu_us)

    def _read_config(self) -> VmConfig | None:
        path = self.args.config_file
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return VmConfig.from_json(json.load(f))
        except OSError as err:
            raise StartupError(f"Unable to open or read from the configuration file "
                               f"{path}: {err.strerror}") from err
        except (ValueError, ConfigError) as err:
            raise StartupError(f"Configuration for VMM from one single json failed: "
                               f"{path}: {err}") from err

    def _start_api(self) -> None:
        # Imported here: with --no-api the HTTP stack (about a third of start-up imports)
        # is never loaded.
        from ember.api import ApiServer

        path = self.args.api_sock
        try:
            server = ApiServer(path, self.controller, self.metrics,
                               self.args.http_api_max_payload_size)
        except OSError as err:
            raise StartupError(f"Failed to open the API socket at {path}: "
                               f"{err.strerror or err}") from err
        self.server = server
        server.start()

    def _boot_from(self, config: VmConfig) -> None:
        try:
            self.controller.apply_config(config)
            self.controller.handle(InstanceStart())
        except ActionError as err:
            raise StartupError(f"Configuration for VMM from one single json failed: "
                               f"{err}") from err
        log.info("Successfully started microvm that was configured from one single json")

    def _watch_vm(self, vm: VmHandle) -> None:
        def wait() -> None:
            code = vm.wait()
            self.exit.set(EXIT_OK if code == 0 else EXIT_GENERIC_ERROR)

        threading.Thread(target=wait, name="fc_vm_wait", daemon=True).start()

    def _finish(self) -> int:
        code = self.exit.code
        if self.controller.vm is not None:
            self.controller.vm.stop()
        if self.server is not None:
            self.server.stop()
        self.flusher.stop()
        self._final_flush()
        if code == EXIT_OK:
            log.info("ember exiting successfully. exit_code=0")
        else:
            log.error("ember exiting with error. exit_code=%d", code)
        self.logger.close()
        return code

    def _final_flush(self) -> None:
        try:
            self.metrics.flush()
        except MetricsError as err:
            log.error("%s", err)
        self.metrics.close()


def _serial_in() -> int | None:
    """Firecracker feeds stdin to the serial port; only a terminal, pipe or socket makes sense."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return None
    return 0 if stat.S_ISCHR(mode) and os.isatty(0) or stat.S_ISFIFO(mode) \
        or stat.S_ISSOCK(mode) else None


# The signal that kicks a vCPU thread out of KVM_RUN (ember.vmm.vcpu.KICK_SIGNAL, named here
# so that start-up does not import the KVM layer). Only the main thread may install its
# handler, and the VM is built on the API thread: without this, a kick kills the process.
VCPU_KICK_SIGNAL = signal.SIGRTMIN
# The signal that makes the VMM print every thread's Python stack to stderr and go on:
# a VMM that stopped answering can be looked into without stopping it.
STACK_DUMP_SIGNAL = signal.SIGUSR1


def _install_signal_handlers(exit_box: ExitBox) -> None:
    def on_signal(signum: int, _: FrameType | None) -> None:
        exit_box.note_signal(signum)

    signal.set_wakeup_fd(exit_box.wakeup_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(VCPU_KICK_SIGNAL, lambda _sig, _frame: None)
    # Dumped from the Python-level handler (the main thread, woken through the wakeup fd,
    # holding the GIL): faulthandler's own C-level handler walks the other threads' frames
    # while they run.
    signal.signal(STACK_DUMP_SIGNAL,
                  lambda _sig, _frame: faulthandler.dump_traceback(all_threads=True))


if __name__ == "__main__":
    sys.exit(main())
