"""Build a microVM from a :class:`VmConfig` and run it.

``build_vm`` does every step that can fail on bad input before any vCPU runs: it opens KVM,
maps guest memory, loads the kernel and initrd, wires the legacy devices and configures
each vCPU. ``Vm.start`` then launches one thread per vCPU.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from ember._sys.cpuid import hypervisor_signature
from ember.arch.x86_64 import cpuid, layout, msrs, regs
from ember.arch.x86_64.acpi import AcpiConfigError, MmioDevice
from ember.devices.boot_timer import BootTimer
from ember.devices.legacy.i8042 import I8042
from ember.devices.legacy.serial import IER_THRE, REGISTER_COUNT, Serial16550
from ember.devices.legacy.serial import RBR_THR as SERIAL_THR
from ember.devices.rate_limiter import RateLimiterConfig
from ember.devices.virtio.block import BackingFileError, Block, FileBackend
from ember.kvm import Kvm, KvmError, VcpuFd, VmFd
from ember.kvm._structs import KvmCpuidEntry2
from ember.kvm.coalesced import CoalescedRing
from ember.kvm.ioctls import KVM_CAP_COALESCED_MMIO, KVM_CAP_COALESCED_PIO
from ember.loader import LoaderError
from ember.memory import GuestMemory
from ember.vmm.boot import BootPlan, load_boot_image
from ember.vmm.bus import MmioBus, PioBus
from ember.vmm.coalesced_io import FINAL_DRAIN_WAIT_S, CoalescedPorts
from ember.vmm.config import Drive, VmConfig
from ember.vmm.console import InputPump, RawTerminal, SerialSink
from ember.vmm.device_manager import DeviceLimitError, DeviceManager, EdgeIrq, Slot
from ember.vmm.event_loop import EventLoop
from ember.vmm.vcpu import EXIT_OK, Vcpu, install_kick_handler

log = logging.getLogger("ember.vmm")

# The i8042 answers at 0x60 (data) and 0x64 (status/command): one 5-port window.
I8042_WINDOW = 5
MIB = 1 << 20
# How long ending the VM waits for each vCPU thread to leave KVM_RUN.
VCPU_JOIN_TIMEOUT_S = 2.0


class StartError(Exception):
    """The microVM cannot be built or started; the message says why and what to fix."""


class Vm:
    """A built microVM. Thread-safe: the API, signal handlers and vCPUs may call it."""

    def __init__(self, kvm: Kvm, vm_fd: VmFd, memory: GuestMemory, vcpus: list[Vcpu],
                 serial: Serial16550, i8042: I8042, locks: dict[str, threading.Lock],
                 serial_in: int | None, sink: SerialSink) -> None:
        self._kvm, self._vm_fd, self.memory = kvm, vm_fd, memory
        self.vcpus = vcpus
        self.serial, self.i8042 = serial, i8042
        self._locks = locks
        self._sink = sink
        self._serial_in = serial_in
        self._terminal = RawTerminal(serial_in) if serial_in is not None else None
        self._pump: InputPump | None = None
        self._done = threading.Event()
        self._exit_code: int | None = None
        self._finishing = False
        self._lock = threading.Lock()
        self.state = "Not started"
        self._loop: EventLoop | None = None
        self.blocks: dict[str, Block] = {}
        self.coalesced: CoalescedPorts | None = None
        self.start_wall = 0.0
        self.start_cpu = 0.0

    def attach_devices(self, loop: EventLoop, blocks: dict[str, Block],
                       coalesced: CoalescedPorts | None = None) -> None:
        self._loop, self.blocks, self.coalesced = loop, blocks, coalesced

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.start_wall, self.start_cpu = time.monotonic(), time.process_time()
        if self._loop is not None:
            self._loop.start()
            if self.coalesced is not None:
                self.coalesced.start_timer(self._loop)
        if self._serial_in is not None:
            if self._terminal is not None:
                self._terminal.enter()
            self._pump = InputPump(self._serial_in, self._receive_input)
            self._pump.start()
        self.state = "Running"
        for vcpu in self.vcpus:
            vcpu.start()

    def pause(self) -> None:
        for vcpu in self.vcpus:
            vcpu.resumed.clear()
            vcpu.paused.set()
            vcpu.kick()
        self.state = "Paused"

    def resume(self) -> None:
        for vcpu in self.vcpus:
            vcpu.paused.clear()
            vcpu.resumed.set()
        self.state = "Running"

    def send_ctrl_alt_del(self) -> None:
        with self._locks["i8042"]:
            if not self.i8042.ctrl_alt_del():
                raise StartError("the i8042 buffer is full; try SendCtrlAltDel again")

    def update_drive(self, drive_id: str, path_on_host: str | None,
                     rate_limiter: RateLimiterConfig | None = None) -> None:
        """PATCH /drives after boot: swap (or re-read the size of) the backing file, and/or
        change the rate limiter."""
        block = self.blocks.get(drive_id)
        if block is None:
            raise StartError(f"no block device {drive_id!r} in this microVM")
        if rate_limiter is not None:
            block.update_limiter(rate_limiter)
            if path_on_host is None:
                return
        path = block.backend.path if path_on_host is None else path_on_host
        try:
            backend = FileBackend(path, block.backend.read_only)
        except BackingFileError as err:
            block.metrics["update_fails"] += 1
            raise StartError(str(err)) from None
        block.swap_backend(backend)

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._exit_code

    def stop(self) -> None:
        """Stop every vCPU (the host asked: not a failure unless one already happened)."""
        self._finish(EXIT_OK if self._exit_code is None else self._exit_code, kick=True)
        self._done.wait(VCPU_JOIN_TIMEOUT_S * (len(self.vcpus) + 1))  # if another thread ends it

    # -- internals ---------------------------------------------------------------------
    def _finish(self, code: int, kick: bool = True) -> None:
        """End the VM once: stop the vCPUs and helpers, restore the terminal, log the exits,
        and only then let ``wait`` return (the caller may exit the process right away).
        ``wait`` returns even if a step fails: a VMM whose guest has ended never hangs."""
        with self._lock:
            if self._exit_code is None:
                self._exit_code = code
            if self._finishing:
                return
            self._finishing = True
            code = self._exit_code
        try:
            self._stop_everything(kick)
            exits = ", ".join(f"{k}={v}" for k, v in sorted(self.exit_counts().items()))
            log.info("Vmm is stopping with exit code %d. vCPU exits: %s", code,
                     exits or "none")
            if self.coalesced is not None:
                log.info("Port writes taken from the coalesced ring (no exit): %d",
                         self.coalesced.applied)
        finally:
            self.state = "Stopped"
            self._done.set()

    def _stop_everything(self, kick: bool) -> None:
        for vcpu in self.vcpus:
            vcpu.stopping = True
            vcpu.resumed.set()
            if kick:
                vcpu.kick()
        if self._pump is not None:
            _step("stopping the serial input", self._pump.stop)
        if self.coalesced is not None:
            self.coalesced.stop_timer()
        if self._loop is not None:
            _step("stopping the device thread", self._loop.stop)
        if self._terminal is not None:
            _step("restoring the terminal", self._terminal.restore)
        for vcpu in self.vcpus:
            if not vcpu.is_current_thread():
                vcpu.join(VCPU_JOIN_TIMEOUT_S)
        if self.coalesced is not None and not self.coalesced.drain(FINAL_DRAIN_WAIT_S):
            log.warning("serial output still queued at exit could not be written")

    def on_vcpu_exit(self, code: int) -> None:
        """A vCPU ended the VM (guest reset, shutdown, or a fatal exit)."""
        self._finish(code)

    def on_reset(self) -> None:
        """The guest asked the i8042 to reset the CPU: the microVM ends, successfully."""
        log.info("Vmm is stopping: guest requested a reset through the i8042")
        threading.Thread(target=self._finish, args=(0,), daemon=True).start()

    def _receive_input(self, data: bytes) -> int:
        with self._locks["serial"]:
            return self.serial.receive(data)

    def exit_counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for vcpu in self.vcpus:
            for name, n in vcpu.counters().items():
                total[name] = total.get(name, 0) + n
        return total

    def counters(self) -> dict[str, dict[str, int]]:
        exits = self.exit_counts()
        return {
            "uart": dict(self.serial.counters),
            "i8042": dict(self.i8042.counters),
            "vcpu": {"exits_" + k: v for k, v in exits.items()}
            | {"unhandled_pio": sum(v.unhandled_pio for v in self.vcpus),
               "unhandled_mmio": sum(v.unhandled_mmio for v in self.vcpus)},
            "vmm": {"serial_bytes_dropped": self._sink.dropped},
        } | {f"block_{drive_id}": dict(b.metrics) for drive_id, b in self.blocks.items()}


def _step(what: str, action: Callable[[], object]) -> None:
    """One step of ending the VM: a failure is logged and the steps after it still run."""
    try:
        action()
    except Exception:
        log.exception("ending the VM: %s failed", what)


def _configure_vcpu(fd: VcpuFd, supported: list[KvmCpuidEntry2], plan: BootPlan,
                    count: int) -> None:
    fd.set_cpuid(cpuid.vcpu_cpuid(supported, cpuid.Topology(fd.index, count)))
    fd.set_msrs(msrs.boot_msrs())
    fd.set_regs(regs.boot_regs(plan.entry))
    fd.set_sregs(regs.boot_sregs(fd.get_sregs(), plan.gdt))
    fd.set_fpu(regs.boot_fpu())
    fd.set_lapic(regs.configure_lint(fd.get_lapic()))


def _guest_cpuid(kvm: Kvm) -> list[KvmCpuidEntry2]:
    supported = kvm.supported_cpuid()
    if hypervisor_signature() == cpuid.TCG_SIGNATURE:
        log.warning("ember runs under QEMU's software emulation (TCG), whose nested "
                    "virtualization mishandles guest XSAVE state: hiding XSAVE and AVX "
                    "from the guest")
        supported = cpuid.without_xsave(supported)
    return supported


def _boot_logger(vm_start: list[Vm]) -> BootTimer:
    def on_boot() -> None:
        vm = vm_start[0]
        wall_us = int((time.monotonic() - vm.start_wall) * 1e6)
        cpu_us = int((time.process_time() - vm.start_cpu) * 1e6)
        log.info("Guest-boot-time = %6d us %d ms, %6d CPU us %d CPU ms",
                 wall_us, wall_us // 1000, cpu_us, cpu_us // 1000)
    return BootTimer(on_boot)


def build_vm(config: VmConfig, *, serial_in: int | None = None, serial_out: int | None = None,
             boot_timer: bool = False) -> Vm:
    """Build (but do not start) the microVM described by ``config``."""
    if config.boot_source is None:
        raise StartError("no boot source: configure the kernel with PUT /boot-source or "
                         "'boot-source' in the config file")
    try:
        return _build(config, serial_in, sys.stdout.fileno() if serial_out is None else serial_out,
                      boot_timer)
    except (LoaderError, KvmError, BackingFileError, DeviceLimitError, AcpiConfigError) as err:
        raise StartError(str(err)) from None


def _root_cmdline(drives: list[Drive]) -> str:
    """Firecracker's root= argument for the root drive (the first one attached: /dev/vda)."""
    root = next((d for d in drives if d.is_root_device), None)
    if root is None:
        return ""
    device = f"PARTUUID={root.partuuid}" if root.partuuid else "/dev/vda"
    return f"root={device} {'ro' if root.is_read_only else 'rw'}"


