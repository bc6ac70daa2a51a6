"""The one door from the API (and the command line) into the VMM.

An :data:`Action` is one request, already parsed into config models. The
:class:`Controller` owns the configuration being built, the phase (not started,
running, paused) and the :class:`VmHandle` once started; each action says in which phase
it is legal, with Firecracker's texts for the others.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ember import __version__
from ember.devices.rate_limiter import RateLimiterConfig
from ember.vmm.config import (
    BootSource,
    ConfigError,
    CpuConfig,
    Drive,
    DriveUpdate,
    LoggerConfig,
    MachineConfig,
    MachineConfigUpdate,
    MetricsConfig,
    SerialConfig,
    VmConfig,
)
from ember.vmm.logger import Logger, LoggerError
from ember.vmm.metrics import Metrics, MetricsError

log = logging.getLogger("ember")

APP_NAME = "ember"


class Phase(enum.Enum):
    NOT_STARTED = "Not started"
    RUNNING = "Running"
    PAUSED = "Paused"


class ActionError(Exception):
    """An action failed; the message is the API's ``fault_message``."""


class NotSupportedPreBoot(ActionError):
    def __init__(self) -> None:
        super().__init__("The requested operation is not supported before starting the microVM.")


class NotSupportedPostBoot(ActionError):
    def __init__(self) -> None:
        super().__init__("The requested operation is not supported after starting the microVM.")


class VmStartError(Exception):
    """Building or starting the VM failed; the message is user-facing."""


