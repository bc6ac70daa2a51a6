"""ember's REST API: Firecracker's resources over HTTP/1.1 on a Unix socket."""

from ember.api.server import ApiServer, SocketInUseError

__all__ = ["ApiServer", "SocketInUseError"]
