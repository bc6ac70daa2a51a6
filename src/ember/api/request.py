"""One parsed API request, and the errors the request layer answers with 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from ember.vmm.config import ConfigError, ConfigShapeError

T = TypeVar("T")


class RequestError(Exception):
    """The request cannot be turned into an action; the message is the fault_message."""


class ApiRequest(NamedTuple):
    method: str  # upper case, as sent: "GET", "PUT", "PATCH", ...
    path: str  # without the query string
    body: bytes | None  # None when the request had no body

    @property
    def tokens(self) -> list[str]:
        """The path split on "/", without leading slashes or a trailing empty token."""
        trimmed = self.path.lstrip("/")
        return trimmed.removesuffix("/").split("/") if trimmed else []

    def json(self) -> Any:
        if self.body is None:
            raise RequestError(f"Empty {self.method} request.")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise RequestError(_deserialize_message(str(err))) from err

    def model(self, parse: Callable[[Any], T]) -> T:
        """Parse the JSON body with a config model's ``from_json``."""
        obj = self.json()
        try:
            return parse(obj)
        except ConfigShapeError as err:
            raise RequestError(_deserialize_message(str(err))) from err
        except ConfigError as err:
            raise RequestError(str(err)) from err


def _deserialize_message(detail: str) -> str:
    return f"An error occurred when deserializing the json body of a request: {detail}."


def checked_id(value: str) -> str:
    """Firecracker's rule for resource ids taken from the path."""
    if not value:
        raise RequestError("The ID cannot be empty.")
    if not all(c == "_" or c.isalnum() for c in value):
        raise RequestError(
            "API Resource IDs can only contain alphanumeric characters and underscores.")
    return value


def path_id_matches(path_id: str, body_id: str) -> None:
    if path_id != body_id:
        raise RequestError("The id from the path does not match the id from the body!")
