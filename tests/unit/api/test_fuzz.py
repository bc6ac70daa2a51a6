"""Generated requests against the live server: never a 5xx, never a hang, never a crash.

Schemathesis generates schema-driven requests (valid and invalid) from ember's OpenAPI
description; a second strategy sends arbitrary methods, paths and bytes. Both are bounded
so the whole module stays well under a minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from http_client import Client, call, encode_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import OPENAPI, LiveEmber

SCHEMA = schemathesis.openapi.from_path(str(OPENAPI))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
BUDGET_S = 25.0


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEmber]:
    server = LiveEmber(tmp_path_factory.mktemp("fuzz"))
    yield server
    assert server.alive(), "ember died while being fuzzed"
    assert call(server.path, "GET", "/").status == 200
    assert server.stop() == 0


def _case_bytes(case: Any) -> bytes:
    body = case.body
    if isinstance(body, schemathesis.core.NotSet):
        raw = None
    else:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return encode_request(case.method.upper(), case.formatted_path, raw=raw)


def _send(ember: LiveEmber, data: bytes) -> int:
    client = Client(ember.path, timeout=10)
    try:
        client.send_raw(data)
        return client.read_response(data.split(b" ", 1)[0].decode()).status
    finally:
        client.close()


cases = st.one_of(
    *[op.as_strategy(generation_mode=mode) for op in OPERATIONS
      for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)])


def test_schema_driven_requests(ember: LiveEmber) -> None:
    deadline = time.monotonic() + BUDGET_S

    @FUZZ
    @given(cases)
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        assert _send(ember, _case_bytes(case)) in (200, 204, 400)

    run()


methods = st.sampled_from(["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS"])
paths = st.lists(st.sampled_from(["", "actions", "drives", "vm", "config", "machine-config",
                                  "x", "%00", "..", "mmds"]), max_size=4).map(
    lambda parts: "/" + "/".join(parts))
bodies = st.one_of(st.none(), st.binary(max_size=512),
                   st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                                max_leaves=10).map(lambda v: json.dumps(v).encode()))


def test_arbitrary_requests(ember: LiveEmber) -> None:
    deadline = time.monotonic() + BUDGET_S

    @FUZZ
    @given(methods, paths, bodies)
    def run(method: str, path: str, body: bytes | None) -> None:
        if time.monotonic() > deadline:
            return
        assert _send(ember, encode_request(method, path, raw=body)) in (200, 204, 400)

    run()
