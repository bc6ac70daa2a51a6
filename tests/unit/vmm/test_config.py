"""Configuration models: Firecracker's field names, defaults and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.vmm.config import (
    DEFAULT_BOOT_ARGS,
    BootSource,
    ConfigError,
    ConfigShapeError,
    CpuConfig,
    Drive,
    MachineConfig,
    MachineConfigUpdate,
    MetricsConfig,
    VmConfig,
)


def test_defaults() -> None:
    cfg = VmConfig()
    assert (cfg.machine_config.vcpu_count, cfg.machine_config.mem_size_mib) == (1, 128)
    assert cfg.boot_source is None and cfg.drives == []
    assert BootSource("/k").cmdline == DEFAULT_BOOT_ARGS
    assert BootSource("/k", boot_args="console=ttyS0").cmdline == "console=ttyS0"


def test_machine_config_put_needs_both_fields() -> None:
    with pytest.raises(ConfigShapeError, match="missing field `mem_size_mib`"):
        MachineConfig.from_json({"vcpu_count": 1})
    with pytest.raises(ConfigShapeError, match="unknown field `ht_enabled`"):
        MachineConfig.from_json({"vcpu_count": 1, "mem_size_mib": 1, "ht_enabled": True})


@pytest.mark.parametrize("update, words", [
    ({"vcpu_count": 33}, "vCPU number is invalid"),
    ({"vcpu_count": 0}, "vCPU number is invalid"),
    ({"mem_size_mib": 0}, "memory size"),
    ({"smt": True}, "SMT"),
    ({"huge_pages": "Transparent"}, "huge pages"),
    ({"cpu_template": "C3"}, "CPU templates"),
])
def test_machine_config_values(update: dict[str, object], words: str) -> None:
    cfg = MachineConfig().updated(MachineConfigUpdate.from_json(update))
    with pytest.raises(ConfigError, match=words):
        cfg.validate()


def test_machine_config_types() -> None:
    with pytest.raises(ConfigShapeError, match="expected an integer"):
        MachineConfigUpdate.from_json({"vcpu_count": True})
    with pytest.raises(ConfigShapeError, match="non-negative"):
        MachineConfigUpdate.from_json({"mem_size_mib": -1})
    assert MachineConfig().updated(MachineConfigUpdate.from_json({"vcpu_count": 32})) \
        .vcpu_count == 32


def test_boot_source_files(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    with pytest.raises(ConfigError, match="The kernel file cannot be opened: No such file"):
        BootSource(str(kernel)).check_files()
    kernel.write_bytes(b"x")
    BootSource(str(kernel)).check_files()
    with pytest.raises(ConfigError, match="The initrd file cannot be opened"):
        BootSource(str(kernel), initrd_path=str(tmp_path / "none")).check_files()


def test_drive_shape_and_unsupported_fields(tmp_path: Path) -> None:
    base = {"drive_id": "d", "path_on_host": str(tmp_path), "is_root_device": False}
    assert Drive.from_json(base).io_engine == "Sync"
    with pytest.raises(ConfigShapeError, match="missing field `is_root_device`"):
        Drive.from_json({"drive_id": "d", "path_on_host": "/x"})
    with pytest.raises(ConfigError, match="vhost-user"):
        Drive.from_json({**base, "socket": "/s"})
    with pytest.raises(ConfigShapeError, match="unknown variant `Fast`"):
        Drive.from_json({**base, "io_engine": "Fast"})


def test_metrics_and_cpu_config() -> None:
    assert MetricsConfig.from_json({"metrics_path": "/m"}).emit_id is False
    with pytest.raises(ConfigShapeError):
        MetricsConfig.from_json({"metrics_path": "/m", "properties": {"a": 1}})
    CpuConfig.from_json({"cpuid_modifiers": []})
    with pytest.raises(ConfigError, match="custom CPU templates"):
        CpuConfig.from_json({"cpuid_modifiers": [{"leaf": "0x1"}]})


def test_vm_config_round_trip_and_missing_devices() -> None:
    obj = {"boot-source": {"kernel_image_path": "/k", "boot_args": "a=b"},
           "machine-config": {"vcpu_count": 2, "mem_size_mib": 64},
           "network-interfaces": [], "vsock": None}
    cfg = VmConfig.from_json(obj)
    again = VmConfig.from_json(cfg.to_json())
    assert again == cfg and again.to_json() == cfg.to_json()
    for key in ("network-interfaces", "vsock", "balloon", "mmds-config", "entropy"):
        with pytest.raises(ConfigError, match="ember does not support"):
            VmConfig.from_json({key: [{"x": 1}] if key == "network-interfaces" else {"x": 1}})
    with pytest.raises(ConfigShapeError, match="boot-source: missing field"):
        VmConfig.from_json({"boot-source": {}})
