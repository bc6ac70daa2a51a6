"""PUT /serial : where the guest's serial console output goes, before boot."""

from ember.api.request import ApiRequest
from ember.vmm.config import SerialConfig
from ember.vmm.controller import Action, PutSerial

PATH = ("serial",)
METRIC = "serial"


def put(req: ApiRequest) -> Action:
    return PutSerial(req.model(SerialConfig.from_json))


HANDLERS = {"PUT": put}
