"""Routes a request to its resource module, runs the action, and shapes the reply.

Every outcome is either 200 with a JSON body, 204 without a body, or 400 with
``{"fault_message": ...}``, as in Firecracker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

from ember.api import (
    actions,
    boot_source,
    cpu_config,
    drives,
    instance_info,
    logger,
    machine_config,
    metrics,
    serial,
    unsupported,
    version,
    vm_config,
    vm_state,
)
from ember.api.request import ApiRequest, RequestError
from ember.vmm.controller import Action, ActionError, Controller
from ember.vmm.metrics import Metrics

log = logging.getLogger("ember")

Handler = Callable[[ApiRequest], Action]


class Route(NamedTuple):
    pattern: tuple[str, ...]
    handlers: dict[str, Handler]
    metric: str | None


class Reply(NamedTuple):
    status: int  # 200, 204 or 400
    body: bytes  # empty for 204


_MODULES: tuple[ModuleType, ...] = (instance_info, version, machine_config, boot_source, drives,
                                    logger, metrics, serial, cpu_config, actions, vm_state,
                                    vm_config)


def _routes() -> list[Route]:
    routes = [Route(m.PATH, m.HANDLERS, m.METRIC) for m in _MODULES]
    for pattern, methods, capability, metric in unsupported.RESOURCES:
        refuse = unsupported.handler(capability)
        routes.append(Route(pattern, dict.fromkeys(methods, refuse), metric))
    return routes


ROUTES = _routes()


def _matches(pattern: tuple[str, ...], tokens: list[str]) -> bool:
    if len(pattern) != len(tokens) and pattern != ("",):
        return False
    if pattern == ("",):
        return not tokens
    return all(p == "{id}" or p == t for p, t in zip(pattern, tokens, strict=True))


def find_route(tokens: list[str]) -> Route | None:
    return next((r for r in ROUTES if _matches(r.pattern, tokens)), None)


class Router:
    """Turns requests into controller actions and their replies, counting and logging each."""

    def __init__(self, controller: Controller, metrics: Metrics) -> None:
        self.controller = controller
        self.metrics = metrics

    def handle(self, req: ApiRequest) -> Reply:
        log.info("The API server received a %s.", _describe(req))
        route = find_route(req.tokens)
        self._count(req, route, "count")
        try:
            reply = self._run(req, route)
        except (RequestError, ActionError) as err:
            self._count(req, route, "fails")
            log.error("Received Error. Status code: 400 Bad Request. Message: %s", err)
            return fault(str(err))
        except Exception as err:  # a bug must not take the API thread down
            log.exception("Internal error while handling the request")
            self._count(req, route, "fails")
            return fault(f"Internal error while handling the request: {err}")
        log.info("The request was executed successfully. Status code: %s.",
                 "200 OK" if reply.status == 200 else "204 No Content")
        return reply

    def _run(self, req: ApiRequest, route: Route | None) -> Reply:
        handler = route.handlers.get(req.method) if route else None
        if handler is None:
            first = req.tokens[0] if req.tokens else ""
            raise RequestError(f"Invalid request method and/or path: {req.method} {first}.")
        if req.method == "GET" and req.body is not None:
            raise RequestError("GET request cannot have a body.")
        result = self.controller.handle(handler(req))
        if result is None:
            return Reply(204, b"")
        return Reply(200, json.dumps(result).encode())

    def _count(self, req: ApiRequest, route: Route | None, suffix: str) -> None:
        if route is None or route.metric is None:
            return
        if req.method == "GET" and suffix == "fails":
            return
        if req.method in ("GET", "PUT", "PATCH"):
            self.metrics.inc(f"{req.method.lower()}_api_requests", f"{route.metric}_{suffix}")


def fault(message: str) -> Reply:
    return Reply(400, json.dumps({"fault_message": message}).encode())


def _describe(req: ApiRequest) -> str:
    method = req.method.capitalize()
    if req.body is None or req.path in ("/mmds", "/cpu-config"):
        return f"{method} request on {json.dumps(req.path)}"
    text = req.body.decode("utf-8", "replace")
    return f"{method} request on {json.dumps(req.path)} with body {json.dumps(text)}"
