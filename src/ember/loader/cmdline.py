"""The kernel command line, as the bytes written to guest memory."""

from __future__ import annotations

from ember.loader.errors import LoaderError


def encode_cmdline(cmdline: str, capacity: int) -> bytes:
    """NUL-terminated bytes; ``capacity`` counts the NUL (Firecracker: 2048)."""
    try:
        raw = cmdline.encode("ascii")
    except UnicodeEncodeError:
        raise LoaderError("the kernel command line must be ASCII") from None
    if b"\0" in raw:
        raise LoaderError("the kernel command line must not contain NUL bytes")
    if len(raw) + 1 > capacity:
        raise LoaderError(
            f"the kernel command line is {len(raw)} bytes; at most {capacity - 1} fit "
            f"({capacity} including the terminating NUL)")
    return raw + b"\0"
