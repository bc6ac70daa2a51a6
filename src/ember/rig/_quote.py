"""Shell quoting for the files that carry the command and its environment into L1.

The job runs under the host's `/bin/sh` inside the L1 chroot; single quotes are POSIX and
mean the same to dash and busybox sh: everything up to the next `'` is literal, newlines
included. A `'` inside a value becomes `'\\''` (close, escaped quote, reopen).
"""

import re
from collections.abc import Mapping, Sequence

_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
# pyenv's shims are shell scripts that re-run pyenv on every call: slow and, in L1, pointless.
_SHIMS = re.compile(rb"pyenv(/.*)?/shims/?$")


def quote(word: bytes) -> bytes:
    """`word` as one shell word, literal whatever its bytes."""
    return b"'" + word.replace(b"'", b"'\\''") + b"'"


def is_exportable(name: bytes) -> bool:
    """Whether a shell can `export` this name (env may hold names it cannot)."""
    return _NAME.match(name) is not None


def sanitize_path(path: bytes) -> bytes:
    """PATH without pyenv shim directories, so the first python is a real interpreter."""
    return b":".join(p for p in path.split(b":") if not _SHIMS.search(p))


def env_script(env: Mapping[bytes, bytes]) -> bytes:
    """`export NAME='value'` lines for every exportable name, PATH sanitized."""
    lines = []
    for name, value in sorted(env.items()):
        if not is_exportable(name):
            continue
        if name == b"PATH":
            value = sanitize_path(value)
        lines.append(b"export " + name + b"=" + quote(value) + b"\n")
    return b"".join(lines)


def command_line(argv: Sequence[bytes]) -> bytes:
    """`argv` as one shell command line with every word quoted."""
    if not argv:
        raise ValueError("empty command")
    return b" ".join(quote(a) for a in argv)


def job_script(argv: Sequence[bytes], cwd: bytes, env_file: bytes) -> bytes:
    """The script the L1 runs in the chroot: environment, directory, then `exec CMD`."""
    return b"".join(
        [
            b". " + quote(env_file) + b"\n",
            b"cd -- " + quote(cwd) + b" || exit 125\n",
            b"exec " + command_line(argv) + b"\n",
        ]
    )
