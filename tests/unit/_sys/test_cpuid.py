"""CPUID executed in-process agrees with what the kernel reports in /proc/cpuinfo."""

from ember._sys.cpuid import cpuid, hypervisor_signature


def test_vendor_matches_proc_cpuinfo() -> None:
    _max, ebx, ecx, edx = cpuid(0)
    vendor = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx)).decode()
    with open("/proc/cpuinfo") as f:
        line = next(ln for ln in f if ln.startswith("vendor_id"))
    assert line.split(":")[1].strip() == vendor


def test_hypervisor_signature_matches_cpuinfo_flag() -> None:
    with open("/proc/cpuinfo") as f:
        flags = next(ln for ln in f if ln.startswith("flags")).split()
    assert bool(hypervisor_signature()) == ("hypervisor" in flags)
