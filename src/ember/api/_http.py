"""HTTP/1.1 on a Unix socket: one thread, one ``selectors`` loop, one httptools (llhttp)
parser per connection.

Why one event loop rather than a thread per connection: every socket is non-blocking and
the loop only ever reads what has arrived, so a client that sends half a request (or
nothing) costs a buffer, not a thread, and cannot delay the others; requests reach the
controller one at a time, in arrival order, with no locking between connections.
Pipelined requests are answered in order. A connection is not read again while requests
it sent are still unanswered (because the client is not reading its replies): what one
read can hold bounds both the queue and the output buffer.

Why httptools: a complete, strict HTTP/1.1 request parser (chunked bodies, keep-alive
rules) in C that imports in a few ms; the pure-Python h11 cost a quarter of ember's
start-up to a ready API socket. Replies are three fixed-form lines, written here.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import httptools

from ember.api.request import ApiRequest
from ember.api.router import Reply

RECV_SIZE = 65536
MAX_OUTPUT_BUFFER = 1 << 20  # stop parsing a connection's requests past this much unsent
MAX_HEADER_BYTES = 16 * 1024
SERVER_NAME = b"Firecracker API"

RequestHandler = Callable[[ApiRequest], Reply]

_REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


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


class _Refused(Exception):
    """Raised from a parser callback: the request breaks a limit; the message says which."""


class _Request(NamedTuple):
    request: ApiRequest
    keep_alive: bool


class _Connection:
    """One client: its socket and parser, the request being read, complete requests not yet
    answered, and unsent output. Its on_* methods are the parser's callbacks."""

    def __init__(self, sock: socket.socket, max_payload: int) -> None:
        self.sock = sock
        self.max_payload = max_payload
        self.parser = httptools.HttpRequestParser(self)
        self.out = bytearray()
        self.ready: deque[_Request] = deque()
        self.error: str | None = None  # answered (400) after the requests before it
        self.eof = False
        self.closing = False  # close once ``out`` is flushed
        self._target = bytearray()
        self._body = bytearray()
        self._head_bytes = 0
        self._continue = False

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            self.error = str(cause) if isinstance(cause, _Refused) else f"{cause}"
        except httptools.HttpParserUpgrade:
            self.error = "Invalid HTTP request: protocol upgrades are not supported"
        except httptools.HttpParserError as err:
            self.error = f"Invalid HTTP request: {err}"

    # -- parser callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._target.clear()
        self._body = bytearray()
        self._head_bytes = 0
        self._continue = False

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        name = name.lower()
        if name == b"content-length":
            self._check_size(int(value))
        elif name == b"expect" and value.lower() == b"100-continue":
            self._continue = True

    def on_headers_complete(self) -> None:
        if self._continue and not self.ready:  # pipelined: the body comes anyway
            self.out += CONTINUE

    def on_body(self, body: bytes) -> None:
        self._body += body
        self._check_size(len(self._body))

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("ascii", "replace").upper()
        target = self._target.decode("ascii", "replace").split("?", 1)[0]
        request = ApiRequest(method, target, bytes(self._body) if self._body else None)
        self.ready.append(_Request(request, self.parser.should_keep_alive()))

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEADER_BYTES:
            raise _Refused(f"Invalid HTTP request: request head larger than "
                           f"{MAX_HEADER_BYTES} bytes")

    def _check_size(self, size: int) -> None:
        if size > self.max_payload:
            raise _Refused(f"Request payload with size {size} is larger than the limit of "
                           f"{self.max_payload} allowed by server.")


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
            elif events & selectors.EVENT_WRITE:
                self._answer(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: try again on the next readiness event
            sock.setblocking(False)
            conn = _Connection(sock, self.max_payload)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _on_readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            conn.eof = True
        elif conn.error is None:
            conn.feed(data)
        self._answer(conn)

    def _answer(self, conn: _Connection) -> None:
        """Answer complete requests in order while the output buffer has room, then the
        connection's error if it has one, then send what fits."""
        while conn.ready and not conn.closing and len(conn.out) < MAX_OUTPUT_BUFFER:
            self._respond(conn, conn.ready.popleft())
        if not conn.ready and not conn.closing:
            if conn.error is not None:
                self._fail(conn, conn.error)
            elif conn.eof:
                conn.closing = True
        self._flush(conn)

    def _respond(self, conn: _Connection, pending: _Request) -> None:
        reply = self.handler(pending.request)
        conn.out += _response(reply, pending.request.method, pending.keep_alive)
        if not pending.keep_alive:
            conn.closing = True
            conn.ready.clear()

    def _fail(self, conn: _Connection, message: str) -> None:
        """Answer 400, then close: the stream cannot be read any further."""
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
        if not conn.out and conn.ready:
            self._answer(conn)  # requests held back while the output was full
            return
        # Read more only once everything read so far is answered: that bounds the queue.
        reading = selectors.EVENT_READ if not conn.ready and not conn.closing else 0
        writing = selectors.EVENT_WRITE if conn.out else 0
        self._selector.modify(conn.sock, reading | writing or selectors.EVENT_READ, conn)

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


def _response(reply: Reply, method: str, keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (reply.status, _REASONS.get(reply.status, b"")),
             b"Server: " + SERVER_NAME]
    body = b""
    if reply.status != 204:
        lines += [b"Content-Type: application/json",
                  b"Content-Length: %d" % len(reply.body)]
        if method != "HEAD":  # a reply to HEAD has no body
            body = reply.body
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
