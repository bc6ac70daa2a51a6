from bench import smaps

MIB = 1 << 20
GUEST = 256 * MIB

SMAPS = """\
55d0c0000000-55d0c0200000 r-xp 00000000 fd:01 1234    /usr/bin/python3.11
Size:               2048 kB
Rss:                1500 kB
Pss:                 700 kB
Shared_Clean:       1000 kB
Shared_Dirty:          0 kB
Private_Clean:       400 kB
Private_Dirty:       100 kB
VmFlags: rd ex mr mw me dw
7f0000000000-7f0010000000 rw-p 00000000 00:00 0
Size:             262144 kB
Rss:               65536 kB
Private_Clean:         0 kB
Private_Dirty:     65536 kB
7f0010000000-7f0010100000 rw-p 00000000 00:00 0                          [heap]
Size:               1024 kB
Rss:                 800 kB
Private_Clean:         0 kB
Private_Dirty:       800 kB
"""


def test_parse_reads_ranges_names_and_fields() -> None:
    maps = smaps.parse(SMAPS)
    assert [m.name for m in maps] == ["/usr/bin/python3.11", "", "[heap]"]
    assert maps[1].size == GUEST
    assert maps[0].field("Rss") == 1500 * 1024
    assert maps[0].field("Missing") == 0


def test_overhead_leaves_out_the_guest_mapping() -> None:
    result = smaps.overhead(smaps.parse(SMAPS), GUEST)
    assert result.rss == (1500 + 800) * 1024
    assert result.uss == (400 + 100 + 800) * 1024
    assert result.guest_rss == 65536 * 1024


def test_guest_mapping_tolerates_a_slightly_larger_block() -> None:
    maps = smaps.parse(SMAPS.replace("7f0010000000 rw-p", "7f0010001000 rw-p", 1))
    guest = smaps.guest_mapping(maps, GUEST)
    assert guest is not None and guest.size == GUEST + 4096


def test_no_guest_mapping_counts_everything() -> None:
    result = smaps.overhead(smaps.parse(SMAPS), 512 * MIB)
    assert result.guest_rss == 0
    assert result.rss == (1500 + 65536 + 800) * 1024


def test_parse_empty() -> None:
    assert smaps.parse("") == []
