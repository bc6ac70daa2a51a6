"""GET /vm/config : the whole configuration, in the --config-file format."""

from ember.api.request import ApiRequest
from ember.vmm.controller import Action, GetVmConfig

PATH = ("vm", "config")
METRIC = None


def get(_: ApiRequest) -> Action:
    return GetVmConfig()


HANDLERS = {"GET": get}
