"""results.json, profile.txt and the printed table."""

from __future__ import annotations

import json
from pathlib import Path

from bench.stats import Table, format_table

FOOTER_NOTES = (
    "ember/qemu: ratio of medians (ember's median over QEMU's); '-' where one side has "
    "no figure.",
    "Boot rows come from a boot with the bench drive attached; the guest idles 2 s after "
    "its init line while the VMM's /proc/PID/smaps is read, then runs the dd tests.",
    "QEMU has no boot-timer device: its 'InstanceStart -> boot timer' figure is its e2e "
    "boot minus its own exec -> QMP-ready time in the same round.",
    "vCPU exits: ember counts them itself; QEMU's are not counted (no perf/tracepoints "
    "in the rig).",
)


def merge(host: Table, guests: Table, host_cpu: str,
          inner: dict[str, object]) -> dict[str, object]:
    rows = [*host.rows(), *guests.rows()]
    config = dict(_dict(inner.get("config")))
    config["host_qemu_cpu"] = host_cpu
    return {**inner, "rows": rows, "config": config}


def _list(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def config_row(config: dict[str, object]) -> dict[str, object]:
    """The command lines, as one more entry of the results list."""
    return {"metric": "config", "unit": "", "ember": config.get("ember"),
            "qemu": config.get("qemu"), "ratio": None, "runs": 0, "config": config}


def write(out: Path, results: dict[str, object], *, partial: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [*_list(results.get("rows")), config_row(_dict(results.get("config")))]
    name = "results.partial.json" if partial else "results.json"
    (out / name).write_text(json.dumps(rows, indent=1) + "\n")
    profile = results.get("profile")
    if isinstance(profile, str):
        (out / "profile.txt").write_text(profile)


def text(results: dict[str, object]) -> str:
    config = _dict(results.get("config"))
    footer = ["", *FOOTER_NOTES, "",
              f"ember: {config.get('ember')}",
              f"  config file: {json.dumps(config.get('ember_config'))}",
              f"QEMU:  {config.get('qemu')}",
              f"QEMU drive cache: {config.get('qemu_cache')} (cache=none needs O_DIRECT, "
              "which the rig's tmpfs overlay lacks)",
              f"QEMU -cpu on this host (socket-ready row): {config.get('host_qemu_cpu')}",
              f"rounds: {results.get('rounds')} in {results.get('rig_sessions')} rig "
              f"session(s); retried runs: {results.get('retries') or 'none'}"]
    return format_table(_list(results.get("rows")), footer)
