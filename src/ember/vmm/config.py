"""Configuration models for one microVM, with Firecracker's field names and defaults.

The same models back the ``--config-file`` JSON and the REST API resources. Each model
parses itself from JSON and raises :class:`ConfigShapeError` when the JSON does not have
the expected shape (unknown field, wrong type, missing field) and :class:`ConfigError`
when a value is out of range or cannot be honoured by ember. Messages are user-facing.

The models are NamedTuples (immutable, cheap to define: dataclasses would add ~8 ms to
start-up); only :class:`VmConfig`, the configuration being built, is mutable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, NamedTuple

from ember.devices.rate_limiter import RateLimiterConfig, RateLimiterConfigError

# Firecracker: vcpu_count must be in 1..=32 (MAX_SUPPORTED_VCPUS).
MAX_VCPUS = 32
DEFAULT_VCPUS = 1
DEFAULT_MEM_MIB = 128
# Firecracker's default kernel command line when boot_args is omitted.
DEFAULT_BOOT_ARGS = (
    "reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 "
    "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
)
HUGE_PAGES = ("None", "Transparent", "2M")
CPU_TEMPLATES = ("C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None")
CACHE_TYPES = ("Unsafe", "Writeback")
IO_ENGINES = ("Sync", "Async")
LOG_LEVELS = ("Error", "Warning", "Info", "Debug", "Trace", "Off")
# Sections of Firecracker's config file that name devices ember does not have yet.
MISSING_CAPABILITIES = {
    "network-interfaces": "network interfaces (virtio-net)",
    "vsock": "vsock devices",
    "balloon": "balloon devices",
    "entropy": "entropy devices (virtio-rng)",
    "mmds-config": "the microVM metadata service (MMDS)",
    "pmem": "pmem devices",
    "memory-hotplug": "memory hotplug (virtio-mem)",
}


class ConfigError(ValueError):
    """A configuration value is out of range, missing on disk, or not supported by ember."""


class ConfigShapeError(ConfigError):
    """The JSON does not have the expected shape: unknown field, wrong type, missing field."""


def _fields(obj: Any, allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    """Check that ``obj`` is a JSON object holding only ``allowed`` keys and all ``required``."""
    if not isinstance(obj, dict):
        raise ConfigShapeError(f"invalid type: {_kind(obj)}, expected a JSON object")
    names = list(allowed)
    for key in obj:
        if key not in names:
            expected = ", ".join(f"`{n}`" for n in names)
            raise ConfigShapeError(f"unknown field `{key}`, expected one of {expected}")
    for key in required:
        if key not in obj:
            raise ConfigShapeError(f"missing field `{key}`")
    return obj


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {value!r}"
    return "array" if isinstance(value, list) else "map"


def _get(obj: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    """Return ``obj[key]`` checked against ``kind``; a missing or null value gives ``default``."""
    value = obj.get(key)
    if value is None:
        return default
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigShapeError(
            f"invalid type for `{key}`: {_kind(value)}, expected {_NAMES[kind]}")
    if isinstance(value, int) and value < 0:
        raise ConfigShapeError(
            f"invalid value for `{key}`: {value}, expected a non-negative integer")
    return value


_NAMES: dict[type, str] = {int: "an integer", str: "a string", bool: "a boolean",
                           dict: "a JSON object", list: "an array"}


def _choice(obj: dict[str, Any], key: str, choices: tuple[str, ...], default: str | None) -> Any:
    value = _get(obj, key, str, default)
    if value is not None and value not in choices:
        variants = ", ".join(f"`{c}`" for c in choices)
        raise ConfigShapeError(f"unknown variant `{value}` for `{key}`, expected one of {variants}")
    return value


def os_error_text(err: OSError) -> str:
    """Describe an OSError the way Firecracker prints Rust's io::Error."""
    if err.errno is None:
        return str(err)
    return f"{os.strerror(err.errno)} (os error {err.errno})"


def check_readable(path: str) -> None:
    """Raise OSError unless ``path`` can be opened for reading."""
    os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))


