"""Choosing between running the command directly and running it inside an L1 VM.

`EMBER_RIG=direct` or `EMBER_RIG=nested` forces a mode; otherwise a probe of the host's
/dev/kvm decides: where it can boot a stock Linux guest, the command runs directly.
"""

import os
from enum import Enum

from ember.rig.errors import RigError

ENV_VAR = "EMBER_RIG"


class Mode(Enum):
    DIRECT = "direct"
    NESTED = "nested"


def _kvm_boots_linux() -> bool:
    from ember.kvm.probe import kvm_boots_linux  # imported here: the rig itself needs no KVM

    return kvm_boots_linux()


def choose(environ: dict[str, str] | None = None) -> Mode:
    forced = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if forced:
        try:
            return Mode(forced)
        except ValueError:
            raise RigError(f"{ENV_VAR}={forced!r}: use `direct` or `nested`") from None
    return Mode.DIRECT if _kvm_boots_linux() else Mode.NESTED
