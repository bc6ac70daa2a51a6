"""The AML encoder and the resource descriptors: byte-exact encodings and their edge cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ember.arch.x86_64.acpi import _aml, _resources


def decode_pkg_length(data: bytes) -> tuple[int, int]:
    """(value, bytes used) of a PkgLength, decoded the way ACPI 6.5 20.2.4 describes."""
    following = data[0] >> 6
    if following == 0:
        return data[0] & 0x3F, 1
    value = data[0] & 0x0F
    for index in range(following):
        value |= data[1 + index] << (4 + 8 * index)
    return value, 1 + following


@pytest.mark.parametrize(("body", "encoded"), [
    (0, b"\x01"),
    (62, b"\x3f"),  # the largest one-byte form: 62 + 1 = 63
    (63, b"\x41\x04"),  # 65 = 0x041: two bytes
    (4093, b"\x4f\xff"),  # 4095, the largest two-byte value
    (4094, b"\x81\x00\x01"),  # 4097 = 0x1001: three bytes
    ((1 << 20) - 4, b"\x8f\xff\xff"),  # 2**20 - 1, the largest three-byte value
    ((1 << 20) - 3, b"\xc1\x00\x00\x01"),  # 2**20 + 1: four bytes
    ((1 << 28) - 5, b"\xcf\xff\xff\xff"),  # 2**28 - 1, the largest PkgLength
])
def test_pkg_length_forms(body: int, encoded: bytes) -> None:
    assert _aml.pkg_length(body) == encoded


@pytest.mark.parametrize("body", [-1, (1 << 28) - 4])
def test_pkg_length_out_of_range(body: int) -> None:
    with pytest.raises(_aml.AmlError):
        _aml.pkg_length(body)


@given(st.integers(min_value=0, max_value=(1 << 28) - 5))
def test_pkg_length_counts_itself(body: int) -> None:
    encoded = _aml.pkg_length(body)
    value, used = decode_pkg_length(encoded)
    assert used == len(encoded)
    assert value == body + len(encoded)
    if len(encoded) > 1:  # never a longer form than needed: one byte less would overflow
        largest_shorter = {2: 63, 3: 4095, 4: (1 << 20) - 1}[len(encoded)]
        assert body + len(encoded) - 1 > largest_shorter


@pytest.mark.parametrize(("value", "encoded"), [
    (0, b"\x00"),
    (1, b"\x01"),
    (2, b"\x0a\x02"),
    (0xFF, b"\x0a\xff"),
    (0x100, b"\x0b\x00\x01"),
    (0xFFFF, b"\x0b\xff\xff"),
    (0x10000, b"\x0c\x00\x00\x01\x00"),
    (0xFFFF_FFFF, b"\x0c\xff\xff\xff\xff"),
    (1 << 32, b"\x0e\x00\x00\x00\x00\x01\x00\x00\x00"),
    ((1 << 64) - 1, b"\x0e" + b"\xff" * 8),
])
def test_integer_encodings(value: int, encoded: bytes) -> None:
    assert _aml.integer(value) == encoded


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_integer_out_of_range(value: int) -> None:
    with pytest.raises(_aml.AmlError):
        _aml.integer(value)


def test_string_is_nul_terminated() -> None:
    assert _aml.string("LNRO0005") == b"\x0dLNRO0005\x00"
    assert _aml.string("") == b"\x0d\x00"
    for bad in ("a\x00b", "caf\u00e9"):
        with pytest.raises(_aml.AmlError):
            _aml.string(bad)


@pytest.mark.parametrize(("path", "encoded"), [
    ("_HID", b"_HID"),
    ("_SB", b"_SB_"),
    ("\\_SB_", b"\\_SB_"),
    ("\\", b"\\\x00"),
    ("^PCI0", b"^PCI0"),
    ("^^A", b"^^A___"),
    ("\\_SB_.COM1", b"\\\x2e_SB_COM1"),
    ("_SB_.PCI0.ISA_", b"\x2f\x03_SB_PCI0ISA_"),
])
def test_name_strings(path: str, encoded: bytes) -> None:
    assert _aml.name_string(path) == encoded


@pytest.mark.parametrize("path", ["", "0ABC", "ABCDE", "a", "A.", "AB-C"])
def test_bad_names(path: str) -> None:
    with pytest.raises(_aml.AmlError):
        _aml.name_string(path)


@pytest.mark.parametrize(("text", "value"), [
    ("PNP0501", 0x0105D041),
    ("PNP0303", 0x0303D041),
    ("PNP0A03", 0x030AD041),
])
def test_eisa_id_compression(text: str, value: int) -> None:
    assert _aml.eisa_id(text) == value


@pytest.mark.parametrize("text", ["PNP050", "PNP05011", "pNP0501", "PNP0x01", "P1P0501"])
def test_bad_eisa_ids(text: str) -> None:
    with pytest.raises(_aml.AmlError):
        _aml.eisa_id(text)


def test_objects_nest_with_pkg_length() -> None:
    assert _aml.name("_UID", _aml.integer(2)) == b"\x08_UID\x0a\x02"
    assert _aml.buffer(b"\xaa\xbb") == b"\x11\x05\x0a\x02\xaa\xbb"
    assert _aml.device("COM1", []) == b"\x5b\x82\x05COM1"
    assert _aml.scope("\\_SB_", [b"\x00" * 3]) == b"\x10\x09\\_SB_\x00\x00\x00"


def test_long_device_uses_two_byte_pkg_length() -> None:
    body = [_aml.name("_HID", _aml.string("X" * 100))]
    encoded = _aml.device("V000", body)
    value, used = decode_pkg_length(encoded[2:])
    assert used == 2
    assert value == len(encoded) - 2


def test_small_resource_descriptors() -> None:
    assert _resources.irq_no_flags(4) == b"\x22\x10\x00"
    assert _resources.irq_no_flags(1) == b"\x22\x02\x00"
    assert _resources.io_port(0x3F8, 8) == b"\x47\x01\xf8\x03\xf8\x03\x01\x08"
    with pytest.raises(_resources.ResourceError):
        _resources.irq_no_flags(16)
    with pytest.raises(_resources.ResourceError):
        _resources.io_port(0xFFFF, 2)


def test_large_resource_descriptors() -> None:
    assert _resources.memory32_fixed(0xC0001000, 0x1000) == (
        b"\x86\x09\x00\x01" + (0xC0001000).to_bytes(4, "little") + (0x1000).to_bytes(4, "little"))
    # flags 0x03: consumer, edge, active-high, exclusive; one interrupt
    assert _resources.extended_interrupt(5) == b"\x89\x06\x00\x03\x01\x05\x00\x00\x00"
    assert _resources.extended_interrupt(5, shared=True)[3] == 0x0B
    with pytest.raises(_resources.ResourceError):
        _resources.memory32_fixed(0xFFFF_F000, 0x2000)


def test_resource_template_ends_with_checksummed_end_tag() -> None:
    descriptors = [_resources.io_port(0x60, 1), _resources.irq_no_flags(1)]
    template = _resources.resource_template(descriptors)
    body = b"".join(descriptors)
    assert template[:2] == b"\x11" + bytes([len(template) - 1])
    assert template[2:4] == b"\x0a" + bytes([len(body) + 2])
    assert template[4:-2] == body
    assert template[-2] == 0x79
    assert sum(template[4:]) % 256 == 0
