"""Firecracker's log line format on top of Python's ``logging``, written without blocking.

A line looks like ``<timestamp> [<instance id>:<thread>:<level>:<file>:<line>] <message>``;
the level appears with ``show_level``, file and line with ``show_log_origin``.
The target is a file or a FIFO opened ``O_NONBLOCK``: when a write would block (a FIFO
nobody drains), the line is dropped and counted in the metrics ``logger`` group, so that
a vCPU thread that logs never waits on the reader.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from ember.vmm.config import LOG_LEVELS, LoggerConfig, os_error_text

LOGGER_NAME = "ember"
DEFAULT_INSTANCE_ID = "anonymous-instance"
DEFAULT_LEVEL = "Info"
TRACE = 5  # below logging.DEBUG, for Firecracker's Trace level

# Firecracker's level names (case-insensitive on input) to Python's levels.
_LEVELS = {"Error": logging.ERROR, "Warning": logging.WARNING, "Info": logging.INFO,
           "Debug": logging.DEBUG, "Trace": TRACE, "Off": logging.CRITICAL + 10}
# How the level is printed in a line (Rust's log crate spelling, as Firecracker prints it).
_LEVEL_TAGS = {logging.ERROR: "ERROR", logging.WARNING: "WARN", logging.INFO: "INFO",
               logging.DEBUG: "DEBUG", TRACE: "TRACE", logging.CRITICAL: "ERROR"}
_THREAD_NAMES = {"MainThread": "main"}


class LoggerError(Exception):
    """The logger could not be configured; the message says why."""


class InvalidLogLevel(LoggerError):
    """A level name that is not one of Firecracker's."""

    def __init__(self, value: str) -> None:
        super().__init__(f"Invalid value for logger level: {value}."
                         f"Possible values: [Error, Warning, Info, Debug]")


def parse_level(value: str) -> str:
    """Firecracker's level name for ``value`` (case-insensitive), or InvalidLogLevel."""
    name = value.capitalize()
    if name not in LOG_LEVELS:
        raise InvalidLogLevel(value)
    return name


def format_timestamp(now_ns: int) -> str:
    """Local time with nanoseconds, e.g. ``2024-05-01T12:00:00.123456789``."""
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds)) + f".{nanos:09d}"


class LineFormatter(logging.Formatter):
    """Formats records the way Firecracker's logger prints its lines."""

    def __init__(self, instance_id: str, show_level: bool, show_origin: bool) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.show_level = show_level
        self.show_origin = show_origin

    def format(self, record: logging.LogRecord) -> str:
        tags = [self.instance_id, _THREAD_NAMES.get(record.threadName or "", record.threadName
                                                    or "?")]
        if self.show_level:
            tags.append(_LEVEL_TAGS.get(record.levelno, record.levelname))
        if self.show_origin:
            tags += [record.pathname, str(record.lineno)]
        return f"{format_timestamp(time.time_ns())} [{':'.join(tags)}] {record.getMessage()}"


DropCounter = Callable[[], None]


class NonBlockingHandler(logging.Handler):
    """Writes each formatted line with one ``write(2)`` on a non-blocking fd."""

    def __init__(self, fd: int, on_drop: DropCounter, owns_fd: bool = True) -> None:
        super().__init__()
        self.fd = fd
        self.on_drop = on_drop
        self.owns_fd = owns_fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
            written = os.write(self.fd, line)
        except (BlockingIOError, BrokenPipeError):
            written = 0
        except Exception:
            self.handleError(record)
            return
        if written < len(line):
            self.on_drop()

    def close(self) -> None:
        if self.owns_fd and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()


def open_target(path: str) -> int:
    """Open a log or metrics target: append to a file, or the write end of a FIFO.

    ``O_NONBLOCK`` keeps writes from waiting on a FIFO reader; opening a FIFO that has no
    reader yet fails with ENXIO, as Firecracker's does.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except OSError as err:
        raise LoggerError(f"Failed to open target file: {os_error_text(err)}") from err


def _reopen(fd: int) -> tuple[int, bool]:
    """A private non-blocking file description for ``fd`` (stdout), and whether we own it.

    Setting O_NONBLOCK on fd 1 itself would change it for every other writer of the same
    description (the serial console, the parent's terminal); reopening it through /proc
    gives ember its own. Where that is impossible (a socket), fall back to ``fd`` as is.
    """
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC
        return os.open(f"/proc/self/fd/{fd}", flags), True
    except OSError:
        return fd, False


class Logger:
    """The process logger: one handler on ``logging.getLogger("ember")``."""

    def __init__(self, instance_id: str = DEFAULT_INSTANCE_ID,
                 on_drop: DropCounter = lambda: None) -> None:
        self.instance_id = instance_id
        self.on_drop = on_drop
        self.level = DEFAULT_LEVEL
        self.show_level = False
        self.show_origin = False
        self._lock = threading.Lock()
        self._handler: logging.Handler | None = None
        self._logger = logging.getLogger(LOGGER_NAME)
        self._logger.propagate = False

    def configure(self, cfg: LoggerConfig, stdout_fd: int = 1) -> None:
        """Apply ``cfg``; unset fields keep their current value. Without a path, log to stdout."""
        fd, owns = (open_target(cfg.log_path), True) if cfg.log_path else _reopen(stdout_fd)
        with self._lock:
            self.level = parse_level(cfg.level) if cfg.level else self.level
            self.show_level = self.show_level if cfg.show_level is None else cfg.show_level
            self.show_origin = (self.show_origin if cfg.show_log_origin is None
                                else cfg.show_log_origin)
            self._install(NonBlockingHandler(fd, self.on_drop, owns_fd=owns))

    def _install(self, handler: logging.Handler) -> None:
        handler.setFormatter(LineFormatter(self.instance_id, self.show_level, self.show_origin))
        if self._handler is not None:
            self._logger.removeHandler(self._handler)
            self._handler.close()
        self._handler = handler
        self._logger.addHandler(handler)
        self._logger.setLevel(_LEVELS[self.level])

    def close(self) -> None:
        with self._lock:
            if self._handler is not None:
                self._logger.removeHandler(self._handler)
                self._handler.close()
                self._handler = None
