"""A small encoder for the ACPI Machine Language: bytes for the DSDT's term list.

Grammar: ACPI 6.5, chapter 20 ("ACPI Machine Language (AML) Specification"), 20.2.
Every function returns the encoded bytes of one AML term or object.
"""

from __future__ import annotations

from collections.abc import Iterable

# 20.2.2 Name Objects Encoding
ROOT_CHAR = 0x5C  # '\'
PARENT_PREFIX_CHAR = 0x5E  # '^'
DUAL_NAME_PREFIX = 0x2E
MULTI_NAME_PREFIX = 0x2F
NAME_SEG_LENGTH = 4
# 20.2.3 Data Objects Encoding
ZERO_OP = 0x00
ONE_OP = 0x01
BYTE_PREFIX = 0x0A
WORD_PREFIX = 0x0B
DWORD_PREFIX = 0x0C
STRING_PREFIX = 0x0D
QWORD_PREFIX = 0x0E
# 20.2.5.1 Namespace Modifier Objects Encoding
NAME_OP = 0x08
SCOPE_OP = 0x10
# 20.2.5.2 Named Objects Encoding: DeviceOp is ExtOpPrefix 0x82
EXT_OP_PREFIX = 0x5B
DEVICE_OP = 0x82
# 20.2.5.4 Expression Opcodes Encoding
BUFFER_OP = 0x11

# 20.2.4 Package Length Encoding: a lead byte whose bits 7-6 count the bytes that follow (0-3).
# A one-byte PkgLength holds 6 bits; each longer form holds 4 bits in the lead byte plus 8
# bits per following byte, so at most 28 bits in all.
PKG_LENGTH_ONE_BYTE_MAX = 0x3F
PKG_LENGTH_MAX_FOLLOWING = 3
PKG_LENGTH_MAX = (1 << 28) - 1
# 20.2.2: LeadNameChar is 'A'-'Z' or '_'; NameChar adds '0'-'9'.
_LEAD_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _LEAD_NAME_CHARS | frozenset("0123456789")
# 20.2.3: an AML Integer is at most 64 bits wide (DefinitionBlock revision 2 and later).
INTEGER_MAX = (1 << 64) - 1
# 6.1.5 _HID: a compressed EISA id is three letters 'A'-'Z' (5 bits each, 'A' = 1) and four
# hex digits, stored big-endian in a 32-bit integer.
EISA_ID_LENGTH = 7
_EISA_LETTER_BIAS = 0x40
_HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")


class AmlError(ValueError):
    """A value that AML cannot encode."""


def _pkg_length_width(body_length: int) -> int:
    """How many bytes PkgLength takes when it must also count itself."""
    if body_length + 1 <= PKG_LENGTH_ONE_BYTE_MAX:
        return 1
    for width in range(2, PKG_LENGTH_MAX_FOLLOWING + 2):
        if body_length + width < 1 << (4 + 8 * (width - 1)):
            return width
    raise AmlError(f"an AML package of {body_length} bytes exceeds PkgLength's 28 bits")


def pkg_length(body_length: int) -> bytes:
    """PkgLength for a package whose contents after the PkgLength are ``body_length`` bytes."""
    if body_length < 0:
        raise AmlError(f"a package length cannot be negative ({body_length})")
    width = _pkg_length_width(body_length)
    total = body_length + width
    if width == 1:
        return bytes([total])
    lead = ((width - 1) << 6) | (total & 0x0F)
    return bytes([lead]) + (total >> 4).to_bytes(width - 1, "little")


def package(opcode: bytes, contents: bytes) -> bytes:
    """``opcode PkgLength contents``: the shape of every AML object that nests others."""
    return opcode + pkg_length(len(contents)) + contents


def name_seg(segment: str) -> bytes:
    """A NameSeg: up to four name characters, padded with '_' as ASL does."""
    if not 1 <= len(segment) <= NAME_SEG_LENGTH:
        raise AmlError(f"an AML name segment has 1 to 4 characters, not {segment!r}")
    if segment[0] not in _LEAD_NAME_CHARS or not set(segment) <= _NAME_CHARS:
        raise AmlError(f"{segment!r} is not an AML name segment ('A'-'Z', '_', then digits too)")
    return segment.ljust(NAME_SEG_LENGTH, "_").encode("ascii")


