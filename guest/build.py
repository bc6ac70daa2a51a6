#!/usr/bin/env python3
"""Build ember's guest images into build/guest/.

Outputs (relative to the repository root):
  build/guest/vmlinux          uncompressed ELF kernel
  build/guest/bzImage          compressed kernel (Linux boot protocol)
  build/guest/kernel.config    the .config the kernel was built with
  build/guest/initramfs.cpio   newc archive: busybox + /init (the test protocol below)
  build/guest/rootfs.ext4      ext4 root file system: busybox init, getty on ttyS0, root/root

The kernel comes from Debian's linux-source-6.1 tarball, configured as `make tinyconfig`
plus guest/microvm.config, and is cached under ~/.cache/ember/kernel/<key>/ where the key
covers the config fragment and the source tarball, so it is compiled once per machine.
The initramfs and rootfs are rebuilt whenever their inputs change.

Initramfs protocol (guest/initramfs/init), one line each on the console:
  EMBER-GUEST-INIT nproc=<N>
  EMBER-GUEST-CMDLINE <contents of /proc/cmdline>
  (writes 123 to Firecracker's boot timer at 0xc0000000 through /dev/mem)
  EMBER-GUEST-ACTION <action>        action from `ember.action=` on the kernel command line:
    reboot (default)  reboot -f
    poweroff          poweroff -f
    panic             crash the kernel through /proc/sysrq-trigger
    shell             interactive shell on the console; reboot -f when it exits
    run               run `ember.run=<cmd>` (commas stand for spaces), print
                      `EMBER-GUEST-EXIT <status>`, then reboot -f

Only the Python standard library is used, so this runs with any python3 >= 3.11.
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

GUEST_DIR = Path(__file__).resolve().parent
REPO_ROOT = GUEST_DIR.parent
OUT_DIR = REPO_ROOT / "build" / "guest"

CONFIG_FRAGMENT = GUEST_DIR / "microvm.config"
INITRAMFS_INIT = GUEST_DIR / "initramfs" / "init"
ROOTFS_OVERLAY = GUEST_DIR / "rootfs"

LINUX_SOURCE_PACKAGE = "linux-source-6.1"
LINUX_SOURCE_TARBALL = Path(
    os.environ.get("EMBER_LINUX_SOURCE", f"/usr/src/{LINUX_SOURCE_PACKAGE}.tar.xz")
)
BUSYBOX = Path(os.environ.get("EMBER_BUSYBOX", "/bin/busybox"))
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ember"

# Bump when the way the kernel is built changes (commands, outputs), to invalidate caches.
KERNEL_RECIPE = "1"
KERNEL_ARCH = "x86_64"
KERNEL_TARGETS = ("vmlinux", "bzImage")

ROOTFS_SIZE_MIB = 64
ROOT_PASSWORD = "root"

# Applets the initramfs /init uses; each becomes /bin/<name> -> busybox.
INITRAMFS_APPLETS = (
    "sh", "mount", "cat", "echo", "nproc", "devmem", "reboot", "poweroff",
    "setsid", "cttyhack", "sleep", "ls", "mkdir",
)

# Temporary build directories older than this are leftovers of interrupted runs.
STALE_TMP_SECONDS = 12 * 3600
PROGRESS_EVERY_FILES = 250
PROGRESS_EVERY_SECONDS = 20.0


class GuestBuildError(RuntimeError):
    """A guest image could not be built; the message says what to fix."""


def log(message: str) -> None:
    print(f"[guest] {message}", flush=True)


# --------------------------------------------------------------------------------------
# Kernel config fragments


_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str | None]:
    """Map each option of a .config (or fragment) to its value; None means "is not set"."""
    options: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.strip()
        if match := _SET_RE.match(line):
            options[match[1]] = match[2]
        elif match := _UNSET_RE.match(line):
            options[match[1]] = None
    return options


ConfigMap = Mapping[str, str | None]


def config_problems(wanted: ConfigMap, actual: ConfigMap) -> list[str]:
    """List how `actual` (a final .config) differs from what the fragment `wanted`."""
    problems = []
    for name, value in wanted.items():
        got = actual.get(name)
        if got != value:
            want_text = "unset" if value is None else value
            got_text = "unset" if got is None else got
            problems.append(f"{name}: wanted {want_text}, got {got_text}")
    return problems


def check_config(fragment_text: str, config_text: str) -> None:
    """Raise GuestBuildError if any option of the fragment did not end up in .config."""
    problems = config_problems(parse_config(fragment_text), parse_config(config_text))
    if problems:
        raise GuestBuildError(
            "kernel .config does not honour guest/microvm.config (a dependency is missing "
            "or another option forces a value):\n  " + "\n  ".join(problems)
        )


def merge_config(base_text: str, fragment_text: str) -> str:
    """Return `base_text` with every option named in the fragment replaced by its value."""
    fragment = parse_config(fragment_text)
    kept = [
        line for line in base_text.splitlines()
        if not any(m and m[1] in fragment for m in (_SET_RE.match(line), _UNSET_RE.match(line)))
    ]
    added = [
        f"# {name} is not set" if value is None else f"{name}={value}"
        for name, value in fragment.items()
    ]
    return "\n".join(kept + added) + "\n"


# --------------------------------------------------------------------------------------
# newc cpio archives (the initramfs format, Documentation/driver-api/early-userspace)

S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000
S_IFCHR = 0o020000
NEWC_MAGIC = b"070701"
NEWC_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class CpioEntry:
    """One archive member: `mode` includes the file type bits; `data` is the content
    (the target for a symlink); `rdev` is (major, minor) for a device node."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def cpio_dir(name: str, perm: int = 0o755) -> CpioEntry:
    return CpioEntry(name, S_IFDIR | perm)


