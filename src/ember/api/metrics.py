"""PUT /metrics : the metrics target, once, before boot."""

from ember.api.request import ApiRequest
from ember.vmm.config import MetricsConfig
from ember.vmm.controller import Action, PutMetrics

PATH = ("metrics",)
METRIC = "metrics"


def put(req: ApiRequest) -> Action:
    return PutMetrics(req.model(MetricsConfig.from_json))


HANDLERS = {"PUT": put}
