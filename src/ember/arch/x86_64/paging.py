"""Identity-mapped page tables covering the first 1 GiB with 2 MiB pages.

Entry format: Intel SDM vol. 3, 4.5 "4-Level Paging".
"""

from __future__ import annotations

from ember.arch.x86_64 import layout

PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PDE_PAGE_SIZE = 1 << 7  # PS: this PD entry maps a 2 MiB page
ENTRIES_PER_TABLE = 512
HUGE_PAGE_SIZE = 2 << 20


def identity_page_tables() -> dict[int, bytes]:
    """The PML4, PDPT and PD pages, keyed by guest-physical address."""
    pml4 = (layout.PDPTE_START | PTE_PRESENT | PTE_WRITABLE).to_bytes(8, "little")
    pdpt = (layout.PDE_START | PTE_PRESENT | PTE_WRITABLE).to_bytes(8, "little")
    pd = b"".join(
        ((i * HUGE_PAGE_SIZE) | PDE_PAGE_SIZE | PTE_PRESENT | PTE_WRITABLE).to_bytes(8, "little")
        for i in range(ENTRIES_PER_TABLE)
    )
    return {layout.PML4_START: pml4, layout.PDPTE_START: pdpt, layout.PDE_START: pd}
