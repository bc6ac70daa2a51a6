"""virtio devices over the MMIO transport: split virtqueues, the register file, block."""
