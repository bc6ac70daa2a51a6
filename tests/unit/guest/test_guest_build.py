"""guest/build.py: the cpio writer, the rootfs builder and the kernel config checks.

These run without a kernel build or KVM; the image tests need Debian's cpio, e2fsprogs,
busybox-static and openssl (all installed by `make deps`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "guest" / "build.py"


def _load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ember_guest_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gb = _load_build_module()


def _need(*tools: str) -> None:
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (run `make deps`)")


def _run(*command: str, stdin: bytes | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, cwd=cwd, check=True)
    return result.stdout.decode()


# --- cpio ------------------------------------------------------------------------------


@pytest.fixture
def fake_busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    path.write_bytes(b"\x7fELF not really busybox")
    return path


def test_initramfs_lists_with_debian_cpio(fake_busybox: Path) -> None:
    _need("cpio")
    archive = gb.newc_archive(gb.initramfs_entries(busybox=fake_busybox))
    listing = {line.split()[-1] if "->" not in line else line.split()[-3]: line
               for line in _run("cpio", "-itv", stdin=archive).splitlines()}
    assert listing["init"].startswith("-rwxr-xr-x")
    assert re.match(r"crw------- .* 5,\s+1 ", listing["dev/console"])
    assert listing["bin/sh"].startswith("l") and listing["bin/sh"].endswith("-> busybox")
    assert listing["bin/busybox"].startswith("-rwxr-xr-x")
    for applet in ("mount", "nproc", "devmem", "reboot", "poweroff", "cttyhack", "setsid"):
        assert f"bin/{applet}" in listing


def test_newc_contents_survive_extraction(tmp_path: Path) -> None:
    _need("cpio")
    files = {f"d/f{n}": bytes(range(n)) for n in (0, 1, 2, 3, 4, 5, 255)}
    entries = [gb.cpio_dir("d")] + [gb.cpio_file(name, data) for name, data in files.items()]
    entries.append(gb.cpio_symlink("d/link", "f3"))
    _run("cpio", "-id", stdin=gb.newc_archive(entries), cwd=tmp_path)
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data
    assert os.readlink(tmp_path / "d/link") == "f3"


def test_newc_archive_ends_with_trailer_and_is_aligned() -> None:
    archive = gb.newc_archive([gb.cpio_file("abc", b"12345")])
    assert archive.startswith(b"070701")
    assert b"TRAILER!!!\0" in archive[-128:]
    assert len(archive) % 4 == 0


def test_init_script_is_valid_busybox_sh() -> None:
    if not gb.BUSYBOX.is_file():
        pytest.skip("needs busybox-static (run `make deps`)")
    _run(str(gb.BUSYBOX), "sh", "-n", str(gb.INITRAMFS_INIT))
    text = gb.INITRAMFS_INIT.read_text()
    assert 'echo "EMBER-GUEST-INIT nproc=$(nproc)"' in text
    assert "devmem 0xc0000000 8 123" in text
    for action in ("reboot", "poweroff", "panic", "shell", "run"):
        assert f"{action})" in text or f"{action}|" in text


# --- rootfs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need("mkfs.ext4", "debugfs", "e2fsck", "openssl")
    if not gb.BUSYBOX.is_file():
        pytest.skip("needs busybox-static (run `make deps`)")
    image = tmp_path_factory.mktemp("rootfs") / "rootfs.ext4"
    gb.build_rootfs(image)
    return image


def _debugfs(image: Path, request: str) -> str:
    return _run("debugfs", "-R", request, str(image))


def test_rootfs_passes_fsck(rootfs: Path) -> None:
    subprocess.run(["e2fsck", "-fn", str(rootfs)], capture_output=True, check=True)
    assert rootfs.stat().st_size == gb.ROOTFS_SIZE_MIB * 1024 * 1024


def test_rootfs_has_busybox_init_and_getty(rootfs: Path) -> None:
    assert 'Fast link dest: "/bin/busybox"' in _debugfs(rootfs, "stat /sbin/init")
    busybox = _debugfs(rootfs, "stat /bin/busybox")
    assert re.search(r"Mode:\s+0755", busybox) and re.search(r"User:\s+0\s+Group:\s+0", busybox)
    assert re.search(r"Mode:\s+0755", _debugfs(rootfs, "stat /etc/init.d/rcS"))
    inittab = _debugfs(rootfs, "cat /etc/inittab")
    assert re.search(r"^ttyS0::respawn:/sbin/getty .*ttyS0", inittab, re.M)
    assert "::ctrlaltdel:/sbin/reboot" in inittab
    assert _debugfs(rootfs, "cat /etc/hostname").strip() == "ember"


def test_rootfs_root_password_is_root(rootfs: Path) -> None:
    shadow = _debugfs(rootfs, "cat /etc/shadow")
    hashed = shadow.split(":")[1]
    assert shadow.startswith("root:$6$")
    salt = hashed.split("$")[2]
    assert _run("openssl", "passwd", "-6", "-salt", salt, "root").strip() == hashed
    assert _run("openssl", "passwd", "-6", "-salt", salt, "wrong").strip() != hashed
    assert "root:x:0:0:" in _debugfs(rootfs, "cat /etc/passwd")


# --- kernel config ---------------------------------------------------------------------

# The brief for the guest kernel, as options that must end up built in.
REQUIRED = (
    "64BIT SMP SERIAL_8250 SERIAL_8250_CONSOLE SERIO_I8042 KEYBOARD_ATKBD ACPI "
    "VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES VIRTIO_BLK VIRTIO_NET VIRTIO_VSOCKETS "
    "VIRTIO_BALLOON HW_RANDOM_VIRTIO EXT4_FS DEVTMPFS DEVTMPFS_MOUNT DEVMEM BLK_DEV_INITRD "
    "BINFMT_ELF BINFMT_SCRIPT PROC_FS SYSFS TMPFS UNIX INET KVM_GUEST PARAVIRT X86_MPPARSE "
    "PCI PRINTK MAGIC_SYSRQ"
).split()


def test_fragment_requires_every_guest_feature() -> None:
    fragment = gb.parse_config(gb.CONFIG_FRAGMENT.read_text())
    assert {f"CONFIG_{name}" for name in REQUIRED} <= {k for k, v in fragment.items() if v == "y"}
    assert fragment["CONFIG_MODULES"] is None
    assert int(fragment["CONFIG_NR_CPUS"]) >= 32


def _complete_config() -> str:
    fragment = gb.CONFIG_FRAGMENT.read_text()
    return str(gb.merge_config("CONFIG_CC_VERSION_TEXT=\"gcc\"\nCONFIG_MODULES=y\n", fragment))


def test_check_config_accepts_a_config_that_honours_the_fragment() -> None:
    gb.check_config(gb.CONFIG_FRAGMENT.read_text(), _complete_config())


def test_check_config_rejects_a_dropped_option() -> None:
    config = _complete_config().replace("CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n", "")
    with pytest.raises(gb.GuestBuildError, match="CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"):
        gb.check_config(gb.CONFIG_FRAGMENT.read_text(), config)


def test_check_config_rejects_an_option_forced_on() -> None:
    config = _complete_config() + "CONFIG_MODULES=y\n"
    with pytest.raises(gb.GuestBuildError, match="CONFIG_MODULES: wanted unset, got y"):
        gb.check_config(gb.CONFIG_FRAGMENT.read_text(), config)


def test_merge_config_overrides_base_values() -> None:
    merged = gb.merge_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=3\n",
                             "# CONFIG_A is not set\nCONFIG_B=y\n")
    assert gb.parse_config(merged) == {"CONFIG_A": None, "CONFIG_B": "y", "CONFIG_C": "3"}


def test_kernel_cache_key_follows_fragment_and_source() -> None:
    key = gb.kernel_key("CONFIG_A=y\n", "src1")
    assert key == gb.kernel_key("CONFIG_A=y\n", "src1")
    assert key != gb.kernel_key("CONFIG_A=y\nCONFIG_B=y\n", "src1")
    assert key != gb.kernel_key("CONFIG_A=y\n", "src2")
