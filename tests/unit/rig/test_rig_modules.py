"""Module load order from modules.dep."""

import pytest

from ember.rig import _modules
from ember.rig._kernel import WANTED_MODULES

# Lines as depmod writes them for Debian's 6.1 amd64 kernel (trimmed to what L1 loads).
SAMPLE = """\
kernel/arch/x86/kvm/kvm.ko: kernel/virt/lib/irqbypass.ko
kernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko kernel/virt/lib/irqbypass.ko \
kernel/drivers/crypto/ccp/ccp.ko
kernel/virt/lib/irqbypass.ko:
kernel/drivers/crypto/ccp/ccp.ko:
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko \
kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko
kernel/net/9p/9pnet_virtio.ko: kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko kernel/net/9p/9pnet.ko
kernel/fs/9p/9p.ko: kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko kernel/net/9p/9pnet.ko
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/net/tun.ko:
kernel/drivers/net/tap.ko:
kernel/drivers/vhost/vhost_iotlb.ko:
kernel/drivers/vhost/vhost.ko: kernel/drivers/vhost/vhost_iotlb.ko
kernel/drivers/vhost/vhost_net.ko: kernel/drivers/net/tun.ko kernel/drivers/vhost/vhost.ko \
kernel/drivers/vhost/vhost_iotlb.ko kernel/drivers/net/tap.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/drivers/vhost/vhost_vsock.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko \
kernel/net/vmw_vsock/vsock.ko kernel/drivers/vhost/vhost.ko kernel/drivers/vhost/vhost_iotlb.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/sound/unrelated.ko.xz: kernel/fs/netfs/netfs.ko
"""

WANTED = " ".join(WANTED_MODULES).split()


def _table() -> dict[str, _modules.ModuleDep]:
    return _modules.parse_modules_dep(SAMPLE)


def test_names_normalise_dashes_and_suffixes() -> None:
    assert _modules.module_name("kernel/arch/x86/kvm/kvm-amd.ko") == "kvm_amd"
    assert _modules.module_name("a/b/9pnet_virtio.ko.xz") == "9pnet_virtio"
    assert _modules.module_name("x.ko.zst") == "x"


def test_parse_keeps_paths_and_dependencies() -> None:
    table = _table()
    assert table["kvm_amd"].path == "kernel/arch/x86/kvm/kvm-amd.ko"
    assert table["kvm_amd"].depends == ("kvm", "irqbypass", "ccp")
    assert table["irqbypass"].depends == ()
    assert table["unrelated"].path.endswith(".ko.xz")


def test_every_module_loads_after_its_dependencies() -> None:
    table = _table()
    order = _modules.load_order(WANTED, table)
    assert len(order) == len(set(order))
    for i, name in enumerate(order):
        assert set(table[name].depends) <= set(order[:i]), name


def test_order_follows_the_wanted_list_where_dependencies_allow() -> None:
    order = _modules.load_order(WANTED, _table())
    assert order[:4] == ["irqbypass", "kvm", "ccp", "kvm_amd"]
    assert order.index("9p") < order.index("overlay")
    assert {"tap", "vhost_iotlb", "vsock", "llc", "stp"} <= set(order)
    assert "unrelated" not in order


def test_builtin_modules_are_skipped() -> None:
    builtin = _modules.parse_builtin("kernel/drivers/virtio/virtio.ko\nkernel/fs/netfs/netfs.ko\n")
    order = _modules.load_order(WANTED, _table(), builtin)
    assert "virtio" not in order and "netfs" not in order
    assert "virtio_pci" in order


def test_unknown_module_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="no_such"):
        _modules.load_order(["no-such"], _table())
