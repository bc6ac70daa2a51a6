"""Configuration models for one microVM, with Firecracker's field names and defaults.

The same models back the ``--config-file`` JSON and the REST API resources; each model
validates itself and raises :class:`ConfigError` with a message meant for the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Firecracker: vcpu_count must be in 1..=32 (MAX_SUPPORTED_VCPUS).
MAX_VCPUS = 32
DEFAULT_VCPUS = 1
DEFAULT_MEM_MIB = 128
# Firecracker's default kernel command line when boot_args is omitted.
DEFAULT_BOOT_ARGS = "reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


def _take(obj: dict[str, Any], where: str, allowed: set[str]) -> None:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(unknown)}")


def _typed(obj: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


@dataclass
class BootSource:
    kernel_image_path: str
    boot_args: str | None = None
    initrd_path: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> BootSource:
        where = "boot-source"
        _take(obj, where, {"kernel_image_path", "boot_args", "initrd_path"})
        kernel = _typed(obj, "kernel_image_path", str, where)
        if not kernel:
            raise ConfigError(f"{where}.kernel_image_path is required")
        return cls(
            kernel_image_path=kernel,
            boot_args=_typed(obj, "boot_args", str, where),
            initrd_path=_typed(obj, "initrd_path", str, where),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel_image_path": self.kernel_image_path,
            "initrd_path": self.initrd_path,
            "boot_args": self.boot_args,
        }

    @property
    def cmdline(self) -> str:
        return DEFAULT_BOOT_ARGS if self.boot_args is None else self.boot_args


@dataclass
class MachineConfig:
    vcpu_count: int = DEFAULT_VCPUS
    mem_size_mib: int = DEFAULT_MEM_MIB
    smt: bool = False
    track_dirty_pages: bool = False
    huge_pages: str = "None"
    cpu_template: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MachineConfig:
        where = "machine-config"
        _take(obj, where, {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages",
                           "huge_pages", "cpu_template"})
        cfg = cls(
            vcpu_count=_typed(obj, "vcpu_count", int, where, DEFAULT_VCPUS),
            mem_size_mib=_typed(obj, "mem_size_mib", int, where, DEFAULT_MEM_MIB),
            smt=_typed(obj, "smt", bool, where, False),
            track_dirty_pages=_typed(obj, "track_dirty_pages", bool, where, False),
            huge_pages=_typed(obj, "huge_pages", str, where, "None"),
            cpu_template=_typed(obj, "cpu_template", str, where),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not 1 <= self.vcpu_count <= MAX_VCPUS:
            raise ConfigError(
                f"The vCPU number is invalid! The vCPU number can only be 1 or an even "
                f"number when SMT is enabled. (vcpu_count must be in 1..{MAX_VCPUS},"
                f" got {self.vcpu_count})")
        if self.mem_size_mib < 1:
            raise ConfigError("The memory size (MiB) is invalid.")

    def to_json(self) -> dict[str, Any]:
        return {
            "vcpu_count": self.vcpu_count,
            "mem_size_mib": self.mem_size_mib,
            "smt": self.smt,
            "track_dirty_pages": self.track_dirty_pages,
            "huge_pages": self.huge_pages,
        }


@dataclass
class VmConfig:
    """Everything needed to build one microVM."""

    boot_source: BootSource | None = None
    machine_config: MachineConfig = field(default_factory=MachineConfig)
    drives: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VmConfig:
        if not isinstance(obj, dict):
            raise ConfigError("config file: expected a JSON object at the top level")
        boot = obj.get("boot-source")
        machine = obj.get("machine-config")
        return cls(
            boot_source=BootSource.from_json(boot) if boot is not None else None,
            machine_config=MachineConfig.from_json(machine) if machine else MachineConfig(),
            drives=list(obj.get("drives") or []),
        )
