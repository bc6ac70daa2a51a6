"""ember-rig: run a command where KVM can boot stock Linux guests.

On a host whose /dev/kvm cannot (a paravirtual nested KVM), the command runs inside an
L1 VM under QEMU's TCG with emulated AMD SVM, on a writable overlay of the host's root.
"""

from ember.rig._api import TIMEOUT_STATUS, CompletedRun, one_cpu_prefix, run
from ember.rig._mode import Mode
from ember.rig.errors import L1Error, RigError

__all__ = ["TIMEOUT_STATUS", "CompletedRun", "L1Error", "Mode", "RigError", "one_cpu_prefix",
           "run"]
