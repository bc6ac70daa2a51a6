"""PUT /logger : log target, level and line format, before boot."""

from ember.api.request import ApiRequest
from ember.vmm.config import LoggerConfig
from ember.vmm.controller import Action, PutLogger

PATH = ("logger",)
METRIC = "logger"


def put(req: ApiRequest) -> Action:
    return PutLogger(req.model(LoggerConfig.from_json))


HANDLERS = {"PUT": put}