class VmHandle(Protocol):
    """What the controller needs of a built VM (``ember.vmm.builder.Vm``)."""

    state: str

    def start(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def send_ctrl_alt_del(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int | None: ...
    def stop(self) -> None: ...
    def counters(self) -> dict[str, dict[str, int]]: ...
    def update_drive(self, drive_id: str, path_on_host: str | None,
                     rate_limiter: RateLimiterConfig | None = None) -> None: ...


# Builds (but does not start) a VM from the configuration and the serial settings.
VmFactory = Callable[[VmConfig, SerialConfig], VmHandle]


# --- actions -------------------------------------------------------------------------------
# Plain classes and NamedTuples rather than dataclasses: creating ~20 dataclasses costs
# about 10 ms of start-up, and exec → "API server started." must stay short.


class _Bare:
    """An action without parameters."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GetInstanceInfo(_Bare):
    __slots__ = ()


class GetVersion(_Bare):
    __slots__ = ()


class GetMachineConfig(_Bare):
    __slots__ = ()


class GetVmConfig(_Bare):
    __slots__ = ()


class PutMachineConfig(NamedTuple):
    config: MachineConfig


class PatchMachineConfig(NamedTuple):
    update: MachineConfigUpdate


class PutBootSource(NamedTuple):
    boot_source: BootSource


class PutDrive(NamedTuple):
    drive: Drive


class PatchDrive(NamedTuple):
    update: DriveUpdate


class PutLogger(NamedTuple):
    config: LoggerConfig


class PutMetrics(NamedTuple):
    config: MetricsConfig


class PutSerial(NamedTuple):
    config: SerialConfig


class PutCpuConfig(NamedTuple):
    config: CpuConfig


class InstanceStart(_Bare):
    __slots__ = ()


class SendCtrlAltDel(_Bare):
    __slots__ = ()


class FlushMetrics(_Bare):
    __slots__ = ()


class Pause(_Bare):
    __slots__ = ()


class Resume(_Bare):
    __slots__ = ()


class Unsupported(NamedTuple):
    """A Firecracker resource whose device or feature ember does not have yet."""

    capability: str


Action = (GetInstanceInfo | GetVersion | GetMachineConfig | GetVmConfig | PutMachineConfig
          | PatchMachineConfig | PutBootSource | PutDrive | PatchDrive | PutLogger | PutMetrics
          | PutSerial | PutCpuConfig | InstanceStart | SendCtrlAltDel | FlushMetrics | Pause
          | Resume | Unsupported)

# Legal only before InstanceStart; all others except PRE_BOOT_REFUSED are legal in any phase.
PRE_BOOT_ONLY = (PutMachineConfig, PatchMachineConfig, PutBootSource, PutDrive, PutLogger,
                 PutMetrics, PutSerial, PutCpuConfig, InstanceStart)
# Legal only after InstanceStart.
POST_BOOT_ONLY = (PatchDrive, SendCtrlAltDel, FlushMetrics, Pause, Resume)

Reply = dict[str, Any] | None


class Controller:
    """Owns the configuration, the phase and the VM; serialises every action."""

    def __init__(self, factory: VmFactory, *, instance_id: str, logger: Logger,
                 metrics: Metrics, on_started: Callable[[VmHandle], None] = lambda vm: None,
                 stdout_fd: int = 1) -> None:
        self.config = VmConfig()
        self.serial = SerialConfig()
        self.phase = Phase.NOT_STARTED
        self.vm: VmHandle | None = None
        self.instance_id = instance_id
        self.logger = logger
        self.metrics = metrics
        self._factory = factory
        self._on_started = on_started
        self._stdout_fd = stdout_fd
        self._lock = threading.RLock()

    def handle(self, action: Action) -> Reply:
        """Run one action; return the JSON reply (None for "no content") or raise ActionError."""
        with self._lock:
            self._check_phase(action)
            return self._dispatch(action)

    def _check_phase(self, action: Action) -> None:
        started = self.phase is not Phase.NOT_STARTED
        if started and isinstance(action, PRE_BOOT_ONLY):
            raise NotSupportedPostBoot()
        if not started and isinstance(action, POST_BOOT_ONLY):
            raise NotSupportedPreBoot()

    def _dispatch(self, action: Action) -> Reply:
        handler = getattr(self, "_do_" + type(action).__name__)
        reply: Reply = handler(action)
        return reply

    # --- reads ------------------------------------------------------------------------------

    def _do_GetInstanceInfo(self, _: GetInstanceInfo) -> Reply:
        return {"id": self.instance_id, "state": self._state(), "vmm_version": __version__,
                "app_name": APP_NAME}

    def _state(self) -> str:
        if self.vm is not None and self.vm.state == "Paused":
            return Phase.PAUSED.value
        return self.phase.value

    def _do_GetVersion(self, _: GetVersion) -> Reply:
        return {"firecracker_version": __version__}

    def _do_GetMachineConfig(self, _: GetMachineConfig) -> Reply:
        return self.config.machine_config.to_json()

    def _do_GetVmConfig(self, _: GetVmConfig) -> Reply:
        return self.config.to_json()

    # --- pre-boot configuration ---------------------------------------------------------------

    def _do_PutMachineConfig(self, action: PutMachineConfig) -> Reply:
        self.config.machine_config = _machine_checked(action.config)
        return None

    def _do_PatchMachineConfig(self, action: PatchMachineConfig) -> Reply:
        updated = self.config.machine_config.updated(action.update)
        self.config.machine_config = _machine_checked(updated)
        return None

    def _do_PutBootSource(self, action: PutBootSource) -> Reply:
        try:
            action.boot_source.check_files()
        except ConfigError as err:
            raise ActionError(f"Boot source error: {err}") from err
        self.config.boot_source = action.boot_source
        return None

    def _do_PutDrive(self, action: PutDrive) -> Reply:
        drive = action.drive
        others = [d for d in self.config.drives if d.drive_id != drive.drive_id]
        if drive.is_root_device and any(d.is_root_device for d in others):
            raise ActionError("Drive config error: A root block device already exists!")
        try:
            drive.check_files()
        except ConfigError as err:
            raise ActionError(f"Drive config error: {err}") from err
        self._replace_drive(drive)
        return None

    def _replace_drive(self, drive: Drive) -> None:
        drives = self.config.drives
        for i, existing in enumerate(drives):
            if existing.drive_id == drive.drive_id:
                drives[i] = drive
                return
        # Firecracker keeps the root device first.
        drives.insert(0, drive) if drive.is_root_device else drives.append(drive)

    def _do_PutLogger(self, action: PutLogger) -> Reply:
        try:
            self.logger.configure(action.config, self._stdout_fd)
        except LoggerError as err:
            raise ActionError(f"Logger error: {err}") from err
        return None

    def _do_PutMetrics(self, action: PutMetrics) -> Reply:
        try:
            self.metrics.configure(action.config)
        except MetricsError as err:
            raise ActionError(f"Metrics error: {err}") from err
        return None

    def _do_PutSerial(self, action: PutSerial) -> Reply:
        self.serial = action.config
        return None

    def _do_PutCpuConfig(self, _: PutCpuConfig) -> Reply:
        return None  # only the empty template parses; it changes nothing

    def _do_Unsupported(self, action: Unsupported) -> Reply:
        raise ActionError(f"The requested operation is not supported: ember does not have "
                          f"{action.capability} yet.")

    # --- start and runtime --------------------------------------------------------------------

    def _do_InstanceStart(self, _: InstanceStart) -> Reply:
        self._check_startable()
        try:
            vm = self._factory(self.config, self.serial)
            vm.start()
        except VmStartError as err:
            raise ActionError(f"Start microvm error: {err}") from err
        self.vm, self.phase = vm, Phase.RUNNING
        self.metrics.attach_vm(vm.counters)
        log.info("Successfully started microvm.")
        self._on_started(vm)
        return None

    def _check_startable(self) -> None:
        if self.config.boot_source is None:
            raise ActionError(
                "Start microvm error: Cannot start microvm without kernel configuration.")

    def _running_vm(self) -> VmHandle:
        assert self.vm is not None, "post-boot actions are checked against the phase"
        return self.vm

    def _do_SendCtrlAltDel(self, _: SendCtrlAltDel) -> Reply:
        self._running_vm().send_ctrl_alt_del()
        return None

    def _do_FlushMetrics(self, _: FlushMetrics) -> Reply:
        try:
            self.metrics.flush()
        except MetricsError as err:
            raise ActionError(f"Internal VMM error: {err}") from err
        return None

    def _do_Pause(self, _: Pause) -> Reply:
        self._running_vm().pause()
        self.phase = Phase.PAUSED
        return None

    def _do_Resume(self, _: Resume) -> Reply:
        self._running_vm().resume()
        self.phase = Phase.RUNNING
        return None

    def _do_PatchDrive(self, action: PatchDrive) -> Reply:
        update = action.update
        if not any(d.drive_id == update.drive_id for d in self.config.drives):
            raise ActionError(f"Drive config error: Unable to patch the block device "
                              f"{update.drive_id}: no drive with this id.")
        try:
            self._running_vm().update_drive(update.drive_id, update.path_on_host,
                                            update.rate_limiter)
        except Exception as err:  # the VM names what went wrong
            raise ActionError(f"Drive config error: Unable to patch the block device "
                              f"{update.drive_id}: {err}") from err
        self.config.drives = [_patched(d, update) if d.drive_id == update.drive_id else d
                              for d in self.config.drives]
        return None

    # --- whole configurations -----------------------------------------------------------------

    def apply_config(self, config: VmConfig) -> None:
        """Apply a ``--config-file`` configuration through the same actions as the API."""
        actions: list[Action] = [PutMachineConfig(config.machine_config)]
        if config.logger is not None:
            actions.append(PutLogger(config.logger))
        if config.metrics is not None:
            actions.append(PutMetrics(config.metrics))
        if config.boot_source is not None:
            actions.append(PutBootSource(config.boot_source))
        actions += [PutDrive(d) for d in config.drives]
        for action in actions:
            self.handle(action)


def _machine_checked(cfg: MachineConfig) -> MachineConfig:
    try:
        cfg.validate()
    except ConfigError as err:
        raise ActionError(f"Machine config error: {err}") from err
    return cfg


def builder_factory(*, serial_in: int | None, serial_out: int,
                    boot_timer: bool) -> VmFactory:
    """A factory that builds VMs with ``ember.vmm.builder``, imported on first use."""

    def build(config: VmConfig, serial: SerialConfig) -> VmHandle:
        try:
            builder = importlib.import_module("ember.vmm.builder")
        except ImportError as err:
            raise VmStartError(f"the VMM core is not available: {err}") from err
        out_fd = _serial_out_fd(serial, serial_out)
        try:
            vm: VmHandle = builder.build_vm(config, serial_in=serial_in, serial_out=out_fd,
                                            boot_timer=boot_timer)
        except builder.StartError as err:
            raise VmStartError(str(err)) from err
        return vm

    return build


def _serial_out_fd(serial: SerialConfig, default_fd: int) -> int:
    if serial.serial_out_path is None:
        return default_fd
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(serial.serial_out_path, flags, 0o644)
    except OSError as err:
        raise VmStartError(f"cannot open the serial output {serial.serial_out_path}: "
                           f"{err.strerror}") from err


def _patched(drive: Drive, update: DriveUpdate) -> Drive:
    """The stored drive after a PATCH: a new path and/or new rate-limiter buckets."""
    if update.path_on_host is not None:
        drive = drive._replace(path_on_host=update.path_on_host)
    if update.rate_limiter is not None:
        old = drive.rate_limiter
        bandwidth = update.rate_limiter.bandwidth or (old.bandwidth if old else None)
        ops = update.rate_limiter.ops or (old.ops if old else None)
        drive = drive._replace(rate_limiter=RateLimiterConfig(bandwidth, ops))
    return drive
