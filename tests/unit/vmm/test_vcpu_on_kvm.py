"""The vCPU exit loop on the host's real /dev/kvm, running a tiny real-mode guest.

The host KVM may be one that cannot boot Linux, but it runs these few instructions; the test
drives the real KVM_RUN loop, port-I/O dispatch, string I/O, unowned ports and the i8042 reset.
"""

import os
import threading

import pytest

from ember.devices.legacy.i8042 import I8042
from ember.devices.legacy.serial import REGISTER_COUNT, Serial16550
from ember.kvm import Kvm
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
    sregs = fd.get_sregs()
    sregs.cs.base, sregs.cs.selector = 0, 0
    sregs.ds.base, sregs.ds.selector = 0, 0
    fd.set_sregs(sregs)
    regs = fd.get_regs()
    regs.rip, regs.rflags = CODE, 2
    fd.set_regs(regs)
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
