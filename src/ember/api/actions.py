"""PUT /actions : InstanceStart, SendCtrlAltDel, FlushMetrics."""

from typing import Any

from ember.api.request import ApiRequest, RequestError
from ember.vmm.controller import Action, FlushMetrics, InstanceStart, SendCtrlAltDel

PATH = ("actions",)
METRIC = "actions"

_ACTIONS: dict[str, Action] = {
    "InstanceStart": InstanceStart(),
    "SendCtrlAltDel": SendCtrlAltDel(),
    "FlushMetrics": FlushMetrics(),
}


def put(req: ApiRequest) -> Action:
    return _action(req.json())


def _action(obj: Any) -> Action:
    prefix = "An error occurred when deserializing the json body of a request: "
    if not isinstance(obj, dict):
        raise RequestError(prefix + "invalid type, expected a JSON object.")
    unknown = sorted(set(obj) - {"action_type"})
    if unknown:
        raise RequestError(prefix + f"unknown field `{unknown[0]}`, expected `action_type`.")
    kind = obj.get("action_type")
    if kind not in _ACTIONS:
        variants = ", ".join(f"`{name}`" for name in _ACTIONS)
        raise RequestError(prefix + f"unknown variant `{kind}` for `action_type`, expected "
                           f"one of {variants}.")
    return _ACTIONS[kind]


HANDLERS = {"PUT": put}
