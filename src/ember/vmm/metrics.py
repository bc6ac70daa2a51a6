"""Firecracker-style metrics: delta counters in named groups, one JSON line per flush.

Each flush writes the counts accumulated since the previous flush (Firecracker's
``SharedIncMetric`` semantics) and resets them; "store" metrics (latencies, start-up
times) keep their last value. The VM's own counters come from ``vm.counters()``, which
are cumulative: the flush writes their difference from the previous flush.
The target is opened ``O_NONBLOCK``; a line that would block is dropped and counted in
``logger.missed_metrics_count``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable

from ember.vmm.config import MetricsConfig
from ember.vmm.logger import LoggerError, open_target

FLUSH_PERIOD_S = 60.0

Counters = dict[str, dict[str, int]]
CounterSource = Callable[[], Counters]

# Firecracker's groups and the counters ember feeds today; the VM adds its own groups.
GROUPS: dict[str, tuple[str, ...]] = {
    "api_server": ("process_startup_time_us", "process_startup_time_cpu_us",
                   "sync_response_fails", "sync_vmm_send_timeout_count"),
    "get_api_requests": ("instance_info_count", "machine_cfg_count", "mmds_count",
                         "vmm_version_count"),
    "put_api_requests": ("actions_count", "actions_fails", "boot_source_count",
                         "boot_source_fails", "drive_count", "drive_fails", "logger_count",
                         "logger_fails", "machine_cfg_count", "machine_cfg_fails",
                         "cpu_cfg_count", "cpu_cfg_fails", "metrics_count", "metrics_fails",
                         "network_count", "network_fails", "mmds_count", "mmds_fails",
                         "vsock_count", "vsock_fails", "serial_count", "serial_fails"),
    "patch_api_requests": ("drive_count", "drive_fails", "network_count", "network_fails",
                           "machine_cfg_count", "machine_cfg_fails", "mmds_count",
                           "mmds_fails"),
    "i8042": ("error_count", "missed_read_count", "missed_write_count", "read_count",
              "reset_count", "write_count"),
    "latencies_us": ("full_create_snapshot", "diff_create_snapshot", "load_snapshot",
                     "pause_vm", "resume_vm", "vmm_full_create_snapshot",
                     "vmm_diff_create_snapshot", "vmm_load_snapshot", "vmm_pause_vm",
                     "vmm_resume_vm"),
    "logger": ("missed_metrics_count", "metrics_fails", "missed_log_count", "log_fails"),
    "uart": ("error_count", "flush_count", "missed_read_count", "missed_write_count",
             "read_count", "write_count"),
    "vcpu": ("exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write", "failures"),
    "vmm": ("device_events", "panic_count"),
    "signals": ("sigbus", "sigsegv", "sigxfsz", "sigxcpu", "sigpipe", "sighup", "sigill"),
}
# Groups whose values are stored, not accumulated.
STORE_GROUPS = frozenset({"latencies_us"})
STORE_METRICS = frozenset({("api_server", "process_startup_time_us"),
                           ("api_server", "process_startup_time_cpu_us")})


class MetricsError(Exception):
    """Metrics could not be configured or written; the message says why."""


class Metrics:
    """The process's metrics, safe to update from any thread."""

    def __init__(self, instance_id: str = "") -> None:
        self.instance_id = instance_id
        self._lock = threading.Lock()
        self._counts: Counters = {group: dict.fromkeys(names, 0)
                                  for group, names in GROUPS.items()}
        self._vm_source: CounterSource | None = None
        self._vm_last: Counters = {}
        self._fd = -1
        self._config: MetricsConfig | None = None

    @property
    def configured(self) -> bool:
        return self._config is not None

    def configure(self, cfg: MetricsConfig) -> None:
        """Open the target; Firecracker allows this once per process."""
        if self._config is not None:
            raise MetricsError("Reinitialization of metrics not allowed.")
        try:
            fd = open_target(cfg.metrics_path)
        except LoggerError as err:
            raise MetricsError(str(err)) from err
        with self._lock:
            self._fd, self._config = fd, cfg

    def inc(self, group: str, name: str, amount: int = 1) -> None:
        with self._lock:
            counters = self._counts.setdefault(group, {})
            counters[name] = counters.get(name, 0) + amount

    def store(self, group: str, name: str, value: int) -> None:
        with self._lock:
            self._counts.setdefault(group, {})[name] = value

    def attach_vm(self, source: CounterSource) -> None:
        """Merge the deltas of a VM's cumulative counters into every flush from now on."""
        with self._lock:
            self._vm_source, self._vm_last = source, {}

    def flush(self) -> bool:
        """Write one line if a target is configured; return whether a line was written."""
        if self._config is None:
            return False
        line = (json.dumps(self.take_snapshot()) + "\n").encode()
        try:
            written = os.write(self._fd, line)
        except (BlockingIOError, BrokenPipeError):
            written = 0
        except OSError as err:
            self.inc("logger", "metrics_fails")
            raise MetricsError(f"Failed to write metrics: {err}") from err
        if written < len(line):
            self.inc("logger", "missed_metrics_count")
            return False
        return True

    def take_snapshot(self) -> dict[str, object]:
        """The deltas since the previous snapshot, as one JSON-ready object; resets them."""
        vm_counters = self._vm_source() if self._vm_source else {}
        with self._lock:
            out: dict[str, object] = {"utc_timestamp_ms": time.time_ns() // 1_000_000}
            if self._config and self._config.emit_id:
                out["id"] = self.instance_id
            if self._config and self._config.properties:
                out["properties"] = dict(self._config.properties)
            out.update(self._own_deltas())
            for group, values in self._vm_deltas(vm_counters).items():
                target = out.setdefault(group, {})
                assert isinstance(target, dict)
                for name, value in values.items():
                    target[name] = target.get(name, 0) + value
            return out

    def _own_deltas(self) -> Counters:
        out: Counters = {}
        for group, counters in self._counts.items():
            out[group] = dict(counters)
            if group in STORE_GROUPS:
                continue
            for name in counters:
                if (group, name) not in STORE_METRICS:
                    counters[name] = 0
        return out

    def _vm_deltas(self, current: Counters) -> Counters:
        out: Counters = {}
        for group, values in current.items():
            last = self._vm_last.get(group, {})
            out[group] = {name: value - last.get(name, 0) for name, value in values.items()}
        self._vm_last = {group: dict(values) for group, values in current.items()}
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PeriodicFlusher:
    """Flushes the metrics every ``period`` seconds on its own thread until stopped."""

    def __init__(self, metrics: Metrics, period: float = FLUSH_PERIOD_S) -> None:
        self.metrics = metrics
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fc_metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.metrics.flush()
            except MetricsError:
                pass  # counted in logger.metrics_fails

    def stop(self) -> None:
        self._stop.set()
