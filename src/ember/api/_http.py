"""HTTP/1.1 on a Unix socket: one thread, one ``selectors`` loop, one h11 state machine
per connection.

Why one event loop rather than a thread per connection: every socket is non-blocking and
the loop only ever reads what has arrived, so a client that sends half a request (or
nothing) costs a buffer, not a thread, and cannot delay the others; requests reach the
controller one at a time, in arrival order, with no locking between connections.
Pipelined requests are answered in order: the next request on a connection is parsed only
after the previous reply has been queued, and no more are parsed while a client is not
reading its replies (bounded output buffer).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
from collections.abc import Callable

import h11

from ember.api.request import ApiRequest
from ember.api.router import Reply

RECV_SIZE = 65536
MAX_OUTPUT_BUFFER = 1 << 20  # stop parsing a connection's requests past this much unsent
MAX_HEADER_BYTES = 16 * 1024
SERVER_NAME = b"Firecracker API"

RequestHandler = Callable[[ApiRequest], Reply]

_REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request"}


class SocketInUseError(OSError):
    """Another process already serves the API socket path."""


def bind_unix(path: str) -> socket.socket:
    """Listen on ``path``; a stale socket file left by a dead process is replaced."""
    if os.path.lexists(path):
        _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _remove_stale(path: str) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a socket file nobody listens on
        return
    except OSError as err:
        raise SocketInUseError(err.errno or 0, f"{path} exists and is not a usable socket: "
                               f"{err.strerror}") from err
    finally:
        probe.close()
    raise SocketInUseError(98, f"another process is already serving the API on {path}")


class _Connection:
    """One client: its socket, its h11 state, the request being read, unsent output."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.proto = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.out = bytearray()
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.closing = False  # close once ``out`` is flushed


class HttpServer:
    """Serves requests on a listening Unix socket until :meth:`shutdown`."""

    def __init__(self, listener: socket.socket, handler: RequestHandler,
                 max_payload: int) -> None:
        self.listener = listener
        self.handler = handler
        self.max_payload = max_payload
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._running = True

    def serve_forever(self) -> None:
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        while self._running:
            for key, events in self._selector.select():
                self._dispatch(key, events)
        self._close_all()

    def shutdown(self) -> None:
        """Stop the loop; safe to call from any thread or a signal handler."""
        self._running = False
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _dispatch(self, key: selectors.SelectorKey, events: int) -> None:
        if key.fileobj is self.listener:
            self._accept()
        elif key.data is None:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)
        else:
            conn: _Connection = key.data
            if events & selectors.EVENT_READ:
                self._on_readable(conn)
            if events & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                self._flush(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: try again on the next readiness event
            sock.setblocking(False)
            conn = _Connection(sock)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _on_readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if conn.closing:
            return  # discard what arrives after a fatal error
        conn.proto.receive_data(data)
        self._process(conn)
        if not data and not conn.out:
            self._close(conn)

    def _process(self, conn: _Connection) -> None:
        while not conn.closing and len(conn.out) < MAX_OUTPUT_BUFFER:
            if conn.proto.our_state is h11.DONE and conn.proto.their_state is h11.DONE:
                conn.proto.start_next_cycle()
            try:
                event = conn.proto.next_event()
            except h11.RemoteProtocolError as err:
                self._fail(conn, f"Invalid HTTP request: {err}")
                break
            if not isinstance(event, h11.Event):
                break  # NEED_DATA, or PAUSED until this cycle's reply is sent
            self._on_event(conn, event)
        self._flush(conn)

    def _on_event(self, conn: _Connection, event: h11.Event) -> None:
        if isinstance(event, h11.Request):
            self._on_request_head(conn, event)
        elif isinstance(event, h11.Data):
            conn.body += event.data
            self._check_size(conn, len(conn.body))
        elif isinstance(event, h11.EndOfMessage):
            self._respond(conn)
        elif isinstance(event, h11.ConnectionClosed):
            conn.closing = True

    def _on_request_head(self, conn: _Connection, event: h11.Request) -> None:
        conn.request, conn.body = event, bytearray()
        length = dict(event.headers).get(b"content-length")
        if length is not None and self._check_size(conn, int(length)):
            return
        if conn.proto.they_are_waiting_for_100_continue:
            conn.out += conn.proto.send(h11.InformationalResponse(status_code=100, headers=[]))

    def _check_size(self, conn: _Connection, size: int) -> bool:
        if size <= self.max_payload:
            return False
        self._fail(conn, f"Request payload with size {size} is larger than the limit of "
                         f"{self.max_payload} allowed by server.")
        return True

    def _respond(self, conn: _Connection) -> None:
        assert conn.request is not None
        target = conn.request.target.decode("ascii", "replace").split("?", 1)[0]
        body = bytes(conn.body) if conn.body else None
        request = ApiRequest(conn.request.method.decode("ascii", "replace").upper(), target,
                             body)
        reply = self.handler(request)
        conn.out += conn.proto.send(h11.Response(status_code=reply.status,
                                               headers=_headers(reply), reason=_reason(reply)))
        if reply.body and request.method != "HEAD":  # a reply to HEAD has no body
            conn.out += conn.proto.send(h11.Data(data=reply.body))
        conn.out += conn.proto.send(h11.EndOfMessage())
        conn.request = None
        if conn.proto.our_state is h11.MUST_CLOSE:
            conn.closing = True

    def _fail(self, conn: _Connection, message: str) -> None:
        """Answer 400 outside the h11 state machine, then close: the stream cannot resync."""
        body = json.dumps({"fault_message": message}).encode()
        conn.out += (b"HTTP/1.1 400 Bad Request\r\nServer: " + SERVER_NAME
                     + b"\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        conn.closing = True

    def _flush(self, conn: _Connection) -> None:
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            del conn.out[:sent]
        if not conn.out and conn.closing:
            self._close(conn)
            return
        self._watch(conn)

    def _watch(self, conn: _Connection) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self._selector.modify(conn.sock, events, conn)
        if not conn.out and not conn.closing:
            self._process_pending(conn)

    def _process_pending(self, conn: _Connection) -> None:
        """Requests already buffered (pipelined) while output was backed up."""
        if conn.proto.their_state is h11.DONE or conn.proto.trailing_data[0]:
            if conn.proto.our_state is h11.DONE and conn.proto.their_state is h11.DONE:
                self._process(conn)

    def _close(self, conn: _Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _close_all(self) -> None:
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Connection):
                self._close(key.data)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    headers = [(b"Server", SERVER_NAME)]
    if reply.status != 204:
        headers += [(b"Content-Type", b"application/json"),
                    (b"Content-Length", str(len(reply.body)).encode())]
    return headers


def _reason(reply: Reply) -> bytes:
    return _REASONS.get(reply.status, b"")