def cpio_file(name: str, data: bytes, perm: int = 0o644) -> CpioEntry:
    return CpioEntry(name, S_IFREG | perm, data)


def cpio_symlink(name: str, target: str) -> CpioEntry:
    return CpioEntry(name, S_IFLNK | 0o777, target.encode())


def cpio_chardev(name: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
    return CpioEntry(name, S_IFCHR | perm, rdev=(major, minor))


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _newc_member(entry: CpioEntry, ino: int) -> bytes:
    name = entry.name.encode() + b"\0"
    nlink = 2 if entry.mode & 0o170000 == S_IFDIR else 1
    fields = (
        ino, entry.mode, 0, 0, nlink, 0, len(entry.data),  # ino mode uid gid nlink mtime size
        0, 0, entry.rdev[0], entry.rdev[1],  # dev major/minor, rdev major/minor
        len(name), 0,  # namesize, check (unused by newc)
    )
    header = NEWC_MAGIC + b"".join(b"%08x" % value for value in fields)
    head = header + name
    return head + _pad4(len(head)) + entry.data + _pad4(len(entry.data))


def newc_archive(entries: Iterable[CpioEntry]) -> bytes:
    """Serialise entries (owned by root, mtime 0) as a newc archive with its trailer."""
    members = [_newc_member(entry, ino) for ino, entry in enumerate(entries, start=1)]
    members.append(_newc_member(CpioEntry(NEWC_TRAILER, 0), 0))
    return b"".join(members)


# --------------------------------------------------------------------------------------
# initramfs


def initramfs_entries(
    busybox: Path = BUSYBOX, init_script: Path = INITRAMFS_INIT
) -> list[CpioEntry]:
    """The test initramfs: busybox, its applet links, /init, and /dev/console."""
    entries = [cpio_dir(d) for d in ("bin", "dev", "proc", "sys", "tmp")]
    # The kernel opens /dev/console for init before anything can mount devtmpfs.
    entries.append(cpio_chardev("dev/console", 5, 1))
    entries.append(cpio_file("bin/busybox", busybox.read_bytes(), 0o755))
    entries += [cpio_symlink(f"bin/{applet}", "busybox") for applet in INITRAMFS_APPLETS]
    entries.append(cpio_file("init", init_script.read_bytes(), 0o755))
    return entries


def build_initramfs(output: Path, busybox: Path = BUSYBOX) -> None:
    _write_atomically(output, newc_archive(initramfs_entries(busybox)))


# --------------------------------------------------------------------------------------
# rootfs


def hash_password(password: str) -> str:
    """A SHA-512 crypt(3) hash ("$6$salt$...") with a fresh random salt."""
    salt = os.urandom(12).hex()[:16]
    commands = (
        ["openssl", "passwd", "-6", "-salt", salt, password],
        [str(BUSYBOX), "mkpasswd", "-m", "sha512", password, salt],
    )
    for command in commands:
        if shutil.which(command[0]):
            hashed = _run_capture(command).strip()
            if hashed.startswith("$6$"):
                return hashed
    raise GuestBuildError("cannot hash the root password: install openssl or busybox-static")


def busybox_applet_paths(busybox: Path = BUSYBOX) -> list[str]:
    """Install paths of every applet, e.g. "sbin/init", as `busybox --list-full` reports."""
    lines = _run_capture([str(busybox), "--list-full"]).split()
    return [line.strip("/") for line in lines if line.strip("/") and line != "bin/busybox"]


def stage_rootfs(stage: Path, password_hash: str, busybox: Path = BUSYBOX) -> None:
    """Lay out the root file system tree in `stage` (an empty directory)."""
    for name in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "mnt",
                 "root", "run", "var/log", "etc/init.d"):
        (stage / name).mkdir(parents=True, exist_ok=True)
    os.chmod(stage / "tmp", 0o1777)
    os.chmod(stage / "root", 0o700)
    shutil.copy2(busybox, stage / "bin/busybox")
    os.chmod(stage / "bin/busybox", 0o755)
    for applet in busybox_applet_paths(busybox):
        link = stage / applet
        if not link.exists():
            link.symlink_to("/bin/busybox")
    _copy_overlay(ROOTFS_OVERLAY, stage)
    (stage / "etc/shadow").write_text(f"root:{password_hash}:19000:0:99999:7:::\n")
    os.chmod(stage / "etc/shadow", 0o600)


