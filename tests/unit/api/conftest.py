from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fake_vm import FakeFactory  # noqa: E402

from ember.api import ApiServer  # noqa: E402
from ember.vmm.controller import Controller  # noqa: E402
from ember.vmm.logger import Logger  # noqa: E402
from ember.vmm.metrics import Metrics  # noqa: E402


@dataclass
class Served:
    path: str
    controller: Controller
    metrics: Metrics
    factory: FakeFactory
    tmp: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The real API server on a temporary socket, in-process, with a fake VM factory."""
    path = str(tmp_path / "api.sock")
    metrics = Metrics("test-vm")
    factory = FakeFactory()
    logger = Logger("test-vm")
    controller = Controller(factory, instance_id="test-vm", logger=logger, metrics=metrics)
    server = ApiServer(path, controller, metrics, max_payload=51200)
    server.start()
    yield Served(path, controller, metrics, factory, tmp_path)
    server.stop()
    logger.close()
    metrics.close()
