"""The vCPU exit loop on the host's real /dev/kvm, running a tiny real-mode guest.

The host KVM may be one that cannot boot Linux, but it runs these few instructions; the test
drives the real KVM_RUN loop, port-I/O dispatch, string I/O, unowned ports and the i8042 reset.
"""

import os
import threading

import pytest

from ember.devices.legacy.i8042 import I8042
from ember.devices.legacy.serial import REGISTER_COUNT, Serial16550
from ember.kvm import Kvm, VcpuFd
from ember.memory import GuestMemory
from ember.vmm.bus import MmioBus, PioBus
from ember.vmm.vcpu import Vcpu, install_kick_handler

CODE = 0x1000
DATA = 0x2000
GUEST = bytes.fromhex(
    "baf803"      # mov dx, 0x3f8
    "b068ee"      # mov al, 'h'; out dx, al
    "b069ee"      # mov al, 'i'; out dx, al
    "e480"        # in al, 0x80 (nobody owns it: all-ones)
    "ee"          # out dx, al
    "be0020"      # mov si, 0x2000
    "b90300"      # mov cx, 3
    "f36e"        # rep outsb
    "bb00f0"      # mov bx, 0xf000
    "8edb"        # mov ds, bx
    "a10000"      # mov ax, [0] = 0xf0000, outside guest memory: MMIO nobody owns
    "ee"          # out dx, al
    "b0fe"        # mov al, 0xfe
    "e664"        # out 0x64, al (i8042: pulse reset)
    "f4"          # hlt
)


def _start_in_real_mode(fd: VcpuFd, rip: int) -> None:
    """Flat real mode: code and data segments at 0, execution from ``rip``."""
    sregs = fd.get_sregs()
    sregs.cs.base, sregs.cs.selector = 0, 0
    sregs.ds.base, sregs.ds.selector = 0, 0
    fd.set_sregs(sregs)
    regs = fd.get_regs()
    regs.rip, regs.rflags = rip, 2
    fd.set_regs(regs)


def _kvm_or_fail() -> Kvm:
    if not os.path.exists("/dev/kvm"):
        if os.environ.get("CI"):
            pytest.fail("/dev/kvm is missing on a CI machine")
        pytest.skip("no /dev/kvm on this machine")
    return Kvm()


def test_tiny_guest_serial_unowned_io_and_reset() -> None:
    kvm = _kvm_or_fail()
    vm = kvm.create_vm()
    vm.create_irqchip()
    mem = GuestMemory([(0, 0x10000)])
    vm.set_user_memory_region(0, 0, 0x10000, mem.regions[0].host_addr)
    mem.write(CODE, GUEST)
    mem.write(DATA, b"abc")
    out = bytearray()
    resets = threading.Event()
    pio, mmio = PioBus(), MmioBus()
    pio.register(0x3F8, REGISTER_COUNT, Serial16550(lambda: None, out.extend), threading.Lock())
    pio.register(0x60, 5, I8042(lambda: None, resets.set), threading.Lock())
    install_kick_handler()
    fd = vm.create_vcpu(0)
    _start_in_real_mode(fd, CODE)
    codes: list[int] = []
    vcpu = Vcpu(fd, pio, mmio, codes.append)
    vcpu.start()
    assert resets.wait(10), "the guest's i8042 reset never arrived"
    vcpu.stopping = True
    vcpu.kick()
    vcpu.join(5)
    assert bytes(out) == b"hi\xffabc\xff"
    assert vcpu.unhandled_pio == 1 and vcpu.unhandled_mmio >= 1
    counts = vcpu.counters()
    assert counts["io"] >= 7 and counts["mmio"] >= 1
    assert codes == []  # stopped by the host, not by a guest exit


# THR writes while the THR-empty interrupt is off go to KVM's coalesced ring; the next
# exit applies them first; with the interrupt on they exit; a timer applies the last ones.
COALESCING_GUEST = bytes.fromhex(
    "baf803" "b068ee" "b069ee"  # mov dx, 0x3f8; out 'h'; out 'i'   (coalesced)
    "bafd03" "ec"               # mov dx, 0x3fd; in al, dx (LSR: exits, applies "hi")
    "baf903" "b002ee"           # mov dx, 0x3f9; out 2 (IER: THR-empty interrupt on)
    "baf803" "b071ee"           # out 'q' to THR: exits, raises the interrupt
    "baf903" "b000ee"           # IER = 0: THR writes coalesced again
    "baf803" "b07aee"           # out 'z' (coalesced)
    "ebfe"                      # jmp $: no more exits; only the timer applies 'z'
)


def test_coalesced_thr_writes_keep_order_and_interrupt_semantics() -> None:
    from ember.kvm.coalesced import CoalescedRing
    from ember.kvm.ioctls import KVM_CAP_COALESCED_MMIO, KVM_CAP_COALESCED_PIO
    from ember.vmm.coalesced_io import CoalescedPorts
    from ember.vmm.event_loop import EventLoop

    kvm = _kvm_or_fail()
    if not kvm.check_extension(KVM_CAP_COALESCED_PIO):
        pytest.skip("this KVM has no coalesced port I/O")
    vm = kvm.create_vm()
    vm.create_irqchip()
    mem = GuestMemory([(0, 0x10000)])
    vm.set_user_memory_region(0, 0, 0x10000, mem.regions[0].host_addr)
    mem.write(CODE, COALESCING_GUEST)
    out = bytearray()
    irqs: list[int] = []
    pio = PioBus()
    holder: list[CoalescedPorts] = []
    serial = Serial16550(lambda: irqs.append(len(out)), out.extend,
                         lambda on: holder[0].set_port(0x3F8, not on))
    pio.register(0x3F8, REGISTER_COUNT, serial, threading.Lock())
    install_kick_handler()
    fd = vm.create_vcpu(0)
    ring = CoalescedRing(fd.run_map, kvm.check_extension(KVM_CAP_COALESCED_MMIO))
    holder.append(CoalescedPorts(vm, ring, pio.ports))
    holder[0].set_port(0x3F8, True)
    _start_in_real_mode(fd, CODE)
    vcpu = Vcpu(fd, pio, MmioBus(), lambda code: None)
    vcpu.coalesced = holder[0]
    loop = EventLoop()
    loop.start()
    holder[0].start_timer(loop)
    vcpu.start()
    try:
        for _ in range(100):
            if bytes(out) == b"hiqz":
                break
            threading.Event().wait(0.05)
    finally:
        vcpu.stopping = True
        vcpu.kick()
        vcpu.join(5)
        loop.stop()
    assert bytes(out) == b"hiqz"
    assert irqs == [2, 3]  # on enabling (THR empty), then right as 'q' was written
    assert vcpu.counters()["io"] == 4  # LSR read, IER on, 'q', IER off: no exit per 'h' 'i' 'z'
    assert holder[0].applied == 3