class BootSource(NamedTuple):
    kernel_image_path: str
    boot_args: str | None = None
    initrd_path: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> BootSource:
        obj = _fields(obj, ("kernel_image_path", "boot_args", "initrd_path"),
                      required=("kernel_image_path",))
        return cls(
            kernel_image_path=_get(obj, "kernel_image_path", str, ""),
            boot_args=_get(obj, "boot_args", str),
            initrd_path=_get(obj, "initrd_path", str),
        )

    def check_files(self) -> None:
        """Firecracker opens the kernel and initrd when the boot source is set."""
        try:
            check_readable(self.kernel_image_path)
        except OSError as err:
            raise ConfigError(f"The kernel file cannot be opened: {os_error_text(err)}: "
                              f"{self.kernel_image_path}") from err
        if self.initrd_path is None:
            return
        try:
            check_readable(self.initrd_path)
        except OSError as err:
            raise ConfigError(f"The initrd file cannot be opened: {os_error_text(err)}: "
                              f"{self.initrd_path}") from err

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel_image_path": self.kernel_image_path,
            "initrd_path": self.initrd_path,
            "boot_args": self.boot_args,
        }

    @property
    def cmdline(self) -> str:
        return DEFAULT_BOOT_ARGS if self.boot_args is None else self.boot_args


_MACHINE_FIELDS = ("vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "huge_pages",
                   "cpu_template")


class MachineConfig(NamedTuple):
    vcpu_count: int = DEFAULT_VCPUS
    mem_size_mib: int = DEFAULT_MEM_MIB
    smt: bool = False
    track_dirty_pages: bool = False
    huge_pages: str = "None"
    cpu_template: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> MachineConfig:
        """A full machine configuration (PUT): vcpu_count and mem_size_mib are required.

        Only the shape is checked here; :meth:`validate` checks the values.
        """
        _fields(obj, _MACHINE_FIELDS, required=("vcpu_count", "mem_size_mib"))
        return cls().updated(MachineConfigUpdate.from_json(obj))

    def updated(self, update: MachineConfigUpdate) -> MachineConfig:
        """A copy with the fields that ``update`` sets replaced (PATCH semantics)."""
        changes = {k: v for k, v in update._asdict().items() if v is not None}
        return self._replace(**changes)

    def validate(self) -> None:
        if not 1 <= self.vcpu_count <= MAX_VCPUS or (self.smt and self.vcpu_count % 2 == 1
                                                      and self.vcpu_count != 1):
            raise ConfigError("The vCPU number is invalid! The vCPU number can only be 1 or "
                              "an even number when SMT is enabled.")
        if self.mem_size_mib < 1:
            raise ConfigError("The memory size (MiB) is invalid.")
        self._validate_supported()

    def _validate_supported(self) -> None:
        if self.smt:
            raise ConfigError("ember does not support SMT (simultaneous multithreading) yet: "
                              "set smt to false.")
        if self.huge_pages != "None":
            raise ConfigError(f"ember cannot back guest memory with huge pages "
                              f"({self.huge_pages}) yet: set huge_pages to \"None\".")
        if self.cpu_template not in (None, "None"):
            raise ConfigError(f"ember does not support CPU templates ({self.cpu_template}) yet: "
                              f"omit cpu_template or set it to \"None\".")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vcpu_count": self.vcpu_count,
            "mem_size_mib": self.mem_size_mib,
            "smt": self.smt,
            "track_dirty_pages": self.track_dirty_pages,
            "huge_pages": self.huge_pages,
        }
        if self.cpu_template is not None:
            out["cpu_template"] = self.cpu_template
        return out


class MachineConfigUpdate(NamedTuple):
    """The fields of a PATCH /machine-config body; ``None`` means "keep the current value"."""

    vcpu_count: int | None = None
    mem_size_mib: int | None = None
    smt: bool | None = None
    track_dirty_pages: bool | None = None
    huge_pages: str | None = None
    cpu_template: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> MachineConfigUpdate:
        obj = _fields(obj, _MACHINE_FIELDS)
        return cls(
            vcpu_count=_get(obj, "vcpu_count", int),
            mem_size_mib=_get(obj, "mem_size_mib", int),
            smt=_get(obj, "smt", bool),
            track_dirty_pages=_get(obj, "track_dirty_pages", bool),
            huge_pages=_choice(obj, "huge_pages", HUGE_PAGES, None),
            cpu_template=_choice(obj, "cpu_template", CPU_TEMPLATES, None),
        )


