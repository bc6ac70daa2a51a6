"""PATCH /vm : pause or resume a started microVM."""

from typing import Any

from ember.api.request import ApiRequest, RequestError
from ember.vmm.controller import Action, Pause, Resume

PATH = ("vm",)
METRIC = None


def patch(req: ApiRequest) -> Action:
    return _state(req.json())


def _state(obj: Any) -> Action:
    prefix = "An error occurred when deserializing the json body of a request: "
    if not isinstance(obj, dict) or set(obj) != {"state"}:
        raise RequestError(prefix + "expected exactly one field, `state`.")
    if obj["state"] == "Paused":
        return Pause()
    if obj["state"] == "Resumed":
        return Resume()
    raise RequestError(prefix + f"unknown variant `{obj['state']}` for `state`, expected "
                       f"`Paused` or `Resumed`.")


HANDLERS = {"PATCH": patch}
