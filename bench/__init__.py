"""ember's benchmarks, side by side with QEMU's microvm machine.

`python -m bench` measures on this host what needs no booted guest (exec → API socket
ready), then runs `bench.inner` where KVM boots Linux (through `ember-rig`) for everything
that boots guests, and writes build/bench/results.json and build/bench/profile.txt.
"""
