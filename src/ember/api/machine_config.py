"""/machine-config : vCPUs and memory. GET any time; PUT and PATCH before boot."""

from ember.api.request import ApiRequest
from ember.vmm.config import MachineConfig, MachineConfigUpdate
from ember.vmm.controller import Action, GetMachineConfig, PatchMachineConfig, PutMachineConfig

PATH = ("machine-config",)
METRIC = "machine_cfg"


def get(_: ApiRequest) -> Action:
    return GetMachineConfig()


def put(req: ApiRequest) -> Action:
    return PutMachineConfig(req.model(MachineConfig.from_json))


def patch(req: ApiRequest) -> Action:
    return PatchMachineConfig(req.model(MachineConfigUpdate.from_json))


HANDLERS = {"GET": get, "PUT": put, "PATCH": patch}
