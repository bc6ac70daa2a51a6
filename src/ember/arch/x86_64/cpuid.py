"""Per-vCPU CPUID, derived from what the host KVM supports (KVM_GET_SUPPORTED_CPUID).

Leaf meanings: Intel SDM vol. 2A "CPUID"; AMD APM vol. 3, appendix E.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember.kvm._structs import KvmCpuidEntry2

# Leaf 1
LEAF_FEATURES = 0x1
EBX_APIC_ID_SHIFT = 24
EBX_CPU_COUNT_SHIFT = 16
EBX_CLFLUSH_SHIFT = 8
CLFLUSH_LINE_QWORDS = 8  # 64-byte cache lines
ECX_HYPERVISOR = 1 << 31
ECX_TSC_DEADLINE = 1 << 24
EDX_HTT = 1 << 28
# Leaf 4 (Intel deterministic cache parameters): EAX[31:26] cores per package - 1,
# EAX[25:14] logical processors sharing the cache - 1.
LEAF_CACHE_PARAMS = 0x4
# Leaf 6 (thermal and power) and 0xA (architectural PMU): ember exposes neither.
LEAF_THERMAL = 0x6
LEAF_PMU = 0xA
# Leaves 0xB and 0x1F: extended topology. ECX[15:8] level type.
LEAF_TOPOLOGY = 0xB
LEAF_TOPOLOGY_V2 = 0x1F
LEVEL_TYPE_SMT = 1
LEVEL_TYPE_CORE = 2
# AMD: 0x80000008 ECX[7:0] = cores - 1, ECX[15:12] = APIC id size;
# 0x8000001E EAX = extended APIC id, EBX[15:8] threads per core - 1, EBX[7:0] core id.
LEAF_AMD_SIZES = 0x8000_0008
LEAF_AMD_TOPOLOGY = 0x8000_001E


# XSAVE and the features that need it (Intel SDM vol. 2A CPUID; AMD APM vol. 3 E.4).
LEAF1_ECX_XSAVE_FAMILY = (1 << 12) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29)  # FMA,
# XSAVE, OSXSAVE, AVX, F16C
LEAF_EXT_FEATURES = 0x7
LEAF7_EBX_AVX_FAMILY = ((1 << 5) | (1 << 16) | (1 << 17) | (1 << 21) | (1 << 26) | (1 << 27)
                        | (1 << 28) | (1 << 30) | (1 << 31))  # AVX2 and AVX-512 subsets
LEAF7_ECX_AVX_FAMILY = (1 << 1) | (1 << 6) | (1 << 11) | (1 << 12) | (1 << 14)  # VBMI*, VNNI…
LEAF_XSTATE = 0xD
LEAF_AMD_EXT_FEATURES = 0x8000_0001
AMD_ECX_VEX_FAMILY = (1 << 11) | (1 << 16)  # XOP, FMA4
# QEMU's software emulation announces itself with this hypervisor signature.
TCG_SIGNATURE = "TCGTCGTCGTCG"


@dataclass(frozen=True)
class Topology:
    cpu_index: int
    cpu_count: int

    @property
    def apic_id_bits(self) -> int:
        """Bits needed to number ``cpu_count`` APIC ids."""
        return max(0, (self.cpu_count - 1).bit_length())


def _copy(entry: KvmCpuidEntry2) -> KvmCpuidEntry2:
    return KvmCpuidEntry2.from_buffer_copy(entry)


def _leaf1(e: KvmCpuidEntry2, topo: Topology) -> None:
    e.ebx = ((topo.cpu_index << EBX_APIC_ID_SHIFT) | (topo.cpu_count << EBX_CPU_COUNT_SHIFT)
             | (CLFLUSH_LINE_QWORDS << EBX_CLFLUSH_SHIFT))
    e.ecx |= ECX_HYPERVISOR
    if topo.cpu_count > 1:
        e.edx |= EDX_HTT
    else:
        e.edx &= ~EDX_HTT & 0xFFFFFFFF


def _leaf4(e: KvmCpuidEntry2, topo: Topology) -> None:
    e.eax &= 0x3FFF  # keep cache type/level bits, rewrite the sharing counts
    e.eax |= (topo.cpu_count - 1) << 26
    cache_level = (e.eax >> 5) & 0x7
    if cache_level >= 3:
        e.eax |= (topo.cpu_count - 1) << 14


def _topology_leaf(e: KvmCpuidEntry2, topo: Topology) -> None:
    e.edx = topo.cpu_index
    if e.index == 0:
        e.eax, e.ebx, e.ecx = 0, 1, (LEVEL_TYPE_SMT << 8)
    elif e.index == 1:
        e.eax, e.ebx = topo.apic_id_bits, topo.cpu_count
        e.ecx = (LEVEL_TYPE_CORE << 8) | 1
    else:
        e.eax, e.ebx, e.ecx = 0, 0, e.index


def _amd_sizes(e: KvmCpuidEntry2, topo: Topology) -> None:
    e.ecx = (topo.apic_id_bits << 12) | (topo.cpu_count - 1)


def _amd_topology(e: KvmCpuidEntry2, topo: Topology) -> None:
    e.eax = topo.cpu_index
    e.ebx = topo.cpu_index & 0xFF  # one thread per core: core id = cpu index
    e.ecx = 0  # one node


def vcpu_cpuid(supported: list[KvmCpuidEntry2], topo: Topology) -> list[KvmCpuidEntry2]:
    """The CPUID entries for one vCPU: the host's supported set with ember's topology."""
    out = []
    for src in supported:
        e = _copy(src)
        fn = e.function
        if fn == LEAF_FEATURES:
            _leaf1(e, topo)
        elif fn == LEAF_CACHE_PARAMS:
            _leaf4(e, topo)
        elif fn in (LEAF_THERMAL, LEAF_PMU):
            e.eax = e.ebx = e.ecx = e.edx = 0
        elif fn in (LEAF_TOPOLOGY, LEAF_TOPOLOGY_V2):
            _topology_leaf(e, topo)
        elif fn == LEAF_AMD_SIZES:
            _amd_sizes(e, topo)
        elif fn == LEAF_AMD_TOPOLOGY:
            _amd_topology(e, topo)
        out.append(e)
    return out


def without_xsave(entries: list[KvmCpuidEntry2]) -> list[KvmCpuidEntry2]:
    """The same CPUID table with XSAVE, and everything that needs XSAVE state, hidden.

    Used when ember itself runs inside QEMU's software emulation (TCG) with nested SVM:
    there, a guest's CPUID leaf 0xD does not follow the XCR0 it sets (the size in EBX
    stays at the x87+SSE value), Linux finds the XSAVE layout inconsistent and turns XSAVE
    off again during boot, and that switch now and then ends in a triple fault. A guest
    that never sees XSAVE uses FXSAVE from the start.
    """
    out = []
    for src in entries:
        e = _copy(src)
        if e.function == LEAF_XSTATE:
            continue
        if e.function == LEAF_FEATURES:
            e.ecx &= ~LEAF1_ECX_XSAVE_FAMILY & 0xFFFFFFFF
        elif e.function == LEAF_EXT_FEATURES and e.index == 0:
            e.ebx &= ~LEAF7_EBX_AVX_FAMILY & 0xFFFFFFFF
            e.ecx &= ~LEAF7_ECX_AVX_FAMILY & 0xFFFFFFFF
        elif e.function == LEAF_AMD_EXT_FEATURES:
            e.ecx &= ~AMD_ECX_VEX_FAMILY & 0xFFFFFFFF
        out.append(e)
    return out
