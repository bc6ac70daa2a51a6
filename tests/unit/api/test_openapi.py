"""Every route of the real server answers as ember's OpenAPI description says."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from http_client import Response, call
from live_server import OPENAPI, LiveEmber

from ember.api import router

SPEC: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: ``nullable: true`` becomes a union with null."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


COMPONENTS = _json_schema(copy.deepcopy(SPEC["components"]))


def check(method: str, template: str, resp: Response) -> None:
    """The status is one the description declares, and the body matches its schema."""
    operation = SPEC["paths"][template][method.lower()]
    declared = operation["responses"]
    assert str(resp.status) in declared, (method, template, resp.status, resp.body)
    spec = declared[str(resp.status)]
    if "$ref" in spec:
        spec = SPEC["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    if "content" not in spec:
        assert resp.body == b"", (method, template)
        return
    assert resp.headers[b"content-type"] == b"application/json"
    schema = {**_json_schema(spec["content"]["application/json"]["schema"]),
              "components": COMPONENTS}
    jsonschema_rs.validator_for(schema).validate(resp.json())


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEmber]:
    server = LiveEmber(tmp_path_factory.mktemp("openapi"))
    yield server
    server.stop()


def _cases(tmp: Path) -> list[tuple[str, str, str, Any]]:
    """(method, path template, concrete path, body): valid and invalid requests per route."""
    disk = tmp / "disk.img"
    disk.write_bytes(b"\0" * 512)
    kernel = tmp / "vmlinux-missing"
    drive = {"drive_id": "rootfs", "path_on_host": str(disk), "is_root_device": True,
             "is_read_only": True}
    return [
        ("GET", "/", "/", None),
        ("GET", "/version", "/version", None),
        ("GET", "/machine-config", "/machine-config", None),
        ("PUT", "/machine-config", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256}),
        ("PUT", "/machine-config", "/machine-config", {"vcpu_count": 2}),
        ("PATCH", "/machine-config", "/machine-config", {"vcpu_count": 1}),
        ("PATCH", "/machine-config", "/machine-config", {"smt": True}),
        ("PUT", "/boot-source", "/boot-source", {"kernel_image_path": str(kernel)}),
        ("PUT", "/drives/{drive_id}", "/drives/rootfs", drive),
        ("PUT", "/drives/{drive_id}", "/drives/other", drive),
        ("PATCH", "/drives/{drive_id}", "/drives/rootfs", {"drive_id": "rootfs"}),
        ("PUT", "/logger", "/logger", {"level": "Warning"}),
        ("PUT", "/logger", "/logger", {"level": "Loud"}),
        ("PUT", "/metrics", "/metrics", {"metrics_path": str(tmp / "metrics.json")}),
        ("PUT", "/metrics", "/metrics", {"metrics_path": str(tmp / "metrics.json")}),
        ("PUT", "/serial", "/serial", {"serial_out_path": str(tmp / "serial.out")}),
        ("PUT", "/cpu-config", "/cpu-config", {}),
        ("PUT", "/cpu-config", "/cpu-config", {"msr_modifiers": [{"addr": "0x0"}]}),
        ("PUT", "/actions", "/actions", {"action_type": "FlushMetrics"}),
        ("PUT", "/actions", "/actions", {"action_type": "InstanceStart"}),
        ("PATCH", "/vm", "/vm", {"state": "Paused"}),
        ("GET", "/vm/config", "/vm/config", None),
        ("PUT", "/network-interfaces/{iface_id}", "/network-interfaces/eth0",
         {"iface_id": "eth0", "host_dev_name": "tap0"}),
        ("PATCH", "/network-interfaces/{iface_id}", "/network-interfaces/eth0",
         {"iface_id": "eth0"}),
        ("PUT", "/vsock", "/vsock", {"guest_cid": 3, "uds_path": "/tmp/v.sock"}),
        ("GET", "/balloon", "/balloon", None),
        ("PUT", "/balloon", "/balloon", {"amount_mib": 1, "deflate_on_oom": True}),
        ("PATCH", "/balloon", "/balloon", {"amount_mib": 1}),
        ("GET", "/balloon/statistics", "/balloon/statistics", None),
        ("PATCH", "/balloon/statistics", "/balloon/statistics",
         {"stats_polling_interval_s": 1}),
        ("PATCH", "/balloon/hinting/start", "/balloon/hinting/start", {}),
        ("GET", "/balloon/hinting/status", "/balloon/hinting/status", None),
        ("PATCH", "/balloon/hinting/stop", "/balloon/hinting/stop", {}),
        ("PUT", "/entropy", "/entropy", {}),
        ("GET", "/mmds", "/mmds", None),
        ("PUT", "/mmds", "/mmds", {"a": 1}),
        ("PATCH", "/mmds", "/mmds", {"a": 2}),
        ("PUT", "/mmds/config", "/mmds/config", {"network_interfaces": ["eth0"]}),
        ("PUT", "/snapshot/create", "/snapshot/create",
         {"mem_file_path": "m", "snapshot_path": "s"}),
        ("PUT", "/snapshot/load", "/snapshot/load", {"snapshot_path": "s"}),
        ("PUT", "/pmem/{id}", "/pmem/p0", {"id": "p0", "path_on_host": "/x"}),
        ("PATCH", "/pmem/{id}", "/pmem/p0", {"id": "p0"}),
        ("GET", "/hotplug/memory", "/hotplug/memory", None),
        ("PATCH", "/hotplug/memory", "/hotplug/memory", {"requested_size_mib": 0}),
        ("PUT", "/hotplug/memory", "/hotplug/memory", {"total_size_mib": 128}),
    ]


def test_every_route_conforms(ember: LiveEmber, tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    for method, template, path, body in cases:
        check(method, template, call(ember.path, method, path, body))
    covered = {(m, t) for m, t, _, _ in cases}
    declared = {(m.upper(), t) for t, ops in SPEC["paths"].items() for m in ops
                if m != "parameters"}
    assert declared == covered


def test_instance_start_error_path(ember: LiveEmber, tmp_path: Path) -> None:
    resp = call(ember.path, "PUT", "/actions", {"action_type": "InstanceStart"})
    check("PUT", "/actions", resp)
    message = resp.json()["fault_message"]
    assert message.startswith("Start microvm error: ")
    assert ember.alive()


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")


def test_description_and_router_agree() -> None:
    """Each (method, route) the server handles is described, and nothing else is."""
    served = set()
    for route in router.ROUTES:
        path = "/" + "/".join(route.pattern).replace("{id}", "x")
        path = "/" if path == "//" or route.pattern == ("",) else path
        for method in route.handlers:
            served.add((method, path))
    described = set()
    for template, ops in SPEC["paths"].items():
        for method in ops:
            if method == "parameters":
                continue
            match = [p for m, p in served
                     if m == method.upper() and _template_regex(template).match(p)]
            assert match, (method, template)
            described.add((method.upper(), match[0]))
    assert served == described