def _split_prefix(path: str) -> tuple[bytes, str]:
    if path.startswith("\\"):
        return bytes([ROOT_CHAR]), path[1:]
    rest = path.lstrip("^")
    return bytes([PARENT_PREFIX_CHAR]) * (len(path) - len(rest)), rest


def _name_path(segments: list[bytes]) -> bytes:
    if not segments:
        return bytes([ZERO_OP])  # NullName
    if len(segments) == 1:
        return segments[0]
    if len(segments) == 2:
        return bytes([DUAL_NAME_PREFIX]) + b"".join(segments)
    if len(segments) > 0xFF:
        raise AmlError(f"an AML name path has at most 255 segments, not {len(segments)}")
    return bytes([MULTI_NAME_PREFIX, len(segments)]) + b"".join(segments)


def name_string(path: str) -> bytes:
    """A NameString such as ``\\_SB_.COM1``, ``^PCI0`` or ``_HID``."""
    prefix, rest = _split_prefix(path)
    segments = [name_seg(part) for part in rest.split(".")] if rest else []
    if not segments and not prefix:
        raise AmlError("an empty AML name needs a root or parent prefix")
    return prefix + _name_path(segments)


def integer(value: int) -> bytes:
    """The shortest ComputationalData encoding of an unsigned integer."""
    if not 0 <= value <= INTEGER_MAX:
        raise AmlError(f"an AML integer is 0..2**64-1, not {value}")
    if value in (0, 1):
        return bytes([ONE_OP if value else ZERO_OP])
    for prefix, width in ((BYTE_PREFIX, 1), (WORD_PREFIX, 2), (DWORD_PREFIX, 4)):
        if value < 1 << (8 * width):
            return bytes([prefix]) + value.to_bytes(width, "little")
    return bytes([QWORD_PREFIX]) + value.to_bytes(8, "little")


def string(text: str) -> bytes:
    """A String: ASCII characters 0x01-0x7F then a NUL."""
    if not all(0x01 <= ord(char) <= 0x7F for char in text):
        raise AmlError(f"an AML string holds ASCII 0x01-0x7F only, not {text!r}")
    return bytes([STRING_PREFIX]) + text.encode("ascii") + b"\x00"


def buffer(data: bytes) -> bytes:
    """DefBuffer: BufferOp PkgLength BufferSize ByteList."""
    return package(bytes([BUFFER_OP]), integer(len(data)) + data)


def name(path: str, value: bytes) -> bytes:
    """DefName: bind ``path`` to an already-encoded data object."""
    return bytes([NAME_OP]) + name_string(path) + value


def scope(path: str, terms: Iterable[bytes]) -> bytes:
    """DefScope: ScopeOp PkgLength NameString TermList."""
    return package(bytes([SCOPE_OP]), name_string(path) + b"".join(terms))


def device(path: str, terms: Iterable[bytes]) -> bytes:
    """DefDevice: DeviceOp PkgLength NameString TermList."""
    return package(bytes([EXT_OP_PREFIX, DEVICE_OP]), name_string(path) + b"".join(terms))


def _eisa_letter(char: str) -> int:
    if not "A" <= char <= "Z":
        raise AmlError(f"an EISA id starts with three letters 'A'-'Z', not {char!r}")
    return ord(char) - _EISA_LETTER_BIAS


def eisa_id(text: str) -> int:
    """The 32-bit compressed form of an id like ``PNP0501`` (what ASL's EisaId() yields)."""
    if len(text) != EISA_ID_LENGTH:
        raise AmlError(f"an EISA id is 3 letters and 4 hex digits, not {text!r}")
    letters = [_eisa_letter(char) for char in text[:3]]
    if not set(text[3:]) <= _HEX_DIGITS:
        raise AmlError(f"an EISA id ends in 4 hex digits, not {text!r}")
    product = int(text[3:], 16)
    vendor = (letters[0] << 10) | (letters[1] << 5) | letters[2]
    big_endian = (vendor << 16) | product
    return int.from_bytes(big_endian.to_bytes(4, "big"), "little")
