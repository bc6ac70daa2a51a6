"""Errors of the rig. Each message is one line that tells the user what to do."""


class RigError(Exception):
    """The rig could not run the command; the message says what to do."""


class QemuMissingError(RigError):
    """qemu-system-x86_64 is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86`"
        )


class BusyboxMissingError(RigError):
    """The static busybox that becomes the L1 init is not installed."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} not found: install it with `apt-get install busybox-static`")


class KernelPackageNotFoundError(RigError):
    """apt knows no linux-image-*-amd64 package to use as the L1 kernel."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"no Debian kernel package for the L1 VM ({detail}): "
            "run `apt-get update` and check that `apt-cache depends linux-image-amd64` works"
        )


class KernelDownloadError(RigError):
    """apt-get download or dpkg-deb failed."""

    def __init__(self, package: str, detail: str) -> None:
        super().__init__(
            f"could not fetch {package} ({detail}): check network access to the Debian "
            f"mirror and try `apt-get download {package}` by hand"
        )


class ModuleMissingError(RigError):
    """A kernel module the L1 init needs is not in the kernel package."""

    def __init__(self, name: str, release: str) -> None:
        super().__init__(
            f"module {name} is missing from kernel {release}: remove ~/.cache/ember/rig "
            "and run again, or report the kernel version"
        )


class L1Error(RigError):
    """The L1 VM stopped before it reported the command's exit status."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log
        self.stdout = b""  # what the command printed before L1 stopped
        self.stderr = b""
