"""GET / : the instance's id, state and version."""

from ember.api.request import ApiRequest
from ember.vmm.controller import Action, GetInstanceInfo

PATH = ("",)
METRIC = "instance_info"


def get(_: ApiRequest) -> Action:
    return GetInstanceInfo()


HANDLERS = {"GET": get}