def _copy_overlay(source: Path, stage: Path) -> None:
    for path in sorted(source.rglob("*")):
        target = stage / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            shutil.copyfile(path, target)
            executable = path.parent.name == "init.d" or os.access(path, os.X_OK)
            os.chmod(target, 0o755 if executable else 0o644)


def make_ext4(stage: Path, image: Path, size_mib: int = ROOTFS_SIZE_MIB) -> None:
    """Create an ext4 image of `size_mib` MiB populated from `stage` (no loop mounts)."""
    with open(image, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    _run_capture(["mkfs.ext4", "-q", "-F", "-L", "ember-root", "-E", "root_owner=0:0",
                  "-d", str(stage), str(image)])
    if os.getuid() != 0:
        _chown_to_root(stage, image)


def _chown_to_root(stage: Path, image: Path) -> None:
    """mkfs copies the staging files' owner; when not run as root, make them root's."""
    commands = []
    for path in sorted(stage.rglob("*")):
        inode = "/" + str(path.relative_to(stage))
        commands += [f'sif "{inode}" uid 0', f'sif "{inode}" gid 0']
    _run_capture(["debugfs", "-w", "-f", "-", str(image)], stdin="\n".join(commands) + "\n")


def build_rootfs(output: Path, busybox: Path = BUSYBOX) -> None:
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=output.parent) as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        stage_rootfs(stage, hash_password(ROOT_PASSWORD), busybox)
        image = Path(tmp) / "rootfs.ext4"
        make_ext4(stage, image)
        os.replace(image, output)


# --------------------------------------------------------------------------------------
# Kernel


def linux_source_version() -> str:
    """The Debian version of the linux-source package, or "unknown" outside Debian."""
    if not shutil.which("dpkg-query"):
        return "unknown"
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", LINUX_SOURCE_PACKAGE],
        capture_output=True, text=True, check=False,
    )
    return result.stdout.strip() or "unknown"


