"""The Root System Description Pointer, the common table header, and the XSDT.

Layouts: ACPI 6.5, 5.2.5.3 (RSDP), 5.2.6 (System Description Table Header), 5.2.8 (XSDT).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

# 5.2.5.3 RSDP Structure
RSDP_SIGNATURE = b"RSD PTR "
RSDP_REVISION = 2  # ACPI 2.0 and later: the structure carries the XSDT address
RSDP_LENGTH = 36
RSDP_V1_LENGTH = 20  # the "Checksum" field covers only these first bytes
RSDP_CHECKSUM_OFFSET = 8
RSDP_EXTENDED_CHECKSUM_OFFSET = 32
# 5.2.6 System Description Table Header
SDT_HEADER_LENGTH = 36
SDT_CHECKSUM_OFFSET = 9
OEM_ID = b"EMBER "  # 6 bytes
OEM_REVISION = 1
CREATOR_ID = b"EMBR"  # the vendor id of the utility that created the table
CREATOR_REVISION = 1
# 5.2.8 Extended System Description Table: revision 1, then 64-bit table addresses.
XSDT_SIGNATURE = b"XSDT"
XSDT_REVISION = 1
XSDT_OEM_TABLE_ID = b"EMBRXSDT"


def checksum(data: bytes) -> int:
    """The byte that makes ``data`` plus itself sum to zero modulo 256."""
    return (-sum(data)) & 0xFF


def _with_checksum(table: bytes, offset: int, covered: int) -> bytes:
    out = bytearray(table)
    out[offset] = checksum(bytes(out[:covered]))
    return bytes(out)


def sdt(signature: bytes, revision: int, oem_table_id: bytes, body: bytes) -> bytes:
    """A complete table: the 36-byte header (with checksum) followed by ``body``."""
    if len(signature) != 4 or len(oem_table_id) != 8:
        raise ValueError("a table signature is 4 bytes and an OEM table id 8 bytes")
    length = SDT_HEADER_LENGTH + len(body)
    header = struct.pack("<4sIBB6s8sI4sI", signature, length, revision, 0, OEM_ID,
                         oem_table_id, OEM_REVISION, CREATOR_ID, CREATOR_REVISION)
    return _with_checksum(header + body, SDT_CHECKSUM_OFFSET, length)


def xsdt(table_addresses: Sequence[int]) -> bytes:
    """The XSDT: the 64-bit addresses of every table except the FACS and DSDT."""
    body = struct.pack(f"<{len(table_addresses)}Q", *table_addresses)
    return sdt(XSDT_SIGNATURE, XSDT_REVISION, XSDT_OEM_TABLE_ID, body)


def rsdp(xsdt_address: int) -> bytes:
    """The RSDP (revision 2): no RSDT, only the XSDT's address, with both checksums."""
    raw = struct.pack("<8sB6sBIIQB3x", RSDP_SIGNATURE, 0, OEM_ID, RSDP_REVISION, 0,
                      RSDP_LENGTH, xsdt_address, 0)
    raw = _with_checksum(raw, RSDP_CHECKSUM_OFFSET, RSDP_V1_LENGTH)
    return _with_checksum(raw, RSDP_EXTENDED_CHECKSUM_OFFSET, RSDP_LENGTH)
