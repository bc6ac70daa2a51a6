"""The L1 kernel: Debian's `linux-image-*-amd64`, fetched with apt-get and cached.

Layout of a cache entry, `<cache>/<package version>/`:
    vmlinuz          the kernel image (bzImage)
    vmlinux          the same kernel uncompressed (ELF), when it could be extracted
    release          the kernel release string (`6.1.0-56-amd64`)
    modules/         the modules the L1 init loads, uncompressed, and `order` (load order)
An entry is built in a temporary directory beside it and renamed into place, so a
half-built entry is never used; concurrent builders race harmlessly (one rename wins).
"""

import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ember.rig import _modules
from ember.rig.errors import KernelDownloadError, KernelPackageNotFoundError, ModuleMissingError

META_PACKAGE = "linux-image-amd64"
APT_LISTS = Path("/var/lib/apt/lists")
XZ_MAGIC = b"\xfd7zXZ\x00"  # xz file format, section 2.1.1.1
# ELF note owner of the PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); present with CONFIG_PVH.
_PVH_NOTE_NAME = b"Xen\0"

# Load order groups: KVM with AMD SVM; virtio PCI and 9p for the host file systems;
# what ember's guests need inside L1 (overlay for the writable root, tun/vhost/bridge).
WANTED_MODULES = (
    "irqbypass kvm ccp kvm_amd",
    "netfs fscache 9pnet virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev "
    "virtio_pci 9pnet_virtio 9p",
    "overlay tun vhost vhost_net vhost_vsock bridge",
)


@dataclass(frozen=True)
class Kernel:
    """A ready cache entry."""

    root: Path
    version: str

    @property
    def image(self) -> Path:
        """The image to boot: the ELF vmlinux if there is one (QEMU enters it through its
        PVH note, skipping decompression, which costs seconds under TCG), else the bzImage."""
        vmlinux = self.root / "vmlinux"
        return vmlinux if vmlinux.exists() else self.root / "vmlinuz"

    @property
    def modules_dir(self) -> Path:
        return self.root / "modules"

    def load_order(self) -> list[str]:
        return (self.modules_dir / "order").read_text().split()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ember" / "rig"