def source_key(tarball: Path = LINUX_SOURCE_TARBALL) -> str:
    if not tarball.is_file():
        raise GuestBuildError(
            f"{tarball} not found: install it with `apt-get install {LINUX_SOURCE_PACKAGE}` "
            "or point EMBER_LINUX_SOURCE at a linux source tarball"
        )
    identity = f"{tarball.name}\0{tarball.stat().st_size}\0{linux_source_version()}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def kernel_key(fragment_text: str, src_key: str) -> str:
    identity = f"{KERNEL_RECIPE}\0{KERNEL_ARCH}\0{src_key}\0{fragment_text}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _cache_tmp() -> Path:
    tmp = CACHE_ROOT / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def _publish(tmp_dir: Path, final: Path) -> None:
    """Rename a finished directory into place; if a concurrent build won, keep theirs."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp_dir.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _remove_stale_tmp() -> None:
    for entry in _cache_tmp().iterdir():
        try:
            stale = time.time() - entry.stat().st_mtime > STALE_TMP_SECONDS
        except FileNotFoundError:  # another build finished with it meanwhile
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)


def ensure_linux_source(tarball: Path = LINUX_SOURCE_TARBALL) -> Path:
    """Unpack the source tarball once into the cache; return the source tree."""
    final = CACHE_ROOT / "linux-src" / source_key(tarball)
    if not final.is_dir():
        log(f"unpacking {tarball} (once per machine) ...")
        started = time.monotonic()
        tmp_dir = Path(tempfile.mkdtemp(prefix="src-", dir=_cache_tmp()))
        _run_capture(["tar", "-xf", str(tarball), "-C", str(tmp_dir)])
        _publish(tmp_dir, final)
        log(f"unpacked in {time.monotonic() - started:.0f} s")
    trees = [p for p in final.iterdir() if (p / "Makefile").is_file()]
    if len(trees) != 1:
        raise GuestBuildError(f"{final}: expected one kernel source tree, found {trees}")
    return trees[0]


def _kmake(src: Path, objdir: Path, *targets: str) -> list[str]:
    return ["make", "-C", str(src), f"O={objdir}", f"ARCH={KERNEL_ARCH}", *targets]


def configure_kernel(src: Path, objdir: Path, fragment_text: str) -> None:
    """tinyconfig, then the fragment, then olddefconfig; verify the fragment survived."""
    _run_capture(_kmake(src, objdir, "tinyconfig"))
    config = objdir / ".config"
    config.write_text(merge_config(config.read_text(), fragment_text))
    _run_capture(_kmake(src, objdir, "olddefconfig"))
    check_config(fragment_text, config.read_text())
    log("kernel .config verified: every option of guest/microvm.config is in place")


_COMPILE_RE = re.compile(r"^\s+(CC|AS|LD|AR|HOSTCC|OBJCOPY)\s+(\S+)")


def compile_kernel(src: Path, objdir: Path) -> None:
    """`make -jN vmlinux bzImage`, condensing the output into periodic progress lines."""
    jobs = len(os.sched_getaffinity(0))
    command = _kmake(src, objdir, f"-j{jobs}", *KERNEL_TARGETS)
    log(f"compiling the kernel with -j{jobs} (a few minutes) ...")
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=60)
    env = dict(os.environ, KBUILD_BUILD_USER="ember", KBUILD_BUILD_HOST="ember", LC_ALL="C")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env=env) as proc:
        assert proc.stdout is not None
        _report_progress(proc.stdout, tail, started)
        status = proc.wait()
    if status != 0:
        hint = "" if (src / "Makefile").is_file() else (
            f"\nthe source tree {src} vanished during the build (was {CACHE_ROOT} removed?); "
            "run the build again"
        )
        raise GuestBuildError(
            f"kernel build failed (exit {status}) in {objdir}; last lines:\n"
            + "".join(tail) + hint
        )
    log(f"kernel compiled in {_elapsed(started)}")


def _report_progress(lines: Iterator[str] | Iterable[str], tail: collections.deque[str],
                     started: float) -> None:
    count = 0
    last_report = started
    for line in lines:
        tail.append(line)
        match = _COMPILE_RE.match(line)
        if not match:
            continue
        count += 1
        now = time.monotonic()
        if count % PROGRESS_EVERY_FILES == 0 or now - last_report >= PROGRESS_EVERY_SECONDS:
            last_report = now
            log(f"  {_elapsed(started)}  {count:5d} steps  {match[1]} {match[2]}")


def _elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def build_kernel_into(entry_tmp: Path, fragment_text: str) -> None:
    """Configure and compile in a scratch object dir; leave the results in `entry_tmp`."""
    src = ensure_linux_source()
    objdir = Path(tempfile.mkdtemp(prefix="obj-", dir=_cache_tmp()))
    configure_kernel(src, objdir, fragment_text)
    compile_kernel(src, objdir)
    shutil.copyfile(objdir / "vmlinux", entry_tmp / "vmlinux")
    shutil.copyfile(objdir / "arch/x86/boot/bzImage", entry_tmp / "bzImage")
    shutil.copyfile(objdir / ".config", entry_tmp / "config")
    shutil.rmtree(objdir, ignore_errors=True)


def ensure_kernel() -> Path:
    """Return the cache entry holding vmlinux, bzImage and config; build it if missing."""
    fragment_text = CONFIG_FRAGMENT.read_text()
    key = kernel_key(fragment_text, source_key())
    final = CACHE_ROOT / "kernel" / key
    if (final / "vmlinux").is_file():
        log(f"kernel: cached build {final}")
        return final
    _remove_stale_tmp()
    started = time.monotonic()
    entry_tmp = Path(tempfile.mkdtemp(prefix="kernel-", dir=_cache_tmp()))
    build_kernel_into(entry_tmp, fragment_text)
    _publish(entry_tmp, final)
    log(f"kernel: built and cached in {final} (total {_elapsed(started)})")
    return final


def install_kernel(entry: Path, out_dir: Path = OUT_DIR) -> None:
    for name, target in (("vmlinux", "vmlinux"), ("bzImage", "bzImage"),
                         ("config", "kernel.config")):
        tmp = out_dir / f".{target}.tmp"
        shutil.copyfile(entry / name, tmp)
        os.replace(tmp, out_dir / target)


# --------------------------------------------------------------------------------------
# Helpers


def _run_capture(command: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GuestBuildError(
            f"`{' '.join(command)}` failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def inputs_key(paths: Iterable[Path]) -> str:
    """Hash of the build script and the given input files (directories: all their files)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            digest.update(f"{file}\0{stat.st_size}\0{stat.st_mode}\0".encode())
            small = stat.st_size < 1 << 20
            digest.update(file.read_bytes() if small else str(stat.st_mtime_ns).encode())
    return digest.hexdigest()


