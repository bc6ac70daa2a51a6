#!/usr/bin/env bash
# `make demo`: Firecracker's getting-started flow, unchanged, against ember.
# ember serves its API on a Unix socket; curl configures the boot source and starts the
# instance; the guest's serial console is this terminal. Type `reboot -f` in the guest
# (or press Ctrl-D at its shell) to end the microVM; ember then exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
sock=${EMBER_DEMO_SOCKET:-/tmp/ember-demo.socket}
kernel=$PWD/build/guest/vmlinux
initrd=$PWD/build/guest/initramfs.cpio
rm -f "$sock"

api() {  # api METHOD PATH JSON
    curl --silent --show-error --fail-with-body --unix-socket "$sock" -X "$1" \
        "http://localhost$2" -H 'Accept: application/json' \
        -H 'Content-Type: application/json' -d "$3"
}

configure() {
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
    api PUT /boot-source "{\"kernel_image_path\": \"$kernel\", \"initrd_path\": \"$initrd\",
        \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off ember.action=shell\"}"
    api PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}'
    api PUT /actions '{"action_type": "InstanceStart"}'
}

configure &
exec .venv/bin/ember --api-sock "$sock"
