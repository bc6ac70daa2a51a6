"""The API server against a fake VM: routes, errors, phases, and connection handling."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from conftest import Served
from http_client import Client, call, encode_request

BOOT = {"kernel_image_path": "/etc/hostname", "boot_args": "console=ttyS0"}
PRE_BOOT = "The requested operation is not supported before starting the microVM."
POST_BOOT = "The requested operation is not supported after starting the microVM."


def fault(served: Served, method: str, url: str, body: object = None) -> str:
    resp = call(served.path, method, url, body)
    assert resp.status == 400, resp
    message = resp.json()["fault_message"]
    assert isinstance(message, str)
    return message


def start(served: Served) -> None:
    assert call(served.path, "PUT", "/boot-source", BOOT).status == 204
    assert call(served.path, "PUT", "/actions", {"action_type": "InstanceStart"}).status == 204


def test_instance_info_and_version(served: Served) -> None:
    info = call(served.path, "GET", "/").json()
    assert info == {"id": "test-vm", "state": "Not started", "vmm_version": "0.1.0",
                    "app_name": "ember"}
    assert call(served.path, "GET", "/version").json() == {"firecracker_version": "0.1.0"}


def test_machine_config_defaults_put_patch(served: Served) -> None:
    got = call(served.path, "GET", "/machine-config").json()
    assert got["vcpu_count"] == 1 and got["mem_size_mib"] == 128
    resp = call(served.path, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256})
    assert resp.status == 204 and resp.body == b""
    assert call(served.path, "PATCH", "/machine-config", {"mem_size_mib": 64}).status == 204
    got = call(served.path, "GET", "/machine-config").json()
    assert (got["vcpu_count"], got["mem_size_mib"]) == (2, 64)


def test_machine_config_validation(served: Served) -> None:
    assert "vCPU number is invalid" in fault(served, "PATCH", "/machine-config",
                                             {"vcpu_count": 33})
    assert "vCPU number is invalid" in fault(served, "PATCH", "/machine-config",
                                             {"vcpu_count": 0})
    assert "memory size (MiB) is invalid" in fault(served, "PATCH", "/machine-config",
                                                   {"mem_size_mib": 0})
    assert "SMT" in fault(served, "PATCH", "/machine-config", {"smt": True})
    assert "huge pages" in fault(served, "PATCH", "/machine-config", {"huge_pages": "2M"})
    assert "CPU templates" in fault(served, "PATCH", "/machine-config", {"cpu_template": "T2"})
    assert "unknown variant" in fault(served, "PATCH", "/machine-config", {"huge_pages": "1G"})
    assert "unknown field `bogus`" in fault(served, "PATCH", "/machine-config", {"bogus": 1})
    assert "missing field `mem_size_mib`" in fault(served, "PUT", "/machine-config",
                                                   {"vcpu_count": 2})
    assert "invalid type" in fault(served, "PATCH", "/machine-config", {"vcpu_count": "2"})
    # Nothing of the failed updates stuck.
    assert call(served.path, "GET", "/machine-config").json()["vcpu_count"] == 1


def test_boot_source_checks_files(served: Served, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-kernel")
    message = fault(served, "PUT", "/boot-source", {"kernel_image_path": missing})
    assert message == ("Boot source error: The kernel file cannot be opened: No such file or "
                       f"directory (os error 2): {missing}")
    message = fault(served, "PUT", "/boot-source", {**BOOT, "initrd_path": missing})
    assert message.startswith("Boot source error: The initrd file cannot be opened")


def test_drives_rules(served: Served, tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 512)
    root = {"drive_id": "rootfs", "path_on_host": str(disk), "is_root_device": True,
            "is_read_only": False}
    assert call(served.path, "PUT", "/drives/rootfs", root).status == 204
    assert "does not match" in fault(served, "PUT", "/drives/other", root)
    second = {**root, "drive_id": "second"}
    assert "A root block device already exists!" in fault(served, "PUT", "/drives/second",
                                                          second)
    gone = {**second, "is_root_device": False, "path_on_host": str(tmp_path / "nope")}
    assert str(tmp_path / "nope") in fault(served, "PUT", "/drives/second", gone)
    assert "alphanumeric" in fault(served, "PUT", "/drives/bad-id", {**root, "drive_id": "bad-id"})
    assert fault(served, "PATCH", "/drives/rootfs", {"drive_id": "rootfs"}) == PRE_BOOT
    config = call(served.path, "GET", "/vm/config").json()
    assert [d["drive_id"] for d in config["drives"]] == ["rootfs"]


def test_instance_start_without_kernel(served: Served) -> None:
    message = fault(served, "PUT", "/actions", {"action_type": "InstanceStart"})
    assert message == "Start microvm error: Cannot start microvm without kernel configuration."


def test_phase_rules_and_runtime_actions(served: Served) -> None:
    assert fault(served, "PATCH", "/vm", {"state": "Paused"}) == PRE_BOOT
    assert fault(served, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}) == PRE_BOOT
    assert fault(served, "PUT", "/actions", {"action_type": "FlushMetrics"}) == PRE_BOOT
    start(served)
    vm = served.factory.vms[0]
    assert vm.calls == ["start"]
    assert call(served.path, "GET", "/").json()["state"] == "Running"
    assert fault(served, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 1}) \
        == POST_BOOT
    assert fault(served, "PUT", "/boot-source", BOOT) == POST_BOOT
    assert fault(served, "PUT", "/actions", {"action_type": "InstanceStart"}) == POST_BOOT
    assert call(served.path, "PATCH", "/vm", {"state": "Paused"}).status == 204
    assert call(served.path, "GET", "/").json()["state"] == "Paused"
    assert call(served.path, "PATCH", "/vm", {"state": "Resumed"}).status == 204
    assert call(served.path, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}).status == 204
    assert vm.calls == ["start", "pause", "resume", "send_ctrl_alt_del"]


def test_unknown_paths_methods_and_bodies(served: Served) -> None:
    assert fault(served, "GET", "/nope").startswith("Invalid request method and/or path")
    assert fault(served, "DELETE", "/machine-config").startswith("Invalid request method")
    assert fault(served, "POST", "/actions", {"action_type": "InstanceStart"}) \
        .startswith("Invalid request method")
    assert fault(served, "PUT", "/actions") == "Empty PUT request."
    assert fault(served, "GET", "/machine-config", {"x": 1}) == "GET request cannot have a body."
    assert "deserializing" in fault(served, "PUT", "/actions", {"action_type": "Reboot"})
    resp = Client(served.path).request("PUT", "/logger", raw=b"{not json")
    assert resp.status == 400 and "deserializing" in resp.json()["fault_message"]


def test_missing_capabilities_are_named(served: Served) -> None:
    cases = {("PUT", "/network-interfaces/eth0"): "network", ("PUT", "/vsock"): "vsock",
             ("PUT", "/balloon"): "balloon", ("PUT", "/entropy"): "entropy",
             ("GET", "/mmds"): "MMDS", ("PUT", "/snapshot/create"): "snapshot",
             ("PUT", "/snapshot/load"): "snapshot", ("PUT", "/pmem/p0"): "pmem",
             ("PUT", "/hotplug/memory"): "hotplug"}
    for (method, url), word in cases.items():
        body = None if method == "GET" else {}
        assert word in fault(served, method, url, body), url


def test_cpu_config_accepts_only_empty_template(served: Served) -> None:
    assert call(served.path, "PUT", "/cpu-config", {"cpuid_modifiers": []}).status == 204
    assert "CPU templates" in fault(served, "PUT", "/cpu-config", {"kvm_capabilities": ["!56"]})


def test_serial_and_logger(served: Served, tmp_path: Path) -> None:
    log_path = tmp_path / "ember.log"
    body = {"log_path": str(log_path), "level": "debug", "show_level": True,
            "show_log_origin": True}
    assert call(served.path, "PUT", "/logger", body).status == 204
    assert call(served.path, "PUT", "/serial", {"serial_out_path": str(tmp_path / "s")}) \
        .status == 204
    assert "rate limiters" in fault(served, "PUT", "/serial",
                                    {"rate_limiter": {"size": 1, "refill_time": 1}})
    line = log_path.read_text().splitlines()[1]
    # <timestamp> [<id>:<thread>:<level>:<file>:<line>] <message>
    stamp, tags, message = line.split(" ", 2)
    assert len(stamp) == len("2024-01-01T00:00:00.000000000")
    instance, thread, level, origin, lineno = tags.strip("[]").split(":")
    assert (instance, thread, level) == ("test-vm", "fc_api", "INFO")
    assert origin.endswith(".py") and lineno.isdigit()
    assert message.startswith('The API server received a Put request on "/serial"')


def test_metrics_flush_merges_vm_counters(served: Served, tmp_path: Path) -> None:
    metrics_path = tmp_path / "metrics.json"
    assert call(served.path, "PUT", "/metrics", {"metrics_path": str(metrics_path)}).status == 204
    assert "Reinitialization" in fault(served, "PUT", "/metrics",
                                       {"metrics_path": str(metrics_path)})
    start(served)
    for _ in range(2):
        assert call(served.path, "PUT", "/actions", {"action_type": "FlushMetrics"}).status == 204
    first, second = (json.loads(line) for line in metrics_path.read_text().splitlines())
    assert first["put_api_requests"]["metrics_count"] == 2
    assert first["put_api_requests"]["metrics_fails"] == 1
    assert first["uart"]["write_count"] == 5  # the fake VM's cumulative counter, as a delta
    assert second["uart"]["write_count"] == 5
    assert second["put_api_requests"]["metrics_count"] == 0  # deltas reset on each flush
    assert second["put_api_requests"]["actions_count"] == 1
    assert {"api_server", "i8042", "latencies_us", "logger", "vcpu", "vmm", "signals"} <= \
        set(first)


def test_metrics_fifo_without_reader_is_refused(served: Served, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "metrics.fifo"
    os.mkfifo(fifo)
    assert "No such device or address" in fault(served, "PUT", "/metrics",
                                                {"metrics_path": str(fifo)})


def test_keep_alive_and_pipelining(served: Served) -> None:
    client = Client(served.path)
    assert client.request("GET", "/version").status == 200
    batch = b"".join(encode_request("GET", "/machine-config") for _ in range(20))
    batch += encode_request("PATCH", "/machine-config", {"vcpu_count": 4})
    batch += encode_request("GET", "/machine-config")
    client.send_raw(batch)
    replies = [client.read_response() for _ in range(22)]
    assert [r.status for r in replies] == [200] * 20 + [204, 200]
    assert replies[-1].json()["vcpu_count"] == 4
    client.close()


def test_concurrent_clients(served: Served) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            client = Client(served.path)
            for _ in range(30):
                assert client.request("GET", "/").status == 200
            client.close()
        except BaseException as err:  # collected for the main thread
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors


def test_oversized_payload(served: Served) -> None:
    client = Client(served.path)
    big = {"log_path": "x" * 60000}
    resp = client.request("PUT", "/logger", big)
    assert resp.status == 400
    assert resp.json()["fault_message"].startswith("Request payload with size ")
    assert "larger than the limit of 51200 allowed by server" in resp.json()["fault_message"]
    client.close()
    assert call(served.path, "GET", "/").status == 200  # the server is fine


def test_stalled_client_does_not_block_others(served: Served) -> None:
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.connect(served.path)
    stalled.sendall(b"PUT /machine-config HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"vcpu")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(served.path)  # connects and never sends anything
    t0 = time.monotonic()
    for _ in range(10):
        assert call(served.path, "GET", "/").status == 200
    assert time.monotonic() - t0 < 2.0
    stalled.close()  # hangs up mid-request
    silent.close()
    assert call(served.path, "GET", "/machine-config").json()["vcpu_count"] == 1


def test_garbage_is_answered_400_and_closed(served: Served) -> None:
    client = Client(served.path)
    client.send_raw(b"\x00\x01 not http at all\r\n\r\n")
    resp = client.read_response()
    assert resp.status == 400 and "Invalid HTTP request" in resp.json()["fault_message"]
    client.close()


def test_expect_100_continue(served: Served) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(served.path)
    body = json.dumps({"vcpu_count": 2}).encode()
    sock.sendall(b"PATCH /machine-config HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    assert sock.recv(100).startswith(b"HTTP/1.1 100 ")
    sock.sendall(body)
    assert sock.recv(1000).startswith(b"HTTP/1.1 204 ")
    sock.close()


def test_pipelined_client_that_does_not_read_holds_only_itself(served: Served) -> None:
    """A client pipelining more replies than the server buffers (MAX_OUTPUT_BUFFER) and
    reading none: the server stops reading it, serves others meanwhile, and answers it
    all, in order, once it reads."""
    greedy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    greedy.connect(served.path)
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    count = 12000
    batch = b"".join(encode_request("GET", "/machine-config") for _ in range(count))
    sender = threading.Thread(target=greedy.sendall, args=(batch,), daemon=True)
    sender.start()
    time.sleep(0.3)
    for _ in range(5):
        assert call(served.path, "GET", "/").status == 200
    greedy.settimeout(10)
    client = Client.over(greedy)
    statuses = [client.read_response().status for _ in range(count)]
    sender.join(timeout=10)
    assert statuses == [200] * count
    greedy.close()


def test_http_1_0_is_answered_and_closed(served: Served) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(served.path)
    sock.sendall(b"GET /version HTTP/1.0\r\n\r\n")
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in head
    assert "firecracker_version" in json.loads(body)
    sock.close()


def test_chunked_body_and_oversized_head(served: Served) -> None:
    client = Client(served.path)
    data = json.dumps({"vcpu_count": 3}).encode()
    client.send_raw(b"PATCH /machine-config HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % 5 + data[:5] + b"\r\n"
                    + b"%x\r\n" % (len(data) - 5) + data[5:] + b"\r\n0\r\n\r\n")
    assert client.read_response("PATCH").status == 204
    assert client.request("GET", "/machine-config").json()["vcpu_count"] == 3
    client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20000 + b"\r\n\r\n")
    resp = client.read_response()
    assert resp.status == 400 and "request head larger than" in resp.json()["fault_message"]
    client.close()