def rebuild_if_changed(output: Path, inputs: Iterable[Path],
                       build: Callable[[Path], None]) -> None:
    """Run `build(output)` unless the stamp beside `output` matches the inputs' hash."""
    stamp = output.with_name(f".{output.name}.inputs")
    key = inputs_key(inputs)
    if output.is_file() and stamp.is_file() and stamp.read_text() == key:
        log(f"{output.name}: up to date")
        return
    build(output)
    stamp.write_text(key)
    log(f"{output.name}: built ({output.stat().st_size / 2**20:.1f} MiB)")


def check_tools() -> None:
    needed = {"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc",
              "mkfs.ext4": "e2fsprogs", "tar": "tar", "xz": "xz-utils"}
    missing = sorted({pkg for tool, pkg in needed.items() if not shutil.which(tool)})
    if not BUSYBOX.is_file():
        missing.append("busybox-static")
    if missing:
        raise GuestBuildError(f"missing build tools; install: apt-get install {' '.join(missing)}")


def main() -> int:
    started = time.monotonic()
    try:
        check_tools()
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        rebuild_if_changed(OUT_DIR / "initramfs.cpio", [INITRAMFS_INIT, BUSYBOX], build_initramfs)
        rebuild_if_changed(OUT_DIR / "rootfs.ext4", [ROOTFS_OVERLAY, BUSYBOX], build_rootfs)
        install_kernel(ensure_kernel())
    except GuestBuildError as error:
        print(f"guest build failed: {error}", file=sys.stderr)
        return 1
    log(f"guest images ready in {OUT_DIR} ({_elapsed(started)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