def _apt(*args: str) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise KernelPackageNotFoundError(f"cannot run {args[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise KernelPackageNotFoundError(f"`{' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def find_package() -> tuple[str, str]:
    """(package name, candidate version) of the kernel that `linux-image-amd64` pulls in."""
    deps = _apt("apt-cache", "depends", META_PACKAGE)
    match = re.search(r"Depends:\s*(linux-image-[0-9][\w.+-]*-amd64)\b", deps)
    if match is None:
        raise KernelPackageNotFoundError(f"{META_PACKAGE} depends on no linux-image-*-amd64")
    package = match.group(1)
    policy = _apt("apt-cache", "policy", package)
    cand = re.search(r"Candidate:\s*(\S+)", policy)
    if cand is None or cand.group(1) == "(none)":
        raise KernelPackageNotFoundError(f"{package} has no candidate version")
    return package, cand.group(1)


def _pointer() -> Path:
    return cache_root() / "current"


def _read_pointer() -> tuple[str, str] | None:
    """The remembered (package, version), if apt's lists are no newer than the memory."""
    try:
        package, version = _pointer().read_text().split()
        fresh = _pointer().stat().st_mtime >= APT_LISTS.stat().st_mtime
    except (OSError, ValueError):
        return None
    return (package, version) if fresh else None


def _write_pointer(package: str, version: str) -> None:
    _pointer().parent.mkdir(parents=True, exist_ok=True)
    tmp = _pointer().with_suffix(f".{os.getpid()}")
    tmp.write_text(f"{package} {version}\n")
    os.replace(tmp, _pointer())


def _download(package: str, version: str, into: Path) -> Path:
    try:
        proc = subprocess.run(
            ["apt-get", "download", "-q", f"{package}={version}"],
            cwd=into, capture_output=True, text=True, check=False,
        )
    except OSError as exc:
        raise KernelDownloadError(package, f"cannot run apt-get: {exc.strerror}") from None
    debs = sorted(into.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        detail = (proc.stderr.strip().splitlines() or ["no .deb downloaded"])[-1]
        raise KernelDownloadError(package, detail)
    return debs[0]


def _unpack(package: str, deb: Path, into: Path) -> None:
    try:
        proc = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(into)], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise KernelDownloadError(package, f"cannot run dpkg-deb: {exc.strerror}") from None
    if proc.returncode != 0:
        raise KernelDownloadError(package, f"dpkg-deb -x: {proc.stderr.strip()}")


def _modules_dep(moddir: Path, release: str, sysroot: Path) -> str:
    dep = moddir / "modules.dep"
    if not dep.exists():
        # The package ships no modules.dep (the postinst runs depmod); make one here.
        try:
            subprocess.run(["depmod", "-b", str(sysroot), release], check=True,
                           capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            raise KernelPackageNotFoundError(
                "no modules.dep, and `depmod` (package kmod) could not make one") from None
    return dep.read_text()


def _copy_module(src: Path, dest: Path) -> None:
    if src.name.endswith(".xz"):
        dest.write_bytes(lzma.decompress(src.read_bytes()))
    else:
        shutil.copyfile(src, dest)


def _extract_vmlinux(bzimage: Path, dest: Path) -> None:
    """Write the ELF kernel inside an xz-compressed bzImage to `dest`, if it is one."""
    data = bzimage.read_bytes()
    at = data.find(XZ_MAGIC)
    if at < 0:
        return
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
    except lzma.LZMAError:
        return
    if elf.startswith(b"\x7fELF") and _PVH_NOTE_NAME in elf:
        dest.write_bytes(elf)


def _collect(sysroot: Path, entry: Path) -> None:
    """Keep from the unpacked package only the image and the modules L1 loads."""
    moddirs = sorted((sysroot / "lib" / "modules").iterdir())
    if not moddirs:
        raise KernelPackageNotFoundError("the package holds no lib/modules")
    moddir, release = moddirs[0], moddirs[0].name
    os.replace(sysroot / "boot" / f"vmlinuz-{release}", entry / "vmlinuz")
    _extract_vmlinux(entry / "vmlinuz", entry / "vmlinux")
    table = _modules.parse_modules_dep(_modules_dep(moddir, release, sysroot))
    builtin_file = moddir / "modules.builtin"
    builtin = _modules.parse_builtin(builtin_file.read_text() if builtin_file.exists() else "")
    wanted = " ".join(WANTED_MODULES).split()
    try:
        order = _modules.load_order(wanted, table, builtin)
    except KeyError as exc:
        raise ModuleMissingError(str(exc.args[0]), release) from None
    (entry / "modules").mkdir()
    for name in order:
        _copy_module(moddir / table[name].path, entry / "modules" / f"{name}.ko")
    (entry / "modules" / "order").write_text("\n".join(order) + "\n")
    (entry / "release").write_text(release + "\n")


def _build(package: str, version: str, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=final.parent) as tmp:
        work = Path(tmp)
        (work / "entry").mkdir()
        deb = _download(package, version, work)
        _unpack(package, deb, work / "sysroot")
        _collect(work / "sysroot", work / "entry")
        try:
            os.rename(work / "entry", final)
        except OSError:
            if not final.is_dir():  # another builder won the race: use theirs
                raise


def _newest_cached() -> tuple[str, str] | None:
    entries = sorted(cache_root().glob("*/release"), key=lambda p: p.stat().st_mtime)
    return ("", entries[-1].parent.name) if entries else None


def ensure_kernel() -> Kernel:
    """The cached kernel, fetching and unpacking it first if needed."""
    known = _read_pointer()
    try:
        package, version = known if known else find_package()
    except KernelPackageNotFoundError:
        fallback = _newest_cached()  # apt cannot say (no lists?): use what is cached
        if fallback is None:
            raise
        known = package, version = fallback
    entry = cache_root() / version
    if not (entry / "release").exists():
        _build(package, version, entry)
    if known is None:
        _write_pointer(package, version)
    return Kernel(entry, version)
