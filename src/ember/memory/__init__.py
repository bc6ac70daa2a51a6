"""Guest memory regions and bounds-checked, zero-copy access."""

from ember.memory.guest import PAGE_SIZE, GuestMemory, GuestMemoryError, Region

__all__ = ["PAGE_SIZE", "GuestMemory", "GuestMemoryError", "Region"]
