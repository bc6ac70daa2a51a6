"""The API server: the listening socket, the HTTP loop on its own thread, and cleanup."""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from ember.api._http import HttpServer, SocketInUseError, bind_unix
from ember.api.router import Router
from ember.vmm.controller import Controller
from ember.vmm.metrics import Metrics

__all__ = ["ApiServer", "SocketInUseError"]

log = logging.getLogger("ember")

API_THREAD_NAME = "fc_api"


class ApiServer:
    """Binds ``path`` at construction; :meth:`start` serves on thread ``fc_api``."""

    def __init__(self, path: str, controller: Controller, metrics: Metrics,
                 max_payload: int) -> None:
        self.path = path
        self._listener = bind_unix(path)
        self._http = HttpServer(self._listener, Router(controller, metrics).handle, max_payload)
        self._thread = threading.Thread(target=self._run, name=API_THREAD_NAME, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        log.info("API server started.")
        self._http.serve_forever()

    def stop(self) -> None:
        """Stop serving, close every connection and remove the socket file."""
        self._http.shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
