"""PUT /cpu-config : a custom CPU template, before boot (only the empty one for now)."""

from ember.api.request import ApiRequest
from ember.vmm.config import CpuConfig
from ember.vmm.controller import Action, PutCpuConfig

PATH = ("cpu-config",)
METRIC = "cpu_cfg"


def put(req: ApiRequest) -> Action:
    return PutCpuConfig(req.model(CpuConfig.from_json))


HANDLERS = {"PUT": put}
