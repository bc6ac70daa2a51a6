"""PUT /boot-source : kernel, initrd and command line, before boot."""

from ember.api.request import ApiRequest
from ember.vmm.config import BootSource
from ember.vmm.controller import Action, PutBootSource

PATH = ("boot-source",)
METRIC = "boot_source"


def put(req: ApiRequest) -> Action:
    return PutBootSource(req.model(BootSource.from_json))


HANDLERS = {"PUT": put}
