"""Firecracker resources whose devices ember does not have yet: each answers 400 saying so.

The body is not parsed: whatever it holds, the capability is missing.
"""

from collections.abc import Callable

from ember.api.request import ApiRequest
from ember.vmm.controller import Action, Unsupported

Handler = Callable[[ApiRequest], Action]

# (path pattern, methods Firecracker serves there, capability, metric name)
RESOURCES: list[tuple[tuple[str, ...], tuple[str, ...], str, str | None]] = [
    (("network-interfaces", "{id}"), ("PUT", "PATCH"), "network interfaces (virtio-net)",
     "network"),
    (("vsock",), ("PUT",), "vsock devices", "vsock"),
    (("balloon",), ("GET", "PUT", "PATCH"), "balloon devices", None),
    (("balloon", "statistics"), ("GET", "PATCH"), "balloon devices", None),
    (("balloon", "hinting", "start"), ("PATCH",), "balloon devices", None),
    (("balloon", "hinting", "status"), ("GET",), "balloon devices", None),
    (("balloon", "hinting", "stop"), ("PATCH",), "balloon devices", None),
    (("entropy",), ("PUT",), "entropy devices (virtio-rng)", None),
    (("mmds",), ("GET", "PUT", "PATCH"), "the microVM metadata service (MMDS)", "mmds"),
    (("mmds", "config"), ("PUT",), "the microVM metadata service (MMDS)", "mmds"),
    (("snapshot", "create"), ("PUT",), "snapshots", None),
    (("snapshot", "load"), ("PUT",), "snapshots", None),
    (("pmem", "{id}"), ("PUT", "PATCH"), "pmem devices", None),
    (("hotplug", "memory"), ("GET", "PUT", "PATCH"), "memory hotplug (virtio-mem)", None),
]


def handler(capability: str) -> Handler:
    def refuse(_: ApiRequest) -> Action:
        return Unsupported(capability)

    return refuse