_DRIVE_FIELDS = ("drive_id", "partuuid", "is_root_device", "cache_type", "is_read_only",
                 "path_on_host", "rate_limiter", "io_engine", "socket")


class Drive(NamedTuple):
    drive_id: str
    path_on_host: str
    is_root_device: bool
    is_read_only: bool = False
    partuuid: str | None = None
    cache_type: str = "Unsafe"
    io_engine: str = "Sync"
    rate_limiter: RateLimiterConfig | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Drive:
        obj = _fields(obj, _DRIVE_FIELDS, required=("drive_id", "is_root_device"))
        _reject_present(obj, "socket", "vhost-user block devices")
        path = _get(obj, "path_on_host", str)
        if path is None:
            raise ConfigShapeError("missing field `path_on_host`")
        return cls(
            drive_id=_get(obj, "drive_id", str, ""),
            path_on_host=path,
            is_root_device=_get(obj, "is_root_device", bool, False),
            is_read_only=_get(obj, "is_read_only", bool, False),
            partuuid=_get(obj, "partuuid", str),
            cache_type=_choice(obj, "cache_type", CACHE_TYPES, "Unsafe"),
            io_engine=_choice(obj, "io_engine", IO_ENGINES, "Sync"),
            rate_limiter=_rate_limiter(obj),
        )

    def check_files(self) -> None:
        """Firecracker opens the backing file when the drive is added."""
        mode = os.O_RDONLY if self.is_read_only else os.O_RDWR
        try:
            os.close(os.open(self.path_on_host, mode | os.O_CLOEXEC))
        except OSError as err:
            raise ConfigError(f"Unable to create the virtio block device: cannot open "
                              f"{self.path_on_host}: {os_error_text(err)}") from err

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "drive_id": self.drive_id,
            "partuuid": self.partuuid,
            "is_root_device": self.is_root_device,
            "cache_type": self.cache_type,
            "is_read_only": self.is_read_only,
            "path_on_host": self.path_on_host,
            "io_engine": self.io_engine,
        }
        if self.rate_limiter is not None:
            out["rate_limiter"] = self.rate_limiter.to_json()
        return out


def _reject_present(obj: dict[str, Any], key: str, capability: str) -> None:
    if obj.get(key) is not None:
        raise ConfigError(f"ember does not support {capability} yet: remove `{key}`.")


class DriveUpdate(NamedTuple):
    """PATCH /drives/{id}: a new backing file for a drive of a running microVM."""

    drive_id: str
    path_on_host: str | None = None
    rate_limiter: RateLimiterConfig | None = None

    @classmethod
    def from_json(cls, obj: Any) -> DriveUpdate:
        obj = _fields(obj, ("drive_id", "path_on_host", "rate_limiter"), required=("drive_id",))
        return cls(_get(obj, "drive_id", str, ""), _get(obj, "path_on_host", str),
                   _rate_limiter(obj))


def _rate_limiter(obj: dict[str, Any]) -> RateLimiterConfig | None:
    raw = obj.get("rate_limiter")
    if raw is None:
        return None
    try:
        return RateLimiterConfig.from_json(raw)
    except RateLimiterConfigError as err:
        raise ConfigShapeError(str(err)) from None


class LoggerConfig(NamedTuple):
    log_path: str | None = None
    level: str | None = None
    show_level: bool | None = None
    show_log_origin: bool | None = None
    module: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> LoggerConfig:
        obj = _fields(obj, ("log_path", "level", "show_level", "show_log_origin", "module"))
        level = _get(obj, "level", str)
        if level is not None and level.capitalize() not in LOG_LEVELS:
            raise ConfigShapeError(
                f"unknown variant `{level}` for `level`, expected one of "
                + ", ".join(f"`{lv}`" for lv in LOG_LEVELS))
        return cls(
            log_path=_get(obj, "log_path", str),
            level=None if level is None else level.capitalize(),
            show_level=_get(obj, "show_level", bool),
            show_log_origin=_get(obj, "show_log_origin", bool),
            module=_get(obj, "module", str),
        )


