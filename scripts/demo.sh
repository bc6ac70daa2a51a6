#!/usr/bin/env bash
# `make demo`: Firecracker's getting-started flow, unchanged, against ember.
# ember serves its API on a Unix socket; curl sets the boot source and the root drive and
# starts the instance; the guest's serial console is this terminal. Log in as root/root;
# `reboot` in the guest ends the microVM and ember exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
sock=${EMBER_DEMO_SOCKET:-/tmp/ember-demo.socket}
kernel=$PWD/build/guest/vmlinux
rootfs=$PWD/build/demo/rootfs.ext4
mkdir -p build/demo
cp build/guest/rootfs.ext4 "$rootfs"   # the demo's writes go to a copy
rm -f "$sock"

api() {  # api METHOD PATH JSON
    curl --silent --show-error --fail-with-body --unix-socket "$sock" -X "$1" \
        "http://localhost$2" -H 'Accept: application/json' \
        -H 'Content-Type: application/json' -d "$3"
}

configure() {
    for _ in $(seq 400); do [ -S "$sock" ] && break; sleep 0.05; done
    api PUT /boot-source "{\"kernel_image_path\": \"$kernel\",
        \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"}"
    api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$rootfs\",
        \"is_root_device\": true, \"is_read_only\": false}"
    api PUT /actions '{"action_type": "InstanceStart"}'
}

configure &
exec .venv/bin/ember --api-sock "$sock"
