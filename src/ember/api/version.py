"""GET /version : the VMM version, under Firecracker's field name."""

from ember.api.request import ApiRequest
from ember.vmm.controller import Action, GetVersion

PATH = ("version",)
METRIC = "vmm_version"


def get(_: ApiRequest) -> Action:
    return GetVersion()


HANDLERS = {"GET": get}