class MetricsConfig(NamedTuple):
    metrics_path: str
    emit_id: bool = False
    properties: dict[str, str] | None = None

    @classmethod
    def from_json(cls, obj: Any) -> MetricsConfig:
        obj = _fields(obj, ("metrics_path", "emit_id", "properties"), required=("metrics_path",))
        props = _get(obj, "properties", dict, {})
        if not all(isinstance(v, str) for v in props.values()):
            raise ConfigShapeError("invalid type for `properties`: expected string values")
        return cls(_get(obj, "metrics_path", str, ""), _get(obj, "emit_id", bool, False),
                   dict(props))


class SerialConfig(NamedTuple):
    serial_out_path: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> SerialConfig:
        obj = _fields(obj, ("serial_out_path", "rate_limiter"))
        _reject_present(obj, "rate_limiter", "serial rate limiters")
        return cls(_get(obj, "serial_out_path", str))


_CPU_CONFIG_FIELDS = ("kvm_capabilities", "cpuid_modifiers", "msr_modifiers", "reg_modifiers",
                      "vcpu_features")


class CpuConfig(NamedTuple):
    """A custom CPU template. ember accepts only the empty template for now."""

    @classmethod
    def from_json(cls, obj: Any) -> CpuConfig:
        obj = _fields(obj, _CPU_CONFIG_FIELDS)
        for key in _CPU_CONFIG_FIELDS:
            if _get(obj, key, list, []):
                raise ConfigError(f"ember does not support custom CPU templates yet: "
                                  f"`{key}` must be empty.")
        return cls()


_VM_FIELDS = ("boot-source", "machine-config", "drives", "logger", "metrics", "cpu-config",
              *MISSING_CAPABILITIES)


class VmConfig:
    """Everything needed to build one microVM; the JSON of ``--config-file`` and GET /vm/config."""

    def __init__(self, boot_source: BootSource | None = None,
                 machine_config: MachineConfig | None = None,
                 drives: list[Drive] | None = None, logger: LoggerConfig | None = None,
                 metrics: MetricsConfig | None = None) -> None:
        self.boot_source = boot_source
        self.machine_config = machine_config or MachineConfig()
        self.drives: list[Drive] = drives or []
        self.logger = logger
        self.metrics = metrics

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VmConfig) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"VmConfig({vars(self)!r})"

    @classmethod
    def from_json(cls, obj: Any) -> VmConfig:
        obj = _fields(obj, _VM_FIELDS)
        for key, capability in MISSING_CAPABILITIES.items():
            if obj.get(key):
                raise ConfigError(f"ember does not support {capability} yet: remove `{key}`.")
        if obj.get("cpu-config") is not None:
            raise ConfigError("ember does not support custom CPU templates yet: "
                              "remove `cpu-config`.")
        return cls(
            boot_source=_optional(obj, "boot-source", BootSource.from_json),
            machine_config=_optional(obj, "machine-config", MachineConfig.from_json),
            drives=[Drive.from_json(d) for d in _get(obj, "drives", list, [])],
            logger=_optional(obj, "logger", LoggerConfig.from_json),
            metrics=_optional(obj, "metrics", MetricsConfig.from_json),
        )

    def to_json(self) -> dict[str, Any]:
        """The full configuration, in the shape ``from_json`` accepts."""
        out: dict[str, Any] = {
            "balloon": None,
            "drives": [d.to_json() for d in self.drives],
            "boot-source": self.boot_source.to_json() if self.boot_source else None,
            "cpu-config": None,
            "logger": None,
            "machine-config": self.machine_config.to_json(),
            "metrics": None,
            "mmds-config": None,
            "network-interfaces": [],
            "vsock": None,
            "entropy": None,
        }
        return out


def _optional(obj: dict[str, Any], key: str, parse: Any) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return parse(value)
    except ConfigError as err:
        raise type(err)(f"{key}: {err}") from err
