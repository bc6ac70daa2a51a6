"""Execute the CPUID instruction in this process (x86_64 only).

Python has no way to run CPUID, so a few bytes of machine code go into an executable
anonymous page and are called through ctypes (System V AMD64 calling convention:
leaf in edi, subleaf in esi, result pointer in rdx).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import platform
from collections.abc import Callable
from typing import Any, cast

_CODE = bytes.fromhex(
    "53"          # push rbx (callee-saved; CPUID clobbers it)
    "89f8"        # mov eax, edi
    "89f1"        # mov ecx, esi
    "4989d0"      # mov r8, rdx
    "0fa2"        # cpuid
    "418900"      # mov [r8], eax
    "41895804"    # mov [r8+4], ebx
    "41894808"    # mov [r8+8], ecx
    "4189500c"    # mov [r8+12], edx
    "5b"          # pop rbx
    "c3"          # ret
)
_Result = ctypes.c_uint32 * 4
_PAGES: list[mmap.mmap] = []
_Signature = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(_Result))


@functools.cache
def _function() -> Callable[[int, int, Any], None]:
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_CODE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    function = _Signature(address)
    _PAGES.append(page)  # keep the code mapped for the life of the process
    return cast(Callable[[int, int, Any], None], function)


def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
    """(eax, ebx, ecx, edx) as this CPU reports them."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise OSError("CPUID exists on x86 only")
    out = _Result()
    _function()(leaf, subleaf, ctypes.pointer(out))
    return out[0], out[1], out[2], out[3]


def hypervisor_signature() -> str:
    """The 12-character vendor signature of the hypervisor we run under, or ''."""
    _eax, _ebx, ecx, _edx = cpuid(1)
    if not ecx & (1 << 31):  # CPUID.1:ECX.hypervisor
        return ""
    _max, ebx, ecx, edx = cpuid(0x4000_0000)
    raw = b"".join(r.to_bytes(4, "little") for r in (ebx, ecx, edx))
    return raw.rstrip(b"\0").decode("ascii", "replace")
