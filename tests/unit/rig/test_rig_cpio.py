"""The initramfs writer's archives as GNU cpio reads them."""

import io
import re
import subprocess
from pathlib import Path

import pytest

from ember.rig import _cpio


def _archive() -> bytes:
    out = io.BytesIO()
    _cpio.write(
        out,
        [
            _cpio.directory("bin"),
            _cpio.file("bin/busybox", b"\x7fELF" + bytes(range(256)) * 3, 0o755),
            _cpio.symlink("bin/sh", "busybox"),
            _cpio.directory("dev"),
            _cpio.char_device("dev/console", 5, 1),
            _cpio.file("init", b"#!/bin/sh\necho odd length\n", 0o755),
            _cpio.file("empty", b""),
            _cpio.file("a/long/name/" + "x" * 101, b"abc"),
        ],
    )
    return out.getvalue()


def _cpio_cmd(*args: str, data: bytes, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["cpio", "--quiet", *args], input=data, capture_output=True, check=True, cwd=cwd
    ).stdout.decode()


def test_archive_lists_every_member_in_order() -> None:
    names = _cpio_cmd("-t", data=_archive()).split()
    assert names == [
        "bin", "bin/busybox", "bin/sh", "dev", "dev/console", "init", "empty",
        "a/long/name/" + "x" * 101,
    ]


def test_verbose_listing_shows_types_modes_and_devices() -> None:
    lines = _cpio_cmd("-tv", data=_archive()).splitlines()
    by_name = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in lines}
    assert by_name["bin"].startswith("drwxr-xr-x")
    assert by_name["bin/busybox"].startswith("-rwxr-xr-x")
    assert by_name["bin/sh"].startswith("lrwxrwxrwx") and by_name["bin/sh"].endswith("busybox")
    assert by_name["dev/console"].startswith("crw-------")
    assert re.search(r"\b5,\s*1\b", by_name["dev/console"])


def test_contents_extract_unchanged(tmp_path: Path) -> None:
    data = _archive()
    _cpio_cmd("-id", "--no-absolute-filenames", "bin/busybox", "init", "bin/sh", "empty",
              data=data, cwd=tmp_path)
    assert (tmp_path / "bin/busybox").read_bytes() == b"\x7fELF" + bytes(range(256)) * 3
    assert (tmp_path / "init").read_bytes() == b"#!/bin/sh\necho odd length\n"
    assert (tmp_path / "bin/sh").readlink() == Path("busybox")
    assert (tmp_path / "empty").read_bytes() == b""


def test_members_are_four_byte_aligned_and_end_with_trailer() -> None:
    data = _archive()
    assert data.startswith(_cpio.MAGIC)
    assert len(data) % 4 == 0
    assert b"TRAILER!!!\0" in data[-128:]


def test_absolute_names_are_refused() -> None:
    with pytest.raises(ValueError):
        _cpio.write(io.BytesIO(), [_cpio.file("/init", b"")])
