"""A small HTTP/1.1 client over a Unix socket for the API tests: h11 on the client side, an
HTTP implementation independent of the server's (httptools)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

import h11


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def encode_request(method: str, path: str, body: Any = None, raw: bytes | None = None) -> bytes:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    if data is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + (data or b"")


class Client:
    """One keep-alive connection; reads replies in order (works for pipelined requests)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.proto = h11.Connection(h11.CLIENT)

    @classmethod
    def over(cls, sock: socket.socket) -> Client:
        """A client on an already connected socket."""
        client = cls.__new__(cls)
        client.sock, client.proto = sock, h11.Connection(h11.CLIENT)
        return client

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: Any = None,
                raw: bytes | None = None) -> Response:
        self.send_raw(encode_request(method, path, body, raw))
        return self.read_response(method)

    def read_response(self, method: str = "GET") -> Response:
        # h11's client side must "send" the request it is reading the answer to.
        if self.proto.our_state is h11.DONE and self.proto.their_state is h11.DONE:
            self.proto.start_next_cycle()
        if self.proto.our_state is h11.IDLE:
            self.proto.send(h11.Request(method=method or "GET", target="/",
                                        headers=[("Host", "localhost"),
                                                 ("Content-Length", "0")]))
            self.proto.send(h11.EndOfMessage())
        return self._read()

    def _read(self) -> Response:
        status, headers, body = 0, {}, b""
        while True:
            event = self.proto.next_event()
            if event is h11.NEED_DATA:
                self.proto.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return Response(status, headers, body)

    def close(self) -> None:
        self.sock.close()


def call(path: str, method: str, url: str, body: Any = None) -> Response:
    client = Client(path)
    try:
        return client.request(method, url, body)
    finally:
        client.close()
