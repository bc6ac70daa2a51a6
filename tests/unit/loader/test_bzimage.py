"""bzImage setup-header parsing on synthetic headers (boot.rst offsets)."""

import struct

import pytest

from ember.loader import LoaderError, parse_bzimage
from ember.loader.cmdline import encode_cmdline
from ember.loader.initrd import initrd_address


def make_header(version: int = 0x020F, setup_sects: int = 0x1B, xload: int = 1,
                loadflags: int = 1, init_size: int = 0x2000000) -> bytes:
    h = bytearray(0x1000)
    h[0x1F1] = setup_sects
    struct.pack_into("<H", h, 0x1FE, 0xAA55)
    h[0x200], h[0x201] = 0xEB, 0x6A  # jmp; header ends at 0x202 + 0x6a
    h[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", h, 0x206, version)
    h[0x211] = loadflags
    struct.pack_into("<H", h, 0x236, xload)
    struct.pack_into("<I", h, 0x238, 2047)
    struct.pack_into("<Q", h, 0x258, 0x1000000)
    struct.pack_into("<I", h, 0x260, init_size)
    return bytes(h)


def test_parses_entry_and_header() -> None:
    bz = parse_bzimage(make_header(), 0x800000, 0x100000)
    seg = bz.layout.segments[0]
    assert seg.file_offset == (0x1B + 1) * 512
    assert seg.guest_addr == 0x100000 and seg.file_size == 0x800000 - seg.file_offset
    assert bz.layout.entry == 0x100200
    assert bz.setup_header[0] == 0x1B and len(bz.setup_header) == 0x202 + 0x6A - 0x1F1
    assert bz.cmdline_size == 2047
    assert bz.init_end == 0x1000000 + 0x2000000


def test_zero_setup_sects_means_four() -> None:
    bz = parse_bzimage(make_header(setup_sects=0), 0x800000, 0x100000)
    assert bz.layout.segments[0].file_offset == 5 * 512


@pytest.mark.parametrize("kwargs, message", [
    ({"version": 0x020B}, "too old"),
    ({"xload": 0}, "64-bit entry"),
    ({"loadflags": 0}, "64-bit entry"),
])
def test_rejects(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(LoaderError, match=message):
        parse_bzimage(make_header(**kwargs), 0x800000, 0x100000)


def test_rejects_non_bzimage_and_truncated() -> None:
    with pytest.raises(LoaderError, match="HdrS"):
        parse_bzimage(bytes(0x1000), 0x800000, 0x100000)
    with pytest.raises(LoaderError, match="no protected-mode"):
        parse_bzimage(make_header(), 0x1000, 0x100000)


def test_cmdline_limits() -> None:
    assert encode_cmdline("console=ttyS0", 2048) == b"console=ttyS0\0"
    assert len(encode_cmdline("x" * 2047, 2048)) == 2048
    with pytest.raises(LoaderError, match="at most 2047"):
        encode_cmdline("x" * 2048, 2048)
    with pytest.raises(LoaderError, match="ASCII"):
        encode_cmdline("café", 2048)


def test_initrd_placement() -> None:
    addr = initrd_address(10_000, 256 << 20, 0x2000000)
    assert addr % 4096 == 0 and addr + 10_000 <= 256 << 20 and addr > (256 << 20) - 16384
    with pytest.raises(LoaderError, match="more memory"):
        initrd_address(200 << 20, 64 << 20, 0x2000000)