def _attach_drives(manager: DeviceManager, drives: list[Drive]) -> tuple[dict[str, Block],
                                                                          list[Slot]]:
    blocks: dict[str, Block] = {}
    slots = []
    ordered = sorted(drives, key=lambda d: not d.is_root_device)  # the root drive is vda
    for drive in ordered:
        block = Block(drive.drive_id, FileBackend(drive.path_on_host, drive.is_read_only),
                      writeback=drive.cache_type == "Writeback", limiter=drive.rate_limiter)
        block.schedule = manager.loop.call_later
        transport, slot = manager.attach(block, _processor(block))
        block.signal_used = transport.signal_used
        block.needs_reset = transport.needs_reset
        block.config_changed = transport.signal_config_change
        blocks[drive.drive_id] = block
        slots.append(slot)
    return blocks, slots


def _processor(block: Block) -> Callable[[int], None]:
    def process(_queue: int) -> None:
        block.process_queue()
    return process


def _full_cmdline(base: str, drives: list[Drive], slots: list[Slot]) -> str:
    parts = [base, _root_cmdline(drives), *(slot.cmdline_entry() for slot in slots)]
    return " ".join(p for p in parts if p)


def _coalesced_ports(kvm: Kvm, vm_fd: VmFd, vcpus: list[Vcpu],
                     pio: PioBus) -> CoalescedPorts | None:
    """The coalesced-write ring, where KVM offers coalesced port I/O (None otherwise)."""
    if not vcpus or not kvm.check_extension(KVM_CAP_COALESCED_PIO):
        return None
    ring = CoalescedRing(vcpus[0].fd.run_map, kvm.check_extension(KVM_CAP_COALESCED_MMIO))
    ports = CoalescedPorts(vm_fd, ring, pio.ports)
    for vcpu in vcpus:
        vcpu.coalesced = ports
    return ports


def _build(config: VmConfig, serial_in: int | None, serial_out: int, boot_timer: bool) -> Vm:
    boot, machine = config.boot_source, config.machine_config
    assert boot is not None
    mem_size = machine.mem_size_mib * MIB
    kvm = Kvm()
    kvm.require_capabilities()
    vm_fd = kvm.create_vm()
    vm_fd.set_tss_address(layout.KVM_TSS_ADDRESS)
    vm_fd.create_irqchip()
    vm_fd.create_pit2()
    memory = GuestMemory(layout.ram_regions(mem_size))
    for slot, region in enumerate(memory.regions):
        vm_fd.set_user_memory_region(slot, region.base, region.size, region.host_addr)
    pio, mmio = PioBus(), MmioBus()
    loop = EventLoop()
    blocks, slots = _attach_drives(DeviceManager(vm_fd, memory, mmio, loop), config.drives)
    cmdline = _full_cmdline(boot.cmdline, config.drives, slots)
    plan = load_boot_image(memory, mem_size, machine.vcpu_count, boot.kernel_image_path,
                           boot.initrd_path, cmdline,
                           [MmioDevice(s.base, s.size, s.gsi) for s in slots])
    locks = {"serial": threading.Lock(), "i8042": threading.Lock(), "timer": threading.Lock()}
    sink = SerialSink(serial_out)
    coalesced: list[CoalescedPorts] = []

    def thre_irq_changed(enabled: bool) -> None:
        if coalesced:
            coalesced[0].set_port(layout.SERIAL_COM1_PORT + SERIAL_THR, not enabled)

    serial = Serial16550(EdgeIrq(vm_fd, layout.SERIAL_COM1_IRQ), sink, thre_irq_changed)
    holder: list[Vm] = []
    i8042 = I8042(EdgeIrq(vm_fd, layout.I8042_IRQ), lambda: holder[0].on_reset())
    pio.register(layout.SERIAL_COM1_PORT, REGISTER_COUNT, serial, locks["serial"])
    pio.register(layout.I8042_DATA_PORT, I8042_WINDOW, i8042, locks["i8042"])
    if boot_timer:
        mmio.register(layout.BOOT_TIMER_START, layout.MMIO_DEVICE_WINDOW, _boot_logger(holder),
                      locks["timer"])
    install_kick_handler()
    supported = _guest_cpuid(kvm)
    vcpus = []
    for index in range(machine.vcpu_count):
        fd = vm_fd.create_vcpu(index)
        _configure_vcpu(fd, supported, plan, machine.vcpu_count)
        vcpus.append(Vcpu(fd, pio, mmio, lambda code: holder[0].on_vcpu_exit(code)))
    ports = _coalesced_ports(kvm, vm_fd, vcpus, pio)
    if ports is not None:
        coalesced.append(ports)  # from now on the UART's IER writes switch the port
        if not serial.ier & IER_THRE:
            ports.set_port(layout.SERIAL_COM1_PORT + SERIAL_THR, True)
    vm = Vm(kvm, vm_fd, memory, vcpus, serial, i8042, locks, serial_in, sink)
    vm.attach_devices(loop, blocks, ports)
    holder.append(vm)
    return vm
